"""Plugin discovery and registration: built-ins, isolation of broken plugins, lookups."""

import tomllib
from pathlib import Path

import attrs
import pytest

from subcell.core.errors import PluginError
from subcell.core.hookspecs import hookimpl
from subcell.core.kinds import INTERFACES, KINDS
from subcell.registry import BUILTIN_PLUGINS, build_registry

ROOT = Path(__file__).resolve().parents[2]


@attrs.frozen(kw_only=True)
class DotConfig:
    size_nm: float = 10.0


class Dot:
    def __init__(self, config):
        self.config = config


class DotPlugin:
    @hookimpl
    def register_structures(self, register):
        register("dot", DotConfig, Dot, "a test structure")


class SecondDotPlugin:
    @hookimpl
    def register_structures(self, register):
        register("dot", DotConfig, Dot, "the same name again")


class MisspelledPlugin:
    @hookimpl
    def register_structure(self, register):  # missing the final 's'
        register("typo", DotConfig, Dot, "never registered")


class RaisingPlugin:
    @hookimpl
    def register_analytics(self, register):
        raise RuntimeError("boom")


class BadRegistrationPlugin:
    @hookimpl
    def register_noise_models(self, register):
        register("bad", dict, Dot, "config class is not attrs")


def isolated(**extra):
    """A registry of only the given plugins (no entry points, no built-ins)."""
    return build_registry(use_entry_points=False, extra=extra, blocked={"subcell"})


def test_registration_creates_objects_from_config():
    registry = isolated(dots=DotPlugin())
    registration = registry.get("structure", "dot")
    assert registration.package == "(registered)"
    dot = registry.create("structure", "dot", DotConfig(size_nm=3.0))
    assert dot.config.size_nm == 3.0
    assert registry.create("structure", "dot").config == DotConfig()
    with pytest.raises(PluginError, match="expects a DotConfig config, got dict"):
        registration.create({"size_nm": 1})


def test_unknown_name_lists_registered_and_suggests():
    registry = isolated(dots=DotPlugin())
    with pytest.raises(
        PluginError,
        match=r"unknown structure plugin 'dto' \(did you mean 'dot'\?\); registered: dot",
    ):
        registry.get("structure", "dto")
    with pytest.raises(
        PluginError, match="unknown plugin kind 'structures'.*did you mean 'structure'"
    ):
        registry.get("structures", "dot")


def test_duplicate_name_from_two_packages_names_both():
    registry = isolated(first=DotPlugin(), second=SecondDotPlugin())
    assert any("'dot' is registered by both" in w for w in registry.warnings)
    with pytest.raises(PluginError, match="registered by both '\\(registered\\)' and"):
        registry.get("structure", "dot")


def test_misspelled_hook_is_reported_and_plugin_skipped():
    registry = isolated(typo=MisspelledPlugin(), dots=DotPlugin())
    [warning] = registry.warnings
    assert "plugin 'typo'" in warning
    assert "unknown hook 'register_structure' (did you mean 'register_structures'?)" in warning
    assert registry.names("structure") == ["dot"]


def test_raising_hook_and_bad_registration_warn_and_the_rest_works():
    registry = isolated(raising=RaisingPlugin(), bad=BadRegistrationPlugin(), dots=DotPlugin())
    assert len(registry.warnings) == 2
    assert any("RuntimeError: boom" in w for w in registry.warnings)
    assert any("must be an attrs class" in w for w in registry.warnings)
    assert registry.names("structure") == ["dot"]
    assert all("\n" not in w for w in registry.warnings)


def test_blocked_plugins_are_not_loaded(monkeypatch):
    monkeypatch.setenv("SUBCELL_BLOCK_PLUGINS", "dots, other")
    registry = build_registry(use_entry_points=False, extra={"dots": DotPlugin()})
    assert "dot" not in registry.names("structure")
    assert registry.names("microscope"), "built-ins are unaffected"


def test_builtins_cover_every_kind_and_implement_its_interface():
    registry = build_registry(use_entry_points=False)
    assert registry.warnings == []
    for kind in KINDS:
        registrations = registry.all(kind)
        assert registrations, f"no built-in {kind} plugin"
        for registration in registrations:
            assert registration.package == "subcell"
            obj = registration.create()
            if kind in INTERFACES:
                assert isinstance(obj, INTERFACES[kind]), (kind, registration.name)
            else:
                import torch

                assert isinstance(obj, torch.nn.Module)


def test_entry_points_in_pyproject_match_builtin_table():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["subcell.plugins"]
    assert declared == BUILTIN_PLUGINS


def test_installed_entry_points_load_builtins_with_package_and_version():
    from subcell import __version__

    registry = build_registry()
    assert registry.packages["physics"] == ("subcell", __version__)
