"""Segmentation metrics: hand-worked values, independent references, AP/PQ on known shapes."""

import json
import math

import numpy as np
import pytest

from subcell.core.metrics import (
    DEFAULT_THRESHOLDS,
    class_index_map,
    confusion_matrix,
    instance_counts,
    instance_scores,
    mean_iou,
    pool_instance_counts,
    pooled_semantic_scores,
    semantic_scores,
)

# A 4 x 4 case worked by hand (docs/evaluate.md walks through it).
TRUTH = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 0], [0, 2, 2, 0]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 1, 0], [0, 2, 0, 0], [2, 2, 2, 2]])
NAMES = ("background", "a", "b")


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(TRUTH, PRED, 3)
    assert cm.dtype == np.int64
    assert cm.tolist() == [[5, 1, 2], [1, 3, 0], [1, 0, 3]]


def test_semantic_scores_by_hand():
    s = semantic_scores(confusion_matrix(TRUTH, PRED, 3), NAMES)
    # IoU = TP / (TP + FP + FN): background 5/10, a 3/5, b 3/6.
    assert s["iou"] == pytest.approx({"background": 0.5, "a": 0.6, "b": 0.5})
    assert s["miou"] == pytest.approx(1.6 / 3)  # background included
    assert s["miou_foreground"] == pytest.approx(0.55)
    assert s["pixel_accuracy"] == pytest.approx(11 / 16)
    assert s["f1"] == pytest.approx((6 / 8 + 6 / 9) / 2)
    assert s["precision"] == pytest.approx((3 / 4 + 3 / 5) / 2)
    assert s["recall"] == pytest.approx(0.75)
    assert s["moc"] == pytest.approx((3 / 4 + 3 / math.sqrt(20)) / 2)
    assert s["per_class"]["b"] == pytest.approx(
        {
            "iou": 0.5,
            "f1": 6 / 9,
            "precision": 0.6,
            "recall": 0.75,
            "moc": 3 / math.sqrt(20),
            "pixel_accuracy": 13 / 16,  # b against the rest: 16 - 1 FN - 2 FP
            "n_true_px": 4,
            "n_predicted_px": 5,
        }
    )
    assert s["confusion"] == {"classes": list(NAMES), "matrix": [[5, 1, 2], [1, 3, 0], [1, 0, 3]]}
    json.dumps(s, allow_nan=False)  # JSON-ready


def _reference(truth, pred, k):
    """Per-class scores straight from boolean masks, with Manders' formula in floats."""
    x, y = (truth == k).astype(float), (pred == k).astype(float)
    tp, fp, fn = np.sum(x * y), np.sum((1 - x) * y), np.sum(x * (1 - y))
    return {
        "iou": tp / (tp + fp + fn),
        "f1": 2 * (tp / (tp + fp)) * (tp / (tp + fn)) / (tp / (tp + fp) + tp / (tp + fn)),
        "moc": np.sum(x * y) / np.sqrt(np.sum(x**2) * np.sum(y**2)),
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
    }


@pytest.mark.parametrize("shape", [(37, 41), (5, 16, 19)])
def test_scores_agree_with_a_mask_based_reference(shape):
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 4, shape).astype(np.uint16)
    pred = np.where(rng.random(shape) < 0.7, truth, rng.integers(0, 4, shape)).astype(np.int32)
    names = ("background", "x", "y", "z")
    s = semantic_scores(confusion_matrix(truth, pred, 4), names)
    for k, name in enumerate(names):
        ref = _reference(truth, pred, k)
        row = s["per_class"][name]
        for key, value in ref.items():
            assert row[key] == pytest.approx(value, rel=1e-12), (name, key)
        # For binary masks Manders' overlap is the geometric mean of precision and recall.
        assert row["moc"] == pytest.approx(math.sqrt(ref["precision"] * ref["recall"]))
    assert s["pixel_accuracy"] == pytest.approx(np.mean(truth == pred))
    assert s["miou"] == pytest.approx(
        np.mean([_reference(truth, pred, k)["iou"] for k in range(4)])
    )


def test_one_foreground_class_means_equal_its_values():
    truth = np.zeros((8, 8), np.uint8)
    truth[2:6, 2:6] = 1
    pred = np.zeros((8, 8), bool)
    pred[3:7, 2:6] = True
    s = semantic_scores(confusion_matrix(truth, pred, 2), ("background", "mito"))
    for key in ("f1", "precision", "recall", "moc"):
        assert s[key] == s["per_class"]["mito"][key]
    assert s["per_class"]["mito"]["iou"] == pytest.approx(12 / 20)
    assert s["miou"] == pytest.approx((12 / 20 + 44 / 52) / 2)


