"""The evaluate step's ``classes``: a prediction of some of a dataset's classes (a Nile Red
group network) scored against those classes alone, checked against hand counts and against
``subcell evaluate`` where both apply."""

from pathlib import Path

import numpy as np
import pytest
import zarr

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.model import Masks
from subcell.pipeline.dataset import FORMAT, SPLIT_NAMES
from subcell.pipeline.evaluate import evaluate
from subcell.pipeline.run import load_pipeline, run_pipeline
from subcell.pipeline.run.steps_evaluate import evaluate_classes
from subcell.pipeline.run.steps_segment import prediction_group

SHAPE = (2, 16, 16)
CLASSES = ("cell", "a", "b")  # a and b lie inside the cell, as organelles in a cytosol


def _truth(i: int) -> np.ndarray:
    """Image ``i``: a cell, object a (columns 3-5) and object b, which a partly covers."""
    masks = np.zeros((3, *SHAPE), np.uint8)
    masks[0, :, 2:14, 2:14] = 1
    masks[1, :, 3 + i : 7 + i, 3:6] = 1
    masks[2, :, 6:10, 5 + i : 9 + i] = 1
    masks[2] &= 1 - masks[1]
    return masks


def _dataset(path: Path, truths: np.ndarray) -> Path:
    n = len(truths)
    group = zarr.open_group(path, mode="w")
    images = truths.sum(axis=1, keepdims=True).astype(np.float32)
    group.create_array("images", data=images, chunks=(1, *images.shape[1:]))
    group.create_array("clean", data=images, chunks=(1, *images.shape[1:]))
    group.create_array("masks", data=truths, chunks=(1, *truths.shape[1:]))
    group.create_array("instances", data=np.zeros((n, *SHAPE), np.uint32), chunks=(1, *SHAPE))
    group.create_array("tile_stats", data=np.zeros((n, 1, 4)), chunks=(1, 1, 4))
    group.attrs.update(
        {
            "format": FORMAT,
            "layout_ready": True,
            "complete": True,
            "n_images": n,
            "provenance": {"config_sha256": "hand-made"},
            "voxel_nm": [200.0, 80.0, 80.0],
            "class_names": list(CLASSES),
            "channel_names": ["dye"],
            "split": {"train": [0, 1], "val": [2], "test": [3, 4]},
            "split_names": list(SPLIT_NAMES),
        }
    )
    return path


def _prediction(path: Path, masks: np.ndarray, names, images) -> Path:
    first = Masks(masks[0], names, (200.0, 80.0, 80.0))
    group = prediction_group(
        path, (len(masks),), first, source=path, split="test", images=images, instances=False
    )
    group["mask"][:] = masks
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    truths = np.stack([_truth(i) for i in range(5)])
    folder = tmp_path_factory.mktemp("classes")
    return folder, truths, _dataset(folder / "data.zarr", truths)


def test_a_class_subset_is_scored_against_those_classes_only(data):
    folder, truths, path = data
    test = [3, 4]
    # A prediction of a and b that is right except one column of a shifted into b.
    predicted = truths[test][:, 1:].copy()
    predicted[:, 0, :, :, 3] = 0
    predicted[:, 1, :, :, 3] |= truths[test][:, 1, :, :, 3]
    pred = _prediction(folder / "ab.zarr", predicted, ("a", "b"), test)
    metrics = evaluate_classes(pred, path, ("a", "b"), split="test")
    assert metrics["classes"] == ["a", "b"] and metrics["n_images"] == 2
    # By hand: the cell class plays no part; IoU of a = shared / union of the two masks.
    true_a, pred_a = truths[test][:, 1] > 0, predicted[:, 0] > 0
    iou_a = (true_a & pred_a).sum() / (true_a | pred_a).sum()
    assert metrics["iou"]["a"] == pytest.approx(iou_a)
    assert 0.5 < metrics["iou"]["a"] < 1.0
    assert metrics["per_class"]["b"]["n_true_px"] == int(truths[test][:, 2].sum())
    # evaluate() refuses the same pair: 2 classes against 3.
    with pytest.raises(VolumeError, match="2 classes"):
        evaluate(pred, path, split="test")


def test_all_classes_give_what_subcell_evaluate_gives(data):
    folder, truths, path = data
    pred = _prediction(folder / "all.zarr", truths[[3, 4]], CLASSES, [3, 4])
    ours = evaluate_classes(pred, path, CLASSES, split="test")
    theirs = evaluate(pred, path, split="test")
    # a and b lie in the cell: overlapping classes are scored one by one (multi-label)
    assert ours["multilabel"] is theirs["multilabel"] is True
    for key in ("miou", "f1", "precision", "recall", "pixel_accuracy", "iou", "per_class"):
        assert ours[key] == theirs[key]
    assert ours["miou"] == 1.0 and ours["pixel_accuracy_min"] == 1.0


def test_the_step_refuses_what_does_not_match(data, write, registry):
    folder, truths, path = data
    pred = _prediction(folder / "ab2.zarr", truths[[3, 4]][:, 1:], ("a", "b"), [3, 4])
    with pytest.raises(VolumeError, match="no class c; its classes: cell, a, b"):
        evaluate_classes(pred, path, ("a", "c"), split="test")
    with pytest.raises(VolumeError, match="predicts a, b; classes names b, a"):
        evaluate_classes(pred, path, ("b", "a"), split="test")
    with pytest.raises(VolumeError, match="2 items, but the ground truth's whole dataset holds 5"):
        evaluate_classes(pred, path, ("a", "b"))
    pipeline = write(
        f"""\
        steps:
          ev:
            step: evaluate
            prediction: {pred}
            truth: {path}
            split: test
            classes: [a, b]
        """
    )
    result = run_pipeline(load_pipeline(pipeline, registry=registry), registry=registry)
    assert result.records["ev"]["complete"]
    bad = write(
        f"""\
        steps:
          ev: {{step: evaluate, prediction: {pred}, truth: {path}, classes: [a], instances: true}}
        """,
        name="bad.yaml",
    )
    with pytest.raises(ConfigError, match="instance scores are not computed for a class subset"):
        load_pipeline(bad, registry=registry)
