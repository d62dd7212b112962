"""Discover plugins (entry points and built-ins) and collect their registrations.

Every plugin package, built-in or third-party, is a module with ``@hookimpl`` functions,
found through the entry-point group ``subcell.plugins``. Each entry point is loaded in its
own ``try`` so one broken package costs one warning line, never the whole CLI; after each
load ``check_pending()`` catches misspelled hook names.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from importlib.metadata import entry_points

import pluggy

from subcell import __version__
from subcell.core import hookspecs
from subcell.core.errors import PluginError
from subcell.core.kinds import KINDS
from subcell.core.registration import Registration, check_registration
from subcell.registry.registry import Registry, suggest

log = logging.getLogger("subcell")

ENTRY_POINT_GROUP = "subcell.plugins"
#: Comma-separated entry-point or distribution names that must not be loaded.
BLOCK_ENV = "SUBCELL_BLOCK_PLUGINS"

#: The built-in plugin packages: entry-point name -> module. pyproject.toml declares the same
#: entry points; this table also serves a source tree that was never pip-installed.
BUILTIN_PLUGINS: dict[str, str] = {
    "beads": "subcell.plugins.beads",
    "mitochondria": "subcell.plugins.mitochondria",
    "vesicles": "subcell.plugins.vesicles",
    "physics": "subcell.plugins.physics",
    "microscopes": "subcell.plugins.microscopes",
    "networks": "subcell.plugins.networks",
    "baselines": "subcell.plugins.baselines",
    "measurements": "subcell.plugins.measurements",
    "formats": "subcell.plugins.formats",
    "cellcutter": "subcell.plugins.cellcutter",
    "nile_red": "subcell.plugins.nile_red",
    "run-steps": "subcell.pipeline.run.builtin_steps",
}


def blocked_from_env() -> set[str]:
    """Names in ``$SUBCELL_BLOCK_PLUGINS`` (comma-separated)."""
    return {n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()}


def build_registry(
    *,
    use_entry_points: bool = True,
    extra: dict[str, object] | None = None,
    blocked: set[str] | None = None,
) -> Registry:
    """Load plugin packages and return the registry of everything they register.

    Parameters
    ----------
    use_entry_points
        Discover installed packages through the ``subcell.plugins`` entry-point group.
        Built-ins missing from the entry points (a source tree) are loaded directly.
    extra
        More plugin modules or objects to register, by name (tests, interactive use).
    blocked
        Entry-point or distribution names to skip; ``$SUBCELL_BLOCK_PLUGINS`` if None.
    """
    blocked = blocked_from_env() if blocked is None else set(blocked)
    manager = pluggy.PluginManager("subcell")
    manager.add_hookspecs(hookspecs)
    registry = Registry()
    origins: dict[str, tuple[str, str]] = {}

    if use_entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            package = dist.name if dist is not None else ep.value.split(".")[0]
            version = dist.version if dist is not None else "unknown"
            # Two packages may both call their entry point "io": key plugins by package too.
            key = ep.name if package == "subcell" else f"{package}:{ep.name}"
            if ep.name in blocked or package in blocked or key in origins:
                continue  # blocked, or the same distribution seen twice on sys.path
            _load(manager, registry, origins, key, ep.name, ep.load, package, version)
    for name, module in BUILTIN_PLUGINS.items():
        if name not in origins and name not in blocked and "subcell" not in blocked:
            # Built-in bugs are ours: let them raise rather than hide behind a warning.
            manager.register(importlib.import_module(module), name=name)
            manager.check_pending()
            origins[name] = ("subcell", __version__)
    for name, plugin in (extra or {}).items():
        if name in blocked:
            continue
        _load(manager, registry, origins, name, name, lambda p=plugin: p, "(registered)", "")

    for kind in KINDS.values():
        for impl in getattr(manager.hook, kind.hook).get_hookimpls():
            _collect(registry, kind.name, impl, *origins[impl.plugin_name])
    registry.packages = dict(origins)
    for line in registry.warnings:
        log.warning(line)
    return registry


def _load(manager, registry, origins, key, name, load, package, version) -> None:
    """Register one plugin package under ``key``; on any failure leave a one-line warning
    (naming the entry point ``name`` and its package) and go on."""
    try:
        plugin = load()
        manager.register(plugin, name=key)
    except Exception as exc:  # noqa: BLE001 - isolation is the point
        registry.warnings.append(
            f"plugin {name!r} from {package} {version} not loaded: {type(exc).__name__}: {exc}"
        )
        return
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        manager.unregister(name=key)
        registry.warnings.append(
            f"plugin {name!r} from {package} {version} not loaded: {_pending_message(exc)}"
        )
        return
    origins[key] = (package, version)


def _pending_message(exc: pluggy.PluginValidationError) -> str:
    hooks = [k.hook for k in KINDS.values()]
    text = str(exc)
    # pluggy names the unknown hook in its message; point to the nearest real one.
    for word in text.replace("'", " ").replace('"', " ").split():
        if word.startswith("register") and word not in hooks:
            return f"unknown hook {word!r}{suggest(word, hooks)}"
    return text


def _collect(registry: Registry, kind: str, impl, package: str, version: str) -> None:
    """Call one plugin's ``register_*`` hook, recording what it registers."""
    builtin = package == "subcell"

    def register(name, config_cls, factory, description):
        check_registration(kind, name, config_cls, factory, description)
        new = Registration(kind, name, config_cls, factory, description.strip(), package, version)
        try:
            registry.add(new)
        except PluginError as exc:
            if builtin:
                raise
            registry.mark_conflict(new)
            registry.warnings.append(f"{exc}; using {registry.get(kind, name).package!r}'s")

    try:
        impl.function(register=register)
    except Exception as exc:  # noqa: BLE001
        if builtin:
            raise
        registry.warnings.append(
            f"plugin {impl.plugin_name!r} from {package} {version}: {impl.function.__name__} "
            f"failed: {type(exc).__name__}: {exc}"
        )


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, built on first use (``get_registry.cache_clear()`` resets)."""
    return build_registry()
