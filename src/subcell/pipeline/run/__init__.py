"""``subcell run``: config-composed pipelines that skip what is done and record provenance.

A pipeline file names steps (simulate, train, segment, evaluate, analyze, compare, track,
report, and any step a plugin registers), each with its config and with inputs wired to
other steps' outputs (``${steps.sim.out}``). :func:`load_pipeline` validates the whole
file before anything runs; :func:`make_plan` decides, from the records in the step folders,
what runs and what is reused; :func:`run_pipeline` runs it (independent steps in parallel
through dask); :func:`trace` follows an output's records back to where it came from.
Format and examples: ``docs/run.md``.
"""

from subcell.pipeline.run.execute import RunResult, execute, run_pipeline
from subcell.pipeline.run.pipeline import Pipeline, load_pipeline
from subcell.pipeline.run.plan import Plan, PlannedStep, make_plan
from subcell.pipeline.run.records import RECORD_FILE, read_record
from subcell.pipeline.run.trace import TraceLink, TraceNode, trace, trace_tree

__all__ = [
    "RECORD_FILE",
    "Pipeline",
    "Plan",
    "PlannedStep",
    "RunResult",
    "TraceLink",
    "TraceNode",
    "execute",
    "load_pipeline",
    "make_plan",
    "read_record",
    "run_pipeline",
    "trace",
    "trace_tree",
]
