"""The step graph: which step needs which, in what order they run, and what is downstream."""

from __future__ import annotations

from collections.abc import Iterable

from subcell.core.errors import ConfigError

__all__ = ["downstream", "topological_order"]


def topological_order(needs: dict[str, set[str]], shown: str = "pipeline") -> list[str]:
    """The steps ordered so each comes after what it needs; file order breaks ties.

    Parameters
    ----------
    needs
        Step -> the steps it takes inputs from, in file order.
    shown
        The pipeline file, for the message.

    Raises
    ------
    ConfigError
        The steps form a cycle; the message spells it (``a -> b -> a``).
    """
    order: list[str] = []
    placed: set[str] = set()
    waiting = list(needs)
    while waiting:
        ready = [name for name in waiting if needs[name] <= placed]
        if not ready:
            raise ConfigError(f"{shown}: steps form a cycle: {' -> '.join(_cycle(needs, waiting))}")
        first = ready[0]
        order.append(first)
        placed.add(first)
        waiting.remove(first)
    return order


def _cycle(needs: dict[str, set[str]], waiting: list[str]) -> list[str]:
    """One cycle among ``waiting`` steps, as a closed path."""
    path: list[str] = []
    node = waiting[0]
    while node not in path:
        path.append(node)
        node = next(n for n in waiting if n in needs[node])
    return [*path[path.index(node) :], node]


def downstream(needs: dict[str, set[str]], names: Iterable[str]) -> set[str]:
    """``names`` and every step that depends on any of them, directly or not."""
    found = set(names)
    changed = True
    while changed:
        changed = False
        for name, wanted in needs.items():
            if name not in found and wanted & found:
                found.add(name)
                changed = True
    return found
