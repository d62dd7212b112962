"""The nile_red plugin registers its phantom the way third-party plugins do."""

from subcell.core.kinds import Phantom
from subcell.registry import build_registry


def test_registers_the_whole_cell_phantom():
    registry = build_registry(use_entry_points=False)
    registration = registry.get("phantom", "nile_red_cell")
    assert registration.package == "subcell"
    assert isinstance(registration.create(), Phantom)
