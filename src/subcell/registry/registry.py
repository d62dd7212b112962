"""Registrations by kind and name, with lookups that say what *is* registered."""

from __future__ import annotations

import difflib
from typing import Any

from subcell.core.errors import PluginError
from subcell.core.kinds import KINDS
from subcell.core.registration import Registration


def suggest(name: str, choices: list[str]) -> str:
    """' (did you mean X?)' for the closest of ``choices``, or ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry:
    """Every registered plugin, by kind and name; plus warnings from plugins that failed."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[str, Registration]] = {k: {} for k in KINDS}
        # (kind, name) -> every package that registered it, when more than one did
        self._conflicts: dict[tuple[str, str], list[str]] = {}
        self.warnings: list[str] = []
        #: plugin key (entry-point name, "package:name" for third parties) -> (package, version)
        self.packages: dict[str, tuple[str, str]] = {}

    def add(self, registration: Registration) -> None:
        """Add one registration; a name registered twice for a kind is an error naming both."""
        table = self._kind_table(registration.kind)
        existing = table.get(registration.name)
        if existing is not None:
            raise PluginError(
                f"{registration.kind} plugin {registration.name!r} is registered by both "
                f"{existing.package!r} and {registration.package!r}"
            )
        table[registration.name] = registration

    def mark_conflict(self, registration: Registration) -> None:
        """Record a second package registering a taken name: looking it up becomes an error."""
        first = self.get(registration.kind, registration.name)
        key = (registration.kind, registration.name)
        self._conflicts.setdefault(key, [first.package]).append(registration.package)

    def get(self, kind: str, name: str) -> Registration:
        """The registration of ``name``; unknown names list the registered ones."""
        table = self._kind_table(kind)
        if name not in table:
            names = sorted(table)
            raise PluginError(
                f"unknown {kind} plugin {name!r}{suggest(str(name), names)}; "
                f"registered: {', '.join(names) or '(none)'}"
            )
        if (kind, name) in self._conflicts:
            packages = " and ".join(repr(p) for p in self._conflicts[kind, name])
            raise PluginError(
                f"{kind} plugin {name!r} is registered by both {packages}; block one with "
                f"SUBCELL_BLOCK_PLUGINS=<package>"
            )
        return table[name]

    def create(self, kind: str, name: str, config: Any = None) -> Any:
        """Build plugin ``name`` of ``kind`` from its config (defaults if None)."""
        return self.get(kind, name).create(config)

    def config_class(self, kind: str, name: str) -> type:
        """The attrs config class of a plugin (the resolver the config system uses)."""
        return self.get(kind, name).config_cls

    def names(self, kind: str) -> list[str]:
        return sorted(self._kind_table(kind))

    def all(self, kind: str | None = None) -> list[Registration]:
        """Registrations sorted by kind order, then name; only ``kind`` if given."""
        kinds = [kind] if kind is not None else list(KINDS)
        return [self._kind_table(k)[n] for k in kinds for n in sorted(self._kind_table(k))]

    def _kind_table(self, kind: str) -> dict[str, Registration]:
        if kind not in self._by_kind:
            names = list(self._by_kind)
            raise PluginError(
                f"unknown plugin kind {kind!r}{suggest(str(kind), names)}; "
                f"kinds: {', '.join(names)}"
            )
        return self._by_kind[kind]
