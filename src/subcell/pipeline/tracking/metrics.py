"""Tracking accuracy against known identities: HOTA (DetA, AssA, LocA) and CLEAR-MOT IDSW.

HOTA follows Luiten et al. 2021 ("HOTA: A Higher Order Metric for Evaluating Multi-Object
Tracking", IJCV 129:548), as in its reference implementation (TrackEval):

1. Per frame, a similarity ``S`` in [0, 1] between every true and predicted detection:
   pixel IoU of the two objects (``similarity="iou"``, label videos) or
   ``max(0, 1 - d / zero_distance_nm)`` of their centroid distance ``d``
   (``similarity="distance"``, point tracks).
2. A global alignment score ``A(i, j)`` for every true id ``i`` and predicted id ``j``:
   the Jaccard index of their "potential matches", counted with the soft weights
   ``S / (Σ_row S + Σ_col S - S)``.
3. Per frame, one-to-one matches maximising ``Σ A(i, j) S(i, j)`` (Hungarian). For each
   threshold α in 0.05, 0.10, ..., 0.95 the matches with ``S ≥ α`` are true positives;
   unmatched true detections are FN, unmatched predictions FP.
4. ``DetA = TP / (TP + FN + FP)``; ``AssA = (1 / TP) Σ_TP |TPA| / (|TPA| + |FNA| + |FPA|)``
   where, for a TP of ids (i, j), TPA counts the frames where (i, j) matched; FNA the
   other frames of i; FPA the other frames of j. ``HOTA_α = sqrt(DetA_α AssA_α)``;
   HOTA, DetA and AssA are means over α; LocA_α is the mean similarity of the TPs at α
   (1 where there are none, as in TrackEval), LocA its mean over α.

Identity switches follow CLEAR MOT (Bernardin & Stiefelhagen 2008), as in TrackEval:
matches at ``S ≥ 0.5``, keeping the previous frame's match where possible; a switch is a
true object matched to a different predicted id than at its last match. MOTA is
``1 - (FN + FP + IDSW) / n_true`` with those matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from subcell.pipeline.tracking.events import overlap_pairs

__all__ = [
    "ALPHAS",
    "FrameMatch",
    "TrackingScores",
    "iou_frames",
    "distance_frames",
    "score_tracking",
    "tracking_scores",
]

#: HOTA's localisation thresholds.
ALPHAS = np.round(np.arange(0.05, 0.96, 0.05), 2)
_EPS = np.finfo(float).eps


@attrs.frozen(eq=False)
class FrameMatch:
    """True ids (G,), predicted ids (P,) and their similarity (G, P) in one frame."""

    truth: np.ndarray
    predicted: np.ndarray
    similarity: np.ndarray


@attrs.frozen
class TrackingScores:
    """Tracking accuracy (all in [0, 1] but ``idsw`` and the counts; ``mota`` may be < 0).

    Attributes
    ----------
    hota, deta, assa, loca
        Means over :data:`ALPHAS`.
    hota_alpha, deta_alpha, assa_alpha
        Per-α values (as tuples).
    idsw
        CLEAR-MOT identity switches.
    mota
        CLEAR-MOT accuracy.
    n_true_detections, n_predicted_detections, n_true_tracks, n_predicted_tracks
        Totals.
    similarity
        ``"iou"`` or ``"distance"``.
    """

    hota: float
    deta: float
    assa: float
    loca: float
    hota_alpha: tuple
    deta_alpha: tuple
    assa_alpha: tuple
    idsw: int
    mota: float
    n_true_detections: int
    n_predicted_detections: int
    n_true_tracks: int
    n_predicted_tracks: int
    similarity: str

    def as_dict(self) -> dict:
        """Plain-Python values, for JSON."""
        return attrs.asdict(self, value_serializer=lambda _, __, v: _plain(v))


def iou_frames(truth: np.ndarray, predicted: np.ndarray) -> list[FrameMatch]:
    """Per-frame pixel IoU between the objects of two (T, ...) label videos.

    Labels are identities: the same value in two frames is the same object.
    """
    if truth.shape != predicted.shape:
        raise ValueError(f"truth {truth.shape} and prediction {predicted.shape} differ in shape")
    out = []
    for t in range(truth.shape[0]):
        g, p = np.asarray(truth[t]).ravel(), np.asarray(predicted[t]).ravel()
        g_ids, g_counts = _counts(g)
        p_ids, p_counts = _counts(p)
        inter = np.zeros((len(g_ids), len(p_ids)))
        g_pair, p_pair, shared = overlap_pairs(g, p)
        inter[np.searchsorted(g_ids, g_pair), np.searchsorted(p_ids, p_pair)] = shared
        union = g_counts[:, None] + p_counts[None, :] - inter
        out.append(FrameMatch(g_ids, p_ids, inter / np.maximum(union, 1)))
    return out


def distance_frames(
    truth: Iterable[tuple[np.ndarray, np.ndarray]],
    predicted: Iterable[tuple[np.ndarray, np.ndarray]],
    zero_distance_nm: float,
) -> list[FrameMatch]:
    """Per-frame similarity ``max(0, 1 - d / zero_distance_nm)`` of point tracks.

    ``truth`` and ``predicted`` give, per frame, ``(ids (M,), positions_nm (M, D))``.
    """
    out = []
    for (g_ids, g_pos), (p_ids, p_pos) in zip(truth, predicted, strict=True):
        g_pos = np.asarray(g_pos, dtype=float).reshape(len(g_ids), -1)
        p_pos = np.asarray(p_pos, dtype=float).reshape(len(p_ids), -1)
        if len(g_ids) and len(p_ids):
            sim = np.maximum(0.0, 1.0 - cdist(g_pos, p_pos) / zero_distance_nm)
        else:
            sim = np.zeros((len(g_ids), len(p_ids)))
        out.append(FrameMatch(np.asarray(g_ids), np.asarray(p_ids), sim))
    return out


def tracking_scores(truth: np.ndarray, predicted: np.ndarray) -> TrackingScores:
    """HOTA and IDSW of a predicted label video against a true one (pixel-IoU similarity)."""
    return score_tracking(iou_frames(truth, predicted), similarity="iou")


def score_tracking(frames: Sequence[FrameMatch], *, similarity: str = "iou") -> TrackingScores:
    """HOTA, DetA, AssA, LocA, IDSW and MOTA from per-frame similarities (module notes)."""
    g_index, g_all = _index([f.truth for f in frames])
    p_index, p_all = _index([f.predicted for f in frames])
    n_g, n_p = len(g_all), len(p_all)
    n_gt_dets = sum(len(f.truth) for f in frames)
    n_pr_dets = sum(len(f.predicted) for f in frames)
    global_score = _global_alignment(frames, g_index, p_index, n_g, n_p)
    n_alpha = len(ALPHAS)
    tp = np.zeros(n_alpha)
    loc = np.zeros(n_alpha)
    matches = np.zeros((n_alpha, n_g, n_p))
    for f, gi, pi in zip(frames, g_index, p_index, strict=True):
        if len(gi) == 0 or len(pi) == 0:
            continue
        score = global_score[np.ix_(gi, pi)] * f.similarity
        r, c = linear_sum_assignment(-score)
        sim = f.similarity[r, c]
        for k, alpha in enumerate(ALPHAS):
            ok = sim >= alpha - _EPS
            tp[k] += ok.sum()
            loc[k] += sim[ok].sum()
            np.add.at(matches[k], (gi[r[ok]], pi[c[ok]]), 1)
    g_count = np.bincount(np.concatenate(g_index), minlength=n_g) if n_g else np.zeros(0)
    p_count = np.bincount(np.concatenate(p_index), minlength=n_p) if n_p else np.zeros(0)
    deta = tp / np.maximum(1.0, n_gt_dets + n_pr_dets - tp)
    ass_iou = matches / np.maximum(1.0, g_count[:, None] + p_count[None, :] - matches)
    assa = (matches * ass_iou).sum(axis=(1, 2)) / np.maximum(1.0, tp)
    hota = np.sqrt(deta * assa)
    # TrackEval's convention: LocA_α is 1 where no detection matched at α
    loca = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    idsw, clear_tp = _clear_mot(frames, g_index, p_index)
    mota = 1.0 - (n_gt_dets - clear_tp + n_pr_dets - clear_tp + idsw) / max(1, n_gt_dets)
    if n_gt_dets == 0 and n_pr_dets == 0:  # nothing to find, nothing found: perfect
        hota = deta = assa = loca = np.ones(n_alpha)
    return TrackingScores(
        hota=float(hota.mean()),
        deta=float(deta.mean()),
        assa=float(assa.mean()),
        loca=float(loca.mean()),
        hota_alpha=tuple(float(v) for v in hota),
        deta_alpha=tuple(float(v) for v in deta),
        assa_alpha=tuple(float(v) for v in assa),
        idsw=int(idsw),
        mota=float(mota),
        n_true_detections=int(n_gt_dets),
        n_predicted_detections=int(n_pr_dets),
        n_true_tracks=int(n_g),
        n_predicted_tracks=int(n_p),
        similarity=similarity,
    )


def _global_alignment(frames, g_index, p_index, n_g: int, n_p: int) -> np.ndarray:
    potential = np.zeros((n_g, n_p))
    g_count = np.zeros(n_g)
    p_count = np.zeros(n_p)
    for f, gi, pi in zip(frames, g_index, p_index, strict=True):
        g_count[gi] += 1
        p_count[pi] += 1
        if len(gi) == 0 or len(pi) == 0:
            continue
        s = f.similarity
        soft = s / (s.sum(1, keepdims=True) + s.sum(0, keepdims=True) - s + _EPS)
        potential[np.ix_(gi, pi)] += soft
    return potential / np.maximum(_EPS, g_count[:, None] + p_count[None, :] - potential)


def _clear_mot(frames, g_index, p_index, threshold: float = 0.5) -> tuple[int, int]:
    """Identity switches and matches of CLEAR MOT (TrackEval's matching rule)."""
    n_g = max((int(gi.max()) + 1 for gi in g_index if len(gi)), default=0)
    last = np.full(n_g, -1)  # predicted id at the last match, any frame before
    previous = np.full(n_g, -1)  # predicted id matched in the frame just before
    idsw = tp = 0
    for f, gi, pi in zip(frames, g_index, p_index, strict=True):
        current = np.full(n_g, -1)
        if len(gi) and len(pi):
            sim = f.similarity
            continuing = previous[gi][:, None] == pi[None, :]
            score = np.where(sim >= threshold - _EPS, sim + 1000.0 * continuing, 0.0)
            r, c = linear_sum_assignment(-score)
            ok = score[r, c] > 0
            g, p = gi[r[ok]], pi[c[ok]]
            idsw += int(np.sum((last[g] >= 0) & (last[g] != p)))
            tp += len(g)
            last[g] = p
            current[g] = p
        previous = current
    return idsw, tp


def _index(ids_per_frame: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Ids of each frame as indices 0..n-1 into the sorted union of all ids."""
    arrays = [np.asarray(ids) for ids in ids_per_frame]
    every = np.unique(np.concatenate(arrays)) if arrays else np.zeros(0)
    return [np.searchsorted(every, ids) for ids in arrays], every


def _counts(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids, counts = np.unique(flat[flat != 0], return_counts=True)
    return ids, counts.astype(np.float64)


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
