"""The example pipelines in configs/pipelines validate; their tiny variants run."""

import json
from pathlib import Path

import attrs
import numpy as np
import pytest

from subcell.pipeline.run import load_pipeline, make_plan, run_pipeline

ROOT = Path(__file__).resolve().parents[3]
PIPELINES = ROOT / "configs" / "pipelines"
EXAMPLES = sorted(PIPELINES.glob("*.yaml")) + sorted(PIPELINES.glob("tiny/*.yaml"))


def test_the_seed_examples_and_their_tiny_variants_exist():
    names = {p.relative_to(PIPELINES).as_posix() for p in EXAMPLES}
    for name in ("seed1-table1", "seed1-transfer", "seed1-morphology", "cellcutter", "nile-red"):
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


def _kinds(pipeline) -> dict[str, int]:
    kinds = [step.kind for step in pipeline.steps.values()]
    return {k: kinds.count(k) for k in set(kinds)}


def test_cellcutter_pipeline_runs_cellcutter_and_its_baseline_on_the_phantom(registry, tmp_path):
    pipeline = load_pipeline(PIPELINES / "cellcutter.yaml", out=tmp_path, registry=registry)
    assert _kinds(pipeline) == {"simulate": 1, "cellcutter": 2, "evaluate": 2, "report": 1}
    sim = pipeline.steps["sim"].settings.config
    assert sim.step == "phantom" and sim.phantom.plugin == "clumped_cells"
    assert sim.n_tiles == 2 and sim.tile_px == (1024, 1024)  # clumped-epi-1024
    cut, baseline = pipeline.steps["cellcutter"].settings, pipeline.steps["watershed"].settings
    assert not cut.baseline and baseline.baseline
    network = cut.config.method.config.network  # configs/cellcutter/method.yaml
    assert network.epochs == 300 and network.num_res_units == 0 and network.rollback_rise == 0
    assert all(pipeline.steps[f"eval-{n}"].settings.instances for n in ("cellcutter", "watershed"))
    assert set(pipeline.steps["report"].inputs["metrics"]) == {"cellcutter", "marker watershed"}
    tiny = load_pipeline(PIPELINES / "tiny" / "cellcutter.yaml", out=tmp_path, registry=registry)
    assert _kinds(tiny) == _kinds(pipeline)
    assert tiny.steps["sim"].settings.config.tile_px == (128, 128)
    assert tiny.steps["sim"].settings.config.n_tiles == 2
    assert tiny.steps["cellcutter"].settings.config.method.config.network.epochs == 3


NILE_RED_GROUPS = ("volume", "er", "pm", "golgi", "ld", "mito", "pero", "ee", "le", "lyso")
NILE_RED_ABLATION = ("ee", "mito")  # trained again on the intensity image alone


def test_nile_red_pipeline_trains_scores_and_reports_every_group(registry, tmp_path):
    from subcell.plugins.nile_red.compartments import CLASS_NAMES, PAINT_ORDER, VOLUME_CLASSES

    pipeline = load_pipeline(PIPELINES / "nile-red.yaml", out=tmp_path, registry=registry)
    groups = (*NILE_RED_GROUPS, "multilabel")
    ablation = tuple(f"{g}-intensity" for g in NILE_RED_ABLATION)
    assert _kinds(pipeline) == {
        "simulate": 1,
        "train": len(groups) + len(ablation),
        "segment": len(groups) + len(ablation),
        "evaluate": len(groups) + len(ablation) + 1,  # + eval-merged
        "merge": 1,  # the ten group predictions as one map
        "report": 1,
    }
    sim = pipeline.steps["sim"].settings.config
    assert sim.phantom.plugin == "nile_red_cell" and sim.n_tiles == 200
    for group in (*NILE_RED_GROUPS, *ablation):
        train = pipeline.steps[f"train-{group}"].settings.config
        assert train.network.plugin == "attention_unet"
        assert pipeline.steps[f"seg-{group}"].settings.split == "test"
        # Each network is scored on the classes it learned.
        assert pipeline.steps[f"eval-{group}"].settings.classes == train.classes
    assert pipeline.steps["train-multilabel"].settings.config.classes == CLASS_NAMES
    # The ablation is the ratio network without the ratio image, nothing else changed.
    for group in NILE_RED_ABLATION:
        ratio = pipeline.steps[f"train-{group}"].settings.config
        alone = pipeline.steps[f"train-{group}-intensity"].settings.config
        assert ratio.input.transform == "intensity_ratio" and alone.input.transform == "intensity"
        assert attrs.evolve(alone, input=ratio.input, name=ratio.name) == attrs.evolve(
            ratio, description=alone.description
        )
    # One map of the ten group predictions: every compartment from exactly one network, in
    # the dataset's order, by the ground truth's rules.
    merge = pipeline.steps["merge"]
    assert set(merge.inputs["predictions"]) == {
        "VOLUME-net", "ER-net", "PM-net", "GOLGI-net", "LD-net", "MITO-net", "PERO-net",
        "EE-net", "LE-net", "LYSO-net",
    }  # fmt: skip
    assert merge.settings.classes == CLASS_NAMES
    assert merge.settings.exclusive == (VOLUME_CLASSES, PAINT_ORDER)
    given = [
        c for g in NILE_RED_GROUPS for c in pipeline.steps[f"train-{g}"].settings.config.classes
    ]
    assert sorted(given) == sorted(CLASS_NAMES)  # no compartment twice, none missing
    # Both 15-compartment predictions are scored on all 15 (no class subset).
    assert pipeline.steps["eval-merged"].inputs["prediction"].step == "merge"
    assert pipeline.steps["eval-merged"].settings.classes == ()
    assert pipeline.steps["eval-multilabel"].settings.classes == ()
    metrics = pipeline.steps["report"].inputs["metrics"]
    assert len(metrics) == len(groups) + len(ablation) + 1
    assert {"all 15 (merged)", "EE-net (intensity only)", "MITO-net (intensity only)"} <= set(
        metrics
    )
    tiny = load_pipeline(PIPELINES / "tiny" / "nile-red.yaml", out=tmp_path, registry=registry)
    assert _kinds(tiny) == _kinds(pipeline)
    assert tiny.steps["sim"].settings.config.tile_px == (64, 64)
    for group in (*groups, *ablation):
        train = tiny.steps[f"train-{group}"].settings.config
        assert train.network.config.channels == (4, 8) and train.epochs == 1
        full = pipeline.steps[f"train-{group}"].settings.config
        assert (train.classes, train.input) == (full.classes, full.input)
    assert tiny.steps["merge"].settings == merge.settings


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


