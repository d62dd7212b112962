"""Vectorised geometry on capsules: areas, distances, neighbours, unions' distances.

A capsule is the set of points within ``radius`` of the segment ``start``–``end`` (a
cylinder with hemispherical ends; a sphere when ``start == end``). An instance of a
:class:`~subcell.core.model.Geometry` is the union of the capsules carrying its id. All
lengths are in nm and points are ``(N, 3)`` arrays in the core's ``(z, y, x)`` order (the
maths here does not depend on the order).

Functions that take ``geometry`` need only its ``start_nm``, ``end_nm``, ``radius_nm`` and
``instance`` arrays. Neighbour searches use :class:`scipy.spatial.cKDTree` on capsule
centres, with the instance id as a fourth coordinate far apart per id, so capsules of
different instances never pair up however wide the search; point queries group capsules
by size so that one big capsule does not widen the search around all the others.

Which parts of overlapping capsules belong to their union's surface or volume (for
sampling the union) is in :mod:`subcell.core.capsule_union`.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "Neighbours",
    "capsule_area",
    "capsule_frames",
    "capsule_volume",
    "containing_instance",
    "same_instance_neighbours",
    "segment_distance",
    "segment_segment_distance",
    "union_distance",
]

_EPS = 1e-12


def capsule_area(start, end, radius) -> np.ndarray:
    """Surface area of each capsule on its own, 2πrL + 4πr² (nm²)."""
    length = np.linalg.norm(np.asarray(end) - np.asarray(start), axis=-1)
    r = np.asarray(radius, dtype=float)
    return 2 * np.pi * r * length + 4 * np.pi * r**2


def capsule_volume(start, end, radius) -> np.ndarray:
    """Volume of each capsule on its own, πr²L + 4/3 πr³ (nm³)."""
    length = np.linalg.norm(np.asarray(end) - np.asarray(start), axis=-1)
    r = np.asarray(radius, dtype=float)
    return np.pi * r**2 * length + 4 / 3 * np.pi * r**3


def segment_distance(points, start, end) -> np.ndarray:
    """Distance from each point to the matching segment (arrays broadcast, last axis 3).

    A point's signed distance to a capsule surface is ``segment_distance(...) - radius``.
    """
    p, a = np.asarray(points, dtype=float), np.asarray(start, dtype=float)
    d = np.asarray(end, dtype=float) - a
    w = p - a
    dd = np.einsum("...i,...i->...", d, d)
    # Zero-length segments (spheres): t = 0, the distance to the centre.
    t = np.clip(np.einsum("...i,...i->...", w, d) / np.where(dd > _EPS, dd, 1.0), 0.0, 1.0)
    return np.linalg.norm(w - t[..., None] * d, axis=-1)


def segment_segment_distance(start1, end1, start2, end2) -> np.ndarray:
    """Smallest distance between matching segments (arrays broadcast, last axis 3).

    Two capsules intersect when this is below the sum of their radii (closest points of
    two segments, Ericson 2005, *Real-Time Collision Detection*, §5.1.9, vectorised).
    """
    p1, q1, p2, q2 = (np.asarray(v, dtype=float) for v in (start1, end1, start2, end2))
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    p1, d1, d2, r = np.broadcast_arrays(p1, d1, d2, r)
    a = np.einsum("...i,...i->...", d1, d1)
    e = np.einsum("...i,...i->...", d2, d2)
    f = np.einsum("...i,...i->...", d2, r)
    c = np.einsum("...i,...i->...", d1, r)
    b = np.einsum("...i,...i->...", d1, d2)
    a_ok, e_ok = a > _EPS, e > _EPS
    safe_a, safe_e = np.where(a_ok, a, 1.0), np.where(e_ok, e, 1.0)
    denom = a * e - b * b
    # Parallel segments (denom 0): any s works; take 0 and let the t-clamp fix it up.
    skew = denom > _EPS * np.maximum(a * e, 1.0)
    s = np.clip(np.where(skew, (b * f - c * e) / np.where(skew, denom, 1.0), 0.0), 0.0, 1.0)
    t = (b * s + f) / safe_e
    # t outside [0, 1]: clamp it and recompute s for the clamped t.
    s = np.where(t < 0, np.clip(-c / safe_a, 0.0, 1.0), s)
    s = np.where(t > 1, np.clip((b - c) / safe_a, 0.0, 1.0), s)
    t = np.clip(t, 0.0, 1.0)
    # Degenerate (point) segments.
    s = np.where(a_ok, s, 0.0)
    t = np.where(e_ok, t, 0.0)
    t = np.where(a_ok | ~e_ok, t, np.clip(f / safe_e, 0.0, 1.0))
    s = np.where(e_ok | ~a_ok, s, np.clip(-c / safe_a, 0.0, 1.0))
    gap = r + s[..., None] * d1 - t[..., None] * d2
    return np.linalg.norm(gap, axis=-1)


@attrs.frozen(eq=False)
class Neighbours:
    """Same-instance capsules that intersect, as CSR lists: capsule ``i``'s neighbours are
    ``indices[indptr[i]:indptr[i + 1]]``, nearest centre first."""

    indptr: np.ndarray
    indices: np.ndarray

    @property
    def degree(self) -> np.ndarray:
        """Number of neighbours of each capsule."""
        return np.diff(self.indptr)


def _reach(geometry) -> np.ndarray:
    """Radius of the sphere about each capsule's centre that holds the whole capsule."""
    half = 0.5 * np.linalg.norm(geometry.end_nm - geometry.start_nm, axis=1)
    return half + geometry.radius_nm


