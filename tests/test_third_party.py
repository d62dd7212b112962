"""Third-party packages: the example plugin installed with pip, and a broken package."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "subcell-example-plugin"


def subcell(*args, path_dirs=(), env=None):
    """Run the CLI in a child process that also sees packages installed in ``path_dirs``."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(
        [*map(str, path_dirs), environment.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, "-m", "subcell", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )


@pytest.fixture(scope="module")
def example_site(tmp_path_factory):
    """The example plugin pip-installed into its own directory (not the test environment)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return target


def test_installed_example_plugin_is_listed_with_package_and_version(example_site):
    result = subcell("plugins", "--json", path_dirs=[example_site])
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(result.stdout)}
    droplets = rows["structure", "lipid_droplets"]
    assert droplets["package"] == "subcell-example-plugin"
    assert droplets["version"] == "0.2.0"
    assert rows["analytics", "nearest_neighbour"]["package"] == "subcell-example-plugin"
    assert ("microscope", "epi") in rows, "built-ins still listed"


def test_example_plugin_is_used_from_a_config(example_site, tmp_path):
    config = tmp_path / "droplets.yaml"
    config.write_text(
        textwrap.dedent("""\
        step: simulate
        seed: 7
        tile_px: [64, 64]
        structures:
          - structure: {plugin: lipid_droplets, count: [4, 4], median_radius_nm: 200}
            labelling: {plugin: volume, density_per_um3: 3000}
        """)
    )
    script = textwrap.dedent(f"""\
        import numpy as np
        from subcell.pipeline.config import load_config
        from subcell.pipeline.simulate import simulate_field
        from subcell.registry import get_registry
        loaded = load_config({str(config)!r})
        fieldimage = simulate_field(loaded.config, index=0)
        counts = np.unique(fieldimage.masks.instances)
        table = get_registry().create("analytics", "nearest_neighbour").measure(fieldimage.masks)
        print(fieldimage.geometry.n_instances, len(table), float(np.nanmin(table.columns["nearest_nm"])))
        """)
    env = {
        **os.environ,
        "PYTHONPATH": f"{example_site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    n_droplets, n_rows, nearest_nm = result.stdout.split()
    assert int(n_droplets) == 4
    assert int(n_rows) == 4  # every droplet segmented by the ground truth and measured
    assert float(nearest_nm) >= 2 * 200 * 0.5  # non-overlapping droplets are well apart


def _fake_package(site: Path, name: str, module_source: str) -> None:
    """Install a minimal distribution by hand: a module plus dist-info with an entry point."""
    (site / f"{name}.py").write_text(module_source)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[subcell.plugins]\n{name} = {name}\n")


def test_package_raising_on_import_leaves_the_cli_working_with_one_warning(tmp_path):
    _fake_package(tmp_path, "broken_pkg", "raise ImportError('needs libfoo')\n")
    result = subcell("plugins", "--json", path_dirs=[tmp_path])
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert warnings == [
        "subcell: warning: plugin 'broken_pkg' from broken_pkg 1.0 not loaded: "
        "ImportError: needs libfoo"
    ]
    assert any(row["name"] == "epi" for row in json.loads(result.stdout))


def test_blocking_the_broken_package_silences_it(tmp_path):
    _fake_package(tmp_path, "broken_pkg", "raise ImportError('needs libfoo')\n")
    result = subcell("plugins", path_dirs=[tmp_path], env={"SUBCELL_BLOCK_PLUGINS": "broken_pkg"})
    assert result.returncode == 0 and result.stderr == ""


def test_misspelled_hook_in_an_installed_package_is_named(tmp_path):
    _fake_package(
        tmp_path,
        "typo_pkg",
        textwrap.dedent("""\
        from subcell.core.hookspecs import hookimpl
        @hookimpl
        def register_microscope(register):
            pass
        """),
    )
    result = subcell("plugins", "--json", path_dirs=[tmp_path])
    assert result.returncode == 0
    assert (
        "unknown hook 'register_microscope' (did you mean 'register_microscopes'?)" in result.stderr
    )


def test_two_packages_with_the_same_entry_point_name_both_load(tmp_path):
    plugin = textwrap.dedent("""\
        import attrs
        from subcell.core.hookspecs import hookimpl
        @attrs.frozen
        class Config:
            pass
        @hookimpl
        def register_analytics(register):
            register("count_{n}", Config, lambda c: c, "test analytics {n}")
        """)
    for n in (1, 2):
        site = tmp_path / f"site{n}"
        site.mkdir()
        module = f"pkg{n}_plugin"
        (site / f"{module}.py").write_text(plugin.format(n=n))
        info = site / f"pkg{n}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: pkg{n}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[subcell.plugins]\nmeasure = {module}\n")
    result = subcell(
        "plugins",
        "--json",
        "--kind",
        "analytics",
        path_dirs=[tmp_path / "site1", tmp_path / "site2"],
    )
    assert result.returncode == 0 and result.stderr == ""
    rows = {row["name"]: row["package"] for row in json.loads(result.stdout)}
    assert rows["count_1"] == "pkg1" and rows["count_2"] == "pkg2"
