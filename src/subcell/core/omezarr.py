"""OME-Zarr 0.5 (zarr v3) images: writing with labels and resolution pyramids, and reading.

Reads OME-Zarr 0.5 and 0.4 (zarr v2) images and their ``labels/`` lazily (dask). Every write
goes to a temporary sibling that is renamed into place only when complete, and each zarr
chunk is written by exactly one dask task.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import zarr

from subcell.core.errors import VolumeError
from subcell.core.model import AXES_4D, Masks, Volume
from subcell.core.volumes import to_czyx

OME_VERSION = "0.5"
_NM_PER_UNIT = {
    "angstrom": 0.1,
    "nanometer": 1.0,
    "micrometer": 1e3,
    "millimeter": 1e6,
    "centimeter": 1e7,
    "meter": 1e9,
}
_S_PER_UNIT = {
    "nanosecond": 1e-9,
    "microsecond": 1e-6,
    "millisecond": 1e-3,
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
}
_AXIS_TYPE = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
_DEFAULT_CHUNK = {"T": 1, "C": 1, "Z": 16, "Y": 256, "X": 256}
_COLORS = ("FFFFFF", "00FF00", "FF00FF", "00FFFF", "FFFF00", "FF0000", "0000FF")


# --------------------------------------------------------------------------- writing


def write_ome_zarr(
    volume: Volume,
    path: str | os.PathLike,
    *,
    masks: Masks | None = None,
    attrs: dict | None = None,
    chunks: tuple[int, ...] | None = None,
    n_levels: int = 1,
    overwrite: bool = True,
) -> Path:
    """Write ``volume`` (and ``masks``) as an OME-Zarr 0.5 image on zarr v3.

    Each zarr chunk is written by exactly one dask task (zarr chunks equal dask chunks, no
    sharding). The data are checked for NaN/inf in the same pass that writes them.

    Parameters
    ----------
    volume
        The image; numpy or dask data, axes ``CZYX`` or ``TCZYX``.
    path
        The output directory, e.g. ``image.ome.zarr``.
    masks
        Written under ``labels/``: ``mask`` (c, z, y, x; one binary channel per class) and,
        if present, ``instances`` (z, y, x).
    attrs
        JSON-ready metadata (e.g. provenance), stored as ``attributes["subcell"]``.
    chunks
        Chunk shape, one entry per axis of ``volume.axes`` or three for (Z, Y, X). Default:
        the dask chunks of a dask volume, else (1, ..., 16, 256, 256) capped by the shape.
    n_levels
        Resolution levels; level ``k`` is downsampled ``2**k`` times in Y and X.
    overwrite
        Replace an existing zarr hierarchy at ``path`` (anything else is never replaced).

    Returns
    -------
    Path
        ``path``, present only once the write is complete.
    """
    path = Path(path)
    _check_target(path, overwrite)
    _check_write_args(volume, masks, n_levels)
    meta = _jsonable(attrs) if attrs is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=3)
        ome = _write_image_levels(root, volume, chunks, n_levels, path.name)
        root.attrs.update({"ome": ome} | ({"subcell": meta} if meta is not None else {}))
        if masks is not None:
            _write_labels(root, masks, volume, chunks, n_levels)
        _move_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _check_target(path: Path, overwrite: bool) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise VolumeError(f"{path}: already exists (set overwrite to replace it)")
    if not _is_zarr_node(path):
        raise VolumeError(f"{path}: exists and is not a zarr hierarchy; refusing to replace it")


def _is_zarr_node(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in ("zarr.json", ".zgroup", ".zarray"))


def _check_write_args(volume: Volume, masks: Masks | None, n_levels: int) -> None:
    if int(n_levels) < 1:
        raise VolumeError(f"n_levels must be >= 1, got {n_levels}")
    ny, nx = volume.shape[-2:]
    if min(ny, nx) < 2 ** (int(n_levels) - 1):
        raise VolumeError(
            f"{n_levels} levels need Y and X >= {2 ** (n_levels - 1)}, got {(ny, nx)}"
        )
    if 0 in volume.shape:
        raise VolumeError(f"cannot write an empty volume of shape {volume.shape}")
    if np.dtype(volume.data.dtype).kind not in "biuf":
        raise VolumeError(f"cannot write data of type {np.dtype(volume.data.dtype)} as an image")
    if masks is not None and tuple(masks.semantic.shape[1:]) != tuple(volume.shape[-3:]):
        raise VolumeError(
            f"masks shape {tuple(masks.semantic.shape[1:])} does not match the volume's "
            f"(Z, Y, X) {tuple(volume.shape[-3:])}"
        )


def _jsonable(attrs: dict) -> dict:
    def default(obj):
        if isinstance(obj, np.generic | np.ndarray):
            return obj.tolist()
        if isinstance(obj, os.PathLike | set | frozenset):
            return str(obj) if isinstance(obj, os.PathLike) else sorted(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(attrs, default=default))
    except (TypeError, ValueError) as exc:
        raise VolumeError(f"attrs cannot be stored as JSON: {exc}") from exc


def _move_into_place(tmp: Path, path: Path) -> None:
    if not (path.exists() or path.is_symlink()):
        os.rename(tmp, path)
        return
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(path, old)
    os.rename(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _chunk_shape(shape, axes: str, chunks) -> tuple[int, ...]:
    if chunks is None:
        wanted = [_DEFAULT_CHUNK[a] for a in axes]
    elif len(chunks) == len(axes):
        wanted = list(chunks)
    elif len(chunks) == 3:
        wanted = [1] * (len(axes) - 3) + list(chunks)
    else:
        raise VolumeError(
            f"chunks {tuple(chunks)} need one entry per axis of {axes} or three (Z, Y, X)"
        )
    if any(int(c) < 1 for c in wanted):
        raise VolumeError(f"chunk sizes must be >= 1, got {tuple(chunks)}")
    return tuple(min(int(c), int(s)) for c, s in zip(wanted, shape, strict=True))


def _is_regular(chunks: tuple[tuple[int, ...], ...]) -> bool:
    return all(len(c) == 1 or (len(set(c[:-1])) == 1 and c[-1] <= c[0]) for c in chunks)


def _as_chunked(data, axes: str, chunks) -> da.Array:
    """A dask array whose chunks are regular, so each becomes exactly one zarr chunk."""
    if isinstance(data, da.Array):
        if chunks is not None:
            return data.rechunk(_chunk_shape(data.shape, axes, chunks))
        if _is_regular(data.chunks):
            return data
        return data.rechunk(tuple(max(c) for c in data.chunks))
    return da.from_array(data, chunks=_chunk_shape(data.shape, axes, chunks))


def _create(group, name: str, data: da.Array, axes: str):
    return group.create_array(
        name,
        shape=data.shape,
        chunks=tuple(c[0] for c in data.chunks),
        dtype=data.dtype,
        dimension_names=[a.lower() for a in axes],
        fill_value=0,
    )


def _downsample(data: da.Array, axes: str, nearest: bool) -> da.Array:
    """Halve Y and X: block mean for images, nearest (every other voxel) for labels."""
    ny, nx = (data.shape[axes.index(a)] for a in "YX")
    if nearest or data.dtype.kind == "b":
        index = tuple(
            slice(0, 2 * (ny // 2), 2)
            if a == "Y"
            else slice(0, 2 * (nx // 2), 2)
            if a == "X"
            else slice(None)
            for a in axes
        )
        return data[index]
    out = da.coarsen(np.mean, data, {axes.index("Y"): 2, axes.index("X"): 2}, trim_excess=True)
    if data.dtype.kind in "iu":
        out = da.round(out)
    return out.astype(data.dtype)


def _write_levels(group, data: da.Array, axes: str, n_levels: int, nearest: bool, extra=()):
    """Store level 0 (computed together with ``extra`` dask results), then levels 1.. from it."""
    target = tuple(c[0] for c in data.chunks)
    arr = _create(group, "0", data, axes)
    results = dask.compute(da.store(data, arr, lock=False, compute=False), *extra)[1:]
    for k in range(1, n_levels):
        prev = da.from_zarr(arr)
        level = _downsample(prev, axes, nearest)
        level = level.rechunk(tuple(min(t, s) for t, s in zip(target, level.shape, strict=True)))
        arr = _create(group, str(k), level, axes)
        da.store(level, arr, lock=False)
    return results


def _multiscales(axes, voxel_nm, n_levels, frame_interval_s, name, nearest) -> dict:
    axes_meta = []
    for a in axes:
        entry = {"name": a.lower(), "type": _AXIS_TYPE[a]}
        if _AXIS_TYPE[a] == "space":
            entry["unit"] = "nanometer"
        elif a == "T" and frame_interval_s is not None:
            entry["unit"] = "second"
        axes_meta.append(entry)
    base = {
        "T": frame_interval_s or 1.0,
        "C": 1.0,
        "Z": voxel_nm[0],
        "Y": voxel_nm[1],
        "X": voxel_nm[2],
    }
    datasets = []
    for k in range(n_levels):
        scale = [float(base[a]) * (2**k if a in "YX" else 1) for a in axes]
        transforms = [{"type": "scale", "scale": scale}]
        if k and not nearest:
            # A 2**k block mean is centred (2**k - 1) / 2 level-0 pixels from the block's
            # first pixel: say so, or viewers overlay the levels shifted.
            shift = [float(base[a]) * (2**k - 1) / 2 if a in "YX" else 0.0 for a in axes]
            transforms.append({"type": "translation", "translation": shift})
        datasets.append({"path": str(k), "coordinateTransformations": transforms})
    method = "every other voxel" if nearest else "mean of 2x2 blocks"
    return {
        "name": name,
        "axes": axes_meta,
        "datasets": datasets,
        "type": "nearest" if nearest else "mean",
        "metadata": {"description": f"level k is downsampled 2**k in y and x ({method})"},
    }


def _write_image_levels(root, volume: Volume, chunks, n_levels: int, name: str) -> dict:
    axes = volume.axes
    data = _as_chunked(volume.data, axes, chunks)
    others = tuple(i for i, a in enumerate(axes) if a != "C")
    extra = [data.min(axis=others), data.max(axis=others)]
    if data.dtype.kind in "fc":
        extra.append(da.isfinite(data).all())
    lo, hi, *finite = _write_levels(root, data, axes, n_levels, nearest=False, extra=extra)
    if finite and not finite[0]:
        raise VolumeError(f"{name}: the volume holds NaN or infinite values")
    channels = [
        {
            "label": label,
            "color": _COLORS[i % len(_COLORS)] if len(lo) > 1 else _COLORS[0],
            "active": True,
            "window": {
                "min": lo[i].item(),
                "max": hi[i].item(),
                "start": lo[i].item(),
                "end": hi[i].item(),
            },
        }
        for i, label in enumerate(volume.channel_names)
    ]
    ms = _multiscales(axes, volume.voxel_nm, n_levels, volume.frame_interval_s, name, nearest=False)
    return {"version": OME_VERSION, "multiscales": [ms], "omero": {"channels": channels}}


def _write_labels(root, masks: Masks, volume: Volume, chunks, n_levels: int) -> None:
    zyx = _chunk_shape(volume.shape, volume.axes, chunks)[-3:]
    if chunks is None and isinstance(volume.data, da.Array):
        zyx = tuple(c[0] for c in _as_chunked(volume.data, volume.axes, None).chunks[-3:])
    images = {"mask": (masks.semantic, np.uint8, "CZYX")}
    if masks.instances is not None:
        images["instances"] = (masks.instances, np.uint32, "ZYX")
    labels = root.create_group("labels")
    labels.attrs.update({"ome": {"version": OME_VERSION, "labels": list(images)}})
    for name, (array, dtype, axes) in images.items():
        group = labels.create_group(name)
        chunks = (1,) * (len(axes) - 3) + tuple(zyx)
        if isinstance(array, da.Array):
            data = array.astype(dtype).rechunk(chunks)
        else:
            data = da.from_array(np.asarray(array, dtype=dtype), chunks=chunks)
        _write_levels(group, data, axes, n_levels, nearest=True)
        attributes = {
            "ome": {
                "version": OME_VERSION,
                "multiscales": [_multiscales(axes, masks.voxel_nm, n_levels, None, name, True)],
                "image-label": {
                    "version": OME_VERSION,
                    "colors": [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
                    + ([{"label-value": 1, "rgba": [255, 255, 0, 255]}] if name == "mask" else []),
                    "source": {"image": "../../"},
                },
            }
        }
        if name == "mask":
            attributes["subcell"] = {"class_names": list(masks.class_names)}
        group.attrs.update(attributes)


# --------------------------------------------------------------------------- reading


def _open_group(path: Path):
    if not path.exists():
        raise VolumeError(f"{path}: no such file or directory")
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a non-zarr path
        raise VolumeError(
            f"{path}: not a readable zarr group ({type(exc).__name__}: {exc})"
        ) from exc


def _ome(attributes) -> dict:
    """The OME metadata: under ``ome`` in 0.5, at the top level in 0.4 (zarr v2)."""
    attributes = dict(attributes)
    return dict(attributes.get("ome", attributes))


def _layout(axes_meta: list) -> str:
    """Subcell letters for OME axes: by type (time/channel/space), space axes by position."""
    entries = [a if isinstance(a, dict) else {"name": a} for a in axes_meta]
    n_space = sum(1 for a in entries if a.get("type") == "space")
    letters, seen_space = [], 0
    for a in entries:
        kind = a.get("type")
        if kind == "space":
            letters.append("ZYX"[3 - n_space + seen_space])
            seen_space += 1
        else:
            letters.append({"time": "T", "channel": "C"}.get(kind, str(a.get("name", "?")).upper()))
    return "".join(letters)


def _read_multiscale(group, path: Path, level: int, default_voxel_nm):
    """Level ``level`` of the image in ``group``: (dask array in CZYX/TCZYX, axes, voxel, dt)."""
    try:
        ms = _ome(group.attrs)["multiscales"][0]
        datasets = ms["datasets"]
        if not 0 <= level < len(datasets):
            raise VolumeError(f"{path}: level {level} requested, the image has {len(datasets)}")
        array = group[datasets[level]["path"]]
        layout = _layout(ms["axes"])
        scale = np.ones(len(layout))
        for transforms in (
            datasets[level].get("coordinateTransformations", []),
            ms.get("coordinateTransformations", []),
        ):
            for t in transforms:
                if t.get("type") == "scale" and "scale" in t:
                    scale = scale * np.asarray(t["scale"], dtype=float)
    except VolumeError:
        raise
    except Exception as exc:
        raise VolumeError(f"{path}: not an OME-Zarr image ({type(exc).__name__}: {exc})") from exc
    voxel = list(default_voxel_nm)
    interval = None
    for i, (letter, meta) in enumerate(zip(layout, ms["axes"], strict=True)):
        unit = meta.get("unit") if isinstance(meta, dict) else None
        if letter in "ZYX":
            # A space axis without a unit is taken as micrometres, the microscopy default.
            factor = _NM_PER_UNIT.get(unit or "micrometer")
            if factor is not None:
                voxel["ZYX".index(letter)] = float(scale[i]) * factor
        elif letter == "T" and unit in _S_PER_UNIT:
            interval = float(scale[i]) * _S_PER_UNIT[unit]
    data, axes = to_czyx(da.from_zarr(array), layout)
    return data, axes, tuple(voxel), interval


def read_ome_zarr(
    path: str | os.PathLike, level: int = 0, *, default_voxel_nm=(1.0, 1.0, 1.0)
) -> Volume:
    """Read one resolution level of an OME-Zarr image (0.5, or 0.4 on zarr v2) as a lazy Volume.

    Parameters
    ----------
    path
        The image group.
    level
        Resolution level, 0 is full resolution.
    default_voxel_nm
        (z, y, x) sizes for spatial axes the file lacks (a 2-D image has no z) or whose unit
        is not a length. Space axes without any unit are read as micrometres.
    """
    path = Path(path)
    group = _open_group(path)
    data, axes, voxel, interval = _read_multiscale(group, path, level, default_voxel_nm)
    n_c = data.shape[axes.index("C")]
    channels = _ome(group.attrs).get("omero", {}).get("channels", [])
    names = [c.get("label") for c in channels if isinstance(c, dict)]
    if (
        len(names) != n_c
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != n_c
    ):
        names = []
    return Volume(data, voxel, axes=axes, channel_names=names, frame_interval_s=interval)


def read_labels(path: str | os.PathLike, *, lazy: bool = False) -> Masks | None:
    """Read the ``labels/`` of an OME-Zarr image as :class:`Masks`; None if it has none.

    ``mask`` (c, z, y, x) becomes the semantic masks and ``instances`` the instance labels.
    A label image written by another tool (say ``cells``) becomes the instances, and its
    non-zero voxels one semantic class named after it. ``lazy`` keeps dask arrays.
    """
    path = Path(path)
    root = _open_group(path)
    if "labels" not in root:
        return None
    try:
        labels = root["labels"]
        names = [str(n) for n in _ome(labels.attrs).get("labels", [])]
    except Exception as exc:
        raise VolumeError(f"{path}: unreadable labels group ({exc})") from exc
    if not names:
        return None

    def load(name):
        if name not in labels:
            raise VolumeError(f"{path}: labels lists {name!r}, which is missing")
        data, axes, voxel, _ = _read_multiscale(labels[name], path / "labels" / name, 0, (1.0,) * 3)
        if axes != AXES_4D:
            raise VolumeError(f"{path}: label image {name!r} has a time axis")
        return data, voxel, labels[name]

    instances = None
    if "mask" in names:
        semantic, voxel, group = load("mask")
        class_names = dict(group.attrs).get("subcell", {}).get("class_names")
        if class_names is None or len(class_names) != semantic.shape[0]:
            class_names = [f"class{i}" for i in range(semantic.shape[0])]
        semantic = semantic.astype(np.uint8)
        if "instances" in names:
            instances = load("instances")[0][0].astype(np.uint32)
    else:
        first, voxel, _ = load(names[0])
        instances = first[0].astype(np.uint32)
        semantic, class_names = (first > 0).astype(np.uint8), [names[0]]
    if not lazy:
        semantic = np.asarray(semantic)
        instances = None if instances is None else np.asarray(instances)
    return Masks(semantic, class_names, voxel, instances)
