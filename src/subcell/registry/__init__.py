"""The plugin registry: pluggy manager, entry-point discovery, typed lookup with clear errors."""

from subcell.registry.manager import (
    BLOCK_ENV,
    BUILTIN_PLUGINS,
    ENTRY_POINT_GROUP,
    build_registry,
    get_registry,
)
from subcell.registry.registry import Registry

__all__ = [
    "BLOCK_ENV",
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "Registry",
    "build_registry",
    "get_registry",
]
