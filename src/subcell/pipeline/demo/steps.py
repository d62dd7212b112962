"""Pipeline step ``demo_report``: the last step of the demo pipeline (``demo.yaml``).

The simulate, segment, evaluate and analyze steps do the work; this one turns their
outputs into what a new user opens: the image with its ground truth as OME-Zarr (written,
read back and checked), each method's mask (TIFF) and overlay (PNG), the overview figure,
the measured objects and ``report.md``, plus ``summary.json`` (the numbers, for tests).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import attrs
import numpy as np

from subcell.core.errors import ConfigError, SubcellError, VolumeError

__all__ = ["DemoReportStep", "DemoReportStepConfig"]


@attrs.frozen(kw_only=True)
class DemoReportStepConfig:
    """The ``demo_report`` step (``subcell demo``).

    Attributes
    ----------
    image
        Which image of the dataset the report shows and exports (its index).
    """

    image: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))


class DemoReportStep:
    """Writes the demo's report folder: ``report.md``, ``overview.png``, ``METHOD-mask.tif``
    and ``METHOD-overlay.png`` per method, ``objects.csv``, ``mito.ome.zarr``,
    ``simulate.yaml`` and ``summary.json``. ``masks`` and ``metrics`` are labelled by
    method (segment and evaluate outputs on the dataset); the first method is the one
    ``analysis`` measured."""

    inputs = {"data": "required", "masks": "many", "metrics": "many", "analysis": "optional"}
    outputs = ("report",)

    def __init__(self, config: DemoReportStepConfig) -> None:
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        from subcell.pipeline.dataset import open_dataset
        from subcell.pipeline.demo.report import report_markdown
        from subcell.pipeline.run import context

        registry = context.registry()
        methods = tuple(inputs.get("masks", {}))
        if not methods or set(methods) != set(inputs.get("metrics", {})):
            raise ConfigError("demo_report: give masks and metrics for the same methods")
        data = open_dataset(inputs["data"])
        index = self.config.image
        if index >= len(data):
            raise VolumeError(f"{data.path}: no image {index} (it holds {len(data)})")
        image, truth = _item(data, index)
        zarr_path = _round_trip(image, truth, out / "mito.ome.zarr", data, registry)
        config = data.attrs["provenance"]["config"]
        (out / "simulate.yaml").write_text(_yaml(config))
        predicted, scores = {}, {}
        for method in methods:
            group = Path(inputs["masks"][method])
            predicted[method] = _prediction(group, index, image, out, method)
            scores[method] = _scores(Path(inputs["metrics"][method]), truth.class_names[0])
        _overview(image, truth, [predicted[m] for m in methods], out / "overview.png")
        objects = _objects(inputs.get("analysis"), out / "objects.csv")
        summary = {
            "mitochondria_simulated": int(len(np.unique(truth.instances)) - 1),
            "objects_found": objects,
            "scores": scores,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        timings = _timings(inputs)
        text = report_markdown(config["microscope"], summary, timings, zarr_path, methods)
        (out / "report.md").write_text(text)
        return {"report": out / "report.md"}


def _item(data, index: int):
    from subcell.core.model import Masks, Volume

    image = Volume(np.asarray(data.images[index]), data.voxel_nm, channel_names=data.channel_names)
    truth = Masks(
        np.asarray(data.masks[index]),
        data.class_names,
        data.voxel_nm,
        np.asarray(data.instances[index]),
    )
    return image, truth


def _round_trip(image, truth, path: Path, data, registry) -> Path:
    """Write the image and its ground truth as OME-Zarr, read it back, check it."""
    from subcell.core.omezarr import read_labels
    from subcell.pipeline.volumes import read_volume, write_volume

    provenance = data.attrs["provenance"]
    path = write_volume(
        image, path, masks=truth, attrs={"provenance": provenance}, registry=registry
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


def _prediction(group_path: Path, index: int, image, out: Path, method: str) -> np.ndarray:
    """The method's masks of image ``index``: written as TIFF and overlay; its 2D mask."""
    import zarr

    from subcell.core.metrics import class_index_map
    from subcell.core.model import Masks
    from subcell.pipeline.segment_io import overlay_png, write_segmentation

    group = zarr.open_group(str(group_path), mode="r")
    rows = list(group.attrs.get("images", range(group["mask"].shape[0])))
    if index not in rows:
        raise VolumeError(f"{group_path}: does not hold dataset image {index}")
    row = rows.index(index)
    masks = Masks(
        np.asarray(group["mask"][row]),
        tuple(group.attrs["class_names"]),
        tuple(group.attrs["voxel_nm"]),
    )
    write_segmentation(masks, out / f"{method}-mask.tif", attrs={"method": method})
    predicted = class_index_map(masks.semantic)
    overlay_png(np.asarray(image.data)[0, 0], predicted[0], out / f"{method}-overlay.png")
    return masks.semantic[0, 0]


def _scores(path: Path, class_name: str) -> dict:
    metrics = json.loads((path / "metrics.json" if path.is_dir() else path).read_text())
    instances = metrics.get("instances") or {}
    return {
        "miou": metrics["miou"],
        "f1": metrics["f1"],
        "iou_foreground": metrics["iou"][class_name],
        "pixel_accuracy": metrics["pixel_accuracy"],
        "ap50": (instances.get("ap") or {}).get("0.50"),
        "objects": instances.get("n_predicted"),
    }


def _overview(image, truth, predicted: list[np.ndarray], path: Path) -> Path:
    from subcell.pipeline.demo.figure import overview_png

    pixels = np.asarray(image.data)[0, 0]
    return overview_png(pixels, truth.semantic[0, 0], predicted, path)


def _objects(analysis, path: Path) -> int | None:
    """Copy the measured objects' table; its number of rows."""
    if analysis is None:
        return None
    found = sorted(Path(analysis).rglob("objects.csv"))
    if not found:
        raise VolumeError(f"{analysis}: no objects.csv")
    shutil.copyfile(found[0], path)
    with path.open() as table:
        return max(sum(1 for _ in table) - 1, 0)


def _timings(inputs: dict) -> dict[str, float]:
    """Seconds of each upstream step's last run, from their records."""
    from subcell.pipeline.run.records import find_record, read_record

    paths = [inputs["data"], *inputs["masks"].values(), *inputs["metrics"].values()]
    paths += [inputs["analysis"]] if inputs.get("analysis") else []
    timings = {}
    for path in paths:
        folder = find_record(Path(path))
        record = read_record(folder) if folder is not None else None
        if record and record.get("seconds") is not None:
            timings[f"{record['name']} ({record['step']})"] = float(record["seconds"])
    return timings


def _yaml(config: dict) -> str:
    import yaml

    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=88)
