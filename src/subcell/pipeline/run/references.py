"""Step inputs as written in a pipeline file: references to other steps' outputs, or paths.

A reference is a whole string ``${steps.NAME.out}`` (the step's main output) or
``${steps.NAME.outputs.KEY}`` (a named output). It is matched by a regular expression and
nothing else: no expression is evaluated. Any other string is a path, relative to the
pipeline file that wrote it.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from subcell.core.errors import ConfigError

__all__ = ["STEP_NAME", "Literal", "Reference", "parse_input", "parse_reference"]

#: A step name: also its output folder's name.
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_REFERENCE = re.compile(
    r"^\$\{steps\.(?P<step>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?:out|outputs\.(?P<key>[A-Za-z_][\w-]*))\}$"
)
_FORM = "${steps.NAME.out} or ${steps.NAME.outputs.KEY}"


@attrs.frozen
class Reference:
    """An input wired to another step's output.

    Attributes
    ----------
    step
        The step whose output it is.
    output
        The output's name; None: the step's main (first) output.
    """

    step: str
    output: str | None = None

    def __str__(self) -> str:
        tail = "out" if self.output is None else f"outputs.{self.output}"
        return f"${{steps.{self.step}.{tail}}}"


@attrs.frozen
class Literal:
    """An input given as a path (a file or folder that no step makes)."""

    path: Path

    def __str__(self) -> str:
        return str(self.path)


def parse_reference(text: str) -> Reference | None:
    """The reference ``text`` spells, None when it is no reference at all.

    Raises
    ------
    ConfigError
        ``text`` contains ``${`` but is not one whole, well-formed reference.
    """
    match = _REFERENCE.match(text.strip())
    if match:
        return Reference(match["step"], match["key"])
    if "${" in text:
        raise ConfigError(f"{text!r} is not a reference; write {_FORM}")
    return None


def parse_input(value: object, base: Path, where: str) -> Reference | Literal:
    """One input value: a reference, or a path resolved against ``base``.

    ``where`` names the key for error messages (``pipeline.yaml: steps.train.data``).
    """
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{where}: expected a path or {_FORM}, got {type(value).__name__} {value!r}"
        )
    try:
        reference = parse_reference(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if reference is not None:
        return reference
    path = Path(value).expanduser()
    return Literal(path if path.is_absolute() else (base / path).resolve())
