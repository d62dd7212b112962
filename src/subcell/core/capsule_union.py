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
    # Group equal (instance, point) rows: a stable lexsort keeps each group in entry order
    # (cheaper than np.unique(..., axis=0) and the same groups).
    order = np.lexsort(key.T[::-1])
    key = key[order]
    group = np.cumsum(np.r_[False, (key[1:] != key[:-1]).any(axis=1)])
    entry = solid[order]
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


#: Bins per capsule axis for finding which windows (see :func:`_windows`) hold a point; one
#: more cell per capsule lists all its pairs (points off the cylinder, axial NaN).
_AXIAL_BINS = 32


def _expand(indptr, rows):
    """Flattened CSR lookup: for each entry of ``rows`` (indices into ``indptr``), every
    position ``indptr[row]:indptr[row + 1]``; returns (which entry, position)."""
    first, count = indptr[rows], indptr[rows + 1] - indptr[rows]
    ends = np.cumsum(count)
    entry = np.repeat(np.arange(len(rows)), count)
    position = np.arange(ends[-1] if len(ends) else 0) + np.repeat(first - ends + count, count)
    return entry, position


def _cell_pairs(neighbours: Neighbours, low, high, scale):
    """CSR lists of pairs per (capsule, axial bin) cell: each pair under every bin its window
    ``[low, high]`` touches (all bins where a bound is NaN) and under its capsule's last
    cell, the one for points with no usable axial position."""
    m, cells = len(neighbours.degree), _AXIAL_BINS + 1
    i = np.repeat(np.arange(m), neighbours.degree)
    with np.errstate(invalid="ignore"):  # inf * 0 on a zero-length capsule: NaN
        lo, hi = low * scale[i], high * scale[i]
    unknown = np.isnan(lo) | np.isnan(hi)
    lo, hi = np.where(unknown, 0.0, lo), np.where(unknown, _AXIAL_BINS - 1.0, hi)
    # floor and clip are monotone, so t in [low, high] puts t's bin in [bin(low), bin(high)].
    b_lo = np.clip(np.floor(lo), 0, _AXIAL_BINS - 1).astype(np.int64)
    b_hi = np.clip(np.floor(hi), 0, _AXIAL_BINS - 1).astype(np.int64)
    span = np.where(lo <= hi, b_hi - b_lo + 1, 0) + 1  # + the capsule's last cell
    span_ptr = np.zeros(len(span) + 1, dtype=np.int64)
    np.cumsum(span, out=span_ptr[1:])
    pair, cell = _expand(span_ptr, np.arange(len(span)))
    cell += (i * cells + b_lo - span_ptr[:-1])[pair]
    last = span_ptr[1:] - 1
    cell[last] = i * cells + _AXIAL_BINS
    order = np.argsort(cell, kind="stable")
    cell_ptr = np.zeros(m * cells + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell, minlength=m * cells), out=cell_ptr[1:])
    return cell_ptr, pair[order]


def _candidates(owner, axial, neighbours: Neighbours, low, high, length):
    """(point, pair) candidates whose axial position may lie in the pair's window (all
    pairs for points with NaN ``axial``): bins only narrow the search, so the exact window
    test follows."""
    scale = np.where(length > _EPS, _AXIAL_BINS / np.where(length > _EPS, length, 1.0), 0.0)
    cell_ptr, cell_pair = _cell_pairs(neighbours, low, high, scale)
    with np.errstate(invalid="ignore"):
        x = np.floor(axial * scale[owner])
    # fmin maps NaN to the all-pairs cell; positions at or past the end go there too.
    b = np.fmax(np.fmin(x, _AXIAL_BINS), 0).astype(np.int64)
    point, slot = _expand(cell_ptr, owner * (_AXIAL_BINS + 1) + b)
    pair = cell_pair[slot]
    t = axial[point]
    near = ~((t < low[pair]) | (t > high[pair]))  # NaN (not on a cylinder): test
    return point[near], pair[near]


def _owned(points, owner, geometry, neighbours: Neighbours, rejects, axial=None) -> np.ndarray:
    """Keep mask: a point goes when ``rejects(dist2, j, i)`` holds for any neighbour ``j``.

    All (point, neighbour) pairs are tested in one flattened pass. With ``axial`` (the
    axial position of points on their capsule's cylinder surface, NaN for others), pairs
    outside :func:`_windows` are skipped without computing a distance.
    """
    keep = np.ones(len(owner), dtype=bool)
    if not len(owner) or not len(neighbours.indices):
        return keep
    start = geometry.start_nm
    axis = geometry.end_nm - start
    dd = np.einsum("ij,ij->i", axis, axis)
    inv = np.where(dd > _EPS, 1.0 / np.where(dd > _EPS, dd, 1.0), 0.0)
    if axial is None:
        point, pair = _expand(neighbours.indptr, owner)
    else:
        length = np.sqrt(dd)  # only sets the bin size: need not match capsule_frames
        low, high = _windows(geometry, neighbours, _ON_SURFACE_NM * (1.0 + geometry.radius_nm))
        point, pair = _candidates(owner, axial, neighbours, low, high, length)
    i, j = owner[point], neighbours.indices[pair]
    w = np.take(points, point, axis=0)
    w -= np.take(start, j, axis=0)
    d = np.take(axis, j, axis=0)
    s = np.einsum("ij,ij->i", w, d)
    s *= inv[j]
    np.clip(s, 0.0, 1.0, out=s)
    d *= s[:, None]
    w -= d
    out = rejects(np.einsum("ij,ij->i", w, w), geometry.radius_nm, j, i)
    keep[point[out]] = False
    return keep


def _lower(neighbours: Neighbours) -> Neighbours:
    """Only the lower-numbered neighbours of each capsule (all that volume ownership needs)."""
    i = np.repeat(np.arange(len(neighbours.degree)), neighbours.degree)
    lower = neighbours.indices < i
    indptr = np.zeros_like(neighbours.indptr)
    np.cumsum(np.bincount(i[lower], minlength=len(neighbours.degree)), out=indptr[1:])
    return Neighbours(indptr, neighbours.indices[lower])


def _surface_rejects(dist2, radius, j, i):
    """Strictly inside capsule ``j``, or on its surface when ``j`` is lower-numbered
    (thresholds per capsule, then gathered: the same numbers as per pair)."""
    tol = _ON_SURFACE_NM * (1.0 + radius)
    inner, outer = ((radius - tol) ** 2)[j], ((radius + tol) ** 2)[j]
    out = dist2 <= outer
    out &= j < i
    out |= dist2 < inner
    return out


def _volume_rejects(dist2, radius, j, i):
    """Inside a lower-numbered capsule ``j``."""
    out = dist2 <= (radius * radius)[j]
    out &= j < i
    return out


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