def _keyed(points: np.ndarray, key: np.ndarray, spacing: float) -> np.ndarray:
    """Points with a fourth coordinate ``key * spacing``: keys farther apart than any query."""
    return np.column_stack([points, key.astype(float) * spacing])


def same_instance_neighbours(geometry) -> Neighbours:
    """Pairs of capsules of the same instance that intersect (both with radius > 0).

    Parameters
    ----------
    geometry
        Anything with ``start_nm``, ``end_nm``, ``radius_nm`` and ``instance``.

    Returns
    -------
    Neighbours
        Symmetric lists, nearest centre first.
    """
    n = len(geometry.radius_nm)
    solid = np.flatnonzero(geometry.radius_nm > 0)
    if len(solid) < 2:
        return Neighbours(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))
    reach = _reach(geometry)[solid]
    centre = 0.5 * (geometry.start_nm + geometry.end_nm)[solid]
    spacing = 4 * reach.max() + 1.0
    tree = cKDTree(_keyed(centre, geometry.instance[solid], spacing))
    pairs = tree.query_pairs(2 * reach.max(), output_type="ndarray")
    i, j = solid[pairs[:, 0]], solid[pairs[:, 1]]
    same = geometry.instance[i] == geometry.instance[j]
    i, j = i[same], j[same]
    gap = segment_segment_distance(
        geometry.start_nm[i], geometry.end_nm[i], geometry.start_nm[j], geometry.end_nm[j]
    )
    hit = gap < geometry.radius_nm[i] + geometry.radius_nm[j]
    i, j = np.concatenate([i[hit], j[hit]]), np.concatenate([j[hit], i[hit]])
    full_centre = 0.5 * (geometry.start_nm + geometry.end_nm)
    dist = np.linalg.norm(full_centre[i] - full_centre[j], axis=1)
    # Nearest first; between equally near ones the higher index first, since a chain's
    # joint cap belongs to the lower-numbered capsule and mostly lies inside the higher one.
    order = np.lexsort((-j, dist, i))
    i, j = i[order], j[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(i, minlength=n), out=indptr[1:])
    return Neighbours(indptr, j.astype(np.int64))


