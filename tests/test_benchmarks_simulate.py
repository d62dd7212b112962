"""Smoke test of benchmarks/simulate.py and its microsim peer script: tiny sizes, sane
numbers. Speed itself is never asserted here."""

import json

import pytest
from benchmark_modules import load_benchmark

from subcell.core.errors import ConfigError


@pytest.fixture(scope="module")
def sim():
    return load_benchmark("simulate")


@pytest.fixture(scope="module")
def peer():
    return load_benchmark("_microsim_peer")


@pytest.fixture(scope="module")
def tiny_set(sim):
    """Overrides for a 48x48 tile of beads: fast, whatever the mitochondria plugin does."""
    return (sim.FALLBACK, "tile_px=[48, 48]")


@pytest.fixture(scope="module")
def tiny(sim, tiny_set):
    config, structure = sim.bench_config(tiny_set)
    assert structure == "beads" and tuple(config.tile_px) == (48, 48)
    return config


def test_benchmark_config_is_the_paper_tile(sim):
    config, structure = sim.bench_config()
    assert structure in ("mitochondria", "beads")
    assert tuple(config.tile_px) == (128, 128)
    optics = config.microscope.config
    assert (optics.na, optics.emission_nm, optics.pixel_nm) == (1.4, 510.0, 42.0)
    assert config.n_frames == 1 and getattr(optics, "n_z", 1) == 1


def test_time_pairs_counts_every_pair_in_the_wall_time(sim, tiny_set):
    # A zero budget stops each of the two workers after its first pair.
    row = sim.time_pairs(tiny_set, n=40, workers=2, threads=1, warmup=1, budget_s=0.0)
    assert row["problems"] == []
    assert (row["n"], row["n_asked"], row["workers"], row["threads"]) == (2, 40, 2, 1)
    assert row["pairs_per_s"] == pytest.approx(2 / row["wall_s"])
    # The two pairs ran side by side: the wall time covers one pair, not much more than two.
    assert 0 < row["median_s"] <= row["wall_s"] < 2 * row["median_s"] + 2.0


def test_a_failing_worker_raises_with_its_traceback(sim, tiny_set):
    with pytest.raises(RuntimeError, match="(?s)a subcell worker failed.*Traceback"):
        sim.time_pairs(tiny_set, n=2, workers=1, threads=0, warmup=0)  # 0 torch threads


def test_a_bad_override_fails_before_any_worker_starts(sim):
    with pytest.raises(ConfigError):
        sim.time_pairs(["tile_px=[0, 0]"], n=2, workers=1, threads=1)


def test_profile_splits_the_pair_into_its_stages(sim, tiny):
    stages = sim.profile_stages(tiny, n=2, threads=1, warmup=1)
    assert set(stages) == {*sim.STAGES, "other", "total", "first_pair", "n"}
    assert stages["n"] == 2
    assert all(stages[k] >= 0 for k in sim.STAGES)
    assert stages["microscope"] > 0 and stages["total"] > 0
    assert stages["other"] > -1e-3  # the stages are timed inside the total
    # The median of two pairs is their mean, so the stages add up to the total exactly.
    parts = sum(stages[k] for k in (*sim.STAGES, "other"))
    assert parts == pytest.approx(stages["total"], rel=1e-9)


def test_nested_plugin_calls_count_once(sim):
    sink = {}

    class Inner:
        def psf(self):
            return 1

    class Outer:
        def masks(self, inner):
            return inner.psf() + 1

    inner = sim._Timed(Inner(), "microscope", sink)
    outer = sim._Timed(Outer(), "ground_truth", sink)
    assert outer.masks(inner) == 2
    assert set(sink) == {"ground_truth", sim._ACTIVE}  # the PSF call counted as GT only
    assert inner.psf() == 1 and "microscope" in sink


def test_cuda_pass_is_skipped_or_keyed_by_device(sim, tiny):
    on_cpu = sim.microscope_on(tiny, "cpu")
    if on_cpu is None:
        assert not hasattr(tiny.microscope.config, "device")
    else:
        assert on_cpu.microscope.config.device == "cpu"
    gpu = sim.time_gpu(tiny, n=1, warmup=0)
    import torch

    if not torch.cuda.is_available():
        assert gpu == {"skipped": "no CUDA device"}


def test_run_and_report_without_peer(sim, tiny_set, capsys):
    result = sim.run(2, 1, workers=1, skip_peer=True, overrides=tiny_set, warmup=0)
    assert result["problems"] == []
    assert result["ratio"] is None and result["microsim"] == {"skipped": "--skip-peer"}
    assert [(r["workers"], r["threads"], r["n"]) for r in result["subcell"]["runs"]] == [(1, 2, 2)]
    assert result["best_pairs_per_s"] == max(r["pairs_per_s"] for r in result["subcell"]["runs"])
    json.dumps(result)  # what main() writes to benchmarks/out/simulate.json
    sim.report(result)
    out = capsys.readouterr().out
    assert "subcell, 1 process(es) x 2 thread(s)" in out
    assert "skipped: --skip-peer" in out and "microsim not measured" in out
    assert ("PASS  subcell:" in out) != ("MISS  subcell:" in out)


def test_peer_arguments(peer):
    args = peer.parse_args([])
    assert (args.tile_px, args.pixel_nm, args.oversample) == (128, 42.0, 4)
    assert args.n_z % 2 == 1 and args.n_z * args.z_step_nm == 1300.0
    assert (args.na, args.emission_nm, args.psf_cap) == (1.4, 510.0, False)
    args = peer.parse_args(["--n", "3", "--workers", "2", "--warmup", "0", "--psf-cap"])
    assert (args.n, args.workers, args.warmup, args.psf_cap) == (3, 2, 0, True)


@pytest.mark.parametrize(
    "argv",
    [
        ["--n", "0"],
        ["--workers", "0"],
        ["--n-z", "12"],
        ["--na", "1.6"],
        ["--warmup", "-1"],
        ["--sample-index", "1.33"],
    ],
)
def test_peer_rejects_bad_arguments(peer, argv, capsys):
    with pytest.raises(SystemExit):
        peer.parse_args(argv)
    assert "error" in capsys.readouterr().err


@pytest.mark.slow
def test_peer_runs_in_its_venv(sim):
    python = sim.PEER_VENV / "bin" / "python"
    if not python.exists():
        pytest.skip(f"no microsim venv at {sim.PEER_VENV} (benchmarks/simulate.py makes it)")
    row = sim.run_peer(python, n=1, workers=1, psf_cap=True, warmup=0)
    assert row["microsim_version"] == sim.PEER_REQUIREMENTS[0].split("==")[1]
    assert row["output_shape"] == [128, 128] and row["output_dtype"] == "uint16"
    assert row["output_max_adu"] > 100  # signal above the camera offset
    assert row["images_per_s"] == pytest.approx(1 / row["wall_s"]) and row["median_s"] > 0
