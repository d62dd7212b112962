"""Frame-to-frame linking: Kalman prediction, gating, Hungarian assignment, gap closing.

Each frame, every live track's filter predicts its position; track ``i`` and detection
``j`` may be linked only if the detection lies within ``max_distance_nm`` of the
prediction (the gate). Among the gated pairs the links minimise

    Σ_linked c_ij + Σ_unlinked tracks c_miss,i

(a detection left unlinked starts a track at no cost) with ``c_ij = d_ij²`` (Euclidean)
or ``d_ij² / S_i + D log S_i`` (Mahalanobis: the negative log-likelihood of the
measurement under track ``i``'s prediction, innovation variance ``S_i`` per axis).
``c_miss,i`` is the cost of a detection exactly at the gate, so any gated pair is
preferred to no link and the optimum is found by :func:`scipy.optimize.linear_sum_assignment`
on the reduced costs ``c_ij - c_miss,i`` (negative inside the gate; 0, i.e. "no link",
outside). The gated pairs split into independent groups (connected components of the
track-detection graph), each solved on its own: a one-to-one group needs no solver.

A track that finds no detection stays alive, coasting on its prediction, for up to
``max_gap_frames`` frames (gap closing); after that it ends. Track ids are 1, 2, ... in
order of birth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from subcell.pipeline.tracking.kalman import KalmanBank
from subcell.pipeline.tracking.objects import FrameObjects

__all__ = ["TrackingConfig", "link_objects"]

_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)


@attrs.frozen(kw_only=True)
class TrackingConfig:
    """Parameters of the tracker (distances in nm, per spatial axis where a noise).

    Attributes
    ----------
    max_distance_nm
        Gate: a detection farther than this from a track's predicted position is never
        linked to it, nm.
    max_gap_frames
        Frames a track may go undetected and still be continued (0: no gap closing).
    cost
        ``"mahalanobis"`` (distance scaled by each track's prediction uncertainty) or
        ``"euclidean"`` (squared distance in nm²).
    measurement_noise_nm
        Standard deviation of a centroid's error per axis, nm.
    motion_noise_nm
        Standard deviation per axis of the random part of one frame's step (diffusion:
        ``sqrt(2 D Δt)``), nm.
    velocity_noise_nm
        Standard deviation per axis of the change, from one frame to the next, of the
        directed step (velocity × frame interval), nm.
    initial_velocity_nm
        Prior standard deviation per axis of a new track's directed step, nm per frame.
    min_track_frames
        Tracks detected in fewer frames are dropped from the output.
    """

    max_distance_nm: float = attrs.field(default=1000.0, converter=float, validator=_positive)
    max_gap_frames: int = attrs.field(default=2, converter=int, validator=_non_negative)
    cost: Literal["mahalanobis", "euclidean"] = attrs.field(
        default="mahalanobis", validator=attrs.validators.in_(("mahalanobis", "euclidean"))
    )
    measurement_noise_nm: float = attrs.field(default=50.0, converter=float, validator=_positive)
    motion_noise_nm: float = attrs.field(default=150.0, converter=float, validator=_non_negative)
    velocity_noise_nm: float = attrs.field(default=30.0, converter=float, validator=_non_negative)
    initial_velocity_nm: float = attrs.field(
        default=300.0, converter=float, validator=_non_negative
    )
    min_track_frames: int = attrs.field(default=1, converter=int, validator=attrs.validators.ge(1))


def link_objects(
    frames: Sequence[FrameObjects], config: TrackingConfig | None = None
) -> list[np.ndarray]:
    """Link the objects of consecutive frames into tracks.

    Parameters
    ----------
    frames
        The objects of each frame (see :func:`~subcell.pipeline.tracking.objects.extract_objects`).
    config
        Tracker parameters; defaults when None.

    Returns
    -------
    list of numpy.ndarray
        Per frame, the track id (int64, 1, 2, ...) of each object, in the order of
        ``frames[t].labels``; 0 for objects of tracks shorter than ``min_track_frames``.
    """
    config = config or TrackingConfig()
    ndim = frames[0].ndim if frames else 2
    bank = KalmanBank(
        ndim,
        measurement_noise_nm=config.measurement_noise_nm,
        motion_noise_nm=config.motion_noise_nm,
        velocity_noise_nm=config.velocity_noise_nm,
        initial_velocity_nm=config.initial_velocity_nm,
    )
    ids = np.zeros(0, dtype=np.int64)
    missed = np.zeros(0, dtype=np.int64)
    next_id = 1
    out = []
    for objects in frames:
        measured = objects.centroid_nm.reshape(-1, ndim)
        bank.predict()
        rows, cols = _assign(bank, measured, config)
        assigned = np.zeros(len(measured), dtype=np.int64)
        assigned[cols] = ids[rows]
        bank.update(rows, measured[cols])
        hit = np.zeros(len(ids), dtype=bool)
        hit[rows] = True
        missed = np.where(hit, 0, missed + 1)
        alive = missed <= config.max_gap_frames
        bank.keep(alive)
        ids, missed = ids[alive], missed[alive]
        born = np.flatnonzero(assigned == 0)
        assigned[born] = np.arange(next_id, next_id + len(born))
        next_id += len(born)
        bank.append(measured[born])
        ids = np.concatenate([ids, assigned[born]])
        missed = np.concatenate([missed, np.zeros(len(born), dtype=np.int64)])
        out.append(assigned)
    return _drop_short(out, config.min_track_frames, next_id)


def _assign(
    bank: KalmanBank, measured: np.ndarray, config: TrackingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Track rows and detection columns linked this frame (see the module notes)."""
    empty = np.zeros(0, dtype=np.int64)
    if len(bank) == 0 or len(measured) == 0:
        return empty, empty
    gate = config.max_distance_nm
    pairs = cKDTree(bank.position).sparse_distance_matrix(
        cKDTree(measured), gate, output_type="ndarray"
    )
    inside = pairs["v"] < gate
    i, j, d = pairs["i"][inside], pairs["j"][inside], pairs["v"][inside]
    if len(i) == 0:
        return empty, empty
    reduced = d**2 - gate**2
    if config.cost == "mahalanobis":
        # c_ij - c_miss,i: the log-determinant terms cancel, the scale 1 / S_i stays
        reduced = reduced / bank.innovation_variance()[i]
    return _solve_components(i, j, reduced, len(bank), len(measured))


