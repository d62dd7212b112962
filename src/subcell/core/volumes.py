"""Volume mechanics: data checks, axis layouts, and plain zarr arrays.

No plugin registry here; the ``formats`` plugins build their readers and writers on these
functions (OME-Zarr images: :mod:`subcell.core.omezarr`). Arrays stay lazy (dask) wherever
they can.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

from subcell.core.errors import VolumeError
from subcell.core.model import AXES_4D, AXES_5D, Volume

#: Layouts :func:`to_czyx` accepts, for error messages.
LAYOUTS = (
    "YX, ZYX, CYX, YXC, CZYX, ZCYX, TYX, TZYX, TCZYX (letters T, C, Z, Y, X; Y and X required)"
)
_CHECK_BYTES = 64 * 2**20  # finiteness checks of numpy arrays go slab by slab, ~64 MiB each


def check_volume(volume_or_array: Any, *, name: str) -> Any:
    """Raise :class:`VolumeError` if the data is empty or holds NaN/inf; return it unchanged.

    Parameters
    ----------
    volume_or_array
        A :class:`Volume`, or a numpy/dask (or other array-like) array.
    name
        What to call the data in the message, usually the file it came from.
    """
    data = volume_or_array.data if isinstance(volume_or_array, Volume) else volume_or_array
    shape = tuple(int(s) for s in data.shape)
    if int(np.prod(shape)) == 0:
        raise VolumeError(f"{name}: empty image, shape {shape}")
    kind = np.dtype(data.dtype).kind
    if kind in "biu":
        return volume_or_array
    if kind not in "fc":
        raise VolumeError(f"{name}: unsupported data type {np.dtype(data.dtype)}")
    if not _all_finite(data):
        raise VolumeError(f"{name}: holds NaN or infinite values")
    return volume_or_array


def _all_finite(data) -> bool:
    if isinstance(data, da.Array):
        return bool(da.isfinite(data).all().compute())
    if not isinstance(data, np.ndarray):
        return bool(da.isfinite(da.from_array(data, chunks="auto")).all().compute())
    if data.ndim == 0:
        return bool(np.isfinite(data))
    # Slab by slab so a memory-mapped file is never copied whole into memory.
    step = max(1, _CHECK_BYTES // max(1, data[:1].nbytes))
    return all(np.isfinite(data[i : i + step]).all() for i in range(0, len(data), step))


def to_czyx(array: Any, axes: str) -> tuple[Any, str]:
    """Reorder ``array`` from layout ``axes`` to ``CZYX`` (or ``TCZYX`` with a time axis).

    Missing C and Z axes are inserted with length 1. Works for numpy and dask arrays
    without copying.

    Parameters
    ----------
    array
        The data, one dimension per letter of ``axes``.
    axes
        Its layout, e.g. ``"YX"``, ``"ZYX"``, ``"YXC"`` (RGB), ``"TZYX"``; case-insensitive.

    Returns
    -------
    (array, axes)
        The reordered data and ``"CZYX"`` or ``"TCZYX"``.
    """
    spec = axes.upper()
    shape = tuple(int(s) for s in array.shape)
    letters = set(spec)
    if (
        len(spec) != len(shape)
        or len(letters) != len(spec)
        or not letters <= set(AXES_5D)
        or not {"Y", "X"} <= letters
    ):
        raise VolumeError(
            f"cannot use an array of shape {shape} as axes {axes!r}; accepted layouts: {LAYOUTS}"
        )
    target = AXES_5D if "T" in letters else AXES_4D
    order = [spec.index(a) for a in target if a in letters]
    if order != sorted(order):
        array = array.transpose(order)
    return array[tuple(slice(None) if a in letters else None for a in target)], target


def read_zarr_array(
    path: str | os.PathLike, voxel_nm=(1.0, 1.0, 1.0), axes: str | None = None
) -> Volume:
    """Read a plain zarr (v3 or v2) array, without OME metadata, as a lazy Volume.

    Parameters
    ----------
    path
        The array's directory.
    voxel_nm
        (z, y, x) voxel size; plain arrays carry none, so (1, 1, 1) means "pixel units".
    axes
        Layout such as ``"ZYX"``; default from the array's ``dimension_names`` when they are
        T/C/Z/Y/X letters, else YX, ZYX, CZYX, TCZYX by dimensionality.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file or directory")
    try:
        array = zarr.open_array(str(path), mode="r")
    except Exception as exc:
        raise VolumeError(
            f"{path}: not a readable zarr array ({type(exc).__name__}: {exc})"
        ) from exc
    if axes is None:
        names = getattr(array.metadata, "dimension_names", None) or ()
        axes = "".join(str(n).upper() for n in names if n is not None)
        if len(axes) != array.ndim or not set(axes) <= set(AXES_5D):
            axes = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}.get(array.ndim, "?" * array.ndim)
    try:
        data, layout = to_czyx(da.from_zarr(array), axes)
    except VolumeError as exc:
        raise VolumeError(f"{path}: {exc}") from exc
    return Volume(data, voxel_nm, axes=layout)
