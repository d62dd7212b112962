"""The merge step: predictions of one dataset by several networks as one map, checked voxel
by voxel on hand-made prediction groups, and scored by evaluate against the dataset."""

import json
from pathlib import Path

import attrs
import numpy as np
import pytest
import zarr

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.model import Masks
from subcell.pipeline.dataset import FORMAT, SPLIT_NAMES
from subcell.pipeline.evaluate import evaluate
from subcell.pipeline.run import load_pipeline, run_pipeline
from subcell.pipeline.run.steps_evaluate import evaluate_classes
from subcell.pipeline.run.steps_merge import (
    MergeStep,
    MergeStepConfig,
    apply_exclusive,
    merge_predictions,
)
from subcell.pipeline.segment_dataset import prediction_group

SHAPE = (2, 8, 8)
VOXEL = (200.0, 80.0, 80.0)
# A volume layer (nucleus | cytosol, one per voxel) and two structures a, b that overlap it.
CLASSES = ("nucleus", "cytosol", "a", "b")
TEST = [1, 2]


def _truth(i: int) -> np.ndarray:
    masks = np.zeros((4, *SHAPE), np.uint8)
    masks[0, :, :, : 3 + i] = 1
    masks[1] = 1 - masks[0]
    masks[2, :, 1:3, 1 : 4 + i] = 1
    masks[3, :, 5:7, 2:6] = 1
    return masks


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("merge")
    truths = np.stack([_truth(i) for i in range(3)])
    path = folder / "data.zarr"
    group = zarr.open_group(path, mode="w")
    images = truths.sum(axis=1, keepdims=True).astype(np.float32)
    for name in ("images", "clean"):
        group.create_array(name, data=images, chunks=(1, *images.shape[1:]))
    group.create_array("masks", data=truths, chunks=(1, *truths.shape[1:]))
    group.create_array("instances", data=np.zeros((3, *SHAPE), np.uint32), chunks=(1, *SHAPE))
    group.create_array("tile_stats", data=np.zeros((3, 1, 4)), chunks=(1, 1, 4))
    group.attrs.update(
        {
            "format": FORMAT,
            "layout_ready": True,
            "complete": True,
            "n_images": 3,
            "provenance": {"config_sha256": "hand-made"},
            "voxel_nm": list(VOXEL),
            "class_names": list(CLASSES),
            "channel_names": ["dye"],
            "split": {"train": [0], "val": [], "test": TEST},
            "split_names": list(SPLIT_NAMES),
        }
    )
    return folder, truths[TEST], path


def _group(path: Path, masks: np.ndarray, names, *, source, split="test", images=TEST) -> Path:
    """A prediction group as the segment step writes it (masks: (N, K, Z, Y, X))."""
    first = Masks(masks[0], names, VOXEL)
    group = prediction_group(
        path, (len(masks),), first, source=source, split=split, images=images, instances=False
    )
    group["mask"][:] = masks
    return path


def _inputs(folder: Path, truths: np.ndarray, source: Path) -> dict[str, Path]:
    """Three 'networks': the volume pair, a, and b (exact copies of the truth)."""
    return {
        "volume": _group(folder / "vol.zarr", truths[:, :2], ("nucleus", "cytosol"), source=source),
        "a-net": _group(folder / "a.zarr", truths[:, 2:3], ("a",), source=source),
        "b-net": _group(folder / "b.zarr", truths[:, 3:4], ("b",), source=source),
    }


def _read(path: Path):
    group = zarr.open_group(path, mode="r")
    return np.asarray(group["mask"]), dict(group.attrs)


def test_merge_takes_each_class_from_its_input_in_the_given_order(data, tmp_path):
    _, truths, source = data
    inputs = _inputs(tmp_path, truths, source)
    out = merge_predictions(inputs, tmp_path / "m.zarr", classes=("b", "nucleus", "a"))
    mask, attributes = _read(out)
    assert mask.shape == (2, 3, *SHAPE) and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, truths[:, [3, 0, 2]])
    assert attributes["class_names"] == ["b", "nucleus", "a"]
    assert attributes["merged_from"] == {"b": "b-net", "nucleus": "volume", "a": "a-net"}
    assert attributes["split"] == "test" and attributes["images"] == TEST
    assert attributes["source"] == str(source) and attributes["voxel_nm"] == list(VOXEL)
    assert attributes["format"] == "subcell-prediction"
    assert attributes["complete"] is True and attributes["method"] == "merge"


def test_without_classes_it_is_the_union_in_input_order(data, tmp_path):
    _, truths, source = data
    out = merge_predictions(_inputs(tmp_path, truths, source), tmp_path / "m.zarr")
    mask, attributes = _read(out)
    assert attributes["class_names"] == list(CLASSES)
    np.testing.assert_array_equal(mask, truths)


