"""The CLI contract: plugins listing, config validate/show, exit codes and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from subcell.cli import main
from subcell.core.kinds import KINDS

ROOT = Path(__file__).resolve().parents[1]
GOOD = """\
step: simulate
seed: 3
structures:
  - structure: {plugin: beads}
    labelling: {plugin: volume}
"""


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_plugins_json_lists_every_kind_with_required_fields(capsys):
    status, out, _ = run(capsys, "plugins", "--json")
    assert status == 0
    rows = json.loads(out)
    assert {row["kind"] for row in rows} == set(KINDS)
    for row in rows:
        assert {"name", "kind", "package", "version", "description"} <= set(row)
        assert row["description"]
    status, out, _ = run(capsys, "plugins", "--json", "--kind", "microscope")
    assert {row["kind"] for row in json.loads(out)} == {"microscope"}


def test_plugins_table(capsys):
    status, out, _ = run(capsys, "plugins")
    assert status == 0 and "microscope" in out and "epi" in out


def test_unknown_kind_is_a_user_error(capsys):
    status, _, err = run(capsys, "plugins", "--kind", "microscopes")
    assert status == 2
    assert err.strip().splitlines() == [err.strip()] and "did you mean 'microscope'" in err


def test_validate_and_show(tmp_path, capsys):
    config = tmp_path / "sim.yaml"
    config.write_text(GOOD)
    status, out, _ = run(capsys, "config", "validate", str(config))
    assert status == 0 and "valid simulate config" in out
    status, out, _ = run(capsys, "config", "show", str(config), "--set", "microscope.na=1.2")
    assert status == 0
    import yaml

    shown = yaml.safe_load(out)
    assert shown["microscope"]["plugin"] == "epi"  # from the packaged defaults
    assert shown["microscope"]["na"] == 1.2  # from --set
    assert shown["seed"] == 3
    assert shown["structures"][0]["structure"]["plugin"] == "beads"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("microscope: {plugin: epi, colour: red}", "microscope.colour: unknown key"),
        ("microscope: {plugin: epi, na: high}", "microscope.na: expected a number"),
        (
            "microscope: {plugin: epix}",
            "unknown microscope plugin 'epix' (did you mean 'epi'?); registered:",
        ),
        ("noise: {plugin: nope}", "registered: emccd, poisson, poisson_gaussian"),
    ],
)
def test_invalid_configs_exit_2_with_one_line(tmp_path, capsys, change, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(GOOD + change + "\n")
    status, out, err = run(capsys, "config", "validate", str(config))
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"subcell: error: {config}:")
    assert expected in lines[0]


def test_bad_set_and_missing_file(tmp_path, capsys):
    config = tmp_path / "sim.yaml"
    config.write_text(GOOD)
    status, _, err = run(capsys, "config", "validate", str(config), "--set", "seed=1.5")
    assert status == 2 and "--set: seed: expected an integer, got float 1.5" in err
    status, _, err = run(capsys, "config", "show", str(tmp_path / "nope.yaml"))
    assert status == 2 and "no such config file" in err


def test_debug_shows_the_traceback(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("step: simulate\nseed: x\n")
    quiet = subprocess.run(
        [sys.executable, "-m", "subcell", "config", "validate", str(config)],
        capture_output=True,
        text=True,
    )
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    loud = subprocess.run(
        [sys.executable, "-m", "subcell", "--debug", "config", "validate", str(config)],
        capture_output=True,
        text=True,
    )
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "ConfigError" in loud.stderr


def test_shipped_configs_validate(capsys):
    configs = sorted((ROOT / "configs").rglob("*.yaml"))
    assert configs
    for config in configs:
        if config.parent.name == "base":
            continue  # fragments meant to be extended, not run
        status, _, err = run(capsys, "config", "validate", str(config))
        assert status == 0, err
