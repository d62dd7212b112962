"""Load a step config: packaged defaults, then the file and its bases, then ``--set``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from subcell.core.config import apply_overrides, deep_merge, load_layers, read_yaml
from subcell.core.errors import ConfigError
from subcell.core.structuring import structure
from subcell.pipeline.schemas import STEP_SCHEMAS
from subcell.registry import Registry, get_registry
from subcell.registry.registry import suggest


@attrs.frozen
class LoadedConfig:
    """A structured step config with where it came from."""

    step: str
    config: Any
    source: Path
    data: dict


def step_defaults(step: str) -> dict:
    """The packaged bottom layer of a step's config."""
    resource = resources.files("subcell.pipeline") / "defaults" / f"{step}.yaml"
    with resources.as_file(resource) as path:
        return read_yaml(path) if path.is_file() else {}


def load_config(
    path: str | Path,
    overrides: tuple[str, ...] | list[str] = (),
    *,
    registry: Registry | None = None,
) -> LoadedConfig:
    """Read, layer and validate a step config file.

    Parameters
    ----------
    path
        The YAML file; it names its step with ``step:`` and may ``extends:`` bases.
    overrides
        ``key.path=value`` strings applied on top (the CLI's ``--set``).
    registry
        Where plugin names are resolved; the process-wide registry if None.

    Raises
    ------
    ConfigError
        One line naming the file, the key path and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    registry = registry or get_registry()
    data, origins = load_layers(path)
    data = apply_overrides(data, overrides, origins)
    step = data.get("step")
    if step not in STEP_SCHEMAS:
        steps = sorted(STEP_SCHEMAS)
        what = "missing 'step' key" if step is None else f"unknown step {step!r}"
        hint = suggest(str(step), steps) if step is not None else ""
        raise ConfigError(f"{path}: step: {what}{hint}; steps: {', '.join(steps)}")
    merged = deep_merge(step_defaults(step), data)
    config = structure(
        merged, STEP_SCHEMAS[step], registry.config_class, origins=origins, source=str(path)
    )
    return LoadedConfig(step=step, config=config, source=path, data=merged)
