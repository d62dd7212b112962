"""benchmarks/table1.py on a tiny dataset: the JSON it writes, and that its pooled scores are
exactly what subcell.core.metrics gives on the same predictions (so the benchmark cannot
silently mis-score). Speed is never asserted here."""

import json

import numpy as np
import pytest
from benchmark_modules import load_benchmark

from subcell import models
from subcell.core.metrics import class_index_map, confusion_matrix, pooled_semantic_scores
from subcell.core.model import Volume
from subcell.pipeline.config import load_config
from subcell.pipeline.dataset import open_dataset, write_dataset
from subcell.pipeline.segment import segment_volume

# Twelve 64 x 64 images of bright beads (test split: 3 images); 80 nm pixels.
SIMULATE = """\
step: simulate
seed: 5
tile_px: [64, 64]
n_tiles: 12
snr: null
background_photons: [10, 10]
structures:
  - structure: {plugin: beads, count: [3, 6], diameter_nm: 400, margin_nm: 400,
                min_separation_nm: 600}
    labelling: {plugin: volume, density_per_um3: 20000, photons_per_emitter: 30}
microscope: {plugin: epi, pixel_nm: 80, psf_radius_nm: 1500}
ground_truth: {plugin: geometry_projection}
"""


@pytest.fixture(scope="module")
def table1():
    return load_benchmark("table1")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table1-data")
    (folder / "sim.yaml").write_text(SIMULATE)
    return write_dataset(load_config(folder / "sim.yaml").config, folder / "beads.zarr").path


@pytest.fixture(scope="module")
def standin(dataset, tmp_path_factory):
    """An untrained tiny U-Net with a valid card for the beads data: a stand-in model."""
    card = {
        "format": models.CARD_FORMAT,
        "name": "standin-beads",
        "description": "untrained stand-in for tests",
        "network": {
            "plugin": "unet",
            "config": {
                "spatial_dims": 2,
                "in_channels": 1,
                "out_channels": 1,
                "channels": [4, 8],
                "strides": [2],
                "num_res_units": 0,
            },
        },
        "head": "sigmoid",
        "classes": ["beads"],
        "in_channels": 1,
        "channel_names": list(open_dataset(dataset).channel_names),
        "voxel_nm": list(open_dataset(dataset).voxel_nm),
        "pixel_nm": 80.0,
        "normalization": {"method": "percentile", "low_percentile": 1.0, "high_percentile": 99.8},
        "patch_px": [64, 64],
        "input_multiple_px": 2,
        "threshold": 0.5,
    }
    import torch

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("standin") / "model"
    return models.save(out, models.build_network(card), card)


@pytest.fixture(scope="module")
def report(table1, dataset, standin, tmp_path_factory):
    out = tmp_path_factory.mktemp("table1-out") / "table1.json"
    argv = ["--mito-data", str(dataset), "--mito-model", str(standin), "--only"]
    argv += ["mitochondria", "--methods", "otsu,otsu:smooth_sigma_px=1", "--json", str(out)]
    assert table1.main(argv) == 0
    return json.loads(out.read_text())


def test_json_has_the_table_and_scores_in_range(report):
    assert {"benchmark", "paper", "settings", "tasks", "problems"} <= set(report)
    assert report["problems"] == []
    assert report["paper"]["mitochondria"]["otsu"] == [0.82, 0.79]
    assert report["paper"]["vesicles"]["unet"] == [0.89, 0.91]
    task = report["tasks"]["mitochondria"]
    assert set(task["methods"]) == {
        "otsu",
        "otsu:smooth_sigma_px=1",
        "standin-beads",
        "standin-beads+tta",
    }
    assert task["model"] == "standin-beads"
    assert task["data"]["n_test"] == 3 and task["data"]["voxel_nm"][-1] == 80.0
    for name, record in task["methods"].items():
        assert 0.0 <= record["miou"] <= 1.0, name
        assert 0.0 <= record["f1"] <= 1.0, name
        assert record["n_images"] == 3 and len(record["confusions"]) == 3
        assert record["seconds_per_image"] > 0
    assert task["methods"]["otsu"]["paper"] == [0.82, 0.79]
    assert task["methods"]["standin-beads"]["paper"] == [0.92, 0.94]
    assert isinstance(task["target_met"], bool)
    # An untrained network cannot meet the target.
    assert task["target_met"] is False and task["target_met_tta"] is False
    # A random network is not symmetric: the eight views change its answer.
    plain, augmented = task["methods"]["standin-beads"], task["methods"]["standin-beads+tta"]
    assert plain["confusions"] != augmented["confusions"]


def test_otsu_score_equals_core_metrics_on_the_same_predictions(report, dataset):
    data = open_dataset(dataset)
    confusions = []
    for index in data.split("test"):
        volume = Volume(np.asarray(data.images[index]), data.voxel_nm)
        predicted = class_index_map(segment_volume(volume, "otsu").semantic)
        truth = class_index_map(np.asarray(data.masks[index]))
        confusions.append(confusion_matrix(truth, predicted, 2))
    expected = pooled_semantic_scores(confusions, ["background", "beads"])
    otsu = report["tasks"]["mitochondria"]["methods"]["otsu"]
    assert otsu["miou"] == pytest.approx(expected["miou"], abs=1e-12)
    assert otsu["f1"] == pytest.approx(expected["f1"], abs=1e-12)
    assert otsu["confusions"] == [c.tolist() for c in confusions]
    # mIoU includes the background: the mean of the two IoUs.
    iou = expected["iou"]
    assert otsu["miou"] == pytest.approx((iou["background"] + iou["beads"]) / 2, abs=1e-12)


def test_subset_score_pools_only_the_subset(table1, report):
    record = report["tasks"]["mitochondria"]["methods"]["otsu"]
    first = record["indices"][:1]
    expected = pooled_semantic_scores([np.asarray(record["confusions"][0])], ["b", "f"])["miou"]
    assert table1.subset_miou(record, first) == pytest.approx(expected, abs=1e-12)


def test_classes_are_matched_by_name_or_scored_as_binary(table1):
    assert table1.aligned_classes(["foreground"], ["mitochondria"]) == [0]
    assert table1.aligned_classes(["b", "a"], ["a", "b"]) == [1, 0]
    assert table1.aligned_classes(["x", "y"], ["a", "b"]) is None
    semantic = np.zeros((2, 1, 2, 2), np.uint8)
    semantic[0, 0, 0, 0] = 1  # method class "b" -> dataset class 2
    semantic[1, 0, 1, 1] = 1  # method class "a" -> dataset class 1
    mapped = table1.prediction_map(semantic, [1, 0], 2)
    assert mapped[0].tolist() == [[2, 0], [0, 1]]
    assert table1.prediction_map(semantic, None, 2)[0].tolist() == [[1, 0], [0, 1]]


def test_a_dataset_with_the_training_seed_but_another_config_is_flagged(table1, dataset):
    data = open_dataset(dataset)
    seed, digest = data.attrs["seed"], data.attrs["config_sha256"]
    card = {"data": {"provenance": {"seed": seed, "config_sha256": digest}}}
    assert table1.overlaps_training(card, data) is False  # the model's own dataset
    card["data"]["provenance"]["config_sha256"] = "another"
    assert table1.overlaps_training(card, data) is True  # same images, other split
    card["data"]["provenance"]["seed"] = seed + 1000
    assert table1.overlaps_training(card, data) is False
    assert table1.overlaps_training({}, data) is False
