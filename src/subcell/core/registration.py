"""What one ``register(...)`` call records."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from subcell.core.errors import PluginError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@attrs.frozen
class Registration:
    """A named plugin of one kind: its config class, factory, description and origin."""

    kind: str
    name: str
    config_cls: type
    factory: Callable[[Any], Any]
    description: str
    package: str
    version: str

    def create(self, config: Any = None) -> Any:
        """Build the plugin's object from ``config`` (the config class's defaults if None)."""
        if config is None:
            config = self.config_cls()
        elif not isinstance(config, self.config_cls):
            raise PluginError(
                f"{self.kind} plugin {self.name!r} expects a {self.config_cls.__name__} config, "
                f"got {type(config).__name__}"
            )
        return self.factory(config)

    def as_dict(self) -> dict[str, str]:
        """The plugin as a JSON-ready row (name, kind, package, version, description)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "package": self.package,
            "version": self.version,
            "description": self.description,
            "config": f"{self.config_cls.__module__}.{self.config_cls.__qualname__}",
        }


def check_registration(kind: str, name: Any, config_cls: Any, factory: Any, description: Any):
    """Raise :class:`PluginError` unless the four parts of a registration are well formed."""
    where = f"{kind} plugin {name!r}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(f"{where}: a name is lower-case letters, digits and '_'")
    if not (isinstance(config_cls, type) and attrs.has(config_cls)):
        raise PluginError(f"{where}: config_cls must be an attrs class, got {config_cls!r}")
    if not callable(factory):
        raise PluginError(f"{where}: factory must be callable, got {factory!r}")
    if not isinstance(description, str) or not description.strip() or "\n" in description:
        raise PluginError(f"{where}: description must be one non-empty line")