def test_in_an_exclusive_group_the_class_listed_last_wins():
    semantic = np.zeros((4, 1, 1, 6), np.uint8)
    semantic[0, ..., 0:4] = 1  # x: voxels 0-3
    semantic[1, ..., 2:6] = 1  # y: voxels 2-5 (overlaps x at 2, 3)
    semantic[2, ..., 3:5] = 1  # z: voxels 3-4 (overlaps both at 3)
    semantic[3, ..., :] = 1  # w: in no group, untouched
    names = ("x", "y", "z", "w")
    out = apply_exclusive(semantic.copy(), names, [("x", "y", "z")])
    assert out[0, 0, 0].tolist() == [1, 1, 0, 0, 0, 0]
    assert out[1, 0, 0].tolist() == [0, 0, 1, 0, 0, 1]
    assert out[2, 0, 0].tolist() == [0, 0, 0, 1, 1, 0]
    assert out[3].sum() == 6
    reverse = apply_exclusive(semantic.copy(), names, [("z", "y", "x")])
    assert reverse[0, 0, 0].tolist() == [1, 1, 1, 1, 0, 0]
    assert reverse[1, 0, 0].tolist() == [0, 0, 0, 0, 1, 1]
    assert reverse[2].sum() == 0
    # Every voxel holds at most one class of the group.
    assert out[:3].sum(axis=0).max() == 1 and reverse[:3].sum(axis=0).max() == 1


def test_merge_applies_the_exclusive_groups(data, tmp_path):
    _, truths, source = data
    inputs = _inputs(tmp_path, truths, source)
    both = truths[:, 2].astype(bool) & truths[:, 1].astype(bool)  # a over cytosol
    assert both.sum() > 0
    out = merge_predictions(
        inputs, tmp_path / "m.zarr", exclusive=[("nucleus", "cytosol", "a"), ("b", "a")]
    )
    mask, attributes = _read(out)
    assert attributes["exclusive"] == [["nucleus", "cytosol", "a"], ["b", "a"]]
    np.testing.assert_array_equal(mask[:, 2], truths[:, 2])  # a, listed last, keeps everything
    np.testing.assert_array_equal(mask[:, 1], truths[:, 1] & ~both)
    np.testing.assert_array_equal(mask[:, 3], truths[:, 3])  # a and b never overlap here
    nucleus_a = truths[:, 0].astype(bool) & truths[:, 2].astype(bool)
    assert mask[:, 0].sum() == truths[:, 0].sum() - nucleus_a.sum()


def test_the_step_merges_and_evaluate_scores_the_map_against_the_dataset(data, tmp_path):
    _, truths, source = data
    inputs = _inputs(tmp_path, truths, source)
    step = MergeStep(MergeStepConfig(classes=CLASSES))
    (tmp_path / "step").mkdir()
    masks = step.run({"predictions": inputs}, tmp_path / "step")["masks"]
    assert masks == tmp_path / "step" / "prediction.zarr"
    scores = evaluate(masks, source, split="test")
    assert scores["n_images"] == 2 and scores["pixel_accuracy"] == 1.0
    assert scores["per_class"]["nucleus"]["n_true_px"] == int(truths[:, 0].sum())


def test_evaluate_scores_each_class_of_the_merged_map_as_its_own_mask(data, tmp_path):
    """Structures overlap their volume class: every class is scored on its own."""
    _, truths, source = data
    predicted = truths.copy()
    predicted[:, 2, :, 1, 1] = 0  # a misses 4 voxels (2 planes, 2 images) of the nucleus
    predicted[:, 3, :, 0, 0] = 1  # b claims 4 voxels of the nucleus
    inputs = {
        "volume": _group(tmp_path / "v.zarr", predicted[:, :2], CLASSES[:2], source=source),
        "ab": _group(tmp_path / "ab.zarr", predicted[:, 2:], CLASSES[2:], source=source),
    }
    out = merge_predictions(inputs, tmp_path / "m.zarr", classes=CLASSES)
    scores = evaluate(out, source, split="test")
    assert scores["multilabel"] is True and scores["n_images"] == 2
    per = scores["per_class"]
    voxels = 2 * int(np.prod(SHAPE))
    n_a, n_b = int(truths[:, 2].sum()), int(truths[:, 3].sum())
    assert per["a"]["n_true_px"] == n_a and per["a"]["n_predicted_px"] == n_a - 4
    assert per["a"]["recall"] == pytest.approx((n_a - 4) / n_a)
    assert per["b"]["n_predicted_px"] == n_b + 4
    assert per["b"]["precision"] == pytest.approx(n_b / (n_b + 4))
    for name in ("a", "b"):
        assert per[name]["pixel_accuracy"] == pytest.approx(1 - 4 / voxels)
    # The volume classes are whole (under a and b too), and exact.
    assert per["nucleus"]["n_true_px"] == int(truths[:, 0].sum())
    assert per["nucleus"]["f1"] == 1.0 and per["cytosol"]["moc"] == 1.0
    assert evaluate_classes(out, source, CLASSES, split="test")["per_class"] == per


