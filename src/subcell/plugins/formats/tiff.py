"""TIFF in (plain, ImageJ, OME-TIFF) and ImageJ-hyperstack TIFF out, with tifffile."""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from typing import Literal

import attrs
import dask.array as da
import numpy as np
import tifffile
import zarr

from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Volume
from subcell.plugins.formats._common import (
    axes_field,
    finish,
    replace_atomically,
    require_file,
    voxel_field,
    wrap,
)

SUFFIXES = (".tif", ".tiff")
# Length units seen in ImageJ and OME metadata, in nm.
_UNIT_NM = {
    "nm": 1.0,
    "nanometer": 1.0,
    "um": 1e3,
    "µm": 1e3,
    "\u03bcm": 1e3,
    "micron": 1e3,
    "micrometer": 1e3,
    "\\u00b5m": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "cm": 1e7,
    "m": 1e9,
    "å": 0.1,
    "angstrom": 0.1,
}
_TIME_S = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "min": 60.0, "h": 3600.0}
_RESUNIT_NM = {3: 1e7, 4: 1e6, 5: 1e3}  # centimetre, millimetre, micrometre; inch is screen dpi


@attrs.frozen(kw_only=True)
class TiffReaderConfig:
    """Reading TIFF files.

    ``voxel_nm`` is used for each size the file does not state (OME or ImageJ metadata, or
    a metric resolution unit). Files above ``lazy_above_mb`` are read lazily (memory-mapped
    or chunk by chunk). ``check_finite`` rejects NaN/inf (a pass over float data).

    Attributes
    ----------
    voxel_nm
        Voxel size (z, y, x) in nm, used where the file does not state one.
    axes
        Axis letters of the data, e.g. ``"ZYX"``; ``""`` infers them (see above).
    lazy_above_mb
        Files larger than this (MB) are read lazily instead of loaded.
    check_finite
        Reject data holding NaN or infinity (one pass over float data).
    """

    voxel_nm: tuple[float, float, float] = voxel_field()
    axes: str = axes_field()
    lazy_above_mb: float = attrs.field(default=256.0, validator=attrs.validators.ge(0))
    check_finite: bool = True


class TiffReader:
    """Reads the first series of a TIFF file into a Volume."""

    def __init__(self, config: TiffReaderConfig):
        self.config = config

    def can_read(self, path) -> bool:
        return str(path).lower().endswith(SUFFIXES)

    def read(self, path) -> Volume:
        path = Path(path)
        require_file(path)
        data, axes, voxel, interval, names = wrap(path, "TIFF", lambda: self._load(path))
        return finish(
            data,
            axes,
            voxel,
            path,
            check_finite=self.config.check_finite,
            channel_names=names,
            frame_interval_s=interval,
        )

    def _load(self, path: Path):
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            _check_complete(tif, series, path)
            axes = _subcell_axes(series.axes, path) if not self.config.axes else self.config.axes
            voxel, interval, names = _physical(tif, series, axes, self.config.voxel_nm)
            if series.nbytes <= self.config.lazy_above_mb * 2**20:
                data = series.asarray()
            elif series.dataoffset is not None:
                # Uncompressed and contiguous: let the OS page it in.
                data = da.from_array(
                    tifffile.memmap(path, series=0, mode="r").reshape(series.shape)
                )
            else:
                # tifffile's store reopens the file on demand, so closing `tif` (and the
                # store, once the array is garbage) is safe and leaks no file handle.
                store = series.aszarr(level=0)
                array = zarr.open(store, mode="r")
                weakref.finalize(array, store.close)
                data = da.from_zarr(array)
        return data, axes, voxel, interval, names


def _check_complete(tif, series, path: Path) -> None:
    size = os.path.getsize(path)
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        end = max(
            (
                o + c
                for p in series.pages
                if p is not None
                for o, c in zip(p.dataoffsets, p.databytecounts, strict=False)
            ),
            default=0,
        )
    if end > size:
        raise VolumeError(f"{path}: truncated TIFF ({size} bytes, image data needs {end})")


def _subcell_axes(axes: str, path: Path) -> str:
    """tifffile's axis letters to T/C/Z/Y/X: samples (S) are channels, I/Q stacks are Z."""
    out = []
    for letter in axes.upper():
        if letter == "S" and "C" not in axes.upper():
            letter = "C"
        elif letter in "IQ":
            letter = next((a for a in "ZT" if a not in axes.upper() and a not in out), letter)
        out.append(letter)
    spec = "".join(out)
    if not set(spec) <= set("TCZYX") or len(set(spec)) != len(spec):
        raise VolumeError(f"{path}: TIFF axes {axes!r} are ambiguous; set the reader's axes")
    return spec


def _physical(tif, series, axes: str, default_nm):
    """Voxel size (z, y, x) in nm, frame interval in s and channel names from the metadata."""
    voxel = [float(v) for v in default_nm]
    interval, names = None, ()
    if tif.is_ome:
        pixels = _ome_pixels(tif)
        for i, a in enumerate("ZYX"):
            size, unit = pixels.get(f"PhysicalSize{a}"), pixels.get(f"PhysicalSize{a}Unit", "µm")
            if size is not None and str(unit).lower() in _UNIT_NM:
                voxel[i] = float(size) * _UNIT_NM[str(unit).lower()]
        if pixels.get("TimeIncrement") is not None:
            unit = pixels.get("TimeIncrementUnit", "s")
            interval = float(pixels["TimeIncrement"]) * _TIME_S.get(unit, 1.0)
        channels = pixels.get("Channel", [])
        channels = channels if isinstance(channels, list) else [channels]
        names = tuple(str(c.get("Name", "")) for c in channels if isinstance(c, dict))
        return tuple(voxel), interval, names if all(names) else ()
    page = series.pages[0]
    x_res, y_res = (page.tags.valueof(t) for t in ("XResolution", "YResolution"))
    ij = tif.imagej_metadata if tif.is_imagej else None
    if ij is not None:
        per_unit = _UNIT_NM.get(str(ij.get("unit", "")).lower())
        if ij.get("finterval"):
            interval = float(ij["finterval"])
        names = _info_channel_names(ij.get("Info"))
    else:
        per_unit = _RESUNIT_NM.get(int(page.tags.valueof("ResolutionUnit", 1)))
    if per_unit is not None:
        for i, res in ((1, y_res), (2, x_res)):
            if res and res[0] > 0 and (res[0], res[1]) != (1, 1):
                voxel[i] = per_unit * res[1] / res[0]
        if ij is not None and ij.get("spacing"):
            voxel[0] = float(ij["spacing"]) * per_unit
    return tuple(voxel), interval, names


