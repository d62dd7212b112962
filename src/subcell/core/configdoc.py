"""Parameter reference of config classes, read from their numpy-style docstrings.

Every plugin config class documents its fields in an ``Attributes`` section (a field name,
or several separated by commas, then indented lines saying what it is and its unit). This
module pairs each attrs field with that text, for ``subcell plugins --params`` and for the
test that no parameter goes undocumented.
"""

from __future__ import annotations

import inspect
import re

import attrs

__all__ = ["Parameter", "parameters", "undocumented"]

_SECTION = re.compile(r"^(\w[\w ]*)\n-+$", re.MULTILINE)


@attrs.frozen
class Parameter:
    """One config field: its name, default (as written in YAML terms) and description."""

    name: str
    default: str
    doc: str


def _attributes_section(cls) -> dict[str, str]:
    """Field name -> description text from the ``Attributes`` section of ``cls`` and its
    bases (a subclass documents only the fields it adds or changes)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, text in (_parse(inspect.getdoc(klass) or "") if klass.__doc__ else {}).items():
            # "See <base class>" defers to the base's own words.
            if not (text.startswith("See ") and docs.get(name)):
                docs[name] = text
    return docs


def _parse(doc: str) -> dict[str, str]:
    sections = list(_SECTION.finditer(doc))
    out: dict[str, str] = {}
    for i, match in enumerate(sections):
        if match.group(1).strip() != "Attributes":
            continue
        end = sections[i + 1].start() if i + 1 < len(sections) else len(doc)
        names: list[str] = []
        continued = False  # a list of names that runs onto the next line ends with ","
        for line in doc[match.end() : end].splitlines():
            if line and not line.startswith(" "):
                new = [n.strip() for n in line.split(",") if n.strip()]
                names = names + new if continued else new
                continued = line.rstrip().endswith(",")
                for name in new:
                    out[name] = ""
            elif line.strip() and names:
                for name in names:
                    out[name] = (out[name] + " " + line.strip()).strip()
    return out


def _default(field: attrs.Attribute) -> str:
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        if default.takes_self:
            return "(derived from the other parameters)"
        default = default.factory()
    if attrs.has(type(default)):
        return "{...}"
    if isinstance(default, tuple):
        return "[" + ", ".join(_plain(v) for v in default) + "]"
    return _plain(default)


def _plain(value) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parameters(config_cls: type) -> list[Parameter]:
    """The parameters of an attrs config class, in declaration order.

    Parameters
    ----------
    config_cls
        A plugin's (or step's) attrs config class.

    Returns
    -------
    list of Parameter
        Name, default and docstring description (empty when undocumented) of each field.
    """
    docs = _attributes_section(config_cls)
    return [
        Parameter(f.name, _default(f), docs.get(f.name, ""))
        for f in attrs.fields(config_cls)
        if f.init
    ]


def undocumented(config_cls: type) -> list[str]:
    """Names of the fields of ``config_cls`` that its docstrings do not describe."""
    return [p.name for p in parameters(config_cls) if not p.doc]