def test_absent_and_missed_classes():
    truth = np.array([[0, 1], [1, 0]])
    pred = np.zeros((2, 2), int)
    s = semantic_scores(confusion_matrix(truth, pred, 3), ("background", "seen", "absent"))
    # In neither truth nor prediction: undefined (null), left out of every mean.
    assert s["per_class"]["absent"]["iou"] is None and s["iou"]["absent"] is None
    assert s["miou"] == pytest.approx(0.5 / 2)  # background 2/4, "seen" 0
    # In the truth only: nothing predicted scores 0, never a ZeroDivisionError.
    seen = s["per_class"]["seen"]
    assert (seen["iou"], seen["precision"], seen["recall"], seen["f1"], seen["moc"]) == (0,) * 5
    assert s["precision"] == 0.0
    empty = semantic_scores(np.zeros((2, 2), np.int64), ("background", "x"))
    assert empty["pixel_accuracy"] is None and empty["miou"] is None and empty["f1"] is None
    assert math.isnan(mean_iou(np.zeros((2, 2))))


def test_confusion_matrix_rejects_bad_input():
    with pytest.raises(ValueError, match="predicted holds class index 3, outside \\[0, 3\\)"):
        confusion_matrix(TRUTH, PRED + 1, 3)
    with pytest.raises(ValueError, match="truth holds class index -1"):
        confusion_matrix(TRUTH - 1, PRED, 3)
    with pytest.raises(ValueError, match="integer class indices, got dtype float64"):
        confusion_matrix(TRUTH.astype(float), PRED, 3)
    with pytest.raises(ValueError, match="differs"):
        confusion_matrix(TRUTH, PRED[:3], 3)
    with pytest.raises(ValueError, match="2 class names for a 3-class"):
        semantic_scores(np.eye(3), ("background", "a"))


def test_class_index_map_lower_class_wins_overlaps():
    masks = np.zeros((3, 1, 2, 3), np.uint8)
    masks[0, 0, 0, :2] = 1
    masks[1, 0, 0, 1:] = 1
    masks[2, 0, 1, 2] = 1
    assert class_index_map(masks).tolist() == [[[1, 1, 2], [0, 0, 3]]]


def test_pooling_sums_confusions_and_averages_image_mious():
    other_t = np.ones((4, 4), int)
    other_p = np.ones((4, 4), int)
    cms = [confusion_matrix(TRUTH, PRED, 3), confusion_matrix(other_t, other_p, 3)]
    s = pooled_semantic_scores(cms, NAMES)
    assert s["confusion"]["matrix"] == [[5, 1, 2], [1, 19, 0], [1, 0, 3]]
    assert s["iou"]["a"] == pytest.approx(19 / 21)
    # Image 2 has only class "a", IoU 1: its mIoU is 1 (absent classes left out).
    assert s["miou_per_image_mean"] == pytest.approx((1.6 / 3 + 1.0) / 2)
    assert s["n_images"] == 2 and s["n_pixels"] == 32


# --------------------------------------------------------------------------- instances


def _squares():
    """5 true 10 x 10 squares; predictions shifted by 0, 1, 2, 3, 5 px (IoU (10-s)/(10+s))
    plus one false positive. Ids are not consecutive."""
    truth = np.zeros((30, 120), np.int32)
    pred = np.zeros((30, 120), np.uint16)
    for i, s in enumerate((0, 1, 2, 3, 5)):
        x = 5 + 22 * i
        truth[5:15, x : x + 10] = 7 + 3 * i
        pred[5:15, x + s : x + s + 10] = 1000 - i
    pred[20:25, 5:10] = 2
    return truth, pred, [(10 - s) / (10 + s) for s in (0, 1, 2, 3, 5)]


def test_ap_pq_on_shifted_squares():
    truth, pred, ious = _squares()
    s = instance_scores(truth, pred)
    assert list(s["ap"]) == [f"{t:.2f}" for t in DEFAULT_THRESHOLDS]
    # AP(t) = TP / (TP + FP + FN) = TP / (5 + 6 - TP).
    expected = {
        t: sum(iou >= t for iou in ious) / (11 - sum(iou >= t for iou in ious))
        for t in DEFAULT_THRESHOLDS
    }
    assert [s["ap"][f"{t:.2f}"] for t in DEFAULT_THRESHOLDS] == pytest.approx(
        [expected[t] for t in DEFAULT_THRESHOLDS]
    )
    assert s["ap"]["0.50"] == pytest.approx(4 / 7) and s["ap"]["0.95"] == pytest.approx(1 / 10)
    assert s["map"] == pytest.approx(np.mean(list(expected.values())))
    matched = sum(ious[:4])  # the IoU 1/3 pair is not a match at 0.5
    assert s["sq"] == pytest.approx(matched / 4)
    assert s["rq"] == pytest.approx(4 / (4 + 0.5 * 2 + 0.5 * 1))
    assert s["pq"] == pytest.approx(s["sq"] * s["rq"])
    assert s["mean_matched_iou"] == pytest.approx(np.mean(ious))
    assert (s["n_true"], s["n_predicted"], s["n_matched_05"]) == (5, 6, 4)


