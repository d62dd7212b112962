"""Ownership in unions of capsules: which points drawn on (or in) one capsule belong to
the union's surface (or volume), so that parts shared by overlapping capsules of one
instance (chain joints, branch junctions) count once.

The functions need only the geometry's ``start_nm``, ``end_nm``, ``radius_nm`` and
``instance`` arrays; ownership tests each point against the capsules that intersect its
own (:func:`subcell.core.capsules.same_instance_neighbours`). Lengths are in nm.
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.capsules import Neighbours, capsule_frames, same_instance_neighbours

__all__ = ["JointCaps", "joint_caps", "surface_owned", "volume_owned"]

#: Distances closer than this to a surface (nm, plus this fraction of the radius) count as
#: on it: floating-point noise of points drawn exactly on a sphere is ~1e-12 nm.
_ON_SURFACE_NM = 1e-9
#: Lengths and squared lengths below this count as zero (as in :mod:`subcell.core.capsules`).
_EPS = 1e-12


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
