"""Pooling the scores of many (truth, prediction) items: exclusive or multi-label classes.

Exclusive classes (at most one per voxel) are scored through a confusion matrix of
class-index maps (:func:`subcell.core.metrics.pooled_semantic_scores`). Where the ground
truth sets two classes in one voxel (a Nile Red mitochondrion is also cytosol), a
class-index map would keep only one of them, so every class is scored on its own as a
binary mask (:func:`subcell.core.multilabel.multilabel_scores`). The choice is made from
the truth: one overlapping voxel in any item makes the whole evaluation multi-label. A
prediction's overlaps alone do not (a sigmoid network may set two exclusive classes; its
class-index map keeps the lower one, as ``subcell segment`` writes it).
"""

from __future__ import annotations

import numpy as np

from subcell.core.metrics import class_index_map, confusion_matrix, pooled_semantic_scores
from subcell.core.multilabel import binary_counts, multilabel_scores, overlaps

__all__ = ["ItemScorer", "one_hot"]


def one_hot(classes: np.ndarray, n_foreground: int) -> np.ndarray:
    """(K, ...) uint8 masks of a class-index map (class ``k`` in channel ``k - 1``)."""
    wanted = np.arange(1, n_foreground + 1).reshape(-1, *([1] * classes.ndim))
    return (classes[None] == wanted).view(np.uint8)


class ItemScorer:
    """Accumulates per-item confusion matrices and per-class binary counts.

    Parameters
    ----------
    n_classes
        Classes including background.
    """

    def __init__(self, n_classes: int) -> None:
        self.n_classes = int(n_classes)
        self.confusions: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.multilabel = False

    def add(self, truth: np.ndarray, predicted: np.ndarray) -> None:
        """Score one item: (K, ...) binary masks on each side (see :func:`one_hot`)."""
        truth, predicted = np.asarray(truth), np.asarray(predicted)
        # the truth says whether classes exclude one another, not a network's overlaps
        self.multilabel |= overlaps(truth)
        self.counts.append(binary_counts(truth, predicted))
        self.confusions.append(
            confusion_matrix(class_index_map(truth), class_index_map(predicted), self.n_classes)
        )

    def scores(self, class_names) -> dict:
        """JSON-ready scores; ``class_names`` are the foreground classes."""
        names = tuple(class_names)
        if not self.multilabel:
            return pooled_semantic_scores(self.confusions, ("background", *names))
        scores = multilabel_scores(np.sum(self.counts, axis=0), names)
        per_image = [multilabel_scores(c, names)["miou"] for c in self.counts]
        defined = [v for v in per_image if v is not None]
        scores["miou_per_image_mean"] = float(np.mean(defined)) if defined else None
        scores["n_images"] = len(self.counts)
        return scores
