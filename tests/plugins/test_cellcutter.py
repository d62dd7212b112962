"""The cellcutter plugin registers its phantom the way third-party plugins do."""

from subcell.core.kinds import Phantom
from subcell.registry import build_registry


def test_registers_the_clumped_cells_phantom():
    registry = build_registry(use_entry_points=False)
    registration = registry.get("phantom", "clumped_cells")
    assert registration.package == "subcell"
    assert isinstance(registration.create(), Phantom)
