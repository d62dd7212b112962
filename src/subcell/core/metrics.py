"""Segmentation metrics: confusion matrix, per-class scores, instance matching (AP, PQ).

Pure numpy/scipy. Conventions (see ``docs/evaluate.md``):

- A class-index map holds 0 for background and ``k`` for class ``k``.
- **mIoU is the mean IoU over all classes, background included** (Sekh et al. 2021).
- A score whose denominator is zero is 0.0 when the class (or any object) occurs in the
  truth or the prediction, and undefined when it occurs in neither: undefined scores are
  ``None`` in the JSON-ready results (``NaN`` in arrays) and left out of every mean.
- A dataset is scored by its pooled confusion matrix (the sum over images) and its pooled
  instance counts; the per-image mean of mIoU is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "DEFAULT_THRESHOLDS",
    "InstanceCounts",
    "class_index_map",
    "class_scores",
    "confusion_matrix",
    "instance_counts",
    "instance_scores",
    "instance_scores_from_counts",
    "mean_iou",
    "pool_instance_counts",
    "pooled_semantic_scores",
    "semantic_scores",
]

#: IoU thresholds of AP: 0.50, 0.55, ..., 0.95 (COCO, StarDist, Cellpose).
DEFAULT_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
# Largest key range counted with np.bincount (int64 bins: 32 MiB) rather than np.unique.
_BINCOUNT_MAX = 1 << 22


# --------------------------------------------------------------------------- semantic


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Pixel counts of (true class, predicted class) pairs.

    Parameters
    ----------
    truth, predicted
        Class-index maps of equal shape (any dimension), integer or bool; 0 is background.
    n_classes
        Number of classes, background included.

    Returns
    -------
    numpy.ndarray
        int64 (n_classes, n_classes); rows are the true class, columns the predicted one.

    Raises
    ------
    ValueError
        Shapes differ, a map is not integer, or holds a value outside ``[0, n_classes)``.
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth shape {truth.shape} differs from predicted {predicted.shape}")
    n = int(n_classes)
    if n < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    truth = _class_indices(truth, n, "truth")
    predicted = _class_indices(predicted, n, "predicted")
    # truth * n + predicted in one intp buffer: two passes, one allocation.
    flat = np.multiply(truth.ravel(), n, dtype=np.intp)
    np.add(flat, predicted.ravel(), out=flat)
    return np.bincount(flat, minlength=n * n).reshape(n, n).astype(np.int64, copy=False)


def _class_indices(array: np.ndarray, n: int, name: str) -> np.ndarray:
    if array.dtype.kind == "b":
        array = array.view(np.uint8)
    elif array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if array.size:
        lo = int(array.min()) if array.dtype.kind == "i" else 0
        hi = int(array.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} holds class index {bad}, outside [0, {n}) for {n} classes")
    return array


def class_index_map(semantic: np.ndarray) -> np.ndarray:
    """One class-index map from binary per-class masks.

    Parameters
    ----------
    semantic
        (K, ...) masks, channel ``k`` is class ``k + 1``; non-zero means set.

    Returns
    -------
    numpy.ndarray
        (...) uint8 (uint16 beyond 254 classes): 0 where no channel is set, else ``k + 1``
        for the lowest set channel ``k`` (where masks overlap the lower class wins).
    """
    semantic = np.asarray(semantic)
    n_channels = semantic.shape[0]
    out = np.zeros(semantic.shape[1:], dtype=np.uint8 if n_channels < 255 else np.uint16)
    for k in range(n_channels - 1, -1, -1):  # lower classes painted last, so they win
        out[semantic[k] != 0] = k + 1
    return out


def _per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class arrays (NaN where undefined) from a confusion matrix."""
    cm = confusion.astype(np.float64)
    return class_scores(np.diag(cm), cm.sum(axis=1), cm.sum(axis=0), cm.sum())


