"""The input of a chunked segmentation, opened lazily in any process.

A :class:`SourceSpec` names the file, the reader plugin and the axes; every worker opens it
itself (nothing large travels between processes) through the registered reader, lazily: a
TIFF memory-mapped (contiguous data) or through tifffile's zarr store (tiled or compressed
data), a ``.npy`` memory-mapped. Zarr arrays and OME-Zarr images are then read region by
region straight from their zarr array (:class:`AxisView`): reading a region of a dask array
costs time and memory in proportion to *all* its chunks (graph slicing and culling), which
for a volume of a million chunks is more than the block itself.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import attrs
import numpy as np

from subcell.core.errors import VolumeError
from subcell.core.model import AXES_4D, Volume

__all__ = [
    "AxisView",
    "SourceSpec",
    "as_tczyx",
    "direct_view",
    "open_source",
    "read_region",
    "source_spec",
    "tczyx_data",
]

#: Reader options for lazy, unchecked reading (blocks are checked for NaN as they are read).
_LAZY = {"check_finite": False, "lazy_above_mb": 0.0}


@attrs.frozen
class SourceSpec:
    """Where the input is and how to read it.

    Attributes
    ----------
    path
        The file or directory (absolute).
    reader
        The ``reader`` plugin's name.
    axes
        Axis letters overriding the file's (``""``: from the file).
    """

    path: str
    reader: str
    axes: str = ""


def _plain_zarr_axes(path: Path) -> str | None:
    """The axes a plain zarr array states (``dimension_names``); None if it states none."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return None  # zarr v2 arrays carry no axis names
    try:
        names = json.loads(meta.read_text()).get("dimension_names") or ()
    except (OSError, ValueError):
        return None
    letters = "".join(str(n).upper() for n in names if n is not None)
    if not names or len(letters) != len(names) or not set(letters) <= set("TCZYX"):
        return None
    return letters


def source_spec(path: str | os.PathLike, *, axes: str = "", registry=None) -> SourceSpec:
    """Find the reader for ``path``; warn when a plain zarr array's axes are assumed.

    Raises
    ------
    VolumeError
        A missing path, or no reader for it.
    """
    from subcell.registry import get_registry

    path = Path(path).resolve()
    if not path.exists():
        raise VolumeError(f"{path}: no such file or directory")
    registry = registry or get_registry()
    for registration in registry.all("reader"):
        if registration.create().can_read(path):
            spec = SourceSpec(str(path), registration.name, axes.upper())
            break
    else:
        names = ", ".join(registry.names("reader"))
        raise VolumeError(f"{path}: no reader recognises this input (readers: {names})")
    if spec.reader == "zarr" and not axes and _plain_zarr_axes(path) is None:
        import zarr

        ndim = zarr.open_array(str(path), mode="r").ndim
        assumed = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}.get(ndim)
        if assumed is None:
            raise VolumeError(f"{path}: a {ndim}-D zarr array without axes; give the axes")
        warnings.warn(
            f"{path.name}: a plain zarr array without axes metadata; reading it as {assumed} "
            f"(give --axes to say otherwise)",
            stacklevel=2,
        )
    return spec


def open_source(spec: SourceSpec, *, registry=None) -> Volume:
    """Open the input lazily as a ``CZYX`` or ``TCZYX`` Volume."""
    from subcell.registry import get_registry

    registry = registry or get_registry()
    registration = registry.get("reader", spec.reader)
    fields = attrs.fields_dict(registration.config_cls)
    options = {k: v for k, v in _LAZY.items() if k in fields}
    if spec.axes and "axes" in fields:
        options["axes"] = spec.axes
    reader = registration.create(registration.config_cls(**options))
    return reader.read(Path(spec.path))


def as_tczyx(volume: Volume):
    """The volume's data with a time axis first (length 1 when it has none)."""
    return volume.data[None] if volume.axes == AXES_4D else volume.data


