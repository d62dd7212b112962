"""Image formats: readers (TIFF, PNG, NumPy, zarr, OME-Zarr) and writers (OME-Zarr, TIFF).

The mechanics live in :mod:`subcell.core.volumes` and :mod:`subcell.core.omezarr`; these
plugins add format detection, metadata parsing and config. Every reader returns a
:class:`~subcell.core.model.Volume` with axes ``CZYX``/``TCZYX`` and voxel sizes in nm, and
turns a missing, corrupt or NaN-holding file into a one-line
:class:`~subcell.core.errors.VolumeError`.
"""

from subcell.core.hookspecs import hookimpl
from subcell.plugins.formats.raster import (
    NumpyReader,
    NumpyReaderConfig,
    PngReader,
    PngReaderConfig,
)
from subcell.plugins.formats.tiff import TiffReader, TiffReaderConfig, TiffWriter, TiffWriterConfig
from subcell.plugins.formats.zarr_formats import (
    OmeZarrReader,
    OmeZarrReaderConfig,
    OmeZarrWriter,
    OmeZarrWriterConfig,
    ZarrReader,
    ZarrReaderConfig,
)

__all__ = [
    "NumpyReader",
    "NumpyReaderConfig",
    "OmeZarrReader",
    "OmeZarrReaderConfig",
    "OmeZarrWriter",
    "OmeZarrWriterConfig",
    "PngReader",
    "PngReaderConfig",
    "TiffReader",
    "TiffReaderConfig",
    "TiffWriter",
    "TiffWriterConfig",
    "ZarrReader",
    "ZarrReaderConfig",
]


@hookimpl
def register_readers(register):
    register("tiff", TiffReaderConfig, TiffReader, "TIFF, ImageJ and OME-TIFF (lazy when large)")
    register("png", PngReaderConfig, PngReader, "PNG, 8- or 16-bit, grey or colour")
    register("numpy", NumpyReaderConfig, NumpyReader, "NumPy .npy arrays (memory-mapped)")
    register("zarr", ZarrReaderConfig, ZarrReader, "plain zarr v2/v3 arrays, read lazily")
    register("ome_zarr", OmeZarrReaderConfig, OmeZarrReader, "OME-Zarr images, read lazily")


@hookimpl
def register_writers(register):
    register("ome_zarr", OmeZarrWriterConfig, OmeZarrWriter, "OME-Zarr 0.5 with labels")
    register("tiff", TiffWriterConfig, TiffWriter, "ImageJ-compatible hyperstack TIFF")