def class_scores(tp, n_true, n_pred, total) -> dict[str, np.ndarray]:
    """Per-class score arrays (NaN where undefined) from pixel counts.

    Parameters
    ----------
    tp, n_true, n_pred
        Per class: true positives, pixels truly in the class, pixels predicted in it.
    total
        Pixels scored (a scalar, or per class).

    Returns
    -------
    dict
        ``iou``, ``f1``, ``precision``, ``recall``, ``moc``, ``pixel_accuracy`` (the class
        against the rest), ``n_true_px``, ``n_predicted_px``.
    """
    tp, n_true, n_pred = (np.asarray(a, dtype=np.float64) for a in (tp, n_true, n_pred))
    total = np.broadcast_to(np.asarray(total, dtype=np.float64), tp.shape)
    present = (n_true + n_pred) > 0

    def ratio(num, den, defined=present):
        out = np.where(defined, 0.0, np.nan)
        np.divide(num, den, out=out, where=den > 0)
        return out

    return {
        "iou": ratio(tp, n_true + n_pred - tp),
        "f1": ratio(2 * tp, n_true + n_pred),
        "precision": ratio(tp, n_pred),
        "recall": ratio(tp, n_true),
        # Manders' overlap of binary masks x, y: sum(xy) / sqrt(sum(x^2) sum(y^2)).
        "moc": ratio(tp, np.sqrt(n_true * n_pred)),
        # (tp + tn) / voxels: defined wherever there are voxels
        "pixel_accuracy": ratio(total - n_true - n_pred + 2 * tp, total, total > 0),
        "n_true_px": n_true,
        "n_predicted_px": n_pred,
    }


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _json(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _check_confusion(confusion, n_names: int) -> np.ndarray:
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {cm.shape}")
    if cm.shape[0] != n_names:
        raise ValueError(f"{n_names} class names for a {cm.shape[0]}-class confusion matrix")
    return cm


def mean_iou(confusion: np.ndarray) -> float:
    """mIoU of a confusion matrix: mean IoU over all classes, background included.

    Classes absent from truth and prediction are left out; NaN if every class is absent.
    """
    cm = _check_confusion(confusion, np.shape(confusion)[0])
    return _nanmean(_per_class(cm)["iou"])


def semantic_scores(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
    """Pixel scores of a confusion matrix, as a JSON-ready dict.

    Parameters
    ----------
    confusion
        (n, n) counts, rows the true class (from :func:`confusion_matrix`).
    class_names
        n distinct names; ``class_names[0]`` is the background.

    Returns
    -------
    dict
        ``pixel_accuracy``; ``iou`` (class name -> IoU, background included); ``miou`` (mean
        IoU over all classes, background included); ``miou_foreground``; ``f1``,
        ``precision``, ``recall``, ``moc`` (macro means over the foreground classes);
        ``per_class`` (name -> iou, f1, precision, recall, moc, pixel_accuracy (the class
        against the rest), n_true_px, n_predicted_px); ``confusion`` (``classes`` and
        ``matrix``, rows truth);
        ``n_pixels``. Undefined values are None.
    """
    names = [str(n) for n in class_names]
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be distinct, got {names}")
    cm = _check_confusion(confusion, len(names))
    per = _per_class(cm)
    total = int(cm.sum())
    fg = slice(1, None)
    scores = {
        "pixel_accuracy": _json(np.trace(cm) / total) if total else None,
        "iou": {name: _json(v) for name, v in zip(names, per["iou"], strict=True)},
        "miou": _json(_nanmean(per["iou"])),
        "miou_foreground": _json(_nanmean(per["iou"][fg])),
    }
    for key in ("f1", "precision", "recall", "moc"):
        scores[key] = _json(_nanmean(per[key][fg]))
    scores["per_class"] = {
        name: {
            key: (int(per[key][i]) if key.startswith("n_") else _json(per[key][i])) for key in per
        }
        for i, name in enumerate(names)
    }
    scores["confusion"] = {"classes": names, "matrix": cm.astype(np.int64).tolist()}
    scores["n_pixels"] = total
    return scores


def pooled_semantic_scores(confusions: Iterable[np.ndarray], class_names: Sequence[str]) -> dict:
    """Scores of a dataset: :func:`semantic_scores` of the summed confusion matrices.

    Parameters
    ----------
    confusions
        One confusion matrix per image.
    class_names
        As for :func:`semantic_scores`.

    Returns
    -------
    dict
        :func:`semantic_scores` of the pooled matrix, plus ``miou_per_image_mean`` (mean
        over images of each image's mIoU) and ``n_images``.
    """
    confusions = [np.asarray(c) for c in confusions]
    if not confusions:
        raise ValueError("no confusion matrices to pool")
    scores = semantic_scores(np.sum(confusions, axis=0), class_names)
    per_image = np.array([mean_iou(c) for c in confusions])
    scores["miou_per_image_mean"] = _json(_nanmean(per_image))
    scores["n_images"] = len(confusions)
    return scores


# --------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class InstanceCounts:
    """Object-matching counts of one image or, summed with ``+``, of a dataset.

    Attributes
    ----------
    thresholds
        IoU thresholds of the AP values.
    tp
        True positives (matched pairs with IoU >= threshold), one per threshold.
    n_true, n_predicted
        Objects in the truth and the prediction.
    tp_05, iou_sum_05
        Matches at IoU >= 0.5 and the sum of their IoUs (panoptic quality).
    n_matched, iou_sum_matched
        Pairs of the one-to-one assignment among all overlapping objects (threshold 0),
        and the sum of their IoUs.
    """

    thresholds: tuple[float, ...]
    tp: tuple[int, ...]
    n_true: int
    n_predicted: int
    tp_05: int
    iou_sum_05: float
    n_matched: int
    iou_sum_matched: float

    def __add__(self, other: InstanceCounts) -> InstanceCounts:
        if self.thresholds != other.thresholds:
            raise ValueError("cannot pool instance counts made with different thresholds")
        return InstanceCounts(
            thresholds=self.thresholds,
            tp=tuple(a + b for a, b in zip(self.tp, other.tp, strict=True)),
            n_true=self.n_true + other.n_true,
            n_predicted=self.n_predicted + other.n_predicted,
            tp_05=self.tp_05 + other.tp_05,
            iou_sum_05=self.iou_sum_05 + other.iou_sum_05,
            n_matched=self.n_matched + other.n_matched,
            iou_sum_matched=self.iou_sum_matched + other.iou_sum_matched,
        )


def _dense_labels(labels: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels renumbered 1..n (0 stays background) and the areas, index 0 = background."""
    if labels.dtype.kind == "b":
        labels = labels.view(np.uint8)
    elif labels.dtype.kind not in "iu":
        raise ValueError(f"{name} labels must be integers, got dtype {labels.dtype}")
    flat = labels.ravel()
    if not flat.size:
        return flat.astype(np.intp), np.zeros(1, np.int64)
    if labels.dtype.kind == "i" and int(flat.min()) < 0:
        raise ValueError(f"{name} labels must be >= 0, got {int(flat.min())}")
    top = int(flat.max())
    if top <= max(4 * flat.size, 1 << 16):  # ids small enough for a lookup table
        counts = np.bincount(flat.astype(np.intp, copy=False), minlength=1)
        ids = np.flatnonzero(counts[1:]) + 1
        lut = np.zeros(top + 1, dtype=np.intp)
        lut[ids] = np.arange(1, ids.size + 1)
        return lut[flat], np.concatenate([counts[:1], counts[ids]])
    ids, dense, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if ids[0] != 0:  # no background: shift so object ids start at 1
        return dense.astype(np.intp) + 1, np.concatenate([[0], counts])
    return dense.astype(np.intp), counts


def _overlaps(truth: np.ndarray, predicted: np.ndarray):
    """Overlapping pairs (0-based object indices) with their IoU; object counts."""
    t, t_area = _dense_labels(truth, "truth")
    p, p_area = _dense_labels(predicted, "predicted")
    n_t, n_p = t_area.size - 1, p_area.size - 1
    both = (t > 0) & (p > 0)
    key = t[both] * (n_p + 1) + p[both]
    if (n_t + 1) * (n_p + 1) <= _BINCOUNT_MAX:
        hist = np.bincount(key, minlength=1)
        key = np.flatnonzero(hist)
        inter = hist[key]
    else:
        key, inter = np.unique(key, return_counts=True)
    rows, cols = key // (n_p + 1), key % (n_p + 1)
    iou = inter / (t_area[rows] + p_area[cols] - inter)
    return rows - 1, cols - 1, iou, n_t, n_p


def _match(rows, cols, iou, n_t: int, n_p: int) -> np.ndarray:
    """Which pairs a one-to-one assignment keeps (boolean per pair): as many pairs as
    possible, and among those the highest total IoU.

    Pairs whose objects have no other candidate are kept directly; the rest are split into
    connected components of the bipartite candidate graph, each solved by the Hungarian
    algorithm on its small dense IoU block.
    """
    keep = np.zeros(iou.size, dtype=bool)
    if not iou.size:
        return keep
    simple = (np.bincount(rows, minlength=n_t)[rows] == 1) & (
        np.bincount(cols, minlength=n_p)[cols] == 1
    )
    keep[simple] = True
    rest = np.flatnonzero(~simple)
    if not rest.size:
        return keep
    r, c = rows[rest], cols[rest] + n_t  # predicted objects after the true ones
    graph = coo_matrix((np.ones(rest.size), (r, c)), shape=(n_t + n_p, n_t + n_p))
    _, component = connected_components(graph, directed=False)
    order = np.argsort(component[r], kind="stable")
    groups = np.split(rest[order], np.flatnonzero(np.diff(component[r][order])) + 1)
    for pairs in groups:
        t_ids, t_inv = np.unique(rows[pairs], return_inverse=True)
        p_ids, p_inv = np.unique(cols[pairs], return_inverse=True)
        block = np.zeros((t_ids.size, p_ids.size))
        # Most matches first, then the highest total IoU (the IoU term sums to < 1/2):
        # the StarDist/Cellpose rule.
        block[t_inv, p_inv] = 1.0 + iou[pairs] / (2 * min(block.shape))
        where = np.full(block.shape, -1, dtype=np.intp)
        where[t_inv, p_inv] = pairs
        ti, pi = linear_sum_assignment(block, maximize=True)
        chosen = where[ti, pi]
        keep[chosen[chosen >= 0]] = True  # zero cells are non-pairs
    return keep


def instance_counts(
    truth_labels: np.ndarray,
    predicted_labels: np.ndarray,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> InstanceCounts:
    """Match the objects of two label images one to one by IoU, at each threshold.

    Parameters
    ----------
    truth_labels, predicted_labels
        Integer label images of equal shape (any dimension); 0 is background, ids need
        not be consecutive.
    thresholds
        IoU thresholds. At each threshold ``t`` objects are paired one to one: as many
        pairs with IoU >= ``t`` as possible, then the highest total IoU (StarDist/Cellpose).

    Returns
    -------
    InstanceCounts
    """
    truth_labels, predicted_labels = np.asarray(truth_labels), np.asarray(predicted_labels)
    if truth_labels.shape != predicted_labels.shape:
        raise ValueError(
            f"truth labels shape {truth_labels.shape} differs from predicted "
            f"{predicted_labels.shape}"
        )
    thresholds = tuple(float(t) for t in thresholds)
    rows, cols, iou, n_t, n_p = _overlaps(truth_labels, predicted_labels)

    def matched(threshold: float) -> np.ndarray:
        candidates = np.flatnonzero(iou >= threshold)
        kept = _match(rows[candidates], cols[candidates], iou[candidates], n_t, n_p)
        return iou[candidates[kept]]

    at_05 = matched(0.5)
    best = matched(0.0)
    return InstanceCounts(
        thresholds=thresholds,
        tp=tuple(int(matched(t).size) for t in thresholds),
        n_true=n_t,
        n_predicted=n_p,
        tp_05=int(at_05.size),
        iou_sum_05=float(at_05.sum()),
        n_matched=int(best.size),
        iou_sum_matched=float(best.sum()),
    )


def pool_instance_counts(counts: Iterable[InstanceCounts]) -> InstanceCounts:
    """The sum of per-image counts: a dataset is scored on its pooled matches."""
    counts = list(counts)
    if not counts:
        raise ValueError("no instance counts to pool")
    total = counts[0]
    for c in counts[1:]:
        total = total + c
    return total


def instance_scores_from_counts(counts: InstanceCounts) -> dict:
    """AP per threshold, mAP and panoptic quality from (pooled) counts, JSON-ready.

    Returns
    -------
    dict
        ``ap`` (``{"0.50": ..., "0.95": ...}``, AP(t) = TP / (TP + FP + FN)), ``map`` (mean
        over thresholds), ``pq`` = ``sq`` * ``rq`` at IoU 0.5, ``sq`` (mean IoU of the
        matches), ``rq`` (TP / (TP + FP/2 + FN/2)), ``mean_matched_iou`` (mean IoU of the
        one-to-one assignment among all overlapping objects, no threshold), ``n_true``,
        ``n_predicted``, ``n_matched_05``. None when neither side has an object.
    """
    n_t, n_p = counts.n_true, counts.n_predicted
    some = n_t + n_p > 0

    def ratio(num: float, den: float) -> float | None:
        return (num / den if den > 0 else 0.0) if some else None

    ap = {
        f"{t:.2f}": ratio(tp, n_t + n_p - tp)
        for t, tp in zip(counts.thresholds, counts.tp, strict=True)
    }
    tp = counts.tp_05
    return {
        "ap": ap,
        "map": float(np.mean(list(ap.values()))) if some and ap else None,
        "pq": ratio(counts.iou_sum_05, tp + 0.5 * (n_t - tp) + 0.5 * (n_p - tp)),
        "sq": ratio(counts.iou_sum_05, tp),
        "rq": ratio(tp, tp + 0.5 * (n_t - tp) + 0.5 * (n_p - tp)),
        "mean_matched_iou": ratio(counts.iou_sum_matched, counts.n_matched),
        "n_true": n_t,
        "n_predicted": n_p,
        "n_matched_05": tp,
    }


def instance_scores(
    truth_labels: np.ndarray,
    predicted_labels: np.ndarray,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict:
    """Instance scores of one image pair: :func:`instance_counts` then
    :func:`instance_scores_from_counts` (see there for the keys)."""
    return instance_scores_from_counts(instance_counts(truth_labels, predicted_labels, thresholds))
