"""The built-in steps of ``subcell run``, registered through the ``register_steps`` hook.

Each is a small adapter (:mod:`.steps_data`, :mod:`.steps_segment`, :mod:`.steps_evaluate`,
:mod:`.steps_cellcutter`, :mod:`.steps_analysis`, :mod:`.report`) over the Python function
the matching command calls. A new step is the same few lines: an attrs config class with a
default for every field, a class with ``inputs``, ``outputs`` and ``run(inputs, out)``, and
one ``register`` call::

    @attrs.frozen(kw_only=True)
    class CountStepConfig:
        min_size_px: int = 10  # objects smaller than this are not counted

    class CountStep:
        inputs = {"labels": "required"}
        outputs = ("counts",)

        def __init__(self, config):
            self.config = config

        def run(self, inputs, out):
            return {"counts": count_objects(inputs["labels"], out / "counts.csv", self.config)}

    @hookimpl
    def register_steps(register):
        register("count", CountStepConfig, CountStep, "objects per image")

:mod:`.steps_cellcutter` is a complete one (a config file, settings, a dataset input).
"""

from __future__ import annotations

from subcell.core.hookspecs import hookimpl
from subcell.pipeline.demo.steps import DemoReportStep, DemoReportStepConfig
from subcell.pipeline.run.report import ReportStep, ReportStepConfig
from subcell.pipeline.run.steps_analysis import (
    AnalyzeStep,
    AnalyzeStepConfig,
    CompareStep,
    CompareStepConfig,
    TrackStep,
    TrackStepConfig,
)
from subcell.pipeline.run.steps_cellcutter import CellCutterRunStep, CellCutterRunStepConfig
from subcell.pipeline.run.steps_data import (
    SimulateStep,
    SimulateStepConfig,
    TrainStep,
    TrainStepConfig,
)
from subcell.pipeline.run.steps_evaluate import EvaluateStep, EvaluateStepConfig
from subcell.pipeline.run.steps_merge import MergeStep, MergeStepConfig
from subcell.pipeline.run.steps_segment import SegmentStep, SegmentStepConfig

#: name -> (config class, step class, description), in the order ``subcell plugins`` lists.
STEPS = {
    "simulate": (SimulateStepConfig, SimulateStep, "a simulated dataset (subcell simulate)"),
    "train": (TrainStepConfig, TrainStep, "a segmentation network (subcell train)"),
    "segment": (SegmentStepConfig, SegmentStep, "masks of a dataset, folder or image"),
    "evaluate": (EvaluateStepConfig, EvaluateStep, "scores against ground truth"),
    "merge": (MergeStepConfig, MergeStep, "several predictions of one dataset as one map"),
    "analyze": (AnalyzeStepConfig, AnalyzeStep, "per-object tables and plots of labels"),
    "compare": (CompareStepConfig, CompareStep, "analyses of several conditions compared"),
    "track": (TrackStepConfig, TrackStep, "tracks and events of a label time series"),
    "cellcutter": (
        CellCutterRunStepConfig,
        CellCutterRunStep,
        "single cells of clumped-cell images, without labels (subcell cellcutter)",
    ),
    "report": (ReportStepConfig, ReportStep, "a Markdown report: scores table and figures"),
    "demo_report": (
        DemoReportStepConfig,
        DemoReportStep,
        "the report of subcell demo: masks, overlays, OME-Zarr, figure",
    ),
}


@hookimpl
def register_steps(register):
    """Register the built-in pipeline steps."""
    for name, (config_cls, step_cls, description) in STEPS.items():
        register(name, config_cls, step_cls, description)
