"""Files of ``subcell analyze``: reading and checking labels (and multi-class masks),
writing tables and JSON."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.core.errors import SubcellError, VolumeError
from subcell.core.model import Masks, Table
from subcell.pipeline.volumes import read_volume
from subcell.registry import Registry

__all__ = [
    "as_labels",
    "read_labels",
    "read_masks",
    "resolve_voxel",
    "write_analysis",
    "write_parquet",
]


def as_labels(data: Any, *, name: str, binary: bool = False) -> np.ndarray:
    """Integer labels (Z, Y, X) from a (C=1, Z, Y, X) or (Z, Y, X) array.

    A binary mask (bool; only 0 and 1; uint8 with only 0 and 255; or ``binary=True``:
    every non-zero value) is split into connected components (full connectivity, as the
    skeleton graph joins voxels).

    Raises
    ------
    VolumeError
        Float or negative labels, several channels, a time axis.
    """
    array = np.asarray(data)
    if array.ndim == 5:
        raise VolumeError(f"{name}: a time series ({array.shape}); analyze one frame, or track")
    if array.ndim == 4:
        if array.shape[0] != 1:
            raise VolumeError(f"{name}: labels need one channel, got {array.shape[0]}")
        array = array[0]
    if array.ndim != 3:
        raise VolumeError(f"{name}: labels must be (Z, Y, X), got shape {array.shape}")
    kind = array.dtype.kind
    if kind not in "biu":
        raise VolumeError(
            f"{name}: labels must be integers, got {array.dtype} "
            "(threshold a probability map first)"
        )
    if kind == "i" and array.size and array.min() < 0:
        raise VolumeError(f"{name}: labels must be >= 0 (0 = background), found {array.min()}")
    if binary or kind == "b" or _is_binary(array):
        structure3 = ndi.generate_binary_structure(3, 3)
        return ndi.label(array > 0, structure=structure3)[0].astype(np.int64)
    return array.astype(np.int64, copy=False)


def _is_binary(array: np.ndarray) -> bool:
    top = int(array.max()) if array.size else 0
    if top <= 1:
        return True
    return array.dtype == np.uint8 and top == 255 and not ((array > 0) & (array < 255)).any()


def read_labels(
    path: str | Path,
    *,
    pixel_nm: float | None = None,
    z_nm: float | None = None,
    binary: bool = False,
    name: str = "labels",
    registry: Registry | None = None,
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Read a label image and resolve its voxel size.

    ``pixel_nm`` (and ``z_nm`` for 3D) override the file's sizes; a size the file does not
    state (readers report exactly 1 nm) must be given, since analytics are physical.

    Returns
    -------
    labels, voxel_nm
        (Z, Y, X) int64 labels and (z, y, x) nm.

    Raises
    ------
    VolumeError
        Unreadable file, bad labels, or a pixel size neither stated nor given.
    """
    volume = read_volume(path, registry=registry)
    labels = as_labels(volume.data, name=f"{path}", binary=binary)
    return labels, resolve_voxel(volume.voxel_nm, labels.shape, pixel_nm, z_nm, path)


def read_masks(
    path: str | Path,
    *,
    pixel_nm: float | None = None,
    z_nm: float | None = None,
    registry: Registry | None = None,
) -> Masks | None:
    """The multi-class masks of a file that carries classes, else None (plain labels).

    Files that carry classes: an OME-Zarr image with ``labels/`` (its ``mask`` and
    ``instances``, :func:`subcell.core.omezarr.read_labels`); an image with several
    channels, one binary channel per class (the ``<name>_mask.tif`` that the TIFF writer
    writes, its channel names the classes; ``<name>_instances.tif`` beside it adds the
    instance ids); a class-index map whose ``.provenance.json`` (``subcell segment``) names
    its classes. The voxel size is resolved as in :func:`read_labels`.

    Raises
    ------
    VolumeError
        Unreadable file, channels that are not binary, a class index beyond the named
        classes, or a pixel size neither stated nor given.
    """
    path = Path(path)
    if _is_ome_zarr(path):
        from subcell.core.omezarr import read_labels as read_ome_labels

        masks = read_ome_labels(path)
        if masks is None:
            return None
        semantic = _binary_channels(np.asarray(masks.semantic), path)
        names, instances, voxel = masks.class_names, masks.instances, masks.voxel_nm
    else:
        volume = read_volume(path, registry=registry)
        if volume.axes != "CZYX":
            return None  # a time series: as_labels says so
        data = np.asarray(volume.data)
        if data.shape[0] > 1:
            semantic = _binary_channels(data, path)
            names = _channel_classes(volume.channel_names, data.shape[0])
            instances = _sibling_instances(path, data.shape[1:], registry)
        else:
            names = _segment_classes(path)
            if names is None:
                return None
            semantic, instances = _one_hot(data[0], len(names), path), None
        voxel = volume.voxel_nm
    voxel = resolve_voxel(voxel, semantic.shape[1:], pixel_nm, z_nm, path)
    if instances is not None:
        instances = as_labels(instances, name=f"{path} instances").astype(np.uint32)
    return Masks(semantic, names, voxel, instances=instances)


def _is_ome_zarr(path: Path) -> bool:
    if not (path.is_dir() and ((path / "zarr.json").is_file() or (path / ".zattrs").is_file())):
        return False
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception:  # noqa: BLE001 - not zarr: a reader plugin may still know it
        return False
    attributes = dict(node.attrs) if isinstance(node, zarr.Group) else {}
    return "multiscales" in dict(attributes.get("ome", attributes))