class AxisView:
    """A (T, C, Z, Y, X) view of an on-disk array whose own axes are ``axes`` (letters of
    TCZYX, any order, missing ones of length 1): indexing reads just that part.

    Parameters
    ----------
    array
        Anything indexed with integers and slices (a zarr array, a memory map).
    axes
        Its axis letters, e.g. ``"ZYX"`` or ``"TZCYX"``.
    """

    def __init__(self, array, axes: str):
        self.array, self.axes = array, axes.upper()
        size = dict(zip(self.axes, (int(n) for n in array.shape), strict=True))
        self.shape = tuple(size.get(a, 1) for a in "TCZYX")
        self.dtype = np.dtype(array.dtype)
        self.ndim = 5

    def __getitem__(self, key) -> np.ndarray:
        key = tuple(key) + (slice(None),) * (5 - len(tuple(key)))
        wanted = dict(zip("TCZYX", key, strict=True))
        source = tuple(wanted[a] for a in self.axes)
        data = np.asarray(self.array[source])
        kept = [a for a in self.axes if not isinstance(wanted[a], int | np.integer)]
        order = [a for a in "TCZYX" if not isinstance(wanted[a], int | np.integer)]
        data = data.transpose([kept.index(a) for a in order if a in kept])
        return data[tuple(slice(None) if a in kept else None for a in order)]


def _ome_layout(axes_meta: list) -> str:
    """Letters of OME axes, as :mod:`subcell.core.omezarr` reads them (space axes by
    position: the last three are Z, Y, X)."""
    entries = [a if isinstance(a, dict) else {"name": a} for a in axes_meta]
    n_space = sum(1 for a in entries if a.get("type") == "space")
    letters, seen = [], 0
    for a in entries:
        if a.get("type") == "space":
            letters.append("ZYX"[3 - n_space + seen])
            seen += 1
        else:
            kind = a.get("type")
            letters.append({"time": "T", "channel": "C"}.get(kind, str(a.get("name", "?")).upper()))
    return "".join(letters)


def direct_view(spec: SourceSpec, shape: tuple[int, ...]):
    """An :class:`AxisView` straight onto a zarr or OME-Zarr input; None for other inputs,
    or when its (T, C, Z, Y, X) shape is not ``shape`` (what the reader gives)."""
    import zarr

    if spec.reader not in ("zarr", "ome_zarr"):
        return None
    try:
        if spec.reader == "zarr":
            array = zarr.open_array(spec.path, mode="r")
            default = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}.get(array.ndim, "")
            axes = spec.axes or _plain_zarr_axes(Path(spec.path)) or default
        else:
            group = zarr.open_group(spec.path, mode="r")
            meta = dict(group.attrs)
            ms = dict(meta.get("ome", meta))["multiscales"][0]
            array = group[ms["datasets"][0]["path"]]
            axes = _ome_layout(ms["axes"])
        view = AxisView(array, axes)
    except Exception:  # noqa: BLE001 - anything unexpected: keep the reader's array
        return None
    return view if view.shape == tuple(shape) else None


def read_region(data, region: tuple[slice, ...], name: str) -> np.ndarray:
    """Read (C, Z, Y, X) at time ``region[0]`` over ``region[1:]`` as a numpy array.

    Raises
    ------
    VolumeError
        The region holds NaN or infinite values.
    """
    t, *zyx = region
    part = data[(t.start, slice(None), *zyx)]
    if hasattr(part, "compute"):
        part = part.compute(scheduler="synchronous")  # workers are the parallelism
    part = np.asarray(part)
    if part.dtype.kind in "fc" and not np.isfinite(part).all():
        where = ", ".join(f"{a} {s.start}:{s.stop}" for a, s in zip("tzyx", region, strict=True))
        raise VolumeError(f"{name}: holds NaN or infinite values (in {where})")
    return part


def tczyx_data(spec: SourceSpec, volume: Volume | None = None, shape=None):
    """The input's (T, C, Z, Y, X) data for reading regions: straight from the zarr array
    where it can be (:func:`direct_view`), else the reader's (lazy) array.

    Give the opened ``volume`` (the driver has it), or the expected (T, C, Z, Y, X)
    ``shape``: a worker then opens a zarr input without the reader, whose dask array costs
    memory in proportion to the input's chunk count.
    """
    if volume is not None:
        shape = (1, *volume.shape) if volume.axes == AXES_4D else tuple(volume.shape)
    view = direct_view(spec, shape) if shape is not None else None
    if view is not None:
        return view
    return as_tczyx(volume if volume is not None else open_source(spec))