def _solve_components(
    i: np.ndarray, j: np.ndarray, cost: np.ndarray, n_tracks: int, n_objects: int
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost links, solved per connected component of the gated pairs."""
    graph = coo_matrix((np.ones(len(i)), (i, n_tracks + j)), shape=(n_tracks + n_objects,) * 2)
    _, component = connected_components(graph, directed=False)
    edge_component = component[i]
    edges_per_component = np.bincount(edge_component, minlength=component.max() + 1)
    single = edges_per_component[edge_component] == 1
    rows, cols = [i[single]], [j[single]]
    shared = np.flatnonzero(~single)
    order = shared[np.argsort(edge_component[shared], kind="stable")]
    bounds = np.flatnonzero(np.diff(edge_component[order])) + 1
    for group in np.split(order, bounds) if len(order) else []:
        tracks, local_i = np.unique(i[group], return_inverse=True)
        objects, local_j = np.unique(j[group], return_inverse=True)
        matrix = np.zeros((len(tracks), len(objects)))  # 0 = no link
        matrix[local_i, local_j] = cost[group]
        r, c = linear_sum_assignment(matrix)
        linked = matrix[r, c] < 0
        rows.append(tracks[r[linked]])
        cols.append(objects[c[linked]])
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def _drop_short(assigned: list[np.ndarray], min_frames: int, next_id: int) -> list[np.ndarray]:
    """Zero the ids of tracks with fewer than ``min_frames`` detections; renumber the rest."""
    if min_frames <= 1 or not assigned:
        return assigned
    counts = np.bincount(np.concatenate(assigned), minlength=next_id)
    counts[0] = 0
    renumber = np.zeros(next_id, dtype=np.int64)
    kept = np.flatnonzero(counts >= min_frames)
    renumber[kept] = np.arange(1, len(kept) + 1)
    return [renumber[a] for a in assigned]
