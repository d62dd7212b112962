"""attrs validators and converters shared by config classes.

Messages start with the field's name in quotes (``'count' is an empty range ...``), the
form :mod:`subcell.core.structuring` recognises, so a config error names the key path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

__all__ = ["fraction", "range_field", "to_floats", "to_ints", "value_range", "within"]

Validator = Callable[[Any, attrs.Attribute, Any], None]


def to_floats(value: Iterable) -> tuple[float, ...]:
    """Converter: a sequence (YAML list, tuple) to a tuple of floats."""
    return tuple(float(v) for v in value)


def to_ints(value: Iterable) -> tuple[int, ...]:
    """Converter: a sequence to a tuple of ints (``int()`` of each item)."""
    return tuple(int(v) for v in value)


def value_range(*, positive: bool = False, optional: bool = False) -> Validator:
    """Validator of an inclusive range ``(low, high)``.

    Parameters
    ----------
    positive
        Require ``low > 0``; otherwise ``low >= 0``.
    optional
        Let ``None`` (an unset range) pass.

    Returns
    -------
    callable
        An attrs validator raising :class:`ValueError` unless the value holds two numbers
        with ``0 <= low <= high`` (``0 < low`` with ``positive``).
    """

    def check(instance, attribute, value):
        if value is None and optional:
            return
        name = attribute.name
        if len(value) != 2:
            raise ValueError(f"'{name}' must be a range [low, high], got {list(value)}")
        low, high = value
        if positive and low <= 0:
            raise ValueError(f"'{name}' must be positive, got {list(value)}")
        if low < 0:
            raise ValueError(f"'{name}' must not be negative, got {list(value)}")
        if low > high:
            raise ValueError(f"'{name}' is an empty range (low > high), got {list(value)}")

    return check


def within(low: float, high: float, *, low_open: bool = False) -> Validator:
    """Validator of a number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def check(instance, attribute, value):
        above = value > low if low_open else value >= low
        if not (above and value <= high):
            raise ValueError(f"'{attribute.name}' must be in {interval}, got {value}")

    return check


#: Validator of a fraction: a number in [0, 1].
fraction = within(0, 1)


def range_field(default: tuple, *, integer: bool = False, positive: bool = False):
    """An attrs field holding an inclusive range ``(low, high)`` of floats (or ints).

    Parameters
    ----------
    default
        The default range.
    integer
        Convert the items with ``int`` rather than ``float``.
    positive
        Require ``low > 0`` rather than ``low >= 0``.
    """
    return attrs.field(
        default=default,
        converter=to_ints if integer else to_floats,
        validator=value_range(positive=positive),
    )


def percentile_pair(instance, attribute, value) -> None:
    """Validator of ``(low, high)`` percentiles: ``0 <= low < high <= 100``."""
    low, high = value
    if not 0 <= low < high <= 100:
        raise ValueError(f"'{attribute.name}' must be 0 <= low < high <= 100, got {list(value)}")
