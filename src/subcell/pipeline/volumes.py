"""Read and write images through the registered reader and writer plugins."""

from __future__ import annotations

from pathlib import Path

from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Volume
from subcell.registry import Registry, get_registry


def read_volume(
    path: str | Path, *, reader: str | None = None, registry: Registry | None = None
) -> Volume:
    """Read an image or volume with the named reader, or the first that can read ``path``.

    Raises
    ------
    VolumeError
        Missing file, no reader for the format, or what the reader reports (one line).
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file or folder")
    registry = registry or get_registry()
    if reader is not None:
        return registry.create("reader", reader).read(path)
    for registration in registry.all("reader"):
        candidate = registration.create()
        if candidate.can_read(path):
            return candidate.read(path)
    names = ", ".join(registry.names("reader"))
    raise VolumeError(f"{path}: no reader recognises this file (readers: {names})")


def write_volume(
    volume: Volume,
    path: str | Path,
    *,
    writer: str = "ome_zarr",
    masks: Masks | None = None,
    attrs: dict | None = None,
    registry: Registry | None = None,
) -> Path:
    """Write ``volume`` (and masks, attributes such as provenance) with the named writer."""
    registry = registry or get_registry()
    return registry.create("writer", writer).write(volume, Path(path), masks=masks, attrs=attrs)
