"""``subcell demo``: the main job end to end, on an image simulated from physics.

The demo is a pipeline (``demo.yaml``, package data next to this module) run by the same
engine as ``subcell run``: simulate a widefield image of mitochondria (with ground truth
no annotator touched), segment it with the bundled ``mitochondria-epi`` model and with
Otsu's method, score both, measure the model's mitochondria, and write the report
(:mod:`.steps`: masks, overlays, OME-Zarr, figure, ``report.md``). :func:`run_demo` copies
the pipeline files into the output folder, runs them there (step folders under
``steps/``) and puts the report's files at the top of the folder.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from rich.console import Console

from subcell.registry import get_registry

__all__ = ["METHODS", "PIPELINE_FILES", "demo_overrides", "run_demo"]

#: The methods the demo compares: the bundled model first, then the classical baseline.
METHODS = ("mitochondria-epi", "otsu")
#: The pipeline and the configs it names, copied into the output folder.
PIPELINE_FILES = ("demo.yaml", "mito-epi.yaml", "segment-otsu.yaml")
_REPORT_STEP = "report"


def demo_overrides(overrides, steps) -> list[str]:
    """``--set`` of the demo as pipeline overrides: ``STEP.KEY=VALUE`` stays, any other
    ``KEY=VALUE`` is a key of the simulate config (``microscope.na=1.2``)."""
    routed = []
    for text in overrides:
        head = text.split("=", 1)[0].split(".", 1)[0]
        routed.append(text if head in steps else f"simulate.{text}")
    return routed


def run_demo(out: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Run the demo pipeline into folder ``out``; returns its numbers.

    Parameters
    ----------
    out
        Output folder (created): the pipeline files, ``steps/`` and the report's files.
        Run again, it reuses every step whose config and inputs are unchanged.
    overrides
        ``--set`` overrides: ``KEY=VALUE`` of the simulate config (``microscope.na=1.2``)
        or ``STEP.KEY=VALUE`` of a pipeline step.

    Returns
    -------
    dict
        ``mitochondria_simulated``, ``objects_found``, ``scores`` (method -> ``miou``,
        ``f1``, ``iou_foreground``, ``pixel_accuracy``, ``ap50``, ``objects``) and
        ``timings_s`` (step -> seconds of its last run).
    """
    from subcell.pipeline.run import load_pipeline, read_record, run_pipeline
    from subcell.pipeline.run.spec import load_spec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        with resources.as_file(resources.files("subcell.pipeline.demo") / name) as source:
            shutil.copyfile(source, out / name)
    console = Console(stderr=True, log_path=False)
    registry = get_registry()
    sets = demo_overrides(overrides, load_spec(out / "demo.yaml").steps)
    pipeline = load_pipeline(out / "demo.yaml", sets, registry=registry)
    run_pipeline(pipeline, console=console, registry=registry)
    _publish(pipeline.folder(_REPORT_STEP), out)
    summary = json.loads((out / "summary.json").read_text())
    summary["timings_s"] = {
        name: float((read_record(pipeline.folder(name)) or {}).get("seconds") or 0.0)
        for name in pipeline.steps
    }
    best, other = (summary["scores"][m] for m in METHODS)
    console.log(
        f"{METHODS[0]}: mIoU {best['miou']:.3f}, F1 {best['f1']:.3f}; "
        f"{METHODS[1]}: mIoU {other['miou']:.3f}; report: {out / 'report.md'}"
    )
    return summary


def _publish(folder: Path, out: Path) -> None:
    """Copy the report step's files (not its record) to the top of ``out``."""
    from subcell.pipeline.run import RECORD_FILE

    for path in sorted(folder.iterdir()):
        if path.name == RECORD_FILE:
            continue
        target = out / path.name
        if target.is_dir():
            shutil.rmtree(target)
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copyfile(path, target)
