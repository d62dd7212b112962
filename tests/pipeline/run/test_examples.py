"""The example pipelines in configs/pipelines validate; their tiny variants run."""

import json
from pathlib import Path

import pytest

from subcell.pipeline.run import load_pipeline, make_plan, run_pipeline

ROOT = Path(__file__).resolve().parents[3]
PIPELINES = ROOT / "configs" / "pipelines"
EXAMPLES = sorted(PIPELINES.glob("*.yaml")) + sorted(PIPELINES.glob("tiny/*.yaml"))


def test_the_seed_examples_and_their_tiny_variants_exist():
    names = {p.relative_to(PIPELINES).as_posix() for p in EXAMPLES}
    for name in ("seed1-table1", "seed1-transfer", "seed1-morphology"):
        assert {f"{name}.yaml", f"tiny/{name}.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(PIPELINES).as_posix())
def test_every_example_pipeline_validates(path, registry, tmp_path):
    pipeline = load_pipeline(path, out=tmp_path / "out", registry=registry)
    plan = make_plan(pipeline)
    assert plan.to_run == list(pipeline.steps)
    assert pipeline.description
    assert not (tmp_path / "out").exists()


def test_table1_pipeline_has_every_method_on_both_datasets(registry, tmp_path):
    pipeline = load_pipeline(PIPELINES / "seed1-table1.yaml", out=tmp_path, registry=registry)
    kinds = [step.kind for step in pipeline.steps.values()]
    assert {k: kinds.count(k) for k in set(kinds)} == {
        "simulate": 2,
        "train": 2,
        "segment": 10,
        "evaluate": 10,
        "report": 1,
    }
    labels = set(pipeline.steps["table1"].inputs["metrics"])
    methods = ("ours", "otsu", "adaptive", "backprop", "morphological")
    assert labels == {f"{d}/{m}" for d in ("mitochondria", "vesicles") for m in methods}
    sim = pipeline.steps["sim-mito"].settings.config
    assert sim.n_tiles == 7000 and sim.montage  # configs/sim/epi1-mito.yaml, as in the paper
    tiny = load_pipeline(PIPELINES / "tiny" / "seed1-table1.yaml", out=tmp_path, registry=registry)
    assert tiny.steps["sim-mito"].settings.config.n_tiles == 10
    assert tiny.steps["train-vesicles"].settings.config.network.config.channels == (8, 16)
    # The tiny variant keeps the full configs underneath: only the set keys differ.
    assert tiny.steps["sim-mito"].settings.config.snr == sim.snr


def _run(name, registry, tmp_path):
    path = PIPELINES / "tiny" / f"{name}.yaml"
    result = run_pipeline(load_pipeline(path, out=tmp_path, registry=registry), registry=registry)
    assert set(result.seconds) == set(result.plan.pipeline.steps)
    return result


@pytest.mark.slow
def test_tiny_table1_runs_and_writes_table1(registry, tmp_path):
    _run("seed1-table1", registry, tmp_path)
    scores = json.loads((tmp_path / "table1" / "scores.json").read_text())
    assert len(scores) == 10
    assert all(0.0 <= row["miou"] <= 1.0 for row in scores.values())
    report = (tmp_path / "table1" / "report.md").read_text()
    for method in ("ours", "otsu", "adaptive", "backprop", "morphological"):
        assert f"| {method} | " in report
    assert "mitochondria mIoU" in report and "vesicles F1" in report


@pytest.mark.slow
def test_tiny_transfer_fine_tunes_from_the_pretrained_model(registry, tmp_path):
    _run("seed1-transfer", registry, tmp_path)
    card = json.loads((tmp_path / "finetune" / "model" / "card.json").read_text())
    assert card["training"]["init_from"]["model"].endswith("pretrain/model")
    scores = json.loads((tmp_path / "report" / "scores.json").read_text())
    assert set(scores) == {"pre-trained (Epi 1)", "fine-tuned", "from scratch"}


@pytest.mark.slow
def test_tiny_morphology_compares_the_two_conditions(registry, tmp_path):
    _run("seed1-morphology", registry, tmp_path)
    comparison = json.loads((tmp_path / "compare" / "comparison" / "comparison.json").read_text())
    assert set(comparison["conditions"]) == {"networked", "fragmented"}
    assert all(c["n_images"] == 4 for c in comparison["conditions"].values())
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| networked | 4 |" in report and "compare_fractions.png" in report