@pytest.mark.slow
def test_tiny_cellcutter_trains_on_each_image_and_scores_both_methods(registry, tmp_path):
    import zarr

    _run("cellcutter", registry, tmp_path)
    cut = zarr.open_group(str(tmp_path / "cellcutter" / "prediction.zarr"), mode="r")
    ws = zarr.open_group(str(tmp_path / "watershed" / "prediction.zarr"), mode="r")
    assert cut.attrs["method"] == "cellcutter" and ws.attrs["method"] == "marker_watershed"
    # Both start from the same markers; cellcutter trained (a loss per image), the baseline not.
    assert cut.attrs["markers"] == ws.attrs["markers"] and min(cut.attrs["markers"]) > 0
    assert all(isinstance(loss, float) for loss in cut.attrs["final_loss"])
    assert cut["instances"].shape == ws["instances"].shape == (2, 1, 128, 128)
    scores = json.loads((tmp_path / "report" / "scores.json").read_text())
    assert set(scores) == {"cellcutter", "marker watershed"}
    assert scores["marker watershed"]["ap50"] >= 0.35
    assert all(0.0 <= v <= 1.0 for row in scores.values() for v in row.values())
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| marker watershed | " in report and "AP@0.5" in report


@pytest.mark.slow
def test_tiny_nile_red_scores_each_group_on_its_own_compartments(registry, tmp_path):
    import zarr

    from subcell.pipeline.dataset import open_dataset
    from subcell.plugins.nile_red.compartments import CLASS_NAMES

    _run("nile-red", registry, tmp_path)
    volume = json.loads((tmp_path / "eval-volume" / "metrics.json").read_text())
    assert volume["classes"] == ["nucleus", "cytosol", "ecs"]
    assert set(volume["per_class"]) == {"background", "nucleus", "cytosol", "ecs"}
    assert volume["n_images"] == 1  # the test split of three tiny cells
    merged = zarr.open_group(str(tmp_path / "merge" / "prediction.zarr"), mode="r")
    assert merged["mask"].shape == (1, 15, 8, 64, 64)
    assert merged.attrs["merged_from"]["mitochondria"] == "MITO-net"
    mask = np.asarray(merged["mask"][0])
    names = list(merged.attrs["class_names"])
    volume_of = [names.index(c) for c in ("nucleus", "cytosol", "ecs")]
    assert mask[volume_of].sum(axis=0).max() <= 1  # one volume class per voxel at most
    assert np.delete(mask, volume_of, axis=0).sum(axis=0).max() <= 1  # one structure
    data = open_dataset(tmp_path / "sim" / "data.zarr")
    truth = np.asarray(data.masks[data.split("test")[0]]).reshape(15, -1).sum(axis=1)
    for name in ("eval-merged", "eval-multilabel"):
        scores = json.loads((tmp_path / name / "metrics.json").read_text())
        assert set(CLASS_NAMES) <= set(scores["per_class"])
        # Every compartment is scored as its own mask, none hidden under its volume class:
        # the true pixels are the ground truth's, channel by channel.
        assert scores["multilabel"] is True
        found = [scores["per_class"][c]["n_true_px"] for c in CLASS_NAMES]
        assert found == truth.tolist() and truth[3] > 0  # the ER has pixels
    scores = json.loads((tmp_path / "report" / "scores.json").read_text())
    assert len(scores) == 14 and "LD-net" in scores and "all 15 (multi-label)" in scores
    assert {"all 15 (merged)", "EE-net (intensity only)", "MITO-net (intensity only)"} <= set(
        scores
    )
    # Pixel accuracy counts the background too: defined for every network, even a tiny one.
    assert all(0.0 <= row["pixel_accuracy"] <= 1.0 for row in scores.values())
