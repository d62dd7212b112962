"""Pieces the format plugins share: config validators, error wrapping, the final Volume."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from subcell.core.errors import VolumeError
from subcell.core.model import Volume
from subcell.core.volumes import LAYOUTS, check_volume, to_czyx


def positive_triple(instance, attribute, value) -> None:
    """attrs validator: three positive numbers (z, y, x)."""
    try:
        ok = len(value) == 3 and all(float(v) > 0 for v in value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(
            f"{attribute.name} must be three positive numbers (z, y, x), got {value!r}"
        )


def axes_spec(instance, attribute, value) -> None:
    """attrs validator: empty (take the file's axes) or a layout such as ``"ZYX"``."""
    letters = str(value).upper()
    if value and (
        not set(letters) <= set("TCZYX")
        or len(set(letters)) != len(letters)
        or not {"Y", "X"} <= set(letters)
    ):
        raise ValueError(f"{attribute.name} must be empty (from the file) or one of {LAYOUTS}")


def voxel_field() -> Any:
    """The ``voxel_nm`` config field: used when a file carries no physical pixel size."""
    return attrs.field(default=(1.0, 1.0, 1.0), validator=positive_triple)


def axes_field() -> Any:
    """The ``axes`` config field: override the file's axis layout ("" = from the file)."""
    return attrs.field(default="", validator=axes_spec)


def require_file(path: Path) -> None:
    """Raise :class:`VolumeError` naming ``path`` unless it exists."""
    if not path.exists():
        raise VolumeError(f"{path}: no such file or directory")


def wrap(path: Path, what: str, call: Callable[[], Any]) -> Any:
    """Run ``call``; turn any library error into a one-line :class:`VolumeError`."""
    try:
        return call()
    except VolumeError:
        raise
    except Exception as exc:  # each library raises its own types for a bad file
        raise VolumeError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc


def finish(
    data: Any,
    axes: str,
    voxel_nm,
    path: Path,
    *,
    check_finite: bool,
    channel_names=(),
    frame_interval_s: float | None = None,
) -> Volume:
    """Reorder ``data`` from ``axes`` to CZYX/TCZYX, check it, and build the Volume."""
    try:
        data, layout = to_czyx(data, axes)
    except VolumeError as exc:
        raise VolumeError(f"{path}: {exc}") from exc
    n_c = data.shape[layout.index("C")]
    names = tuple(channel_names) if len(channel_names) == n_c else ()
    if check_finite:
        check_volume(data, name=str(path))
    else:
        check_volume(data[(slice(0, 1),) * data.ndim], name=str(path))  # still rejects empty
    return Volume(
        data, voxel_nm, axes=layout, channel_names=names, frame_interval_s=frame_interval_s
    )


def zarr_kind(path: Path) -> str | None:
    """What a directory holds: ``"ome"`` (OME-Zarr image), ``"array"``, ``"group"`` or None."""
    try:
        if (path / "zarr.json").is_file():
            meta = json.loads((path / "zarr.json").read_text())
            if meta.get("node_type") == "array":
                return "array"
            attributes = meta.get("attributes", {})
            return "ome" if "multiscales" in attributes.get("ome", attributes) else "group"
        if (path / ".zarray").is_file():
            return "array"
        if (path / ".zattrs").is_file() and "multiscales" in json.loads(
            (path / ".zattrs").read_text()
        ):
            return "ome"
        return "group" if (path / ".zgroup").is_file() else None
    except (OSError, ValueError, AttributeError):
        return None


def temporary_sibling(path: Path) -> Path:
    """A hidden name next to ``path`` for writing before an atomic rename."""
    return path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}{path.suffix}")


def replace_atomically(write: Callable[[Path], None], path: Path) -> Path:
    """Call ``write(tmp)`` on a temporary sibling file, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise VolumeError(f"{path}: is a directory; refusing to replace it with a file")
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
