"""benchmarks/nile_red.py's scoring on made-up metrics: the issue's targets per compartment,
per-class pixel accuracy from either kind of metrics.json, PASS/FAIL, the ratio ablation and
the tables. Nothing is trained or run here."""

import pytest
from benchmark_modules import load_benchmark

from subcell.core.metrics import confusion_matrix, semantic_scores
from subcell.plugins.nile_red.compartments import CLASS_NAMES


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("nile_red")


def _row(acc, moc, f1=0.8):
    return {
        "pixel_accuracy": acc,
        "f1": f1,
        "precision": f1,
        "recall": f1,
        "moc": moc,
        "n_true_px": 10,
        "n_predicted_px": 10,
    }


def _multilabel(rows: dict) -> dict:
    """A metrics.json of the multi-label kind (per_class carries pixel_accuracy)."""
    return {"multilabel": True, "per_class": rows}


def _compartments(bench, rows: dict) -> dict:
    return bench.compartment_scores(_multilabel(rows))


def test_the_targets_are_the_issues(bench):
    goals = bench.targets(CLASS_NAMES)
    assert len(goals) == 15
    assert all(g["pixel_accuracy"] == 0.917 for g in goals.values())
    high = {name for name, g in goals.items() if g["manders"] == 0.7}
    assert high == {"er", "lipid_droplet", "cytosol", "nucleus", "ecs"}
    assert all(g["manders"] == 0.5 for name, g in goals.items() if name not in high)


@pytest.mark.parametrize(
    ("name", "acc", "moc", "verdict"),
    [
        ("er", 0.917, 0.71, {"pixel_accuracy": True, "manders": True, "pass": True}),
        ("er", 0.9169, 0.9, {"pixel_accuracy": False, "manders": True, "pass": False}),
        ("er", 0.99, 0.7, {"pixel_accuracy": True, "manders": False, "pass": False}),  # > 0.7
        ("golgi", 0.99, 0.51, {"pixel_accuracy": True, "manders": True, "pass": True}),
        ("golgi", 0.99, 0.5, {"pixel_accuracy": True, "manders": False, "pass": False}),
        ("golgi", 0.99, None, {"pixel_accuracy": True, "manders": None, "pass": False}),
    ],
)
def test_a_compartment_passes_only_both_targets(bench, name, acc, moc, verdict):
    row = bench.compartment_scores(_multilabel({name: _row(acc, moc)}))[name]
    assert bench.check(row, bench.targets([name])[name]) == verdict


def test_pixel_accuracy_comes_from_per_class_or_the_confusion_matrix(bench):
    # 10 voxels: truth 0 0 1 1 1 2 2 0 0 0, prediction 0 1 1 1 0 2 0 0 0 0.
    import numpy as np

    truth = np.array([0, 0, 1, 1, 1, 2, 2, 0, 0, 0])
    pred = np.array([0, 1, 1, 1, 0, 2, 0, 0, 0, 0])
    metrics = semantic_scores(confusion_matrix(truth, pred, 3), ("background", "a", "b"))
    # class a: wrong at voxels 1 (FP) and 4 (FN); class b: voxel 6 (FN).
    assert bench.class_accuracy(metrics, "a") == pytest.approx(0.8)
    assert bench.class_accuracy(metrics, "b") == pytest.approx(0.9)
    without = metrics | {
        "per_class": {k: {x: y for x, y in v.items() if x != "pixel_accuracy"} for k, v in
                      metrics["per_class"].items()}
    }  # fmt: skip
    assert bench.class_accuracy(without, "a") == pytest.approx(0.8)  # from the matrix
    rows = bench.compartment_scores(metrics)
    assert set(rows) == {"a", "b"}  # no background row
    assert rows["b"]["manders"] == metrics["per_class"]["b"]["moc"]
    assert rows["b"]["recall"] == pytest.approx(0.5)


