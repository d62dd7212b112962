"""The pipeline file as written: its top-level keys and one entry per named step.

A pipeline is YAML (``extends:`` bases allowed, merged step by step)::

    description: one line
    out: runs/my-pipeline          # default: runs/<file stem> next to the file
    steps:
      sim:   {step: simulate, config: ../sim/epi1-mito.yaml, set: {n_tiles: 40}}
      train: {step: train, config: ../train/mitochondria-epi.yaml, data: ${steps.sim.out}}

Each step entry has ``step`` (a registered step kind), optionally ``config`` (a YAML file,
relative to the pipeline file that names it, or an inline mapping) and ``set`` (overrides,
``{key.path: value}`` or a list of ``key.path=value``); every other key is one of the
step's settings or inputs (:mod:`subcell.pipeline.run.resolve` tells them apart). This
module only reads and checks the shape; nothing here knows the step kinds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import yaml

from subcell.core.config import load_layers
from subcell.core.errors import ConfigError
from subcell.pipeline.run.references import STEP_NAME
from subcell.registry.registry import suggest

__all__ = ["PipelineSpec", "StepEntry", "load_spec"]

#: Keys of a pipeline file.
TOP_KEYS = ("description", "out", "steps")
#: Keys of a step entry that are neither settings nor inputs.
ENTRY_KEYS = ("step", "config", "set")


@attrs.frozen
class StepEntry:
    """One step as the pipeline file (and ``--set``) describe it.

    Attributes
    ----------
    name
        The step's name (its folder under the pipeline's ``out``).
    kind
        The registered step it runs.
    config
        The ``config:`` value: a path string, an inline mapping, or None.
    config_base
        Folder that a relative ``config:`` path starts from (that of the file naming it).
    overrides
        (``key.path=value``, source) pairs: the entry's ``set:`` first (source ``"set"``),
        then the command line's (``"--set"``).
    fields
        Every other key of the entry: settings and inputs.
    field_bases
        Per field, the folder a relative input path starts from.
    where
        ``pipeline.yaml: steps.NAME``, the prefix of error messages.
    """

    name: str
    kind: str
    config: str | dict | None
    config_base: Path
    overrides: tuple[tuple[str, str], ...]
    fields: dict[str, Any]
    field_bases: dict[str, Path]
    where: str


@attrs.frozen
class PipelineSpec:
    """A pipeline file read and shape-checked: where it is, its output folder, its steps."""

    path: Path
    description: str
    out: Path
    steps: dict[str, StepEntry]


def load_spec(
    path: str | Path,
    overrides: tuple[str, ...] | list[str] = (),
    *,
    out: str | Path | None = None,
) -> PipelineSpec:
    """Read a pipeline file and its bases, and sort ``--set NAME.KEY=VALUE`` by step.

    Parameters
    ----------
    path
        The pipeline YAML.
    overrides
        Command-line overrides; each names a step first (``train.epochs=1``).
    out
        Output folder overriding the file's ``out:`` (relative to the working directory).

    Raises
    ------
    ConfigError
        One line naming the file and the key: unknown keys, malformed entries, overrides
        of unknown steps.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such pipeline file")
    shown = str(path)
    try:
        data, origins = load_layers(path)
    except ConfigError as exc:
        if "not valid YAML" in str(exc) and "${" in str(exc) + path.read_text():
            raise ConfigError(
                f'{exc}; inside {{...}} or [...] quote references: {{a: "${{steps.NAME.out}}"}}'
            ) from None
        raise
    _check_keys(data, TOP_KEYS, shown, "")
    steps = data.get("steps")
    if not isinstance(steps, dict) or not steps:
        raise ConfigError(f"{shown}: steps: expected a mapping of step names to steps")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{shown}: description: expected a string")
    by_step = _split_overrides(overrides, list(steps), shown)
    entries = {
        name: _entry(name, entry, origins, path, shown, by_step.get(name, ()))
        for name, entry in steps.items()
    }
    return PipelineSpec(path, description, _out_dir(data, origins, path, out), entries)