def test_a_pipeline_merges_by_label_and_scores(data, tmp_path, registry, write):
    folder, truths, source = data
    inputs = _inputs(tmp_path, truths, source)
    path = write(
        f"""
        description: merge three predictions and score the map
        steps:
          merge:
            step: merge
            predictions:
              volume: {inputs["volume"]}
              a-net: {inputs["a-net"]}
              b-net: {inputs["b-net"]}
            classes: [a, b, nucleus, cytosol]
            exclusive: [[nucleus, cytosol], [a, b]]
          score:
            step: evaluate
            prediction: ${{steps.merge.out}}
            truth: {source}
            split: test
            classes: [a, b, nucleus, cytosol]
        """
    )
    pipeline = load_pipeline(path, out=tmp_path / "runs", registry=registry)
    assert pipeline.steps["merge"].settings.exclusive == (("nucleus", "cytosol"), ("a", "b"))
    run_pipeline(pipeline, registry=registry)
    metrics = json.loads((tmp_path / "runs" / "score" / "metrics.json").read_text())
    assert metrics["pixel_accuracy"] == 1.0
    assert metrics["classes"] == ["a", "b", "nucleus", "cytosol"]


# --------------------------------------------------------------------------- errors


def test_a_class_no_input_predicts_is_an_error_listing_what_they_predict(data, tmp_path):
    _, truths, source = data
    inputs = _inputs(tmp_path, truths, source)
    with pytest.raises(ConfigError, match=r"no input predicts ecs; .*volume: nucleus, cytosol"):
        merge_predictions(inputs, tmp_path / "m.zarr", classes=("nucleus", "ecs"))
    with pytest.raises(ConfigError, match=r"exclusive: c is no output class; output classes: a, b"):
        merge_predictions(inputs, tmp_path / "m.zarr", classes=("a", "b"), exclusive=[("a", "c")])


def test_a_class_from_two_inputs_is_an_error_naming_both(data, tmp_path):
    _, truths, source = data
    inputs = _inputs(tmp_path, truths, source)
    inputs["a-again"] = _group(tmp_path / "a2.zarr", truths[:, 2:4], ("a", "b"), source=source)
    with pytest.raises(ConfigError, match="class a is predicted by both 'a-net' and 'a-again'"):
        merge_predictions(inputs, tmp_path / "m.zarr")
    # Taking only classes that one input gives is fine.
    out = merge_predictions({"x": inputs["a-again"], "v": inputs["volume"]}, tmp_path / "m.zarr")
    assert _read(out)[1]["class_names"] == ["a", "b", "nucleus", "cytosol"]


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"split": "val"}, "split"),
        ({"images": [0, 2]}, "images"),
        ({"source": "elsewhere.zarr"}, "source"),
    ],
)
def test_predictions_of_other_images_are_refused_naming_both(data, tmp_path, change, word):
    _, truths, source = data
    inputs = _inputs(tmp_path, truths, source)
    other = {"source": source, "split": "test", "images": TEST} | change
    inputs["b-net"] = _group(tmp_path / "b2.zarr", truths[:, 3:4], ("b",), **other)
    with pytest.raises(VolumeError, match=rf"predictions 'volume' and 'b-net' differ in {word}"):
        merge_predictions(inputs, tmp_path / "m.zarr")


def test_other_shapes_and_non_predictions_are_refused(data, tmp_path):
    _, truths, source = data
    inputs = _inputs(tmp_path, truths, source)
    inputs["b-net"] = _group(tmp_path / "b3.zarr", truths[:, 3:4, :1], ("b",), source=source)
    with pytest.raises(VolumeError, match="'volume' and 'b-net' differ in shape"):
        merge_predictions(inputs, tmp_path / "m.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeError, match="predictions.x: .* is not a prediction group"):
        merge_predictions({"x": tmp_path / "empty"}, tmp_path / "m.zarr")
    with pytest.raises(ConfigError, match="give it prediction groups"):
        merge_predictions({}, tmp_path / "m.zarr")
    zarr.open_group(inputs["a-net"], mode="r+").attrs["complete"] = False  # interrupted
    with pytest.raises(VolumeError, match="predictions.a-net: .* is incomplete"):
        merge_predictions(inputs, tmp_path / "m.zarr")


def test_a_segment_step_folder_is_accepted_for_its_prediction(data, tmp_path):
    _, truths, source = data
    (tmp_path / "seg").mkdir()
    _group(tmp_path / "seg" / "prediction.zarr", truths[:, 2:3], ("a",), source=source)
    out = merge_predictions({"a": tmp_path / "seg"}, tmp_path / "m.zarr")
    np.testing.assert_array_equal(_read(out)[0], truths[:, 2:3])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"classes": ("a", "b", "a")}, "'classes' names a more than once"),
        ({"exclusive": (("a",),)}, "group 0 .* at least two classes"),
        ({"exclusive": (("a", "b"), ("c", "a"))}, "a is in groups 0 and 1"),
        ({"exclusive": (("a", "b", "b"),)}, "'exclusive' names b more than once"),
    ],
)
def test_config_validation_names_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        MergeStepConfig(**fields)
    assert attrs.has(MergeStepConfig) and MergeStepConfig().classes == ()
