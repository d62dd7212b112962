"""Provenance: what made an output — resolved config, seed, versions of subcell and plugins."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

from subcell import __version__
from subcell.core.structuring import PluginSpec, unstructure

#: Libraries whose versions change results; recorded when installed.
LIBRARIES = ("numpy", "scipy", "scikit-image", "torch", "monai", "zarr", "dask", "tifffile")


def plugins_in(config: Any) -> list[tuple[str, str]]:
    """Every (kind, plugin name) chosen anywhere in a structured config, in order, unique."""
    found: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, PluginSpec):
            if (node.kind, node.plugin) not in found:
                found.append((node.kind, node.plugin))
            walk(node.config)
        elif attrs.has(type(node)):
            for field in attrs.fields(type(node)):
                walk(getattr(node, field.name))
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)

    walk(config)
    return found


def config_hash(data: Any) -> str:
    """SHA-256 of a config's canonical JSON (plain data or a structured config)."""
    plain = data if isinstance(data, (dict, list)) else unstructure(data)
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def record(
    config: Any = None,
    *,
    seed: int | None = None,
    plugins: Iterable[Any] = (),
    inputs: dict[str, str] | None = None,
    step: str | None = None,
) -> dict[str, Any]:
    """A JSON-ready provenance record.

    Parameters
    ----------
    config
        The structured (attrs) config or plain mapping that was run.
    seed
        The root seed of the run.
    plugins
        Registrations (anything with kind, name, package, version) of the plugins used.
    inputs
        Name -> path or hash of every input the output was made from.
    step
        The pipeline step that wrote the output.
    """
    plain = (
        None if config is None else (config if isinstance(config, dict) else unstructure(config))
    )
    return {
        "subcell_version": __version__,
        "step": step,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "config": plain,
        "config_sha256": None if plain is None else config_hash(plain),
        "plugins": [
            {"kind": p.kind, "name": p.name, "package": p.package, "version": p.version}
            for p in plugins
        ],
        "inputs": dict(inputs or {}),
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "libraries": _library_versions(),
    }


def write_sidecar(path: str | Path, provenance: dict[str, Any]) -> Path:
    """Write ``provenance`` as ``<path>.provenance.json`` next to an output; returns its path."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".provenance.json")
    sidecar.write_text(json.dumps(provenance, indent=2, sort_keys=False, default=str) + "\n")
    return sidecar


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