def _disc(shape, centre, radius):
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _lens_iou(r, d):
    """IoU of two discs of radius r whose centres are d apart (exact geometry)."""
    inter = 2 * r * r * math.acos(d / (2 * r)) - d / 2 * math.sqrt(4 * r * r - d * d)
    return inter / (2 * math.pi * r * r - inter)


@pytest.mark.parametrize("shift", [3, 6, 9])
def test_shifted_discs_match_their_geometric_iou(shift):
    truth = _disc((64, 64), (32, 32), 15).astype(np.uint8) * 4
    pred = _disc((64, 64), (32, 32 + shift), 15).astype(np.uint8) * 9
    pixel_iou = np.sum((truth > 0) & (pred > 0)) / np.sum((truth > 0) | (pred > 0))
    s = instance_scores(truth, pred)
    assert s["mean_matched_iou"] == pytest.approx(pixel_iou)
    assert pixel_iou == pytest.approx(_lens_iou(15, shift), rel=0.03)
    for t in DEFAULT_THRESHOLDS:  # one true, one predicted: AP is 1 or 0
        assert s["ap"][f"{t:.2f}"] == (1.0 if pixel_iou >= t else 0.0)


def test_one_to_one_matching():
    # A true object split in two halves: IoU 0.5 with each, but only one may match.
    truth = np.ones(8, int)
    halves = np.array([3, 3, 3, 3, 5, 5, 5, 5])
    s = instance_scores(truth, halves, thresholds=(0.5,))
    assert s["ap"]["0.50"] == pytest.approx(1 / 2) and s["n_matched_05"] == 1
    # Greedy pairing by highest IoU would match T1-P1 (IoU 2/3) and leave T2 unmatched;
    # the assignment finds both pairs above 0.1.
    truth = np.zeros(20, int)
    truth[0:10], truth[10:14] = 1, 2
    pred = np.zeros(20, int)
    pred[2:12], pred[0:2] = 5, 9
    s = instance_scores(truth, pred, thresholds=(0.1, 0.5))
    assert s["ap"]["0.10"] == 1.0 and s["ap"]["0.50"] == pytest.approx(1 / 3)


def test_many_objects_and_large_ids_match_a_direct_count():
    rng = np.random.default_rng(3)
    truth = np.zeros((120, 120), np.uint64)
    pred = np.zeros((120, 120), np.int64)
    expected = 0
    for i in range(100):  # a 10 x 10 grid of 10 x 10 squares, randomly shifted copies
        y, x = 12 * (i // 10), 12 * (i % 10)
        s = int(rng.integers(0, 4))
        truth[y : y + 10, x : x + 10] = 2**40 + 17 * i  # ids far above the pixel count
        pred[y : y + 10, x + s : x + min(10 + s, 12)] = 5 * i + 1
        expected += (10 - s) / (10 + s) >= 0.7 if s < 3 else False
    s = instance_scores(truth, pred)
    assert s["n_true"] == 100 and s["n_predicted"] == 100
    assert s["ap"]["0.70"] == pytest.approx(expected / (200 - expected))


def test_empty_and_pooled_instances():
    empty = np.zeros((4, 4), int)
    s = instance_scores(empty, empty)
    assert s["ap"]["0.50"] is None and s["map"] is None and s["pq"] is None
    some = empty.copy()
    some[1:3, 1:3] = 4
    missed = instance_scores(some, empty)
    assert missed["ap"]["0.50"] == 0.0 and missed["pq"] == 0.0 and missed["sq"] == 0.0
    truth, pred, _ = _squares()
    pooled = pool_instance_counts(
        [instance_counts(truth, pred), instance_counts(some, empty), instance_counts(some, some)]
    )
    assert (pooled.n_true, pooled.n_predicted, pooled.tp[0]) == (7, 7, 5)
    with pytest.raises(ValueError, match="different thresholds"):
        instance_counts(some, some) + instance_counts(some, some, thresholds=(0.5,))
    with pytest.raises(ValueError, match="must be >= 0"):
        instance_scores(some - 5, some)
    with pytest.raises(ValueError, match="must be integers"):
        instance_scores(some.astype(float), some)
