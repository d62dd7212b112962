"""Rasterising shapes onto the imaging grid (voxel ``i`` spans ``[i, i + 1) × voxel``).

Two rules, both giving masks at the resolution the networks predict:

- *solid* objects (droplets, vesicles, mitochondria, Golgi stacks, the nucleus) take the
  voxels whose centre lies inside them, plus the voxel holding each object's centre (or
  axis points), so that an object smaller than a voxel still shows;
- *thin* objects (membranes, ER tubules and sheets, filopodia) take the voxels their
  mid-surface or axis passes through: points sampled on it at a third of the smallest voxel
  side mark their voxels, which makes lines and sheets 1–2 voxels thick.

Closed membranes (plasma membrane, nuclear envelope) are the inner boundary of their
solid: voxels inside with a face neighbour outside.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from subcell.core.capsules import segment_distance
from subcell.core.model import Field

__all__ = [
    "axis_points",
    "box_voxels",
    "capsule_voxels",
    "inner_boundary",
    "point_voxels",
]

#: Largest number of (object, voxel) pairs handled at once.
_CHUNK = 1 << 21


def point_voxels(field: Field, points) -> tuple[np.ndarray, np.ndarray]:
    """Flat voxel index of each point inside the field, and the points' mask (N,)."""
    points = np.reshape(points, (-1, 3))
    idx = np.floor(points / np.asarray(field.voxel_nm)).astype(np.int64)
    inside = ((idx >= 0) & (idx < np.asarray(field.shape))).all(axis=1)
    flat = np.ravel_multi_index(tuple(idx[inside].T), field.shape)
    return flat, inside


def axis_points(start, end, step_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Points along each segment at most ``step_nm`` apart (both ends included), and the
    segment of each."""
    start, end = np.reshape(start, (-1, 3)), np.reshape(end, (-1, 3))
    n = np.maximum(1, np.ceil(np.linalg.norm(end - start, axis=1) / step_nm)).astype(int) + 1
    seg = np.repeat(np.arange(len(start)), n)
    k = np.arange(len(seg)) - np.repeat(np.cumsum(n) - n, n)
    f = (k / (n[seg] - 1))[:, None]
    return start[seg] + f * (end[seg] - start[seg]), seg


def box_voxels(field: Field, low_nm, high_nm):
    """All voxels of each object's bounding box (clipped to the field).

    Yields ``(obj, flat, centre_nm)`` chunks: object index, flat voxel index and voxel
    centre (nm) of every (object, voxel) pair. Boxes are padded to the largest box of
    their size class (powers of two), so one big object does not inflate the rest.
    """
    voxel, shape = np.asarray(field.voxel_nm), np.asarray(field.shape)
    lo = np.clip(np.floor(np.reshape(low_nm, (-1, 3)) / voxel).astype(np.int64), 0, shape)
    hi = np.clip(np.floor(np.reshape(high_nm, (-1, 3)) / voxel).astype(np.int64) + 1, 0, shape)
    size = np.maximum(hi - lo, 0)
    volume = size.prod(axis=1)
    group = np.ceil(np.log2(np.maximum(volume, 1))).astype(int)
    for g in np.unique(group[volume > 0]):
        members = np.flatnonzero((group == g) & (volume > 0))
        extent = size[members].max(axis=0)
        offsets = np.stack(np.meshgrid(*map(np.arange, extent), indexing="ij"), -1).reshape(-1, 3)
        per_chunk = max(1, _CHUNK // len(offsets))
        for first in range(0, len(members), per_chunk):
            chunk = members[first : first + per_chunk]
            idx = lo[chunk][:, None, :] + offsets[None]
            valid = (offsets[None] < size[chunk][:, None, :]).all(axis=-1)
            obj = np.broadcast_to(chunk[:, None], valid.shape)[valid]
            idx = idx[valid]
            yield obj, np.ravel_multi_index(tuple(idx.T), field.shape), (idx + 0.5) * voxel


def capsule_voxels(field: Field, start, end, radius) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of solid capsules: centres within ``radius`` of the axis, plus those the axis
    passes through. Returns flat voxel indices and the capsule of each (with repeats)."""
    start, end = np.reshape(start, (-1, 3)), np.reshape(end, (-1, 3))
    radius = np.ravel(radius)
    flats, owners = [], []
    low = np.minimum(start, end) - radius[:, None]
    high = np.maximum(start, end) + radius[:, None]
    for obj, flat, centre in box_voxels(field, low, high):
        inside = segment_distance(centre, start[obj], end[obj]) <= radius[obj]
        flats.append(flat[inside])
        owners.append(obj[inside])
    axis, seg = axis_points(start, end, min(field.voxel_nm) / 3)
    flat, inside = point_voxels(field, axis)
    flats.append(flat)
    owners.append(seg[inside])
    return np.concatenate(flats), np.concatenate(owners)


def inner_boundary(solid: np.ndarray, *, open_bottom: bool = False) -> np.ndarray:
    """Voxels of ``solid`` with a face neighbour outside it.

    The field's faces continue the solid (a cell cut by the field's edge has no membrane
    there), except the bottom face with ``open_bottom`` (the coverslip under the basal
    membrane).
    """
    padded = np.pad(solid, 1, mode="edge")
    if open_bottom:
        padded[0] = False
    eroded = ndimage.binary_erosion(padded, ndimage.generate_binary_structure(3, 1))
    return solid & ~eroded[1:-1, 1:-1, 1:-1]
