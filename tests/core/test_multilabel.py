"""Multi-label scores: each class its own binary mask, counts pooled over images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from subcell.core.multilabel import binary_counts, multilabel_scores, overlaps
from subcell.pipeline.evaluate_scoring import ItemScorer, one_hot


def _masks():
    truth = np.zeros((2, 1, 4, 4), np.uint8)
    truth[0] = 1  # a volume class everywhere (a cytosol)
    truth[1, 0, :2, :2] = 1  # an organelle inside it
    pred = truth.copy()
    pred[1, 0, 0, 0] = 0  # one organelle voxel missed
    pred[1, 0, 3, 3] = 1  # one false organelle voxel
    pred[0, 0, 3, 0] = 0  # one cytosol voxel missed
    return truth, pred


def test_binary_counts_by_hand():
    truth, pred = _masks()
    assert binary_counts(truth, pred).tolist() == [[15, 0, 1, 0], [3, 1, 1, 11]]
    assert overlaps(truth) and not overlaps(truth[:1]) and not overlaps(np.eye(2)[:, :, None])


def test_scores_by_hand_and_json_ready():
    truth, pred = _masks()
    s = multilabel_scores(binary_counts(truth, pred), ("cytosol", "organelle"))
    assert s["multilabel"] is True
    assert s["per_class"]["organelle"]["recall"] == pytest.approx(3 / 4)
    assert s["per_class"]["organelle"]["precision"] == pytest.approx(3 / 4)
    assert s["per_class"]["organelle"]["moc"] == pytest.approx(3 / 4)
    assert s["per_class"]["organelle"]["pixel_accuracy"] == pytest.approx(14 / 16)
    assert s["per_class"]["cytosol"]["pixel_accuracy"] == pytest.approx(15 / 16)
    assert s["pixel_accuracy"] == pytest.approx((14 / 16 + 15 / 16) / 2)
    assert s["pixel_accuracy_min"] == pytest.approx(14 / 16)
    assert s["iou"]["organelle"] == pytest.approx(3 / 5)
    json.dumps(s, allow_nan=False)


def test_a_class_in_neither_side_is_undefined_but_accuracy_is_not():
    counts = np.array([[0, 0, 0, 16], [2, 0, 0, 14]])
    s = multilabel_scores(counts, ("absent", "present"))
    assert s["per_class"]["absent"]["f1"] is None and s["per_class"]["absent"]["moc"] is None
    assert s["per_class"]["absent"]["pixel_accuracy"] == 1.0
    assert s["f1"] == 1.0  # the mean leaves the undefined class out
    with pytest.raises(ValueError, match="distinct names"):
        multilabel_scores(counts, ("a", "a"))


def test_scorer_keeps_confusion_scoring_for_exclusive_classes():
    classes = np.array([[[0, 1], [2, 2]]])
    exclusive = ItemScorer(3)
    exclusive.add(one_hot(classes, 2), one_hot(classes, 2))
    assert "multilabel" not in exclusive.scores(("a", "b"))
    assert exclusive.scores(("a", "b"))["confusion"]["matrix"] == [[1, 0, 0], [0, 1, 0], [0, 0, 2]]
    assert one_hot(classes, 2).tolist() == [[[[0, 1], [0, 0]]], [[[0, 0], [1, 1]]]]
    truth, pred = _masks()
    scorer = ItemScorer(3)
    scorer.add(one_hot(classes, 2), one_hot(classes, 2))  # no overlap here...
    scorer.add(one_hot(classes, 2), np.ones((2, 1, 2, 2), np.uint8))  # overlapping prediction
    assert not scorer.multilabel
    scorer.add(truth, pred)  # overlapping truth: the whole evaluation is multi-label
    s = scorer.scores(("a", "b"))
    assert s["multilabel"] is True and s["n_images"] == 3
    assert s["per_class"]["b"]["n_true_px"] == 2 + 2 + 4