def capsule_frames(geometry):
    """Unit axis ``u``, two unit normals ``v`` and ``w`` (each (M, 3)) and the length (M,)
    of every capsule; a sphere (zero length) gets an arbitrary axis."""
    u, length = _axes(geometry)
    # Any helper vector not parallel to u gives the normals.
    helper = np.where(np.abs(u[:, :1]) < 0.9, np.array([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0])
    v = _cross(u, helper)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return u, v, _cross(u, v), length


def _axes(geometry):
    """Unit axis (M, 3) and length (M,) of every capsule, as :func:`capsule_frames` gives
    them ([1, 0, 0] for a sphere)."""
    axis = geometry.end_nm - geometry.start_nm
    length = np.linalg.norm(axis, axis=1)
    unit = axis / np.where(length > _EPS, length, 1.0)[:, None]
    return np.where(length[:, None] > _EPS, unit, np.array([1.0, 0.0, 0.0])), length


def _cross(a, b):
    """``np.cross`` of (M, 3) arrays, the same products and differences without its
    per-call overhead (it dominates for the few dozen capsules of a field)."""
    a0, a1, a2 = a.T
    b0, b1, b2 = b.T
    out = np.empty(a.shape)
    out[:, 0] = a1 * b2 - a2 * b1
    out[:, 1] = a2 * b0 - a0 * b2
    out[:, 2] = a0 * b1 - a1 * b0
    return out


def _point_capsule_pairs(points, point_key, geometry, capsule_key, max_distance: float):
    """All (point, capsule) pairs with equal keys where the point may lie within
    ``max_distance`` of the capsule's surface. Capsules are grouped by reach (powers of 2)
    so that one big capsule does not widen the search for all."""
    reach = _reach(geometry)
    centre = 0.5 * (geometry.start_nm + geometry.end_nm)
    if not len(reach) or not len(points):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    spacing = 4 * (reach.max() + max_distance) + 1.0
    point_tree = cKDTree(_keyed(points, point_key, spacing))
    group = np.floor(np.log2(np.maximum(reach, 1.0))).astype(int)
    pi, cj = [], []
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        tree = cKDTree(_keyed(centre[members], capsule_key[members], spacing))
        found = point_tree.sparse_distance_matrix(
            tree, reach[members].max() + max_distance, output_type="ndarray"
        )
        pi.append(found["i"].astype(np.int64))
        cj.append(members[found["j"]])
    return np.concatenate(pi), np.concatenate(cj)


def union_distance(points, point_instance, geometry, max_distance_nm: float = 0.0) -> np.ndarray:
    """Signed distance from each point to the union of its instance's capsules.

    Negative inside, 0 on the surface, the true distance outside. Points farther than
    ``max_distance_nm`` from every capsule of their instance get ``+inf``.

    Parameters
    ----------
    points
        (N, 3) points in nm.
    point_instance
        (N,) instance id each point is measured against.
    geometry
        The capsules (``start_nm``, ``end_nm``, ``radius_nm``, ``instance``).
    max_distance_nm
        How far outside the union distances are still computed.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    pi, cj = _point_capsule_pairs(
        points, np.asarray(point_instance), geometry, geometry.instance, max_distance_nm
    )
    signed = segment_distance(points[pi], geometry.start_nm[cj], geometry.end_nm[cj])
    signed -= geometry.radius_nm[cj]
    out = np.full(len(points), np.inf)
    np.minimum.at(out, pi, signed)
    out[out > max_distance_nm] = np.inf
    return out


def containing_instance(points, geometry) -> np.ndarray:
    """Instance id whose union holds each point (surface included), 0 where none does.

    Where instances overlap, the lowest id wins.
    """
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    zeros_p = np.zeros(len(points), dtype=np.int64)
    zeros_c = np.zeros(len(geometry.radius_nm), dtype=np.int64)
    pi, cj = _point_capsule_pairs(points, zeros_p, geometry, zeros_c, 0.0)
    dist = segment_distance(points[pi], geometry.start_nm[cj], geometry.end_nm[cj])
    inside = dist <= geometry.radius_nm[cj]
    best = np.full(len(points), np.iinfo(np.int64).max)
    np.minimum.at(best, pi[inside], geometry.instance[cj[inside]].astype(np.int64))
    best[best == np.iinfo(np.int64).max] = 0
    return best