def _binary_channels(data: np.ndarray, path: Path) -> np.ndarray:
    """(K, Z, Y, X) uint8 0/1 from binary channels (0/1, bool, or 0/255)."""
    if data.dtype.kind not in "biu":
        raise VolumeError(f"{path}: class masks must be integers, got {data.dtype}")
    top = int(data.max()) if data.size else 0
    low = int(data.min()) if data.size else 0
    if low < 0 or top not in (0, 1, 255) or (top == 255 and ((data > 0) & (data < 255)).any()):
        raise VolumeError(
            f"{path}: {data.shape[0]} channels holding values from {low} to {top}; "
            "multi-class masks are one binary channel per class"
        )
    return (data > 0).astype(np.uint8)


def _channel_classes(names, n: int) -> tuple[str, ...]:
    """The file's channel names as class names, else ``class1`` ... ``classK``."""
    names = tuple(str(v) for v in names or ())
    if len(names) == n and all(names) and len(set(names)) == n:
        return names
    return tuple(f"class{k + 1}" for k in range(n))


def _sibling_instances(path: Path, shape, registry) -> np.ndarray | None:
    """``<name>_instances.<ext>`` beside ``<name>_mask.<ext>`` (the TIFF writer's pair)."""
    name = path.name
    ext = next((e for e in (".ome.tiff", ".ome.tif") if name.lower().endswith(e)), path.suffix)
    stem = name[: len(name) - len(ext)]
    if not stem.endswith("_mask"):
        return None
    sibling = path.with_name(f"{stem.removesuffix('_mask')}_instances{ext}")
    if not sibling.is_file():
        return None
    data = np.asarray(read_volume(sibling, registry=registry).data)
    if data.shape[1:] != tuple(shape) or data.shape[0] != 1:
        raise VolumeError(f"{sibling}: instances {data.shape} do not match {path} {shape}")
    return data[0]


def _segment_classes(path: Path) -> tuple[str, ...] | None:
    """Class names of a class-index map from its ``subcell segment`` provenance sidecar."""
    sidecar = path.with_name(path.name + ".provenance.json")
    try:
        output = json.loads(sidecar.read_text())["output"]
        if output["content"] != "class_index":
            return None
        classes = {int(k): str(v) for k, v in output["classes"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not classes or sorted(classes) != list(range(1, len(classes) + 1)):
        return None
    return tuple(classes[k] for k in range(1, len(classes) + 1))


def _one_hot(index_map: np.ndarray, n: int, path: Path) -> np.ndarray:
    """(K, Z, Y, X) uint8 from a class-index map (0 background, k class k)."""
    if index_map.dtype.kind not in "biu":
        raise VolumeError(f"{path}: a class-index map must be integers, got {index_map.dtype}")
    low, top = (int(index_map.min()), int(index_map.max())) if index_map.size else (0, 0)
    if low < 0 or top > n:
        raise VolumeError(
            f"{path}: class index {low if low < 0 else top} outside 0..{n} (the classes its "
            "sidecar names)"
        )
    return (index_map[None] == np.arange(1, n + 1).reshape(-1, 1, 1, 1)).astype(np.uint8)


def resolve_voxel(voxel_nm, shape, pixel_nm, z_nm, path) -> tuple[float, float, float]:
    """The (z, y, x) voxel size to measure with; see :func:`read_labels`."""
    for flag, value in (("--pixel-nm", pixel_nm), ("--z-nm", z_nm)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise SubcellError(f"{flag} must be a positive number of nm, got {value}")
    stated = [None if float(v) == 1.0 else float(v) for v in voxel_nm]
    if pixel_nm is not None:
        if stated[2] is not None and abs(stated[2] - pixel_nm) > 0.01 * pixel_nm:
            warnings.warn(
                f"{path}: --pixel-nm {pixel_nm:g} overrides the file's {stated[2]:g} nm",
                stacklevel=3,
            )
        y = x = float(pixel_nm)
    elif stated[1] is not None and stated[2] is not None:
        y, x = stated[1], stated[2]
    else:
        raise VolumeError(
            f"{path}: states no pixel size; give --pixel-nm (analytics are in physical units)"
        )
    z = float(z_nm) if z_nm is not None else stated[0]
    if z is None:
        if shape[0] > 1:
            raise VolumeError(f"{path}: 3D labels state no z step; give --z-nm")
        z = y  # a single plane: z never enters a measurement
    return (z, y, x)


def write_analysis(analysis, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
    """Write tables, ``summary.json`` and (``plots``) PNGs to ``out_dir``; returns the paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SubcellError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    written = [analysis.objects.to_csv(out / "objects.csv")]
    written.append(write_parquet(analysis.objects, out / "objects.parquet"))
    if analysis.branches is not None:
        written.append(analysis.branches.to_csv(out / "branches.csv"))
    if analysis.cells is not None:
        written.append(analysis.cells.to_csv(out / "cells.csv"))
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(analysis.summary, indent=2) + "\n")
    written.append(summary_path)
    if plots:
        from subcell.pipeline.analyze_plots import plot_analysis

        written.extend(plot_analysis(analysis, out))
    return written


def write_parquet(table: Table, path: str | Path) -> Path:
    """Write ``table`` as Parquet (pyarrow); strings stay strings, numbers keep their type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {
        name: (pa.array(values.tolist(), type=pa.string()) if values.dtype.kind == "U" else values)
        for name, values in table.columns.items()
    }
    path = Path(path)
    pq.write_table(pa.table(arrays), path)
    return path
