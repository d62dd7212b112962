"""A pipeline loaded and validated as a whole, before anything runs.

:func:`load_pipeline` reads the file (:mod:`.spec`), resolves every step (:mod:`.resolve`),
then checks what needs the whole graph: references to unknown steps or outputs, cycles,
paths that do not exist, and step folders holding files ``subcell run`` did not write.
Every problem is one :class:`~subcell.core.errors.ConfigError` line; nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from subcell.core.errors import ConfigError
from subcell.pipeline.run.graph import downstream, topological_order
from subcell.pipeline.run.records import read_record
from subcell.pipeline.run.references import Literal
from subcell.pipeline.run.resolve import ResolvedStep, resolve_step
from subcell.pipeline.run.spec import load_spec
from subcell.registry import Registry, get_registry
from subcell.registry.registry import suggest

__all__ = ["Pipeline", "load_pipeline"]


@attrs.frozen(eq=False)
class Pipeline:
    """A validated pipeline.

    Attributes
    ----------
    path
        The pipeline file.
    description
        Its one-line description.
    out
        The folder holding one folder per step.
    steps
        Name -> resolved step, in the order they can run (dependencies first).
    needs
        Name -> the steps it takes inputs from.
    """

    path: Path
    description: str
    out: Path
    steps: dict[str, ResolvedStep]
    needs: dict[str, set[str]]

    def folder(self, name: str) -> Path:
        """The output folder of step ``name``."""
        return self.out / name

    def downstream(self, names) -> set[str]:
        """``names`` and every step that depends on them."""
        return downstream(self.needs, names)


def load_pipeline(
    path: str | Path,
    overrides: tuple[str, ...] | list[str] = (),
    *,
    out: str | Path | None = None,
    registry: Registry | None = None,
) -> Pipeline:
    """Read and validate a pipeline file.

    Parameters
    ----------
    path
        The pipeline YAML.
    overrides
        ``NAME.KEY=VALUE`` overrides (the CLI's ``--set``).
    out
        Output folder instead of the file's ``out:``.
    registry
        Where step kinds and plugins are looked up; the process-wide registry if None.

    Raises
    ------
    ConfigError
        Unknown step kinds, references to unknown steps or outputs, cycles, step configs
        that do not validate, missing input paths, foreign files in a step folder.
    """
    registry = registry or get_registry()
    spec = load_spec(path, overrides, out=out)
    shown = str(spec.path)
    resolved = {name: resolve_step(entry, registry) for name, entry in spec.steps.items()}
    needs = {name: set() for name in resolved}
    for name, step in resolved.items():
        for key, reference in step.references():
            _check_reference(step, key, reference, resolved)
            needs[name].add(reference.step)
        _check_literals(step)
    order = topological_order(needs, shown)
    pipeline = Pipeline(
        path=spec.path,
        description=spec.description,
        out=spec.out,
        steps={name: resolved[name] for name in order},
        needs=needs,
    )
    for name in order:
        _check_folder(pipeline, name)
    return pipeline


def _check_reference(step: ResolvedStep, key: str, reference, resolved: dict) -> None:
    names = list(resolved)
    where = f"{step.where}.{key}: {reference}"
    if reference.step not in resolved:
        raise ConfigError(
            f"{where}: no step {reference.step!r}{suggest(reference.step, names)}; "
            f"steps: {', '.join(names)}"
        )
    outputs = resolved[reference.step].step.outputs
    if reference.output is not None and reference.output not in outputs:
        raise ConfigError(
            f"{where}: step {reference.step!r} has no output {reference.output!r}"
            f"{suggest(reference.output, list(outputs))}; its outputs: {', '.join(outputs)}"
        )


def _check_literals(step: ResolvedStep) -> None:
    for key, value in step.inputs.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for label, item in items:
            if isinstance(item, Literal) and not item.path.exists():
                at = key if label is None else f"{key}.{label}"
                raise ConfigError(f"{step.where}.{at}: {item.path}: no such file or directory")


def _check_folder(pipeline: Pipeline, name: str) -> None:
    folder = pipeline.folder(name)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{pipeline.path}: steps.{name}: {folder} exists and is not a folder")
    if folder.is_dir() and read_record(folder) is None and any(folder.iterdir()):
        raise ConfigError(
            f"{pipeline.path}: steps.{name}: {folder} holds files subcell run did not write "
            f"(no subcell-step.json); move them, or set another out:"
        )
