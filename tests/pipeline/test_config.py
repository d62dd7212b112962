"""Step configs: the step key, packaged defaults, layering and plugin resolution."""

import pytest

from subcell.core.errors import ConfigError
from subcell.pipeline.config import load_config, step_defaults
from subcell.pipeline.schemas import STEP_SCHEMAS

BEADS = "structures:\n  - structure: {plugin: beads}\n    labelling: {plugin: surface}\n"


def test_every_step_has_packaged_defaults_that_validate(tmp_path):
    for step in STEP_SCHEMAS:
        assert isinstance(step_defaults(step), dict)
    config = tmp_path / "sim.yaml"
    config.write_text("step: simulate\n" + BEADS)
    loaded = load_config(config)
    assert loaded.step == "simulate"
    assert loaded.config.microscope.plugin == "epi"
    assert loaded.config.photophysics.plugin == "always_on"
    assert loaded.config.structures[0].labelling.plugin == "surface"


def test_missing_or_unknown_step(tmp_path):
    config = tmp_path / "x.yaml"
    config.write_text(BEADS)
    with pytest.raises(
        ConfigError,
        match="missing 'step' key; steps: analyze, cellcutter, phantom, segment, simulate",
    ):
        load_config(config)
    config.write_text("step: simulat\n" + BEADS)
    with pytest.raises(
        ConfigError, match="unknown step 'simulat' \\(did you mean 'simulate'\\?\\)"
    ):
        load_config(config)


def test_plugin_params_from_defaults_are_replaced_when_the_plugin_changes(tmp_path):
    config = tmp_path / "sim.yaml"
    config.write_text("step: simulate\n" + BEADS + "noise: {plugin: emccd, em_gain: 100}\n")
    loaded = load_config(config, ["noise.read_noise_e=20"])
    assert loaded.config.noise.plugin == "emccd"
    assert loaded.config.noise.config.em_gain == 100
    assert loaded.config.noise.config.read_noise_e == 20


def test_error_in_a_base_file_names_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text("microscope: {plugin: epi, na: 9}\n")
    config = tmp_path / "sim.yaml"
    config.write_text("extends: base.yaml\nstep: simulate\n" + BEADS)
    with pytest.raises(ConfigError, match=r"base\.yaml: microscope: na \(9\.0\) must be below"):
        load_config(config)


def test_empty_structures_rejected(tmp_path):
    config = tmp_path / "sim.yaml"
    config.write_text("step: simulate\nstructures: []\n")
    with pytest.raises(ConfigError, match="structures"):
        load_config(config)
