"""``subcell demo``: the main job end to end, on an image simulated from physics.

Simulates a widefield image of mitochondria (with ground truth no annotator touched),
writes it as OME-Zarr and reads it back, segments it with the bundled ``mitochondria-epi``
model and with Otsu's method, writes each mask (TIFF) and overlay (PNG), scores both against
the ground truth, measures every segmented mitochondrion and writes ``report.md``.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np
from rich.console import Console

from subcell.core.errors import SubcellError
from subcell.core.metrics import (
    class_index_map,
    confusion_matrix,
    instance_scores,
    semantic_scores,
)
from subcell.core.model import Masks, Volume
from subcell.core.omezarr import read_labels
from subcell.core.structuring import to_yaml
from subcell.pipeline.config import load_config
from subcell.pipeline.demo.figure import overview_png
from subcell.pipeline.demo.report import report_markdown
from subcell.pipeline.segment import run_segment
from subcell.pipeline.segment_io import overlay_png, write_segmentation
from subcell.pipeline.simulate import simulation_provenance
from subcell.pipeline.tiles import dataset_image
from subcell.pipeline.volumes import read_volume, write_volume
from subcell.registry import get_registry

#: The methods the demo compares: the bundled model first, then the classical baseline.
METHODS = ("mitochondria-epi", "otsu")


def _packaged(name: str) -> Path:
    with resources.as_file(resources.files("subcell.pipeline.demo") / name) as path:
        return Path(path)


def run_demo(out: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Run the demo into folder ``out``; returns the figures written to the report.

    Parameters
    ----------
    out
        Output folder (created; files in it are replaced).
    overrides
        ``--set`` overrides for the simulate config, e.g. ``["microscope.na=1.2"]``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True, log_path=False)
    registry = get_registry()
    timings: dict[str, float] = {}

    def timed(name: str, call):
        console.log(f"[bold]{name}[/bold]")
        start = time.perf_counter()
        result = call()
        timings[name] = time.perf_counter() - start
        return result

    sim_config = load_config(_packaged("mito-epi.yaml"), overrides, registry=registry)
    (out / "simulate.yaml").write_text(to_yaml(sim_config.config))
    simulated = timed("simulate", lambda: dataset_image(sim_config.config, 0, registry))
    image = Volume(simulated.images, simulated.voxel_nm, channel_names=simulated.channel_names)
    truth = Masks(simulated.masks, simulated.class_names, simulated.voxel_nm, simulated.instances)
    zarr_path = timed(
        "write and read back OME-Zarr",
        lambda: _round_trip(image, truth, out, sim_config.config, registry),
    )
    results = {}
    for method in METHODS:
        results[method] = timed(
            f"segment ({method})", lambda m=method: _segment(image, truth, m, out, registry)
        )
    model_masks = results[METHODS[0]]["masks"]
    table = timed(
        "measure",
        lambda: registry.create("analytics", "region_props").measure(model_masks, image),
    )
    table.to_csv(out / "objects.csv")
    pixels = np.asarray(image.data)[0, 0]
    overview_png(
        pixels,
        truth.semantic[0, 0],
        [results[m]["masks"].semantic[0, 0] for m in METHODS],
        out / "overview.png",
    )
    summary = {
        "mitochondria_simulated": int(len(np.unique(simulated.instances)) - 1),
        "objects_found": len(table),
        "scores": {m: results[m]["scores"] for m in METHODS},
        "timings_s": timings,
    }
    (out / "report.md").write_text(report_markdown(sim_config.config, summary, zarr_path, METHODS))
    best = summary["scores"][METHODS[0]]
    console.log(
        f"{METHODS[0]}: mIoU {best['miou']:.3f}, F1 {best['f1']:.3f}; "
        f"otsu: mIoU {summary['scores']['otsu']['miou']:.3f}; report: {out / 'report.md'}"
    )
    return summary


def _round_trip(image: Volume, truth: Masks, out: Path, config, registry) -> Path:
    provenance = simulation_provenance(config, registry)
    path = write_volume(
        image,
        out / "mito.ome.zarr",
        masks=truth,
        attrs={"provenance": provenance},
        registry=registry,
    )
    back = read_volume(path, registry=registry)
    labels = read_labels(path)
    if (
        not np.array_equal(np.asarray(back.data), np.asarray(image.data))
        or labels is None
        or not np.array_equal(labels.semantic, truth.semantic)
    ):
        raise SubcellError(f"{path}: OME-Zarr round trip changed the data")
    return path


def _segment(image: Volume, truth: Masks, method: str, out: Path, registry) -> dict:
    result = run_segment(image, method, instances=True, registry=registry)
    masks = result.masks
    write_segmentation(masks, out / f"{method}-mask.tif", attrs={"method": method})
    predicted = class_index_map(masks.semantic)
    overlay_png(np.asarray(image.data)[0, 0], predicted[0], out / f"{method}-overlay.png")
    confusion = confusion_matrix(class_index_map(truth.semantic), predicted, 2)
    scores = semantic_scores(confusion, ["background", *truth.class_names])
    objects = instance_scores(truth.instances, masks.instances)
    return {
        "masks": masks,
        "scores": {
            "miou": scores["miou"],
            "f1": scores["f1"],
            "iou_foreground": scores["iou"][truth.class_names[0]],
            "pixel_accuracy": scores["pixel_accuracy"],
            "ap50": objects["ap"]["0.50"],
            "objects": objects["n_predicted"],
        },
    }
