"""Events: splits (fission) and merges (fusion) from label overlap, contacts between classes.

**Split / merge.** Object ``a`` of frame ``t`` and object ``b`` of frame ``t + 1``
*overlap* when they share at least ``min_overlap_fraction`` of the smaller one's voxels
(same voxel positions in both frames). An object of frame ``t`` overlapping two or more
objects of frame ``t + 1`` split; two or more objects of frame ``t`` overlapping one
object of frame ``t + 1`` merged. The event is reported at frame ``t + 1``. Overlap
needs objects to move less than their own size per frame, which is the regime where
fission and fusion can be seen at all.

**Contact.** Objects ``a`` (class A) and ``b`` (class B) of the same frame are in
contact when the distance between their nearest voxel centres is at most ``contact_nm``
(0 when they share a voxel; one voxel size when they touch face to face). The nearest
pair is searched among boundary voxels only (a voxel with a neighbour, faces, edges or
corners, outside its object), which is exact: the voxel of an object nearest to anything
outside it is always on its boundary.

Event tables share the columns ``frame``, ``kind`` (``split``, ``merge``, ``contact``),
``track_ids``, ``labels``, ``other_track_ids``, ``other_labels`` (``;``-separated ids),
``distance_nm``. For a split: the parent (frame t) then the children (frame t + 1); for a
merge: the parents (frame t) then the merged object (frame t + 1); for a contact: the
class-A object then the class-B object (both at ``frame``), with their distance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree
from skimage.segmentation import find_boundaries

from subcell.core.model import Table
from subcell.pipeline.tracking.objects import FrameObjects

__all__ = [
    "EVENT_COLUMNS",
    "concat_events",
    "contact_events",
    "contact_pairs",
    "overlap_pairs",
    "split_merge_events",
]

EVENT_COLUMNS = (
    "frame",
    "kind",
    "track_ids",
    "labels",
    "other_track_ids",
    "other_labels",
    "distance_nm",
)


def overlap_pairs(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pairs of labels sharing voxels: ``(labels_before, labels_after, shared_voxels)``."""
    both = np.flatnonzero((before.ravel() != 0) & (after.ravel() != 0))
    a = before.ravel()[both].astype(np.int64)
    b = after.ravel()[both].astype(np.int64)
    if len(a) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    top = int(b.max()) + 1
    if int(a.max()) < (2**62) // top:  # one int64 key per pair: a 1D unique is much faster
        keys, counts = np.unique(a * top + b, return_counts=True)
        return keys // top, keys % top, counts
    pairs, counts = np.unique(np.stack([a, b], axis=1), axis=0, return_counts=True)
    return pairs[:, 0], pairs[:, 1], counts


def split_merge_events(
    video: np.ndarray,
    frames: Sequence[FrameObjects],
    track_ids: Sequence[np.ndarray] | None = None,
    *,
    min_overlap_fraction: float = 0.2,
) -> Table:
    """Splits and merges between consecutive frames of a label series.

    Parameters
    ----------
    video
        (T, Y, X) or (T, Z, Y, X) labels.
    frames
        The objects of each frame (for their sizes and track ids).
    track_ids
        Per frame, the track id of each object of ``frames[t]``; None: ids left 0.
    min_overlap_fraction
        Shared voxels needed, as a fraction of the smaller object of a pair.

    Returns
    -------
    Table
        Columns :data:`EVENT_COLUMNS`, one row per event, by frame.
    """
    rows = []
    for t in range(len(frames) - 1):
        a, b, shared = overlap_pairs(np.asarray(video[t]), np.asarray(video[t + 1]))
        size_a = _lookup(frames[t].labels, frames[t].size_px, a)
        size_b = _lookup(frames[t + 1].labels, frames[t + 1].size_px, b)
        keep = shared >= min_overlap_fraction * np.minimum(size_a, size_b)
        a, b = a[keep], b[keep]
        for kind, one, many in (("split", a, b), ("merge", b, a)):
            values, counts = np.unique(one, return_counts=True)
            for value in values[counts >= 2]:
                partners = np.sort(many[one == value])
                before, after = ([value], partners) if kind == "split" else (partners, [value])
                rows.append(
                    (
                        t + 1,
                        kind,
                        _ids(frames[t], track_ids, t, before),
                        _join(before),
                        _ids(frames[t + 1], track_ids, t + 1, after),
                        _join(after),
                        np.nan,
                    )
                )
    return _table(rows)


