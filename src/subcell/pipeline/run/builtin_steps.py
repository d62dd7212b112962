"""The built-in steps of ``subcell run``, registered through the ``register_steps`` hook.

Each is a small adapter (:mod:`.steps_data`, :mod:`.steps_segment`, :mod:`.steps_analysis`,
:mod:`.report`) over the Python function the matching command calls. A new step is the
same few lines: an attrs config class with a default for every field, a class with
``inputs``, ``outputs`` and ``run(inputs, out)``, and one ``register`` call::

    @attrs.frozen(kw_only=True)
    class CellcutterStepConfig:
        epochs: int = 20

    class CellcutterStep:
        inputs = {"images": "required"}
        outputs = ("labels",)

        def __init__(self, config):
            self.config = config

        def run(self, inputs, out):
            return {"labels": segment_cells(inputs["images"], out / "labels", self.config)}

    @hookimpl
    def register_steps(register):
        register("cellcutter", CellcutterStepConfig, CellcutterStep, "cells of clumps")
"""

from __future__ import annotations

from subcell.core.hookspecs import hookimpl
from subcell.pipeline.run.report import ReportStep, ReportStepConfig
from subcell.pipeline.run.steps_analysis import (
    AnalyzeStep,
    AnalyzeStepConfig,
    CompareStep,
    CompareStepConfig,
    TrackStep,
    TrackStepConfig,
)
from subcell.pipeline.run.steps_data import (
    SimulateStep,
    SimulateStepConfig,
    TrainStep,
    TrainStepConfig,
)
from subcell.pipeline.run.steps_segment import (
    EvaluateStep,
    EvaluateStepConfig,
    SegmentStep,
    SegmentStepConfig,
)

#: name -> (config class, step class, description), in the order ``subcell plugins`` lists.
STEPS = {
    "simulate": (SimulateStepConfig, SimulateStep, "a simulated dataset (subcell simulate)"),
    "train": (TrainStepConfig, TrainStep, "a segmentation network (subcell train)"),
    "segment": (SegmentStepConfig, SegmentStep, "masks of a dataset, folder or image"),
    "evaluate": (EvaluateStepConfig, EvaluateStep, "scores against ground truth"),
    "analyze": (AnalyzeStepConfig, AnalyzeStep, "per-object tables and plots of labels"),
    "compare": (CompareStepConfig, CompareStep, "analyses of several conditions compared"),
    "track": (TrackStepConfig, TrackStep, "tracks and events of a label time series"),
    "report": (ReportStepConfig, ReportStep, "a Markdown report: scores table and figures"),
}


@hookimpl
def register_steps(register):
    """Register the built-in pipeline steps."""
    for name, (config_cls, step_cls, description) in STEPS.items():
        register(name, config_cls, step_cls, description)
