"""Structuring configs: strict types, plugin choice, one-line located errors."""

from typing import Literal

import attrs
import pytest

from subcell.core.config import load_layers
from subcell.core.errors import ConfigError, PluginError
from subcell.core.structuring import spec_type, structure, to_yaml


@attrs.frozen(kw_only=True)
class EpiLike:
    na: float = attrs.field(default=1.4, validator=attrs.validators.le(1.5))
    mode: Literal["wide", "confocal"] = "wide"


@attrs.frozen(kw_only=True)
class Entry:
    structure: spec_type("structure")


@attrs.frozen(kw_only=True)
class Top:
    seed: int = 0
    microscope: spec_type("microscope")
    structures: tuple[Entry, ...] = ()
    shape: tuple[int, int, int] = (1, 64, 64)


def resolver(kind, name):
    if name in ("epi", "beads"):
        return EpiLike
    raise PluginError(f"unknown {kind} plugin {name!r}; registered: beads, epi")


def error_of(data) -> str:
    with pytest.raises(ConfigError) as info:
        structure(data, Top, resolver, origins={(): "exp.yaml"})
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_config_structures_into_plugin_config():
    cfg = structure(
        {
            "microscope": {"plugin": "epi", "na": 1.2},
            "structures": [{"structure": {"plugin": "beads"}}],
        },
        Top,
        resolver,
    )
    assert cfg.microscope.plugin == "epi"
    assert cfg.microscope.config == EpiLike(na=1.2)
    assert cfg.structures[0].structure.config.na == 1.4
    assert "microscope:\n  plugin: epi\n  na: 1.2\n  mode: wide\n" in to_yaml(cfg)
    assert "shape: [1, 64, 64]" in to_yaml(cfg)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"microscope": {"plugin": "epx"}},
            "exp.yaml: microscope: unknown microscope plugin 'epx'",
        ),
        ({"microscope": {"na": 1.2}}, "microscope: missing 'plugin' key"),
        (
            {"microscope": {"plugin": "epi", "nA": 1}},
            "microscope.nA: unknown key (did you mean 'na'?)",
        ),
        (
            {"microscope": {"plugin": "epi", "na": "1.2"}},
            "microscope.na: expected a number, got str",
        ),
        ({"microscope": {"plugin": "epi", "na": 2.0}}, "microscope.na: must be <= 1.5, got 2.0"),
        ({"microscope": {"plugin": "epi", "mode": "x"}}, "microscope.mode: expected one of 'wide'"),
        ({"microscope": {"plugin": "epi"}, "seed": 1.5}, "seed: expected an integer, got float"),
        ({"microscope": {"plugin": "epi"}, "seed": True}, "seed: expected an integer, got bool"),
        ({"microscope": {"plugin": "epi"}, "shape": [1, 2]}, "shape: expected a list of 3"),
        ({"microscope": {"plugin": "epi"}, "shape": "abc"}, "shape: expected a list, got str"),
        (
            {
                "microscope": {"plugin": "epi"},
                "structures": [{"structure": {"plugin": "beads", "na": "x"}}],
            },
            "structures[0].structure.na: expected a number",
        ),
        ({"seed": 1}, "microscope: missing required key"),
        ({"microscope": {"plugin": "epi"}, "sede": 1}, "sede: unknown key (did you mean 'seed'?)"),
    ],
)
def test_errors_name_file_key_path_and_expectation(data, expected):
    assert expected in error_of(data)


def test_unknown_plugin_lists_registered_names():
    assert "registered: beads, epi" in error_of({"microscope": {"plugin": "nope"}})


def test_layers_extend_merge_and_record_origins(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 1\nmicroscope: {plugin: epi, na: 1.4, mode: wide}\n")
    (tmp_path / "exp.yaml").write_text("extends: base.yaml\nmicroscope: {na: 1.2}\n")
    data, origins = load_layers(tmp_path / "exp.yaml")
    assert data == {"seed": 1, "microscope": {"plugin": "epi", "na": 1.2, "mode": "wide"}}
    assert origins[("microscope", "na")].endswith("exp.yaml")
    assert origins[("seed",)].endswith("base.yaml")
    # an error in a key set by the base names the base file
    with pytest.raises(ConfigError, match=r"base\.yaml: seed: expected an integer"):
        structure({**data, "seed": "x"}, Top, resolver, origins=origins)


def test_set_inside_a_section_is_named_for_section_level_errors():
    origins = {(): "exp.yaml", ("microscope",): "base.yaml", ("microscope", "na"): "--set"}
    with pytest.raises(ConfigError, match=r"^--set: microscope: missing 'plugin'"):
        structure({"microscope": {"na": 1.0}}, Top, resolver, origins=origins)
