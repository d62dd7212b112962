"""Files of ``subcell analyze``: reading and checking labels, writing tables and JSON."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from subcell.core.errors import SubcellError, VolumeError
from subcell.core.model import Table
from subcell.pipeline.volumes import read_volume
from subcell.registry import Registry

__all__ = ["as_labels", "read_labels", "resolve_voxel", "write_analysis", "write_parquet"]


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
