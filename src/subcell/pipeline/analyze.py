"""``subcell analyze``: measure the objects of a label image with an analytics plugin.

Labels are read with the reader plugins (TIFF, PNG, NumPy, zarr), checked (integers,
non-negative, one channel, no time axis) and, when binary, split into connected
components. The chosen plugin measures them in physical units; optional cell labels
assign every object to a cell. A plugin that measures several classes (``multiclass =
True``, e.g. ``compartments``) gets instead the real classes of inputs that carry them
(:func:`analyze_masks`; groups in :mod:`subcell.pipeline.analyze_group`). Outputs in
``DIR``: ``objects.csv`` and ``objects.parquet`` (one row per object), ``branches.csv``
(skeleton plugins), ``cells.csv`` (with cells), ``summary.json`` (per-image values,
condition, provenance) and PNG plots (:mod:`subcell.pipeline.analyze_plots`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from subcell.core.config import apply_overrides
from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Table, Volume
from subcell.core.provenance import record
from subcell.core.structuring import structure
from subcell.pipeline.analyze_io import as_labels, read_labels, read_masks, write_analysis
from subcell.pipeline.volumes import read_volume
from subcell.registry import Registry, get_registry

__all__ = [
    "Analysis",
    "analyze_file",
    "analyze_labels",
    "analyze_masks",
    "as_labels",
    "is_multiclass",
    "read_labels",
    "read_masks",
    "write_analysis",
]

#: Size columns, most specific first: what violins and comparisons plot.
SIZE_COLUMNS = ("fitted_radius_nm", "area_nm2", "volume_nm3", "equivalent_diameter_nm")


@attrs.frozen(eq=False)
class Analysis:
    """One image's analysis.

    Attributes
    ----------
    objects
        One row per object (with a ``cell`` column when cells were given).
    summary
        JSON-ready per-image values: plugin, condition, voxel size, counts, means, the
        plugin's own values (e.g. ``mina``), ``cells`` and ``provenance``.
    labels
        The measured labels, (Z, Y, X) (multi-class masks: the instance ids, else the
        class-index map).
    voxel_nm
        The voxel size used, (z, y, x) nm.
    branches
        Skeleton branches (plugins that build skeletons), else None.
    skeleton
        The analysed skeleton (Z, Y, X) bool, else None.
    cells
        Per-cell summary table when cells were given, else None.
    """

    objects: Table
    summary: dict
    labels: np.ndarray
    voxel_nm: tuple[float, float, float]
    branches: Table | None = None
    skeleton: np.ndarray | None = None
    cells: Table | None = None


def is_multiclass(plugin: str, registry: Registry | None = None) -> bool:
    """Whether analytics ``plugin`` takes multi-class masks (its class has ``multiclass = True``).

    Such a plugin is handed the real classes of inputs that carry them (datasets, prediction
    groups, OME-Zarr labels, multi-channel masks; :func:`analyze_masks`); every other plugin
    gets one class named after itself, whose objects are the labels.
    """
    registration = (registry or get_registry()).get("analytics", plugin)
    return bool(getattr(registration.factory, "multiclass", False))


def analyze_labels(
    labels: np.ndarray,
    voxel_nm,
    plugin: str,
    *,
    overrides: Iterable[str] = (),
    cells: np.ndarray | None = None,
    image: Volume | None = None,
    condition: str | None = None,
    inputs: dict[str, str] | None = None,
    registry: Registry | None = None,
) -> Analysis:
    """Measure ``labels`` with analytics plugin ``plugin`` (and assign them to ``cells``).

    The plugin gets :class:`~subcell.core.model.Masks` with one class named ``plugin``
    (every labelled voxel) and ``labels`` as instance ids.

    Parameters
    ----------
    labels
        (Z, Y, X) integer labels (see :func:`as_labels`).
    voxel_nm
        (z, y, x) nm.
    plugin
        Registered analytics name, e.g. ``mitochondria``, ``vesicles``, ``region_props``.
    overrides
        ``KEY=VALUE`` settings of the plugin's config (``--set``).
    cells
        Cell labels of the same shape, or None.
    image
        The intensity image (CZYX, same Z, Y, X) for plugins that measure intensity.
    condition
        Name of the experimental condition, kept in the summary for ``--compare``.
    inputs
        Input name -> path, recorded in the provenance.
    """
    registry = registry or get_registry()
    labels = as_labels(labels, name="labels")
    voxel = tuple(float(v) for v in voxel_nm)
    if cells is not None:
        cells = as_labels(cells, name="cells")
        if cells.shape != labels.shape:
            raise VolumeError(f"cells {cells.shape} and labels {labels.shape} differ in shape")
    masks = Masks(
        (labels > 0)[None].astype(np.uint8), (plugin,), voxel, instances=labels.astype(np.uint32)
    )
    measured = _measure(plugin, masks, image, overrides, inputs, registry)
    if cells is not None:
        objects, table, measured.summary["cells"] = _with_cells(
            measured.objects, labels, cells, voxel, measured.summary
        )
        measured = attrs.evolve(measured, objects=objects, cells=table)
    return _analysis(measured, plugin, condition, labels, voxel)


def analyze_masks(
    masks: Masks,
    plugin: str,
    *,
    overrides: Iterable[str] = (),
    image: Volume | None = None,
    condition: str | None = None,
    inputs: dict[str, str] | None = None,
    registry: Registry | None = None,
) -> Analysis:
    """Measure multi-class ``masks`` (their classes as they are) with ``plugin``.

    Meant for plugins that measure several classes (:func:`is_multiclass`, e.g.
    ``compartments``); the summary adds ``class_names`` and ``n_classes``. The analysis's
    ``labels`` are the instance ids, else the class-index map (lowest class wins).

    Parameters
    ----------
    masks
        (K, Z, Y, X) binary masks, class names, voxel size and optional instance ids.
    plugin, overrides, image, condition, inputs
        As for :func:`analyze_labels`.
    """
    from subcell.core.metrics import class_index_map

    registry = registry or get_registry()
    semantic = np.asarray(masks.semantic)
    if semantic.shape[0] == 0:
        raise VolumeError("masks: no classes")
    if image is not None and tuple(image.shape[-3:]) != semantic.shape[1:]:
        raise VolumeError(
            f"image {tuple(image.shape[-3:])} and masks {semantic.shape[1:]} differ in shape"
        )
    measured = _measure(plugin, masks, image, overrides, inputs, registry)
    measured.summary.update(class_names=list(masks.class_names), n_classes=semantic.shape[0])
    if masks.instances is not None:
        labels = np.asarray(masks.instances).astype(np.int64)
    else:
        labels = class_index_map(semantic).astype(np.int64)
    return _analysis(measured, plugin, condition, labels, masks.voxel_nm)


@attrs.frozen(eq=False)
class _Measured:
    """What a plugin returned: tables, its summary, timing and provenance."""

    objects: Table
    summary: dict
    seconds: float
    provenance: dict
    result: Any = None
    cells: Table | None = None


def _measure(plugin, masks: Masks, image, overrides, inputs, registry) -> _Measured:
    """Build ``plugin`` from its ``--set`` overrides and run it on ``masks``."""
    registration = registry.get("analytics", plugin)
    data = apply_overrides({}, overrides)
    config = structure(data, registration.config_cls, registry.config_class, source="--set")
    analytics = registration.create(config)
    start = time.perf_counter()
    if hasattr(analytics, "analyze"):
        result = analytics.analyze(masks, image)
        objects, summary = result.objects, dict(result.summary)
    else:
        result = None
        objects = analytics.measure(masks, image)
        summary = _generic_summary(objects)
    seconds = time.perf_counter() - start
    provenance = record(config, plugins=[registration], inputs=inputs, step="analyze")
    return _Measured(objects, summary, seconds, provenance, result)


def _analysis(measured: _Measured, plugin, condition, labels: np.ndarray, voxel) -> Analysis:
    """The :class:`Analysis` with the summary's common keys around the plugin's own."""
    voxel = tuple(float(v) for v in voxel)
    objects = measured.objects
    summary = {
        "plugin": plugin,
        "condition": condition,
        "voxel_nm": list(voxel),
        "shape": list(labels.shape),
        "ndim": 2 if labels.shape[0] == 1 else 3,
        "size_column": next((c for c in SIZE_COLUMNS if c in objects.columns), None),
        **measured.summary,
        "seconds": measured.seconds,
        "provenance": measured.provenance,
    }
    return Analysis(
        objects=objects,
        summary=_json_ready(summary),
        labels=labels,
        voxel_nm=voxel,
        branches=getattr(measured.result, "branches", None),
        skeleton=getattr(measured.result, "skeleton", None),
        cells=measured.cells,
    )


def _generic_summary(objects: Table) -> dict:
    """Counts per class and means of numeric columns, for plugins without a summary."""
    c = objects.columns
    summary: dict[str, Any] = {"n_objects": len(objects)}
    if "class" in c:
        names, counts = np.unique(c["class"].astype(str), return_counts=True)
        summary["counts"] = {str(k): int(v) for k, v in zip(names, counts, strict=True)}
    summary["means"] = {
        k: (float(np.nanmean(v)) if len(v) and np.isfinite(v).any() else None)
        for k, v in c.items()
        if v.dtype.kind in "fiu" and k != "label"
    }
    return summary


def _with_cells(objects: Table, labels: np.ndarray, cells: np.ndarray, voxel, summary: dict):
    """Objects with a ``cell`` column, the per-cell table and its JSON summary."""
    from subcell.plugins.measurements.per_cell import assign_cells, per_cell_summary

    assignment = assign_cells(labels, cells)
    classes = tuple(summary.get("counts", {}))
    per_cell = per_cell_summary(objects, assignment, cells, voxel, classes=classes)
    a = assignment.columns
    position = np.searchsorted(a["label"], objects.columns["label"])
    columns = dict(objects.columns)
    columns["cell"] = a["cell"][position] if len(a["label"]) else np.zeros(0, dtype=np.int64)
    columns["cell_overlap_fraction"] = (
        a["overlap_fraction"][position] if len(a["label"]) else np.zeros(0)
    )
    c = per_cell.columns
    occupied = c["n_objects"] > 0
    cells_summary = {
        "n_cells": len(per_cell),
        "n_objects_outside_cells": int((columns["cell"] == 0).sum()),
        "mean_objects_per_cell": _mean(c["n_objects"]),
        # Statistics over cells (the paper's unit), cells without objects left out.
        "means_over_cells": {k: _mean(v[occupied]) for k, v in c.items() if k != "cell"},
    }
    return Table(columns), per_cell, cells_summary


def _mean(values) -> float | None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def _json_ready(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_ready(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def analyze_file(
    labels_path: str | Path,
    out_dir: str | Path,
    *,
    plugin: str,
    pixel_nm: float | None = None,
    z_nm: float | None = None,
    cells: str | Path | None = None,
    image: str | Path | None = None,
    condition: str | None = None,
    binary: bool = False,
    overrides: Iterable[str] = (),
    plots: bool = True,
    registry: Registry | None = None,
) -> Analysis:
    """Read labels (and cells, image), analyse them and write every output to ``out_dir``.

    See :func:`read_labels` for the pixel size and :func:`analyze_labels` for the rest. A
    plugin that takes multi-class masks (:func:`is_multiclass`) gets the classes of a file
    that carries them (:func:`~subcell.pipeline.analyze_io.read_masks`; not with
    ``cells``) through :func:`analyze_masks`; plain label images go the usual way.

    Raises
    ------
    VolumeError
        Unreadable or bad labels, cells of another shape, no pixel size.
    """
    registry = registry or get_registry()
    inputs = {"labels": str(Path(labels_path).resolve())}
    masks = None
    if is_multiclass(plugin, registry):
        masks = read_masks(labels_path, pixel_nm=pixel_nm, z_nm=z_nm, registry=registry)
    if masks is not None:
        if cells is not None:
            raise VolumeError(
                f"{labels_path}: --cells assigns objects of one label image; {plugin} measures "
                "the classes of multi-class masks"
            )
        volume = _read_image(image, masks.semantic.shape[1:], inputs, registry)
        analysis = analyze_masks(
            masks, plugin, overrides=overrides, image=volume, condition=condition,
            inputs=inputs, registry=registry,
        )  # fmt: skip
        write_analysis(analysis, out_dir, plots=plots)
        return analysis
    labels, voxel = read_labels(
        labels_path, pixel_nm=pixel_nm, z_nm=z_nm, binary=binary, registry=registry
    )
    cell_labels = None
    if cells is not None:
        cell_labels = as_labels(read_volume(cells, registry=registry).data, name=str(cells))
        inputs["cells"] = str(Path(cells).resolve())
    volume = _read_image(image, labels.shape, inputs, registry)
    analysis = analyze_labels(
        labels, voxel, plugin, overrides=overrides, cells=cell_labels, image=volume,
        condition=condition, inputs=inputs, registry=registry,
    )  # fmt: skip
    write_analysis(analysis, out_dir, plots=plots)
    return analysis


def _read_image(image, shape, inputs: dict, registry) -> Volume | None:
    """The intensity image (None without one), checked against the labels' (Z, Y, X)."""
    if image is None:
        return None
    volume = read_volume(image, registry=registry)
    if tuple(volume.shape[-3:]) != tuple(shape):
        raise VolumeError(
            f"{image}: image {tuple(volume.shape[-3:])} and labels {tuple(shape)} differ in shape"
        )
    inputs["image"] = str(Path(image).resolve())
    return volume
