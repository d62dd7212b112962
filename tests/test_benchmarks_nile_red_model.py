"""benchmarks/nile_red.py --model with --ablation-model: two tiny Nile Red networks, one on
intensity + ratio and one on intensity alone, trained and scored on a tiny simulated
dataset; the ablation rows are the two models' own F1 scores."""

import json
import shutil
from pathlib import Path

import pytest
from benchmark_modules import load_benchmark

from subcell.pipeline.config import load_config
from subcell.pipeline.dataset import write_dataset
from subcell.pipeline.training import train

TINY = Path(__file__).parents[1] / "configs" / "nile_red" / "tiny"


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nile-red-ablation")
    sim = load_config(TINY / "sim-cell.yaml", ["split=[0.5, 0.25, 0.25]"]).config
    data = write_dataset(sim, folder / "cells.zarr", progress=False).path
    config = load_config(TINY / "train-multilabel.yaml", ["epochs=1"]).config
    ratio = train(config, data, folder / "ratio", progress=False, device="cpu")
    intensity = load_config(
        TINY / "train-multilabel.yaml",
        ["epochs=1", "input.transform=intensity", "name=tiny-intensity"],
    ).config
    alone = train(intensity, data, folder / "intensity", progress=False, device="cpu")
    return folder, data, ratio.path, alone.path


def test_the_ablation_rows_are_the_two_models_scores(trained_pair, capsys):
    folder, data, ratio, alone = trained_pair
    out = folder / "bench"
    bench = load_benchmark("nile_red")
    argv = ["--model", str(ratio), "--data", str(data), "--ablation-model", str(alone)]
    assert bench.main([*argv, "--out", str(out)]) == 0
    result = json.loads((out / "nile_red.json").read_text())
    with_ratio = json.loads((out / "metrics.json").read_text())["per_class"]
    without = json.loads((out / "intensity-only" / "metrics.json").read_text())["per_class"]
    rows = result["ablation"]
    assert set(rows) >= {"early_endosome", "mitochondria", "lysosome"}
    for name, row in rows.items():
        assert row["f1_with_ratio"] == with_ratio[name]["f1"]
        assert row["f1_intensity_only"] == without[name]["f1"]
    assert {f"training ({ratio})", f"training ({alone})"} <= set(result["steps"])
    assert "Ratio ablation" in capsys.readouterr().out


def test_a_pair_that_is_not_an_ablation_is_refused_before_any_work(trained_pair, capsys):
    folder, data, ratio, _ = trained_pair
    bench = load_benchmark("nile_red")
    out = folder / "refused"
    argv = ["--model", str(ratio), "--data", str(data), "--ablation-model", str(ratio)]
    assert bench.main([*argv, "--out", str(out)]) == 2
    assert "intensity alone; their inputs are intensity_ratio and intensity_ratio" in (
        capsys.readouterr().err
    )
    assert not out.exists()
    assert bench.main(["--ablation-model", str(ratio)]) == 2


def test_models_trained_on_other_data_are_no_ablation(trained_pair, tmp_path, capsys):
    folder, data, ratio, alone = trained_pair
    other = shutil.copytree(alone, tmp_path / "other-data")
    card = json.loads((other / "card.json").read_text())
    card["data"]["provenance"]["config_sha256"] = "0" * 64
    (other / "card.json").write_text(json.dumps(card))
    bench = load_benchmark("nile_red")
    argv = ["--model", str(ratio), "--data", str(data), "--ablation-model", str(other)]
    assert bench.main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "trained on differently simulated data" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