def _ome_pixels(tif) -> dict:
    images = tifffile.xml2dict(tif.ome_metadata).get("OME", {}).get("Image", {})
    image = images[0] if isinstance(images, list) else images
    return image.get("Pixels", {}) if isinstance(image, dict) else {}


def _info_channel_names(info) -> tuple[str, ...]:
    try:
        names = json.loads(info)["subcell"]["channel_names"]
    except (TypeError, ValueError, KeyError):
        return ()
    return tuple(str(n) for n in names)


@attrs.frozen(kw_only=True)
class TiffWriterConfig:
    """Writing ImageJ-compatible hyperstack TIFF (sizes in µm, as ImageJ expects).

    ImageJ knows uint8, uint16 and float32: other integers are stored as uint16 when their
    values fit (else float32 when exact, else an error), float64 as float32. Masks go to
    ``<name>_mask.tif`` (Z, C, Y, X; one channel per class) and ``<name>_instances.tif``.

    Attributes
    ----------
    compression
        ``"none"`` or ``"zlib"`` (lossless, smaller files, slower to write).
    """

    compression: Literal["none", "zlib"] = attrs.field(
        default="none", validator=attrs.validators.in_(("none", "zlib"))
    )


class TiffWriter:
    """Writes a Volume as an ImageJ hyperstack, plane by plane for dask data."""

    def __init__(self, config: TiffWriterConfig):
        self.config = config

    def write(
        self, volume: Volume, path, masks: Masks | None = None, attrs: dict | None = None
    ) -> Path:
        path = Path(path)
        if masks is not None:
            stem = _stem(path)
            mask = Volume(masks.semantic, masks.voxel_nm, channel_names=masks.class_names)
            self._write_one(mask, path.with_name(f"{stem}_mask.tif"), None)
            if masks.instances is not None:
                inst = Volume(masks.instances[None], masks.voxel_nm, channel_names=("instances",))
                self._write_one(inst, path.with_name(f"{stem}_instances.tif"), None)
        # The image goes last: once it exists, so do its masks.
        return self._write_one(volume, path, attrs)

    def _write_one(self, volume: Volume, path: Path, attrs: dict | None) -> Path:
        data = volume.data
        if volume.axes == "CZYX":
            data, ij_axes = data.transpose(1, 0, 2, 3), "ZCYX"
        else:
            data, ij_axes = data.transpose(0, 2, 1, 3, 4), "TZCYX"
        data = _imagej_dtype(data, path)
        z_nm, y_nm, x_nm = volume.voxel_nm
        info = {"subcell": {"channel_names": list(volume.channel_names), "attrs": attrs}}
        metadata = {"axes": ij_axes, "spacing": z_nm / 1e3, "unit": "um"}
        metadata["Info"] = json.dumps(info, default=str)
        if volume.frame_interval_s is not None:
            metadata["finterval"] = volume.frame_interval_s
        kwargs = {
            "imagej": True,
            "resolution": (1e3 / x_nm, 1e3 / y_nm),
            "metadata": metadata,
            "compression": None if self.config.compression == "none" else self.config.compression,
        }

        def write(tmp: Path) -> None:
            if isinstance(data, da.Array):
                planes = _planes(data)
                tifffile.imwrite(tmp, planes, shape=data.shape, dtype=data.dtype, **kwargs)
            else:
                tifffile.imwrite(tmp, np.asarray(data), **kwargs)

        return replace_atomically(write, path)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _imagej_dtype(data, path: Path):
    dtype = np.dtype(data.dtype)
    if dtype in (np.uint8, np.uint16, np.float32):
        return data
    if dtype.kind == "b":
        return data.astype(np.uint8)
    if dtype.kind == "f":
        return data.astype(np.float32)
    if dtype.kind in "iu":
        lo, hi = (int(v) for v in da.compute(data.min(), data.max()))
        if lo >= 0 and hi < 2**16:
            return data.astype(np.uint16)
        if max(abs(lo), abs(hi)) <= 2**24:
            return data.astype(np.float32)
        raise VolumeError(f"{path}: {dtype} values {lo}..{hi} do not fit an ImageJ TIFF")
    raise VolumeError(f"{path}: cannot write {dtype} data as an ImageJ TIFF")


def _planes(data: da.Array):
    """Yield the (Y, X) planes of ``data`` in C order, computing ~64 MiB slabs at a time."""
    ny, nx = data.shape[-2:]
    per_z = int(np.prod(data.shape[-3:])) * data.dtype.itemsize
    step = max(1, (64 * 2**20) // max(1, per_z))
    for outer in np.ndindex(*data.shape[:-4]):
        for z0 in range(0, data.shape[-4], step):
            slab = np.asarray(data[outer + (slice(z0, z0 + step),)].compute())
            yield from slab.reshape(-1, ny, nx)
