"""Zarr in (plain arrays, OME-Zarr images) and OME-Zarr 0.5 out."""

from __future__ import annotations

from pathlib import Path

import attrs

from subcell.core.model import Masks, Volume
from subcell.core.omezarr import read_ome_zarr, write_ome_zarr
from subcell.core.volumes import check_volume, read_zarr_array
from subcell.plugins.formats._common import axes_field, voxel_field, zarr_kind


@attrs.frozen(kw_only=True)
class ZarrReaderConfig:
    """Reading a plain zarr (v2 or v3) array, which carries no pixel size.

    ``axes`` "" takes the array's ``dimension_names`` when they are T/C/Z/Y/X letters, else
    YX, ZYX, CZYX, TCZYX by dimensionality.

    Attributes
    ----------
    voxel_nm
        Voxel size (z, y, x) in nm, used where the file does not state one.
    axes
        Axis letters of the data, e.g. ``"ZYX"``; ``""`` infers them (see above).
    check_finite
        Reject data holding NaN or infinity (one pass over float data).
    """

    voxel_nm: tuple[float, float, float] = voxel_field()
    axes: str = axes_field()
    check_finite: bool = True


class ZarrReader:
    """Reads a plain zarr array lazily."""

    def __init__(self, config: ZarrReaderConfig):
        self.config = config

    def can_read(self, path) -> bool:
        path = Path(path)
        if path.exists():
            return zarr_kind(path) == "array"
        name = path.name.lower()
        return name.endswith(".zarr") and not name.endswith(".ome.zarr")

    def read(self, path) -> Volume:
        volume = read_zarr_array(path, self.config.voxel_nm, self.config.axes or None)
        return check_volume(volume, name=str(path)) if self.config.check_finite else volume


@attrs.frozen(kw_only=True)
class OmeZarrReaderConfig:
    """Reading one resolution level of an OME-Zarr image (0.5, or 0.4 on zarr v2).

    ``voxel_nm`` fills in sizes the file lacks (no z axis, or a unit that is not a length).

    Attributes
    ----------
    level
        Resolution level to read (0 = full resolution).
    voxel_nm
        Voxel size (z, y, x) in nm, used where the file does not state one.
    check_finite
        Reject data holding NaN or infinity (one pass over float data).
    """

    level: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    voxel_nm: tuple[float, float, float] = voxel_field()
    check_finite: bool = True


class OmeZarrReader:
    """Reads an OME-Zarr image lazily (its labels: :func:`subcell.core.omezarr.read_labels`)."""

    def __init__(self, config: OmeZarrReaderConfig):
        self.config = config

    def can_read(self, path) -> bool:
        path = Path(path)
        if path.exists():
            return zarr_kind(path) == "ome"
        return path.name.lower().endswith(".ome.zarr")

    def read(self, path) -> Volume:
        volume = read_ome_zarr(path, self.config.level, default_voxel_nm=self.config.voxel_nm)
        return check_volume(volume, name=str(path)) if self.config.check_finite else volume


def _chunks(instance, attribute, value) -> None:
    if len(value) != 3 or not all(isinstance(v, int) and v >= 1 for v in value):
        raise ValueError(f"{attribute.name} must be three positive integers (z, y, x)")


@attrs.frozen(kw_only=True)
class OmeZarrWriterConfig:
    """Writing OME-Zarr 0.5 (zarr v3): ``n_levels`` resolution levels, each downsampled 2x
    in Y and X from the one before; chunks of ``chunk_zyx`` voxels (one channel and one
    frame per chunk), each written by exactly one task.

    Attributes
    ----------
    n_levels
        Number of resolution levels (1 = full resolution only).
    chunk_zyx
        Chunk size (Z, Y, X) in voxels.
    """

    n_levels: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    chunk_zyx: tuple[int, int, int] = attrs.field(default=(16, 256, 256), validator=_chunks)


class OmeZarrWriter:
    """Writes a Volume, its masks as ``labels/`` and attributes to OME-Zarr 0.5."""

    def __init__(self, config: OmeZarrWriterConfig):
        self.config = config

    def write(
        self, volume: Volume, path, masks: Masks | None = None, attrs: dict | None = None
    ) -> Path:
        return write_ome_zarr(
            volume,
            path,
            masks=masks,
            attrs=attrs,
            chunks=tuple(self.config.chunk_zyx),
            n_levels=self.config.n_levels,
        )


__all__ = [
    "OmeZarrReader",
    "OmeZarrReaderConfig",
    "OmeZarrWriter",
    "OmeZarrWriterConfig",
    "ZarrReader",
    "ZarrReaderConfig",
]