def test_the_table_counts_passes_and_flags_missing_and_impossible_scores(bench):
    rows = {name: _row(0.95, 0.8) for name in CLASS_NAMES}
    rows["er"] = _row(0.95, 0.6)  # below 0.7: fails
    rows["golgi"] = _row(0.90, 0.9)  # below 0.917: fails
    del rows["lysosome"]
    table = bench.score_table(_compartments(bench, rows), CLASS_NAMES)
    assert list(table["compartments"]) == list(CLASS_NAMES)
    assert table["passed"] == 12 and table["total"] == 15
    assert table["compartments"]["lysosome"] is None
    assert bench.problems_of({"merged": table}) == ["merged/lysosome: no scores"]
    rows["lysosome"] = _row(1.2, 0.8)
    problems = bench.problems_of({"x": bench.score_table(_compartments(bench, rows), CLASS_NAMES)})
    assert problems == ["x/lysosome: pixel_accuracy = 1.2"]
    lines = bench.format_source("merged", table)
    verdicts = {line[0]: line[-1] for line in lines[1:]}
    assert verdicts["nucleus"] == "PASS" and verdicts["er"] == "FAIL"
    assert verdicts["lysosome"] == "no scores"


def test_the_ablation_sets_f1_with_and_without_the_ratio_beside_the_paper(bench):
    metrics = {
        "eval-ee": {"per_class": {"early_endosome": {"f1": 0.6}}},
        "eval-ee-intensity": {"per_class": {"early_endosome": {"f1": 0.45}}},
        "eval-mito": {"per_class": {"mitochondria": {"f1": 0.7}}},
    }
    rows = bench.ablation(metrics)
    ee, mito = rows["early_endosome"], rows["mitochondria"]
    assert (ee["f1_with_ratio"], ee["f1_intensity_only"]) == (0.6, 0.45)
    assert ee["gain"] == pytest.approx(0.15)
    assert (ee["paper_with_ratio"], ee["paper_intensity_only"]) == (0.59, 0.43)
    assert mito["f1_intensity_only"] is None and mito["gain"] is None  # step missing
    assert (mito["paper_with_ratio"], mito["paper_intensity_only"]) == (0.63, 0.62)


def test_the_model_ablation_compares_two_models_per_small_organelle(bench):
    with_ratio = {"per_class": {"early_endosome": {"f1": 0.3}, "lysosome": {"f1": 0.5}}}
    intensity_only = {"per_class": {"early_endosome": {"f1": 0.2}, "lysosome": {"f1": 0.6}}}
    rows = bench.model_ablation(with_ratio, intensity_only)
    assert list(rows)[:2] == ["early_endosome", "mitochondria"]  # the paper's first
    assert set(bench.ABLATION_MORE) <= set(rows)
    assert rows["early_endosome"]["gain"] == pytest.approx(0.1)
    assert rows["lysosome"]["gain"] == pytest.approx(-0.1)  # a loss is reported as one
    assert rows["lysosome"]["paper_with_ratio"] is None
    assert rows["mitochondria"]["gain"] is None  # not scored: no gain made up
    text = bench.report({"what": "x", "sources": {}, "ablation": rows})
    assert "lysosome        0.500     0.600         -0.100  —" in text


def test_the_report_has_every_section(bench):
    rows = {name: _row(0.95, 0.8) for name in CLASS_NAMES}
    result = {
        "what": "made up",
        "sources": {"merged": bench.score_table(_compartments(bench, rows), CLASS_NAMES)},
        "ablation": bench.ablation({}),
        "training": {"available": "cpu", "steps": {"train-ee": {"device": "cuda:0"}}},
        "steps": {"train-ee": {"seconds": 12.0, "ran": False, "device": None}},
        "problems": [],
    }
    text = bench.report(result)
    assert "15 of 15 pass" in text and "early_endosome" in text and "0.59" in text
    assert "train-ee  12.0     reused   cuda:0" in text
    page = bench.report(result, markdown=True)
    assert page.startswith("# Nile Red benchmark") and "| nucleus | 0.950 |" in page
