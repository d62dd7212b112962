"""From a step entry to a ready step: its kind, validated config, step object and inputs.

The config class registered with a step kind decides what the entry's keys mean. A field
named ``config`` holds the config file of a command (``SimulateConfig`` for ``simulate``):
the entry's ``config:`` is loaded into it exactly as ``subcell simulate CONFIG`` loads its
file (packaged defaults below, ``extends:``, the ``step:`` key). Without such a field,
``config:`` holds the step's settings themselves. Every other key of the entry is a setting
(a field of the class) or an input (a name in the step's ``inputs``). ``set:`` and
``--set NAME.KEY=VALUE`` are routed the same way: settings, then config keys, then inputs.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import attrs

from subcell.core.config import apply_overrides, deep_merge, load_layers, parse_override
from subcell.core.errors import ConfigError, PluginError, SubcellError
from subcell.core.provenance import config_hash
from subcell.core.registration import Registration
from subcell.core.structuring import structure, unstructure
from subcell.pipeline.config import step_defaults
from subcell.pipeline.run.references import Literal, Reference, parse_input
from subcell.pipeline.run.spec import StepEntry
from subcell.pipeline.schemas import STEP_SCHEMAS
from subcell.registry import Registry
from subcell.registry.registry import suggest

__all__ = ["INPUT_KINDS", "ResolvedStep", "resolve_step"]

#: What a step's ``inputs`` may say about each input.
INPUT_KINDS = ("required", "optional", "many")
_INLINE = "\0inline"  # stands for an inline config's source in structuring messages

InputValue = Reference | Literal | dict[str, Reference | Literal]


@attrs.frozen(eq=False)
class ResolvedStep:
    """A step ready to plan and run.

    Attributes
    ----------
    name, kind
        Its name in the pipeline and its registered kind.
    registration
        The registration of the kind (package and version go into the record).
    settings
        The structured config (an instance of the registered config class).
    step
        The step object (:class:`subcell.core.kinds.Step`).
    inputs
        Input name -> :class:`Reference`, :class:`Literal`, or for a ``"many"`` input a
        dict label -> either.
    config
        The settings as plain data, without the fields marked ``hash: False``.
    options
        The fields marked ``hash: False`` (they do not change the outputs).
    config_sha256
        Hash of the kind and ``config``: equal hashes, equal work.
    command_config_sha256
        Hash of the ``config`` field alone (what ``subcell simulate`` and friends record,
        e.g. a dataset's ``config_sha256``), None without one.
    where
        ``pipeline.yaml: steps.NAME``, for messages.
    """

    name: str
    kind: str
    registration: Registration
    settings: Any
    step: Any
    inputs: dict[str, InputValue]
    config: dict
    options: dict
    config_sha256: str
    command_config_sha256: str | None
    where: str

    def references(self) -> list[tuple[str, Reference]]:
        """Every (input name, reference) of the step."""
        found = []
        for name, value in self.inputs.items():
            items = value.values() if isinstance(value, dict) else [value]
            found += [(name, item) for item in items if isinstance(item, Reference)]
        return found


def resolve_step(entry: StepEntry, registry: Registry) -> ResolvedStep:
    """Validate one entry: kind, config, settings, inputs; build its step object.

    Raises
    ------
    ConfigError
        One line naming the pipeline file, the step and the key path.
    """
    where = entry.where
    kinds = registry.names("step")
    if entry.kind not in kinds:
        raise ConfigError(
            f"{where}: step: unknown step kind {entry.kind!r}{suggest(entry.kind, kinds)}; "
            f"registered: {', '.join(kinds) or '(none)'}"
        )
    registration = registry.get("step", entry.kind)
    cls = registration.config_cls
    fields = attrs.fields_dict(cls)
    command_classes = _command_classes(cls)
    command_cls = command_classes[0] if command_classes else None
    routed = _route(entry, fields, command_classes)
    data, origins = routed["settings"], {}
    if command_cls is None:  # config: holds the settings; the entry's keys go on top
        base, origins, _ = _config_data(entry, [])
        data = deep_merge(base, data)
        origins = {k: v for k, v in origins.items() if k and k[0] not in routed["settings"]}
    data = _apply(data, routed["overrides"], origins, where)
    settings = _structure(data, cls, registry, origins, _INLINE, where)
    if command_cls is not None:
        command = _load_command_config(entry, command_classes, routed["config"], registry)
        settings = attrs.evolve(settings, config=command)
    step = _create(registration, settings, where)
    config_keys = sorted({k for c in command_classes for k in attrs.fields_dict(c)})
    inputs = _inputs(entry, step, routed["inputs"], fields, config_keys)
    plain = unstructure(settings)
    options = {k: plain.pop(k) for k, f in fields.items() if f.metadata.get("hash") is False}
    command_hash = None
    if command_cls is not None and getattr(settings, "config", None) is not None:
        command_hash = config_hash(settings.config)
    return ResolvedStep(
        name=entry.name,
        kind=entry.kind,
        registration=registration,
        settings=settings,
        step=step,
        inputs=inputs,
        config=plain,
        options=options,
        config_sha256=config_hash({"step": entry.kind, "config": plain}),
        command_config_sha256=command_hash,
        where=where,
    )


def _command_classes(cls: type) -> tuple[type, ...]:
    """The attrs classes a ``config`` field may hold (``A | B | None``: A and B), else ()."""
    if "config" not in attrs.fields_dict(cls):
        return ()
    try:
        hint = typing.get_type_hints(cls).get("config")
    except Exception:  # noqa: BLE001 - unresolvable annotations: no command config
        hint = attrs.fields_dict(cls)["config"].type
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    return tuple(t for t in options if isinstance(t, type) and attrs.has(t))


def _route(entry: StepEntry, fields: dict, command_classes: tuple[type, ...]) -> dict:
    """Split the entry's keys and overrides: ``settings`` (the entry's keys that are
    settings), ``overrides`` (of settings), ``config`` (overrides of the command config)
    and ``inputs`` (name -> (value, folder a relative path starts from))."""
    command_cls = command_classes[0] if command_classes else None
    settings_names = {n for n in fields if not (command_cls is not None and n == "config")}
    command_names = {k for c in command_classes for k in attrs.fields_dict(c)}
    routed: dict = {"settings": {}, "overrides": [], "config": [], "inputs": {}}
    for key, value in entry.fields.items():
        if key in settings_names:
            routed["settings"][key] = value
        else:
            routed["inputs"][key] = (value, entry.field_bases[key])
    for text, source in entry.overrides:
        try:
            path, value = parse_override(text)
        except ConfigError as exc:
            raise ConfigError(f"{entry.where}: {exc}") from None
        head = path[0]
        if head in settings_names:
            routed["overrides"].append((text, source))
        elif command_cls is not None and head == "config" and len(path) > 1:
            routed["config"].append((text.partition(".")[2], source))
        elif head in command_names:
            routed["config"].append((text, source))
        else:
            _override_input(routed["inputs"], path, value)
    return routed


def _override_input(inputs: dict, path: tuple, value) -> None:
    """``--set NAME.INPUT=PATH`` (or ``NAME.INPUT.LABEL=PATH`` for a ``many`` input);
    a relative path starts from the working directory."""
    head, rest = path[0], path[1:]
    if rest:
        old = inputs.get(head, ({}, Path.cwd()))[0]
        value = {**(old if isinstance(old, dict) else {}), ".".join(map(str, rest)): value}
    inputs[head] = (value, Path.cwd())


def _apply(data: dict, overrides: list[tuple[str, str]], origins: dict, where: str) -> dict:
    """Apply the file's ``set:`` then the command line's ``--set``; each key remembers
    which of the two set it, for messages."""
    try:
        for source in ("set", "--set"):
            texts = [text for text, of in overrides if of == source]
            data = apply_overrides(data, texts, origins)
            if source == "set":  # apply_overrides labels everything "--set"
                origins.update({k: "set" for k, v in origins.items() if v == "--set"})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return data


def _config_data(entry: StepEntry, overrides: list[tuple[str, str]]) -> tuple[dict, dict, str]:
    """The ``config:`` mapping (file and its bases, or inline) with overrides applied."""
    where = entry.where
    if isinstance(entry.config, str):
        path = entry.config_base / entry.config
        if not path.is_file():
            raise ConfigError(f"{where}.config: {path}: no such config file")
        try:
            data, origins = load_layers(path)
        except ConfigError as exc:
            raise ConfigError(f"{where}.config: {exc}") from None
        source = str(path)
    else:
        data, origins, source = dict(entry.config or {}), {}, _INLINE
    return _apply(data, overrides, origins, where), origins, source


def _load_command_config(
    entry: StepEntry, classes: tuple[type, ...], overrides: list[str], registry
) -> Any:
    """Load ``config:`` into a command's config class, as :func:`load_config` does; where
    the step takes several (``simulate``: a simulate or a phantom config), the file's
    ``step:`` key picks one (default: the first)."""
    data, origins, source = _config_data(entry, overrides)
    schemas = {c: name for name, c in STEP_SCHEMAS.items()}
    known = [schemas[c] for c in classes if c in schemas]
    cls = classes[0]
    if known:
        named = data.get("step", known[0])
        if named not in known:
            taken = " or ".join(f"a {k} config (step: {k})" for k in known)
            raise ConfigError(
                f"{entry.where}: config: a {named} config; step {entry.kind} takes {taken}"
            )
        cls = next(c for c in classes if schemas.get(c) == named)
        data = deep_merge(step_defaults(named), {**data, "step": named})
    return _structure(data, cls, registry, origins, source, f"{entry.where}.config")


def _structure(data, cls, registry, origins, source, where) -> Any:
    try:
        return structure(data, cls, registry.config_class, origins=origins, source=source)
    except ConfigError as exc:
        text = str(exc)
        text = text.removeprefix(f"{_INLINE}: ")
        raise ConfigError(f"{where}: {text}") from None


def _create(registration: Registration, settings, where: str) -> Any:
    try:
        step = registration.create(settings)
    except (SubcellError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    inputs, outputs = getattr(step, "inputs", None), getattr(step, "outputs", None)
    if (
        not isinstance(inputs, typing.Mapping)
        or any(v not in INPUT_KINDS for v in inputs.values())
        or not isinstance(outputs, tuple)
        or not outputs
        or not all(isinstance(o, str) for o in outputs)
        or not callable(getattr(step, "run", None))
    ):
        raise PluginError(
            f"{where}: step {registration.name!r} from {registration.package}: its object "
            f"needs inputs (name -> {'/'.join(INPUT_KINDS)}), outputs (a non-empty tuple of "
            f"names) and run(inputs, out)"
        )
    return step


def _inputs(
    entry: StepEntry, step, given: dict, fields: dict, config_keys: list[str]
) -> dict[str, InputValue]:
    where = entry.where
    found: dict[str, InputValue] = {}
    for key, (value, base) in given.items():
        kind = step.inputs.get(key)
        if kind is None and key in config_keys:
            raise ConfigError(
                f"{where}: {key}: a key of the step's {entry.kind} config; give it under "
                f"set: {{{key}: ...}} (or in the config file)"
            )
        if kind is None:
            settings = sorted(n for n in fields if n != "config")
            hint = suggest(str(key), settings + sorted(step.inputs) + config_keys)
            config = " and the keys of its config" if config_keys else ""
            raise ConfigError(
                f"{where}: {key}: unknown key{hint}; {entry.kind} takes settings "
                f"{', '.join(settings) or '(none)'}, inputs "
                f"{', '.join(sorted(step.inputs)) or '(none)'}{config}"
            )
        if kind == "many":
            found[key] = _many(value, base, f"{where}.{key}")
        else:
            found[key] = parse_input(value, base, f"{where}.{key}")
    for key, kind in step.inputs.items():
        if kind == "required" and key not in found:
            raise ConfigError(
                f"{where}: {key}: missing required input of {entry.kind}, e.g. "
                f"{key}: ${{steps.NAME.out}} or a path"
            )
    return found


def _many(value, base: Path, where: str) -> dict[str, Reference | Literal]:
    """A ``many`` input: a mapping label -> value, or a list (labelled by step or stem)."""
    if isinstance(value, dict):
        if not value:
            raise ConfigError(f"{where}: expected at least one entry")
        return {str(k): parse_input(v, base, f"{where}.{k}") for k, v in value.items()}
    items = value if isinstance(value, list) else [value]
    found: dict[str, Reference | Literal] = {}
    for index, item in enumerate(items):
        parsed = parse_input(item, base, f"{where}[{index}]")
        if isinstance(parsed, Reference):
            label = parsed.step if parsed.output is None else f"{parsed.step}.{parsed.output}"
        else:
            label = parsed.path.name
        if label in found:
            raise ConfigError(f"{where}: {label!r} given twice; label them with a mapping")
        found[label] = parsed
    if not found:
        raise ConfigError(f"{where}: expected at least one entry")
    return found