def _origin_dir(origins: dict, key: tuple, default: Path) -> Path:
    """The folder of the file that set ``key`` (or its nearest parent key)."""
    for end in range(len(key), -1, -1):
        source = origins.get(key[:end])
        if source is not None and source != "--set":
            return Path(source).parent
    return default


def _out_dir(data: dict, origins: dict, path: Path, out: str | Path | None) -> Path:
    if out is not None:
        return Path(out).resolve()
    value = data.get("out")
    if value is None:
        return (path.parent / "runs" / path.stem).resolve()
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: out: expected a folder path, got {value!r}")
    folder = Path(value).expanduser()
    base = _origin_dir(origins, ("out",), path.parent.resolve())
    return folder if folder.is_absolute() else (base / folder).resolve()


def _check_keys(data: dict, valid: tuple[str, ...], shown: str, where: str) -> None:
    for key in data:
        if key not in valid:
            hint = suggest(str(key), list(valid))
            prefix = f"{where}." if where else ""
            raise ConfigError(
                f"{shown}: {prefix}{key}: unknown key{hint}; valid keys: {', '.join(valid)}"
            )


def _split_overrides(overrides, names: list[str], shown: str) -> dict[str, tuple[str, ...]]:
    """``NAME.KEY=VALUE`` -> {NAME: ("KEY=VALUE", ...)}."""
    found: dict[str, list[str]] = {}
    for text in overrides:
        key, sep, value = str(text).partition("=")
        name, dot, rest = key.strip().partition(".")
        if not sep or not dot or not rest:
            raise ConfigError(
                f"--set {text!r}: expected STEP.KEY=VALUE, e.g. train.epochs=2 "
                f"(steps: {', '.join(names)})"
            )
        if name not in names:
            raise ConfigError(
                f"--set {text!r}: {shown} has no step {name!r}{suggest(name, names)}; "
                f"steps: {', '.join(names)}"
            )
        found.setdefault(name, []).append(f"{rest}={value}")
    return {name: tuple(texts) for name, texts in found.items()}


def _entry(name, entry, origins: dict, path: Path, shown: str, cli: tuple[str, ...]) -> StepEntry:
    where = f"{shown}: steps.{name}"
    if not isinstance(name, str) or not STEP_NAME.match(name):
        raise ConfigError(
            f"{shown}: steps.{name}: a step name is letters, digits, '-' and '_' (it names "
            f"the step's folder)"
        )
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with 'step', got {entry!r}")
    kind = entry.get("step")
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"{where}: step: missing; name the step kind, e.g. step: simulate")
    config = entry.get("config")
    if config is not None and not isinstance(config, (str, dict)):
        raise ConfigError(f"{where}: config: expected a file name or a mapping, got {config!r}")
    base = path.parent.resolve()
    fields = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
    return StepEntry(
        name=name,
        kind=kind,
        config=config,
        config_base=_origin_dir(origins, ("steps", name, "config"), base),
        overrides=tuple(
            [(t, "set") for t in _set_texts(entry.get("set"), where)] + [(t, "--set") for t in cli]
        ),
        fields=fields,
        field_bases={k: _origin_dir(origins, ("steps", name, k), base) for k in fields},
        where=where,
    )


def _set_texts(value: Any, where: str) -> tuple[str, ...]:
    """A ``set:`` mapping or list as ``key.path=value`` texts (values as YAML)."""
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: set: expected a mapping {{key.path: value}} or a list of key.path=value"
        )
    texts = []
    for key, item in value.items():
        dumped = yaml.safe_dump(item, default_flow_style=True, width=10_000).strip()
        if dumped.endswith("\n..."):  # a plain scalar's document end marker
            dumped = dumped[: -len("\n...")]
        texts.append(f"{key}={dumped}")
    return tuple(texts)
