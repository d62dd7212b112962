"""Pipeline step ``cellcutter``: the cells of every image of a simulated dataset.

Each image is segmented on its own by :func:`subcell.pipeline.cellcutter.run_cellcutter`
(``subcell cellcutter``): markers from the ``nucleus`` channel, a graph-cut foreground,
then a network trained on that image (no labels) — or, with ``baseline: true``, the
marker-controlled watershed on the same markers and foreground. The cells go into a
prediction group ``prediction.zarr`` laid out like the dataset's masks: ``instances`` (N,
Z, Y, X) uint32 (the cells) and ``mask`` (N, K, Z, Y, X) with the dataset's classes,
``cell`` set where a cell is and the classes cellcutter does not predict (``nucleus``)
left empty, so ``evaluate`` (and ``subcell evaluate --instances``) scores it against the
dataset directly: AP and PQ of the cells, IoU of the cell foreground.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import attrs
import numpy as np

from subcell.core.errors import ConfigError, VolumeError
from subcell.pipeline.run import context
from subcell.pipeline.run.steps_segment import Split, is_dataset, prediction_group
from subcell.pipeline.schemas import CellCutterStepConfig

__all__ = ["CellCutterRunStep", "CellCutterRunStepConfig", "baseline_config"]

_CELL = "cell"


@attrs.frozen(kw_only=True)
class CellCutterRunStepConfig:
    """The ``cellcutter`` step: single cells of clumped-cell images, without labels.

    Attributes
    ----------
    config
        A ``step: cellcutter`` config (``configs/cellcutter/method.yaml``), as
        ``subcell cellcutter --config`` takes it; packaged default: cellcutter's defaults.
    baseline
        Run the ``marker_watershed`` baseline instead, on the markers and foreground the
        config sets for cellcutter (its ``nucleus_channel``, ``markers`` and
        ``foreground``).
    split
        Segment only this split of the dataset (``all``: every image).
    images
        Segment only the first this many images of the split (0: all of them).
    device
        Torch device for the training; not part of the reuse hash.
    """

    config: CellCutterStepConfig | None = None
    baseline: bool = False
    split: Split = "all"
    images: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    device: str = attrs.field(default="cpu", metadata={"hash": False})


class CellCutterRunStep:
    """Segments the cells of a dataset's images into ``prediction.zarr``."""

    inputs = {"data": "required"}
    outputs = ("masks",)

    def __init__(self, config: CellCutterRunStepConfig) -> None:
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        from subcell.pipeline.dataset import open_dataset

        registry = context.registry()
        path = Path(inputs["data"])
        if not is_dataset(path):
            raise VolumeError(f"{path}: cellcutter: the data input must be a simulated dataset")
        data = open_dataset(path)
        method = self._method(registry)
        _check_channels(data, method, path)
        chosen = self._chosen(data, path)
        group, summary = None, {"markers": [], "cells": [], "final_loss": []}
        with _progress(len(chosen)) as advance:
            for row, index in enumerate(chosen):
                masks, result = _segment(data, index, method, self.config.device, path, registry)
                if group is None:
                    group = self._group(out, masks, path, chosen)
                group["mask"][row] = masks.semantic
                group["instances"][row] = masks.instances
                summary["markers"].append(len(result.markers))
                summary["cells"].append(int(len(np.unique(result.masks.instances)) - 1))
                loss = float(result.history[-1]) if result.history else None
                summary["final_loss"].append(loss if loss is None or np.isfinite(loss) else None)
                advance()
        group.attrs.update({"method": _plugin_name(method, registry), **summary})
        return {"masks": out / "prediction.zarr"}

    def _group(self, out: Path, masks, path: Path, chosen: list[int]):
        return prediction_group(
            out / "prediction.zarr",
            (len(chosen),),
            masks,
            source=path,
            split=self.config.split,
            images=chosen,
            instances=True,
        )

    def _method(self, registry):
        """The segmenter config: the config's method, or the baseline built from it."""
        config = self.config.config
        method = None if config is None else config.method.config
        if method is None:
            method = registry.config_class("segmenter", "cellcutter")()
        return baseline_config(method, registry) if self.config.baseline else method

    def _chosen(self, data, path: Path) -> list[int]:
        split = self.config.split
        chosen = list(range(len(data))) if split == "all" else data.split(split)
        if not chosen:
            raise VolumeError(f"{path}: the {split} split holds no images")
        if tuple(data.images.shape[1:-4]):
            raise VolumeError(f"{path}: a time series; cellcutter segments single images")
        return chosen[: self.config.images] if self.config.images else chosen


@contextlib.contextmanager
def _progress(total: int):
    """``advance()`` after each image: a rich bar when the run lets a step draw one."""
    if not context.show_progress():
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("cellcutter", total=total)
        yield lambda: bar.advance(task)


def baseline_config(method, registry):
    """The ``marker_watershed`` config on a cellcutter config's markers and foreground.

    Parameters
    ----------
    method
        A ``cellcutter`` or ``marker_watershed`` segmenter config.
    registry
        Where the segmenter config classes are looked up.
    """
    watershed = registry.config_class("segmenter", "marker_watershed")
    if isinstance(method, watershed):
        return method
    shared = {"nucleus_channel", "markers", "foreground"}
    return watershed(**{k: getattr(method, k) for k in shared})


def _plugin_name(method, registry) -> str:
    names = ("cellcutter", "marker_watershed")
    found = [n for n in names if isinstance(method, registry.config_class("segmenter", n))]
    return found[0] if found else type(method).__name__


def _check_channels(data, method, path: Path) -> None:
    nucleus = getattr(method, "nucleus_channel", "nucleus")
    if nucleus not in data.channel_names:
        raise VolumeError(
            f"{path}: cellcutter finds the cells from their nuclei; the dataset has no "
            f"{nucleus!r} channel (channels: {', '.join(data.channel_names)})"
        )
    if data.images.shape[-3] != 1:
        raise VolumeError(
            f"{path}: cellcutter segments 2D images; these have {data.images.shape[-3]} planes"
        )


def _segment(data, index: int, method, device: str, path: Path, registry):
    """One image's cells, as masks in the dataset's class layout."""
    from subcell.core.model import Masks, Volume
    from subcell.pipeline.cellcutter import run_cellcutter

    volume = Volume(np.asarray(data.images[index]), data.voxel_nm, channel_names=data.channel_names)
    try:
        result = run_cellcutter(
            volume,
            method_config=method,
            device=device,
            inputs={"data": f"{path}[{index}]"},
            registry=registry,
        )
    except ConfigError as exc:
        raise ConfigError(f"image {index}: {exc}") from None
    except VolumeError as exc:
        raise VolumeError(f"{path}: image {index}: {exc}") from None
    cells = result.masks.instances
    names = tuple(data.class_names) if _CELL in data.class_names else (_CELL,)
    semantic = np.zeros((len(names), *cells.shape), dtype=np.uint8)
    semantic[names.index(_CELL)] = cells > 0
    return Masks(semantic, names, data.voxel_nm, cells.astype(np.uint32)), result
