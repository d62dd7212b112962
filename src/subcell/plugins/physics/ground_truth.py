"""Ground-truth rules: masks from what was simulated, never from the noisy image.

``physics_projection`` is the physics-based ground truth of Sekh et al. (2021): drop z, put
the emitters on a fine grid and max-pool it to the pixel size. Max-pooling a fine grid marks
exactly the pixels that contain an emitter, so we rasterise straight at pixel resolution
(no 1 nm grid in memory). ``geometry_projection`` draws the geometry itself: exact discs.

Pixel convention: voxel ``i`` along an axis spans ``[i * voxel_nm, (i + 1) * voxel_nm)``.
With one plane (``field.shape[0] == 1``) everything is projected along z; with a z-stack
each plane is its own slab.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy import ndimage

from subcell.core.model import Emitters, Field, Geometry, Masks

__all__ = [
    "GeometryProjection",
    "GeometryProjectionConfig",
    "PhysicsProjection",
    "PhysicsProjectionConfig",
]

# Hole filling within each plane only: no connections along z.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)
# Class indices are int16: this many values, offset so negatives cannot collide.
_CLASS_SPAN = 1 << 16


@attrs.frozen(kw_only=True)
class PhysicsProjectionConfig:
    """Physics-based ground truth from emitter positions.

    Attributes
    ----------
    min_emitters
        A pixel belongs to an instance when it holds at least this many of its emitters.
    fill_holes
        Fill enclosed holes of each instance in each plane (a projected shell is a disc,
        not a ring).
    """

    min_emitters: int = attrs.field(default=1, converter=int, validator=attrs.validators.ge(1))
    fill_holes: bool = True


@attrs.frozen(kw_only=True)
class GeometryProjectionConfig:
    """Exact geometric ground truth from the spheres: no parameters."""


def _class_names(geometry: Geometry, emitters: Emitters | None = None) -> tuple[str, ...]:
    if emitters is not None and emitters.class_names:
        return tuple(emitters.class_names)
    return tuple(geometry.class_names)


class PhysicsProjection:
    """Masks from the pixels that hold emitters (max-pooled emitter map).

    Where instances overlap, a pixel goes to the instance with more emitters in it (ties to
    the lower id; hole-filled pixels count as zero emitters). Emitters with instance 0 mark
    the semantic masks only.

    Parameters
    ----------
    config
        Emitter threshold and hole filling.
    """

    def __init__(self, config: PhysicsProjectionConfig):
        self.config = config

    def masks(
        self, geometry: Geometry, emitters: Emitters, field: Field, *, clean=None, noise=None, microscope=None
    ) -> Masks:
        """Rasterise ``emitters`` onto ``field``.

        Parameters
        ----------
        geometry
            Supplies class names when the emitters carry none.
        emitters
            Positions in nm with instance and class ids.
        field
            The imaging grid of the masks.

        Returns
        -------
        Masks
            ``semantic`` (K, Z, Y, X) uint8 and ``instances`` (Z, Y, X) uint32.
        """
        names = _class_names(geometry, emitters)
        shape = field.shape
        n_vox = int(np.prod(shape))
        vox, ok = _voxel_index(emitters.position_nm, field)
        pairs, group = _pair_groups(emitters.instance[ok], emitters.klass[ok])
        keys, counts = np.unique(group.astype(np.int64) * n_vox + vox[ok], return_counts=True)
        keep = counts >= self.config.min_emitters
        g_of, v_of, score = keys[keep] // n_vox, keys[keep] % n_vox, counts[keep]
        if self.config.fill_holes and len(v_of):
            g_of, v_of, score = _fill_holes(g_of, v_of, score, shape)

        semantic = np.zeros((len(names),) + shape, dtype=np.uint8)
        klass = pairs[g_of, 1]
        valid = (klass >= 0) & (klass < len(names))
        semantic.reshape(len(names), -1)[klass[valid], v_of[valid]] = 1
        instances = _resolve_overlaps(v_of, pairs[g_of, 0], score, shape)
        return Masks(semantic, names, field.voxel_nm, instances)


def _pair_groups(instance: np.ndarray, klass: np.ndarray):
    """Distinct (instance, class) pairs as (G, 2), and each emitter's pair index."""
    # One int64 per pair: a 1-D unique sorts far faster than np.unique(..., axis=0).
    key = instance.astype(np.int64) * _CLASS_SPAN + (klass.astype(np.int64) + _CLASS_SPAN // 2)
    keys, group = np.unique(key, return_inverse=True)
    pairs = np.column_stack([keys // _CLASS_SPAN, keys % _CLASS_SPAN - _CLASS_SPAN // 2])
    return pairs, group.ravel()


def _voxel_index(position_nm: np.ndarray, field: Field):
    """Flat voxel index of each position, and which positions fall inside the field."""
    idx = np.floor(position_nm / np.asarray(field.voxel_nm)).astype(np.int64)
    if field.shape[0] == 1:
        idx[:, 0] = 0  # a single plane sees every emitter: z is dropped
    ok = ((idx >= 0) & (idx < np.asarray(field.shape))).all(axis=1)
    flat = np.ravel_multi_index(tuple(np.where(ok[:, None], idx, 0).T), field.shape)
    return flat, ok


def _fill_holes(g_of, v_of, score, shape):
    """Add each group's enclosed holes (per plane) with score 0, working on bounding boxes."""
    order = np.argsort(g_of, kind="stable")
    g_of, v_of, score = g_of[order], v_of[order], score[order]
    starts = np.flatnonzero(np.r_[True, g_of[1:] != g_of[:-1]])
    ends = np.r_[starts[1:], len(g_of)]
    new_g, new_v = [g_of], [v_of]
    for a, b in zip(starts, ends, strict=True):
        coords = np.stack(np.unravel_index(v_of[a:b], shape), axis=1)
        lo, hi = coords.min(axis=0), coords.max(axis=0) + 1
        crop = np.zeros(tuple(hi - lo), dtype=bool)
        crop[tuple((coords - lo).T)] = True
        holes = ndimage.binary_fill_holes(crop, structure=_IN_PLANE) & ~crop
        if holes.any():
            hz, hy, hx = np.nonzero(holes)
            new_v.append(np.ravel_multi_index((hz + lo[0], hy + lo[1], hx + lo[2]), shape))
            new_g.append(np.full(len(hz), g_of[a]))
    added = sum(len(v) for v in new_v[1:])
    return (
        np.concatenate(new_g),
        np.concatenate(new_v),
        np.concatenate([score, np.zeros(added, dtype=score.dtype)]),
    )


def _resolve_overlaps(v_of, instance, score, shape) -> np.ndarray:
    """Instance image: each voxel to its highest-scoring instance, ties to the lower id."""
    instances = np.zeros(shape, dtype=np.uint32)
    labelled = instance > 0
    v, inst, s = v_of[labelled], instance[labelled], score[labelled]
    if len(v):
        order = np.lexsort((inst, -s, v))
        v, inst = v[order], inst[order]
        first = np.r_[True, v[1:] != v[:-1]]
        instances.reshape(-1)[v[first]] = inst[first]
    return instances


class GeometryProjection:
    """Masks drawn from the spheres themselves: exact geometric ground truth.

    With one plane, each sphere is its projected disc of radius R; in a z-stack, plane ``p``
    (centre z = (p + ½)·voxel_z) holds the cross-section disc of radius √(R² − dz²). A pixel is
    inside when its centre is. The voxel holding a sphere's centre is always marked, so a
    sphere smaller than a pixel (or of radius 0) still shows. Where instances overlap, a pixel
    goes to the sphere it lies deepest in (smallest distance / radius).

    Parameters
    ----------
    config
        No parameters.
    """

    def __init__(self, config: GeometryProjectionConfig):
        self.config = config

    def masks(
        self,
        geometry: Geometry,
        emitters: Emitters | None,
        field: Field,
        *,
        clean=None,
        noise=None,
        microscope=None,
    ) -> Masks:
        """Draw the spheres of ``geometry`` on ``field``.

        Parameters
        ----------
        geometry
            Spheres in nm with instance and class ids.
        emitters
            Unused except for class names; may be None.
        field
            The imaging grid of the masks.

        Returns
        -------
        Masks
            ``semantic`` (K, Z, Y, X) uint8 and ``instances`` (Z, Y, X) uint32.
        """
        names = _class_names(geometry, emitters)
        semantic = np.zeros((len(names),) + field.shape, dtype=np.uint8)
        instances = np.zeros(field.shape, dtype=np.uint32)
        depth = np.full(field.shape, np.inf, dtype=np.float32)
        for i in range(len(geometry.radius_nm)):
            for plane, sl, inside, d in _sphere_planes(geometry, i, field):
                k = geometry.klass[i]
                semantic[k, plane][sl] |= inside.astype(np.uint8)
                inst = geometry.instance[i]
                if inst > 0:
                    win = inside & (d < depth[plane][sl])
                    depth[plane][sl][win] = d[win]
                    instances[plane][sl][win] = inst
        return Masks(semantic, names, field.voxel_nm, instances)


def _sphere_planes(geometry: Geometry, i: int, field: Field):
    """Yield (plane, (y, x) slices, inside mask, normalised depth²) for sphere ``i``."""
    centre = geometry.center_nm[i]
    radius = float(geometry.radius_nm[i])
    vz, vy, vx = field.voxel_nm
    n_z, n_y, n_x = field.shape
    home = np.floor(centre / np.asarray(field.voxel_nm)).astype(int)
    if n_z == 1:
        planes = [(0, 0.0)]
        home[0] = 0
    else:
        z_centres = (np.arange(n_z) + 0.5) * vz
        hit = np.flatnonzero(np.abs(z_centres - centre[0]) <= radius)
        planes = [(p, z_centres[p] - centre[0]) for p in hit]
        if 0 <= home[0] < n_z and home[0] not in hit:
            planes.append((int(home[0]), z_centres[home[0]] - centre[0]))
    for plane, dz in planes:
        rho = np.sqrt(max(radius**2 - dz**2, 0.0))
        y0 = max(min(int(np.ceil((centre[1] - rho) / vy - 0.5)), home[1]), 0)
        y1 = min(max(int(np.floor((centre[1] + rho) / vy - 0.5)), home[1]) + 1, n_y)
        x0 = max(min(int(np.ceil((centre[2] - rho) / vx - 0.5)), home[2]), 0)
        x1 = min(max(int(np.floor((centre[2] + rho) / vx - 0.5)), home[2]) + 1, n_x)
        if y0 >= y1 or x0 >= x1:
            continue
        yy = ((np.arange(y0, y1) + 0.5) * vy - centre[1])[:, None]
        xx = ((np.arange(x0, x1) + 0.5) * vx - centre[2])[None, :]
        lateral2 = yy**2 + xx**2
        depth = (lateral2 + dz**2) / radius**2 if radius > 0 else np.zeros_like(lateral2)
        inside = lateral2 <= rho**2 if rho > 0 else np.zeros(lateral2.shape, dtype=bool)
        if plane == home[0] and y0 <= home[1] < y1 and x0 <= home[2] < x1:
            inside[home[1] - y0, home[2] - x0] = True
        yield plane, (slice(y0, y1), slice(x0, x1)), inside, depth.astype(np.float32)
