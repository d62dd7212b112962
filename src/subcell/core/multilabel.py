"""Scores of multi-label masks: each class scored on its own, as a binary mask.

Where classes overlap (a Nile Red mitochondrion is also cytosol), one class-index map cannot
hold the truth: :func:`subcell.core.metrics.class_index_map` keeps one class per voxel and
the others would be scored as missed. Here every class ``k`` is its own binary problem
(voxels in class ``k`` or not), counted as true / false positives and negatives, and pooled
over images by summing the counts. The conventions of :mod:`subcell.core.metrics` hold: a
score with a zero denominator is 0.0 when the class occurs in truth or prediction and
undefined (None, left out of means) when it occurs in neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from subcell.core.metrics import _json, _nanmean, class_scores

__all__ = ["binary_counts", "multilabel_scores", "overlaps"]

#: Columns of :func:`binary_counts`.
COUNTS = ("tp", "fp", "fn", "tn")


def binary_counts(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-class voxel counts of binary masks.

    Parameters
    ----------
    truth, predicted
        (K, ...) masks of equal shape; non-zero means set.

    Returns
    -------
    numpy.ndarray
        int64 (K, 4): true positives, false positives, false negatives, true negatives.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth shape {truth.shape} differs from predicted {predicted.shape}")
    k = truth.shape[0]
    t = truth.reshape(k, -1) != 0
    p = predicted.reshape(k, -1) != 0
    n_true, n_pred = t.sum(axis=1), p.sum(axis=1)
    tp = np.count_nonzero(t & p, axis=1)
    total = t.shape[1]
    return np.stack([tp, n_pred - tp, n_true - tp, total - n_true - n_pred + tp], axis=1).astype(
        np.int64
    )


def overlaps(masks: np.ndarray) -> bool:
    """Whether some voxel of (K, ...) masks is set in more than one class."""
    masks = np.asarray(masks)
    if masks.shape[0] < 2:
        return False
    return bool(np.any(np.count_nonzero(masks, axis=0) > 1))


def multilabel_scores(counts: np.ndarray, class_names: Sequence[str]) -> dict:
    """Scores of pooled per-class counts, as a JSON-ready dict.

    Parameters
    ----------
    counts
        (K, 4) from :func:`binary_counts` (summed over images).
    class_names
        K distinct names, foreground classes only.

    Returns
    -------
    dict
        ``multilabel`` (True); ``pixel_accuracy`` (mean over classes of each class's
        accuracy, ``(tp + tn) / voxels``) and ``pixel_accuracy_min``; ``iou`` (name -> IoU),
        ``miou`` and ``miou_foreground`` (both the mean over classes: there is no background
        class); ``f1``, ``precision``, ``recall``, ``moc`` (means over classes);
        ``per_class`` (name -> iou, f1, precision, recall, moc, pixel_accuracy, n_true_px,
        n_predicted_px); ``n_pixels`` (voxels scored per class).
    """
    names = [str(n) for n in class_names]
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, 4)
    if len(names) != len(counts) or len(set(names)) != len(names):
        raise ValueError(f"{len(counts)} classes need as many distinct names, got {names}")
    tp, fp, fn, tn = counts.T
    total = counts.sum(axis=1)
    per = class_scores(tp, tp + fn, tp + fp, total)
    accuracy = per["pixel_accuracy"][~np.isnan(per["pixel_accuracy"])]
    scores = {
        "multilabel": True,
        "pixel_accuracy": _json(_nanmean(per["pixel_accuracy"])),
        "pixel_accuracy_min": float(accuracy.min()) if accuracy.size else None,
        "iou": {name: _json(v) for name, v in zip(names, per["iou"], strict=True)},
        "miou": _json(_nanmean(per["iou"])),
        "miou_foreground": _json(_nanmean(per["iou"])),
    }
    for key in ("f1", "precision", "recall", "moc"):
        scores[key] = _json(_nanmean(per[key]))
    scores["per_class"] = {
        name: {
            key: (int(per[key][i]) if key.startswith("n_") else _json(per[key][i])) for key in per
        }
        for i, name in enumerate(names)
    }
    scores["n_pixels"] = int(total[0]) if len(total) else 0
    return scores