def contact_pairs(
    labels_a: np.ndarray, labels_b: np.ndarray, voxel_nm: Sequence[float], contact_nm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of objects within ``contact_nm`` in one frame: ``(label_a, label_b, distance_nm)``.

    The distance is between the nearest voxel centres (0 for objects sharing a voxel);
    pairs are sorted by ``(label_a, label_b)``.
    """
    voxel = np.asarray(voxel_nm, dtype=np.float64)
    a_all, b_all = labels_a.ravel(), labels_b.ravel()
    both = np.flatnonzero((a_all != 0) & (b_all != 0))
    keys = [np.stack([a_all[both], b_all[both], np.zeros(len(both))], axis=1)]
    points_a, ids_a = _boundary(labels_a, voxel)
    points_b, ids_b = _boundary(labels_b, voxel)
    if len(points_a) and len(points_b):
        near = cKDTree(points_a).sparse_distance_matrix(
            cKDTree(points_b), contact_nm, output_type="ndarray"
        )
        near = near[near["v"] <= contact_nm]
        keys.append(np.stack([ids_a[near["i"]], ids_b[near["j"]], near["v"]], axis=1))
    found = np.concatenate(keys)
    if len(found) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    order = np.lexsort((found[:, 2], found[:, 1], found[:, 0]))
    found = found[order]
    first = np.r_[True, np.any(found[1:, :2] != found[:-1, :2], axis=1)]
    return found[first, 0].astype(np.int64), found[first, 1].astype(np.int64), found[first, 2]


def contact_events(
    video_a: np.ndarray,
    video_b: np.ndarray,
    voxel_nm: Sequence[float],
    contact_nm: float,
    *,
    frames_a: Sequence[FrameObjects] | None = None,
    track_ids_a: Sequence[np.ndarray] | None = None,
    frames_b: Sequence[FrameObjects] | None = None,
    track_ids_b: Sequence[np.ndarray] | None = None,
) -> Table:
    """Every frame's contacts between objects of two label series of the same shape.

    Parameters
    ----------
    video_a, video_b
        (T, ...) labels of class A and class B.
    voxel_nm
        Voxel size per spatial axis, nm.
    contact_nm
        Largest distance between nearest voxel centres that counts as contact, nm.
    frames_a, track_ids_a, frames_b, track_ids_b
        Objects and their track ids per frame, to name tracks in the events (0 otherwise).

    Returns
    -------
    Table
        Columns :data:`EVENT_COLUMNS`, one row per pair and frame in contact.
    """
    rows = []
    for t in range(video_a.shape[0]):
        a, b, d = contact_pairs(
            np.asarray(video_a[t]), np.asarray(video_b[t]), voxel_nm, contact_nm
        )
        tracks_a = _track_of(frames_a, track_ids_a, t, a)
        tracks_b = _track_of(frames_b, track_ids_b, t, b)
        rows.extend(
            (t, "contact", str(ta), str(la), str(tb), str(lb), float(dist))
            for la, lb, dist, ta, tb in zip(a, b, d, tracks_a, tracks_b, strict=True)
        )
    return _table(rows)


def concat_events(*tables: Table) -> Table:
    """Event tables joined and sorted by frame (stable: splits, merges, then contacts)."""
    rows = [row for table in tables for row in zip(*table.columns.values(), strict=True)]
    rows.sort(key=lambda r: r[0])
    return _table(rows)


def _boundary(labels: np.ndarray, voxel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (nm) and labels of every boundary voxel (full connectivity)."""
    edge = find_boundaries(labels, connectivity=labels.ndim, mode="inner") & (labels != 0)
    where = np.nonzero(edge)
    points = (
        (np.stack(where, axis=1) + 0.5) * voxel if len(where[0]) else np.zeros((0, labels.ndim))
    )
    return points, labels[where].astype(np.int64)


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """``values`` at the positions of ``wanted`` in the sorted ``keys`` (0 where absent)."""
    if len(keys) == 0:
        return np.zeros(len(wanted), dtype=values.dtype)
    index = np.clip(np.searchsorted(keys, wanted), 0, len(keys) - 1)
    return np.where(keys[index] == wanted, values[index], 0)


def _track_of(frames, track_ids, t: int, labels: np.ndarray) -> np.ndarray:
    if frames is None or track_ids is None:
        return np.zeros(len(labels), dtype=np.int64)
    return _lookup(frames[t].labels, track_ids[t], labels)


def _ids(frame: FrameObjects, track_ids, t: int, labels) -> str:
    if track_ids is None:
        return _join(np.zeros(len(labels), dtype=np.int64))
    return _join(_lookup(frame.labels, track_ids[t], np.asarray(labels, dtype=np.int64)))


def _join(values) -> str:
    return ";".join(str(int(v)) for v in values)


def _table(rows: list[tuple]) -> Table:
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(EVENT_COLUMNS)
    dtypes = (np.int64, str, str, str, str, str, np.float64)
    return Table(
        {
            name: np.asarray(values, dtype=dtype)
            for name, values, dtype in zip(EVENT_COLUMNS, columns, dtypes, strict=True)
        }
    )
