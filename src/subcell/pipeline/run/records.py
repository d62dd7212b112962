"""Step records (``subcell-step.json``) and the hashes they hold.

A step's folder holds its outputs and ``subcell-step.json``. The record is written twice:
when the step starts (``complete: false``: the config and inputs it was started with, so an
interrupted step can resume), and, atomically, after the outputs are written and hashed
(``complete: true``). A folder whose record is not complete is never reused.

Outputs are hashed by content (every file's bytes, with the file names); inputs that no
step made (your images) by their files' names, sizes and modification times, which is what
``make`` trusts and costs nothing on large folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "RECORD_FILE",
    "content_sha256",
    "find_record",
    "read_record",
    "stat_sha256",
    "write_record",
]

RECORD_FILE = "subcell-step.json"
FORMAT = "subcell-step"
_CHUNK = 1 << 20


def _files(path: Path) -> list[tuple[str, Path]]:
    """(relative POSIX name, path) of every file at or under ``path``, sorted; a folder's
    own record is left out (it describes the outputs, it is not one)."""
    if path.is_file():
        return [(path.name, path)]
    found = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            file = Path(root) / name
            relative = file.relative_to(path).as_posix()
            if relative != RECORD_FILE:
                found.append((relative, file))
    return sorted(found)


def content_sha256(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's file names and bytes (sorted, recursive)."""
    path = Path(path)
    digest = hashlib.sha256()
    for name, file in _files(path):
        digest.update(name.encode() + b"\0")
        with file.open("rb") as handle:
            while block := handle.read(_CHUNK):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def stat_sha256(path: str | Path) -> str:
    """SHA-256 of the names, sizes and modification times of the files at or under ``path``."""
    path = Path(path)
    digest = hashlib.sha256()
    for name, file in _files(path):
        stat = file.stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def read_record(folder: str | Path) -> dict | None:
    """The record in a step folder, None when absent or unreadable (then it is rerun)."""
    path = Path(folder) / RECORD_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def write_record(folder: str | Path, record: dict[str, Any]) -> Path:
    """Write a record atomically (a hidden sibling renamed into place)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / RECORD_FILE
    tmp = folder / f".{RECORD_FILE}.{uuid.uuid4().hex[:8]}.partial"
    try:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def find_record(path: str | Path) -> Path | None:
    """The step folder holding ``path`` (the nearest folder, at or above it, with a
    complete or incomplete record), None when there is none."""
    path = Path(path).resolve()
    for folder in (path, *path.parents) if path.is_dir() else path.parents:
        if read_record(folder) is not None:
            return folder
    return None
