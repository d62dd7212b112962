"""Registry lookups in isolation."""

import attrs
import pytest

from subcell.core.errors import PluginError
from subcell.core.registration import Registration, check_registration
from subcell.registry import Registry


@attrs.frozen
class Config:
    value: int = 1


def make(name="a", kind="structure", package="pkg"):
    return Registration(kind, name, Config, lambda c: c, "desc", package, "1.0")


def test_all_is_sorted_by_kind_then_name():
    registry = Registry()
    registry.add(make("b", "microscope"))
    registry.add(make("z"))
    registry.add(make("a"))
    assert [(r.kind, r.name) for r in registry.all()] == [
        ("structure", "a"),
        ("structure", "z"),
        ("microscope", "b"),
    ]
    assert registry.all("microscope")[0].as_dict()["package"] == "pkg"


def test_add_duplicate_raises_naming_both_packages():
    registry = Registry()
    registry.add(make(package="first"))
    with pytest.raises(PluginError, match="'a' is registered by both 'first' and 'second'"):
        registry.add(make(package="second"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Bad Name", Config, print, "d"), "lower-case"),
        (("ok", object, print, "d"), "attrs class"),
        (("ok", Config, 3, "d"), "callable"),
        (("ok", Config, print, "two\nlines"), "one non-empty line"),
        (("ok", Config, print, " "), "one non-empty line"),
    ],
)
def test_malformed_registrations_are_rejected(args, message):
    with pytest.raises(PluginError, match=message):
        check_registration("structure", *args)
