"""Config layers: YAML files, ``extends`` bases, ``--set`` overrides, deep merge.

A config file is YAML. It may name base files with ``extends: base.yaml`` (a path or a
list, relative to the file); bases are merged first, the file on top, then ``--set a.b=v``
overrides. Every key path remembers the file (or ``--set``) that last set it, so errors can
name it. The merged mapping is then structured by :mod:`subcell.core.structuring`.
YAML is read with ``safe_load``: nothing in a config is evaluated or imported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from subcell.core.errors import ConfigError

EXTENDS_KEY = "extends"
PLUGIN_KEY = "plugin"

KeyPath = tuple[Any, ...]


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that also reads ``1e-3`` as a number.

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-3``): ``1e-3`` would be the
    string '1e-3' and a learning rate written that way would be refused.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text) -> Any:
    """Parse YAML text (or a stream) safely: nothing is evaluated or imported."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path) -> dict:
    """Read one YAML mapping; unreadable or malformed files raise :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(data).__name__}")
    return data


def load_layers(path: str | Path, _chain: tuple[Path, ...] = ()) -> tuple[dict, dict]:
    """Read ``path`` and the files it ``extends``, merged base first.

    Returns
    -------
    data
        The merged mapping (without ``extends``).
    origins
        Key path -> the file that last set it, for error messages.
    """
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise ConfigError(f"{path}: 'extends' forms a cycle: {cycle}")
    raw = read_yaml(path)
    bases = raw.pop(EXTENDS_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: 'extends' must be a file name or a list of file names")
    data: dict = {}
    origins: dict = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise ConfigError(f"{path}: extends {base!r}, which does not exist ({base_path})")
        base_data, base_origins = load_layers(base_path, (*_chain, path))
        data = deep_merge(data, base_data)
        origins.update(base_origins)
    data = deep_merge(data, raw)
    origins.update(_origins_of(raw, str(path)))
    return data, origins


def deep_merge(base: dict, over: dict) -> dict:
    """Merge ``over`` onto ``base`` (new dict). Mappings merge key by key; anything else is
    replaced. A plugin section whose ``plugin`` name changes is replaced whole, because the
    old plugin's parameters mean nothing to the new one."""
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and not _plugin_changed(old, value):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def _plugin_changed(old: dict, new: dict) -> bool:
    return PLUGIN_KEY in new and PLUGIN_KEY in old and new[PLUGIN_KEY] != old[PLUGIN_KEY]


def _origins_of(data: Any, source: str, prefix: KeyPath = ()) -> dict:
    found = {prefix: source}
    if isinstance(data, dict):
        for key, value in data.items():
            found.update(_origins_of(value, source, (*prefix, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.update(_origins_of(value, source, (*prefix, index)))
    return found


def parse_override(text: str) -> tuple[KeyPath, Any]:
    """Parse ``a.b.0.c=value``; the value is read as YAML (``1.4``, ``true``, ``[1, 2]``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. microscope.na=1.2")
    try:
        parsed = load_yaml(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML") from exc
    path = tuple(int(p) if p.isdigit() else p for p in key.strip().split("."))
    return path, parsed


def apply_overrides(data: dict, overrides: Iterable[str], origins: dict | None = None) -> dict:
    """Apply ``--set`` overrides to a (copied) mapping; list items are addressed by index."""
    data = deep_merge({}, data)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            node = _child(node, part, path[: depth + 1], text)
        last = path[-1]
        if isinstance(node, list):
            if not isinstance(last, int) or last >= len(node):
                raise ConfigError(f"--set {text!r}: no item {last} in a list of {len(node)}")
            node[last] = value
        else:
            if isinstance(node.get(last), dict) and isinstance(value, dict):
                value = deep_merge(node[last], value)
            node[last] = value
        if origins is not None:
            origins.update(_origins_of(value, "--set", path))
    return data


def _child(node: Any, part: Any, path: KeyPath, text: str) -> Any:
    if isinstance(node, list):
        if not isinstance(part, int) or part >= len(node):
            raise ConfigError(f"--set {text!r}: {format_path(path)} is not an item of a list")
        node[part] = deep_merge({}, node[part]) if isinstance(node[part], dict) else node[part]
        return node[part]
    if not isinstance(node, dict):
        raise ConfigError(f"--set {text!r}: {format_path(path[:-1])} is not a mapping")
    child = node.get(part)
    if child is None:
        child = node[part] = {}
    elif isinstance(child, dict):
        child = node[part] = dict(child)
    elif isinstance(child, list):
        child = node[part] = list(child)
    return child


def format_path(path: KeyPath) -> str:
    """``('structures', 0, 'count')`` -> ``structures[0].count``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"
