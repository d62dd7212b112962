"""Vectorised geometry on capsules: areas, distances, neighbours, joints, unions.

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
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "JointCaps",
    "Neighbours",
    "capsule_area",
    "capsule_frames",
    "capsule_volume",
    "containing_instance",
    "joint_caps",
    "same_instance_neighbours",
    "segment_distance",
    "segment_segment_distance",
    "surface_owned",
    "union_distance",
    "volume_owned",
]

#: Distances closer than this to a surface (nm, plus this fraction of the radius) count as
#: on it: floating-point noise of points drawn exactly on a sphere is ~1e-12 nm.
_ON_SURFACE_NM = 1e-9
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
    axis = geometry.end_nm - geometry.start_nm
    length = np.linalg.norm(axis, axis=1)
    unit = axis / np.where(length > _EPS, length, 1.0)[:, None]
    u = np.where(length[:, None] > _EPS, unit, np.array([1.0, 0.0, 0.0]))
    # Any helper vector not parallel to u gives the normals.
    helper = np.where(np.abs(u[:, :1]) < 0.9, np.array([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0])
    v = np.cross(u, helper)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return u, v, np.cross(u, v), length


@attrs.frozen(eq=False)
class JointCaps:
    """What other capsules of the same instance do to each capsule's end caps.

    Rows are capsules, columns their start (0) and end (1) half-balls.

    Attributes
    ----------
    surface_covered
        (M, 2) bool: every point of this half-sphere is strictly inside, or on the surface
        of, a capsule that :func:`surface_owned` prefers: another capsule ends at the very
        same point with a larger radius, or the same radius and a lower index.
    volume_covered
        (M, 2) bool: this half-ball lies inside a lower-numbered capsule ending at the same
        point with a radius at least as large (:func:`volume_owned` gives it to that one).
    partner
        (M, 2, 3): for a cap whose end point is shared with another capsule of positive
        length and a radius at least as large, the unit direction from that point into the
        other capsule; NaN where there is none. Cap points on the partner's side of the
        plane through the point (``d · partner > 0``) are strictly inside the partner.
    """

    surface_covered: np.ndarray
    volume_covered: np.ndarray
    partner: np.ndarray


def joint_caps(geometry) -> JointCaps:
    """Find capsules of one instance that end at the very same point (chain joints, branch
    junctions) and what that implies for their caps; see :class:`JointCaps`."""
    m = len(geometry.radius_nm)
    u, _, _, length = capsule_frames(geometry)
    capsule = np.tile(np.arange(m), 2)
    # Entry e < m is capsule e's start, e >= m its end; the direction into the capsule
    # from that end point is +u at the start and -u at the end.
    inward = np.concatenate([u, -u])
    radius = geometry.radius_nm[capsule]
    solid = np.flatnonzero(radius > 0)
    ends = np.concatenate([geometry.start_nm, geometry.end_nm])
    key = np.column_stack([geometry.instance[capsule].astype(float), ends])[solid]
    _, group = np.unique(key, axis=0, return_inverse=True)
    order = np.argsort(group, kind="stable")
    entry, group = solid[order], group.ravel()[order]
    surface = np.zeros(2 * m, dtype=bool)
    volume = np.zeros(2 * m, dtype=bool)
    partner = np.full((2 * m, 3), np.nan)
    # Groups are tiny (2 at a chain joint, 3 at a junction): compare each entry with the
    # next k entries of its group, for k = 1, 2, ...
    k = 1
    while k < len(entry):
        same = np.flatnonzero(group[:-k] == group[k:])
        if not len(same):
            break
        for e, f in ((entry[same], entry[same + k]), (entry[same + k], entry[same])):
            ci, cj, ri, rj = capsule[e], capsule[f], radius[e], radius[f]
            other = ci != cj
            surface[e[other & ((rj > ri) | ((rj == ri) & (cj < ci)))]] = True
            volume[e[(cj < ci) & (rj >= ri)]] = True
            has = other & (rj >= ri) & (length[cj] > _EPS)
            partner[e[has]] = inward[f[has]]
        k += 1
    return JointCaps(
        surface.reshape(2, m).T, volume.reshape(2, m).T, partner.reshape(2, m, 3).transpose(1, 0, 2)
    )


#: Sub-segments per neighbour when bounding where it can cut a cylinder (see _windows).
_WINDOW_PIECES = 16


def _windows(geometry, neighbours: Neighbours, tol: np.ndarray):
    """For each (capsule i, neighbour j) pair, an interval of axial positions along ``i``
    outside which no point of ``i``'s cylinder surface lies within ``r_j + tol`` of ``j``.

    For a point ``x`` at axial ``t`` and distance ``r_i`` from ``i``'s axis and any point
    ``y`` of segment ``j`` (axial ``y∥``, off-axis distance ``ρ``),
    ``|x − y|² ≥ (t − y∥)² + (r_i − ρ)²``. ``j``'s segment is cut into pieces of length
    ``Δ``; every ``y`` is within ``Δ/2`` of a piece centre ``c``, so ``x`` can only be near
    ``j`` if ``(t − c∥)² ≤ (r_j + tol + Δ/2)² − (r_i − ρ_c)²`` for some centre.
    """
    i = np.repeat(np.arange(len(neighbours.degree)), neighbours.degree)
    j = neighbours.indices
    u, _, _, length = capsule_frames(geometry)
    frac = (np.arange(_WINDOW_PIECES) + 0.5) / _WINDOW_PIECES
    axis = geometry.end_nm - geometry.start_nm
    rel = (geometry.start_nm[j] - geometry.start_nm[i])[:, None, :] + frac[None, :, None] * (
        axis[j][:, None, :]
    )
    along = np.einsum("pkc,pc->pk", rel, u[i])
    off = np.linalg.norm(rel - along[..., None] * u[i][:, None, :], axis=-1)
    reach = geometry.radius_nm[j] + tol[j] + 0.5 * length[j] / _WINDOW_PIECES
    h2 = reach[:, None] ** 2 - (geometry.radius_nm[i][:, None] - off) ** 2
    h = np.sqrt(np.clip(h2, 0.0, None))
    low = np.where(h2 >= 0, along - h, np.inf).min(axis=1)
    high = np.where(h2 >= 0, along + h, -np.inf).max(axis=1)
    return low, high


def _owned(points, owner, geometry, neighbours: Neighbours, rejects, axial=None) -> np.ndarray:
    """Keep mask: ``rejects(dist2, r_j, j, i)`` tested against each neighbour in turn.

    Neighbour ``k`` of every surviving point is tested in round ``k``; nearest-first lists
    mean most rejected points leave in the first rounds, so later rounds are small. With
    ``axial`` (the axial position of points on their capsule's cylinder surface, NaN for
    others), pairs outside :func:`_windows` are skipped without computing a distance.
    """
    keep = np.ones(len(owner), dtype=bool)
    if not len(owner) or not len(neighbours.indices):
        return keep
    start = geometry.start_nm
    axis = geometry.end_nm - start
    dd = np.einsum("ij,ij->i", axis, axis)
    inv = np.where(dd > _EPS, 1.0 / np.where(dd > _EPS, dd, 1.0), 0.0)
    if axial is not None:
        low, high = _windows(geometry, neighbours, _ON_SURFACE_NM * (1.0 + geometry.radius_nm))
    degree = neighbours.degree
    alive = np.flatnonzero(degree[owner] > 0)
    k = 0
    while len(alive):
        pair = neighbours.indptr[owner[alive]] + k
        test = alive
        if axial is not None:
            t = axial[alive]
            near = ~((t < low[pair]) | (t > high[pair]))  # NaN (not on a cylinder): test
            test, pair = alive[near], pair[near]
        i, j = owner[test], neighbours.indices[pair]
        w = np.take(points, test, axis=0)
        w -= np.take(start, j, axis=0)
        d = np.take(axis, j, axis=0)
        s = np.einsum("ij,ij->i", w, d)
        s *= inv[j]
        np.clip(s, 0.0, 1.0, out=s)
        w -= s[:, None] * d
        out = rejects(np.einsum("ij,ij->i", w, w), geometry.radius_nm[j], j, i)
        keep[test[out]] = False
        k += 1
        alive = alive[keep[alive] & (degree[owner[alive]] > k)]
    return keep


def _lower(neighbours: Neighbours) -> Neighbours:
    """Only the lower-numbered neighbours of each capsule (all that volume ownership needs)."""
    i = np.repeat(np.arange(len(neighbours.degree)), neighbours.degree)
    lower = neighbours.indices < i
    indptr = np.zeros_like(neighbours.indptr)
    np.cumsum(np.bincount(i[lower], minlength=len(neighbours.degree)), out=indptr[1:])
    return Neighbours(indptr, neighbours.indices[lower])


def _surface_rejects(dist2, r, j, i):
    """Strictly inside capsule ``j``, or on its surface when ``j`` is lower-numbered."""
    tol = _ON_SURFACE_NM * (1.0 + r)
    return (dist2 < (r - tol) ** 2) | ((j < i) & (dist2 <= (r + tol) ** 2))


def _volume_rejects(dist2, r, j, i):
    """Inside a lower-numbered capsule ``j``."""
    return (j < i) & (dist2 <= r * r)


def surface_owned(
    points, owner, geometry, neighbours: Neighbours | None = None, *, axial=None
) -> np.ndarray:
    """Which points, drawn on capsule ``owner``'s surface, belong to the union's surface.

    A point is dropped when it lies strictly inside another capsule of the same instance,
    or on the surface of a lower-numbered one (surfaces shared by several capsules, such as
    the outer wedge of a joint sphere, then count once). Uniform points on every capsule
    thinned this way are uniform on the union's surface.

    Parameters
    ----------
    points
        (N, 3) points in nm, each on the surface of its owner capsule.
    owner
        (N,) capsule index of each point.
    geometry
        The capsules (``start_nm``, ``end_nm``, ``radius_nm``, ``instance``).
    neighbours
        From :func:`same_instance_neighbours`; computed when omitted.
    axial
        Optional (N,) position along the owner's axis (nm from its start) of points on its
        cylinder, NaN for the others: lets most pairs be ruled out without a distance.

    Returns
    -------
    numpy.ndarray
        (N,) bool, True where the point is kept.
    """
    if neighbours is None:
        neighbours = same_instance_neighbours(geometry)
    points, owner = np.asarray(points, dtype=float), np.asarray(owner)
    return _owned(points, owner, geometry, neighbours, _surface_rejects, axial)


def volume_owned(points, owner, geometry, neighbours: Neighbours | None = None) -> np.ndarray:
    """Which points, drawn inside capsule ``owner``, it owns in the union's volume.

    Capsule ``i`` owns the part of itself outside every lower-numbered capsule of the same
    instance, so overlapping joints are counted once. Same parameters as
    :func:`surface_owned`.
    """
    if neighbours is None:
        neighbours = same_instance_neighbours(geometry)
    points, owner = np.asarray(points, dtype=float), np.asarray(owner)
    return _owned(points, owner, geometry, _lower(neighbours), _volume_rejects)


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
