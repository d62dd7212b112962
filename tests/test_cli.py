"""The CLI contract: plugins listing, config validate/show, exit codes and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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


# --- subcell simulate ----------------------------------------------------------------------

TINY = """\
step: simulate
tile_px: [24, 24]
structures:
  - structure: {plugin: beads, count: [1, 2], diameter_nm: 200, margin_nm: 200}
    labelling: {plugin: surface, photons_per_emitter: 80}
microscope: {plugin: epi, pixel_nm: 80, psf_radius_nm: 1200}
ground_truth: {plugin: geometry_projection}
"""


def _tiny(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    return str(config)


def test_simulate_writes_resumes_and_refuses(tmp_path, capsys):
    import zarr

    config, out = _tiny(tmp_path), str(tmp_path / "data.zarr")
    status, stdout, _ = run(capsys, "simulate", config, "--out", out, "--n", "3", "--seed", "7")
    assert status == 0 and "3 images" in stdout
    group = zarr.open_group(out, mode="r")
    assert group["images"].shape == (3, 1, 1, 24, 24) and group.attrs["complete"] is True
    assert group.attrs["seed"] == 7 and group.attrs["provenance"]["config"]["n_tiles"] == 3
    first = group["images"][:]

    status, stdout, _ = run(capsys, "simulate", config, "--out", out, "--n", "3", "--seed", "7")
    assert status == 0 and "already complete" in stdout
    status, _, err = run(capsys, "simulate", config, "--out", out, "--n", "3", "--seed", "8")
    assert status == 2 and len(err.strip().splitlines()) == 1 and "different config" in err
    status, _, _ = run(
        capsys, "simulate", config, "--out", out, "--n", "3", "--seed", "8", "--overwrite"
    )
    assert status == 0
    assert not np.array_equal(zarr.open_group(out, mode="r")["images"][:], first)


def test_simulate_montage_and_set(tmp_path, capsys):
    import zarr

    config, out = _tiny(tmp_path), str(tmp_path / "m.zarr")
    status, _, err = run(
        capsys,
        "simulate", config, "--out", out, "--n", "1", "--montage",
        "--set", "tile_px=[16, 16]", "--set", "snr=[2, 2]",
    )  # fmt: skip
    assert status == 0, err
    group = zarr.open_group(out, mode="r")
    assert group["images"].shape == (1, 1, 1, 32, 32)
    np.testing.assert_allclose(group["tile_stats"][0, :, 1], 2.0, rtol=1e-6)  # SNR per tile


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--n", "0"], "--n must be at least 1, got 0"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--set", "background_photons=[5, 1]"], "background_photons: is an empty range"),
        (["--set", "snr=[-2, 4]"], "snr: must be positive"),
        (["--set", "noise={plugin: nope}"], "unknown noise plugin 'nope'"),
        (["--set", "split=[0.9, 0.2, 0.2]"], "split: must be three fractions"),
    ],
)
def test_simulate_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, expected):
    out = tmp_path / "bad.zarr"
    status, _, err = run(capsys, "simulate", _tiny(tmp_path), "--out", str(out), *argv)
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and expected in err, err
    assert not out.exists()


def test_undersampling_is_a_one_line_warning_not_an_error(tmp_path, capsys):
    out = tmp_path / "coarse.zarr"
    status, _, err = run(
        capsys,
        "simulate",
        _tiny(tmp_path),
        "--out",
        str(out),
        "--n",
        "1",
        "--set",
        "microscope.pixel_nm=160",
    )
    assert status == 0
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1 and warning[0].startswith("subcell: warning: pixel_nm (160)")
    assert "Nyquist pixel 91.1 nm" in warning[0] and "Traceback" not in err
