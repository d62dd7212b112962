"""Structuring configs: strict cattrs conversion into frozen attrs classes.

No silent coercion (``"1.4"`` is not a float, ``1.7`` is not an int), extra keys forbidden.
A plugin is chosen by name: ``microscope: {plugin: epi, na: 1.4}``. The field's type is a
:class:`PluginSpec` subclass for the kind (see :func:`spec_type`); the rest of the mapping
is structured into that plugin's own config class, found through a *resolver*
``(kind, name) -> config class`` that the registry supplies, so core never imports it.
Errors are :class:`ConfigError` with one line: file, key path, what was expected.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import cattrs
import yaml
from cattrs.errors import ForbiddenExtraKeysError, IterableValidationNote

from subcell.core.config import PLUGIN_KEY, KeyPath, format_path
from subcell.core.errors import ConfigError, SubcellError

_QUOTED_FIELD = re.compile(r"^'(\w+)' (.+)$")

Resolver = Callable[[str, str], type]


@attrs.frozen
class PluginSpec:
    """A plugin chosen by name in a config, with its structured parameters."""

    kind: ClassVar[str] = ""
    plugin: str
    config: Any


@functools.cache
def spec_type(kind: str) -> type[PluginSpec]:
    """The :class:`PluginSpec` subclass for one kind (``spec_type("microscope")``)."""
    name = "".join(part.title() for part in kind.split("_")) + "Spec"
    return attrs.frozen(type(name, (PluginSpec,), {"kind": kind, "__module__": __name__}))


class _ChoiceError(ValueError):
    """An unknown or missing plugin name (message is shown as is)."""


class _ValueTypeError(TypeError):
    """A value of the wrong type (message is shown as is)."""


def make_converter(resolver: Resolver) -> cattrs.Converter:
    """A strict cattrs converter that resolves plugin specs through ``resolver``."""
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

    def strict(kind_type, accept, name):
        def hook(value, _type):
            if isinstance(value, bool) and kind_type is not bool or not isinstance(value, accept):
                raise _ValueTypeError(f"expected {name}, got {_describe(value)}")
            return kind_type(value)

        conv.register_structure_hook(kind_type, hook)

    strict(int, int, "an integer")
    strict(float, (int, float), "a number")
    strict(bool, bool, "true or false")
    strict(str, str, "a string")

    def literal_hook(value, type_):
        choices = typing.get_args(type_)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            shown = ", ".join(repr(c) for c in choices)
            raise _ValueTypeError(f"expected one of {shown}, got {_describe(value)}")
        return value

    conv.register_structure_hook_func(
        lambda t: typing.get_origin(t) is typing.Literal, literal_hook
    )

    def tuple_hook(value, type_):
        if not isinstance(value, (list, tuple)):
            raise _ValueTypeError(f"expected a list, got {_describe(value)}")
        args = typing.get_args(type_)
        if len(args) == 2 and args[1] is Ellipsis:
            types = [args[0]] * len(value)
        else:
            types = list(args)
            if len(value) != len(types):
                raise _ValueTypeError(f"expected a list of {len(types)}, got {len(value)} items")
        items, errors = [], []
        for index, (item, item_type) in enumerate(zip(value, types, strict=True)):
            try:
                items.append(conv.structure(item, item_type))
            except Exception as exc:  # noqa: BLE001 - collected and reported with the index
                exc.__notes__ = [
                    *getattr(exc, "__notes__", []),
                    IterableValidationNote(f"index {index}", index, item_type),
                ]
                errors.append(exc)
        if errors:
            raise ExceptionGroup("invalid list items", errors)
        return tuple(items)

    conv.register_structure_hook_func(
        lambda t: typing.get_origin(t) is tuple or t is tuple, tuple_hook
    )

    def spec_hook(value, type_):
        if not isinstance(value, dict):
            raise _ValueTypeError(f"expected a mapping with a 'plugin' key, got {_describe(value)}")
        name = value.get(PLUGIN_KEY)
        if name is None:
            raise _ChoiceError(f"missing 'plugin' key (which {type_.kind} plugin to use)")
        try:
            config_cls = resolver(type_.kind, name)
        except SubcellError as exc:
            raise _ChoiceError(str(exc)) from exc
        params = {k: v for k, v in value.items() if k != PLUGIN_KEY}
        return type_(plugin=name, config=conv.structure(params, config_cls))

    conv.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, PluginSpec), spec_hook
    )
    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, PluginSpec),
        lambda spec: {PLUGIN_KEY: spec.plugin, **conv.unstructure(spec.config)},
    )
    conv.register_unstructure_hook_func(
        lambda t: typing.get_origin(t) is tuple or t is tuple,
        lambda value: [conv.unstructure(v) for v in value],
    )
    return conv


def structure(
    data: dict,
    cls: type,
    resolver: Resolver,
    *,
    origins: dict | None = None,
    source: str = "config",
) -> Any:
    """Structure ``data`` into ``cls``; the first problem becomes a one-line ConfigError."""
    try:
        return make_converter(resolver).structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one located message
        problems = list(_problems(exc, ()))
        if not problems:
            raise
        path, message = problems[0]
        where = _source_for(path, origins or {}, source)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{where}: {format_path(path)}: {message}{more}") from exc


def unstructure(obj: Any, resolver: Resolver | None = None) -> Any:
    """Plain data (dicts, lists, scalars) for a structured config, ready for YAML."""
    return make_converter(resolver or _no_resolver).unstructure(obj)


class _ConfigDumper(yaml.SafeDumper):
    """Block-style mappings; lists of plain values on one line (``count: [1, 2]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flat = all(not isinstance(item, (dict, list)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_ConfigDumper.add_representer(list, _represent_list)


def to_yaml(obj: Any) -> str:
    """A structured config as YAML, keys in field order."""
    return yaml.dump(unstructure(obj), Dumper=_ConfigDumper, sort_keys=False)


def _no_resolver(kind: str, name: str) -> type:
    raise ConfigError(f"no plugin resolver to look up {kind} {name!r}")


def _source_for(path: KeyPath, origins: dict, default: str) -> str:
    # A whole-section problem (e.g. two fields that disagree) after a --set inside that
    # section is most likely the override's doing: name it rather than the base file.
    inside = {src for key, src in origins.items() if key[: len(path)] == path}
    if len(path) and "--set" in inside:
        return "--set"
    for end in range(len(path), -1, -1):
        if path[:end] in origins:
            return origins[path[:end]]
    return default


def _problems(exc: BaseException, path: KeyPath):
    """Yield (key path, message) for every leaf error in a cattrs exception tree."""
    if isinstance(exc, ForbiddenExtraKeysError):
        valid = sorted(a.name for a in attrs.fields(exc.cl))
        for key in sorted(exc.extra_fields):
            from difflib import get_close_matches

            lowered = {v.lower(): v for v in valid}
            close = get_close_matches(str(key).lower(), list(lowered), n=1)
            hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
            yield (*path, key), f"unknown key{hint}; valid keys: {', '.join(valid)}"
        return
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            yield from _problems(sub, (*path, *_note_path(sub)))
        return
    if isinstance(exc, KeyError) and not isinstance(exc, _ChoiceError):
        yield path, "missing required key"
    elif isinstance(exc, (_ChoiceError, _ValueTypeError)):
        yield path, str(exc)
    elif isinstance(exc, (ValueError, TypeError)) and _attrs_attribute(exc) is not None:
        # attrs' own validators: ValueError(msg, attribute, bound, value)
        attribute = _attrs_attribute(exc)
        bound, value = (exc.args[2:4] + (None, None))[:2]
        message = str(exc.args[0]).replace(f"'{attribute.name}' ", "")
        if value is not None and isinstance(bound, (int, float)):
            message = f"{message.split(':')[0]}, got {value!r}"
        yield (*path, attribute.name), message
    elif isinstance(exc, (ValueError, TypeError)) and _QUOTED_FIELD.match(str(exc)):
        # attrs' number validators: "'na' must be <= 1.5: 2.0"
        match = _QUOTED_FIELD.match(str(exc))
        message = re.sub(r": (\S+)$", r", got \1", match.group(2))
        yield (*path, match.group(1)), message
    elif isinstance(exc, cattrs.errors.CattrsError) or isinstance(exc, (ValueError, TypeError)):
        yield path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    else:
        yield path, f"{type(exc).__name__}: {exc}"


def _attrs_attribute(exc: BaseException) -> attrs.Attribute | None:
    found = [a for a in exc.args[1:2] if isinstance(a, attrs.Attribute)]
    return found[0] if found else None


def _note_path(exc: BaseException) -> KeyPath:
    for note in getattr(exc, "__notes__", []):
        if isinstance(note, cattrs.errors.AttributeValidationNote):
            return (note.name,)
        if isinstance(note, IterableValidationNote):
            return (note.index,)
    return ()


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 40 else text[:37] + '...'}"
