"""The ``geometry_projection`` ground-truth rule: the geometry's capsules drawn exactly.

A capsule is the set of points within ``r`` of a segment. Projected along z it is a
stadium: the points within ``r`` of the projected segment (a disc for a sphere), so on a
single-plane field a pixel is inside when the 2-D distance from its centre to the projected
segment is at most ``r``, whatever the capsule's z. On a z-stack plane ``k`` is the
cross-section at its centre, z = (k + ½)·voxel_z: a pixel is inside when the 3-D distance
from the voxel centre to the segment is at most ``r`` (an ellipse-ended band for a tilted
capsule, a disc of radius √(r² − dz²) for a sphere).

Voxels the capsule's axis passes through are always marked, so a capsule thinner than a
pixel (or a point, radius 0) still shows and stays connected. Where instances overlap, a
voxel goes to the capsule it lies deepest in (smallest distance / radius).
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.model import Field, Geometry
from subcell.plugins.physics.ground_truth import MaskRule, resolve_overlaps

__all__ = ["GeometryProjection", "GeometryProjectionConfig"]

#: Axis sample spacing, as a fraction of the smallest voxel side, for the axis voxels.
_AXIS_STEP = 0.25


@attrs.frozen(kw_only=True)
class GeometryProjectionConfig:
    """Exact geometric ground truth from the capsules: no parameters."""


class GeometryProjection(MaskRule):
    """Masks drawn from the capsules themselves: exact geometric ground truth.

    Reads only ``geometry`` (and the emitters' class names when given); ``clean``,
    ``noise`` and ``microscope`` are ignored. The geometry is drawn where it is: to mask a
    later frame of moving structures, pass the geometry moved to that frame
    (``geometry.shifted(emitters.shift_nm[t])``).

    Parameters
    ----------
    config
        No parameters.
    """

    def _draw(self, names, geometry: Geometry, emitters, field: Field, **inputs):
        semantic = np.zeros((len(names),) + field.shape, dtype=np.uint8)
        a, b, radius = _in_grid_frame(geometry, field)
        cap, flat, dist2 = _candidates(a, b, radius, field)
        inside = dist2 <= radius[cap] ** 2
        inside |= _axis_candidates(cap, flat, a, b, radius, field)
        cap, flat = cap[inside], flat[inside]
        semantic.reshape(len(names), -1)[geometry.klass[cap], flat] = 1
        # Deepest wins: score = -(distance / radius)², a point capsule counting as depth 0.
        r2 = radius[cap] ** 2
        depth = np.divide(dist2[inside], r2, out=np.zeros_like(r2), where=r2 > 0)
        instances = resolve_overlaps(flat, geometry.instance[cap], -depth, field.shape)
        return semantic, instances


def _in_grid_frame(geometry: Geometry, field: Field):
    """Segment ends (M, 3) and radii; on a single plane the ends are put at the plane's
    centre height, so distances are lateral: the capsule's projection."""
    a, b = geometry.start_nm.copy(), geometry.end_nm.copy()
    if field.shape[0] == 1:
        a[:, 0] = b[:, 0] = 0.5 * field.voxel_nm[0]
    return a, b, geometry.radius_nm.astype(np.float64)


def _windows(a, b, radius, field: Field):
    """Per-capsule voxel bounding boxes [lo, hi) (M, 3), clipped to the field."""
    voxel, shape = np.asarray(field.voxel_nm), np.asarray(field.shape)
    r = radius[:, None]
    lo = np.ceil((np.minimum(a, b) - r) / voxel - 0.5).astype(np.int64)
    hi = np.floor((np.maximum(a, b) + r) / voxel - 0.5).astype(np.int64) + 1
    # The voxels holding the ends, so a capsule thinner than a voxel keeps its axis voxels.
    lo = np.minimum(lo, np.floor(np.minimum(a, b) / voxel).astype(np.int64))
    hi = np.maximum(hi, np.floor(np.maximum(a, b) / voxel).astype(np.int64) + 1)
    return np.clip(lo, 0, shape), np.clip(hi, 0, shape)


def _candidates(a, b, radius, field: Field):
    """Every (capsule, voxel) pair of the capsules' windows, with the squared distance from
    the voxel centre to the capsule's segment: capsule index, flat voxel index, nm²."""
    lo, hi = _windows(a, b, radius, field)
    size = np.prod(np.maximum(hi - lo, 0), axis=1)
    cap = np.repeat(np.arange(len(a)), size)
    local = np.arange(len(cap)) - np.repeat(np.cumsum(size) - size, size)
    extent = (hi - lo)[cap]
    yx = extent[:, 1] * extent[:, 2]
    idx = np.column_stack([local // yx, local % yx // extent[:, 2], local % extent[:, 2]])
    idx += lo[cap]
    return cap, np.ravel_multi_index(tuple(idx.T), field.shape), _dist2(idx, a, b, cap, field)


def _dist2(idx, a, b, cap, field: Field) -> np.ndarray:
    """Squared distance from voxel centres ``idx`` (n, 3) to segments ``cap`` (n,)."""
    rel = (idx + 0.5) * np.asarray(field.voxel_nm) - a[cap]
    d = (b - a)[cap]
    length2 = np.einsum("ij,ij->i", d, d)
    t = np.clip(np.einsum("ij,ij->i", rel, d) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    off = rel - t[:, None] * d
    return np.einsum("ij,ij->i", off, off)


def _axis_candidates(cap, flat, a, b, radius, field: Field) -> np.ndarray:
    """Which candidates are voxels the axis of a capsule thinner than half a voxel
    diagonal crosses (thicker capsules cover those voxels' centres anyway)."""
    voxel, shape = np.asarray(field.voxel_nm), np.asarray(field.shape)
    if field.shape[0] == 1:
        voxel = voxel.copy()
        voxel[0] = 0.0  # the projected axis lies at the plane's centre height
    thin = np.flatnonzero(radius < 0.5 * np.linalg.norm(voxel))
    hit = np.zeros(len(cap), dtype=bool)
    if not len(thin):
        return hit
    step = _AXIS_STEP * np.asarray(field.voxel_nm).min()
    n = np.ceil(np.linalg.norm(b[thin] - a[thin], axis=1) / step).astype(np.int64) + 1
    owner = np.repeat(thin, n)
    frac = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / np.repeat(
        np.maximum(n - 1, 1), n
    )
    points = a[owner] + frac[:, None] * (b - a)[owner]
    idx = np.floor(points / np.asarray(field.voxel_nm)).astype(np.int64)
    ok = ((idx >= 0) & (idx < shape)).all(axis=1)
    key = owner[ok] * np.prod(shape) + np.ravel_multi_index(tuple(idx[ok].T), field.shape)
    return np.isin(cap * np.prod(shape) + flat, key)
