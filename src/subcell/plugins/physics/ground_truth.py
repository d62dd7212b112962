"""Ground-truth rules: masks from what was simulated, never from the noisy image.

The rules live in three modules; this one holds what they share, including their base
class :class:`MaskRule`.

- ``physics`` (:mod:`~subcell.plugins.physics.gt_physics`): the physics-based ground truth
  of Sekh et al. (2021), from the emitters alone: unchanged by the PSF and the noise.
- ``geometry_projection`` (:mod:`~subcell.plugins.physics.gt_geometry`): the capsules of
  the geometry drawn exactly.
- ``otsu_clean``, ``otsu_erode``, ``noise_level``
  (:mod:`~subcell.plugins.physics.gt_threshold`): thresholds of the noise-free image, the
  alternatives the paper compared; their foreground pixels take the instance (and class) of
  the nearest emitters.

Pixel convention: voxel ``i`` along an axis spans ``[i * voxel_nm, (i + 1) * voxel_nm)``.
A single-plane field (``field.shape[0] == 1``) is a projection: every emitter and capsule
is seen whatever its z. On a z-stack each plane is its own slab.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.model import Emitters, Field, Geometry, Masks

__all__ = [
    "MaskRule",
    "class_names_for",
    "clean_image",
    "count_keys",
    "emitter_groups",
    "emitter_voxels",
    "label_foreground",
    "require",
    "resolve_overlaps",
    "seed_map",
]

# Class indices are int16: this many values, offset so negatives cannot collide.
_CLASS_SPAN = 1 << 16
# Largest key counted with a histogram (int64 bins: 32 MiB) rather than by sorting.
_BINCOUNT_MAX = 1 << 22
# Largest (instance, class) table that groups emitters without sorting.
_TABLE_MAX = 1 << 16


def class_names_for(geometry: Geometry | None, emitters: Emitters | None) -> tuple[str, ...]:
    """The mask channels: the emitters' class names, or the geometry's when they have none."""
    if emitters is not None and emitters.class_names:
        return tuple(emitters.class_names)
    return tuple(geometry.class_names) if geometry is not None else ()


class MaskRule:
    """Base of the ground-truth rules: :meth:`masks` takes the class names and wraps the
    semantic and instance masks the rule's ``_draw`` makes of them.

    Parameters
    ----------
    config
        The rule's parameters.
    """

    def __init__(self, config):
        self.config = config

    def masks(
        self,
        geometry: Geometry | None,
        emitters: Emitters | None,
        field: Field,
        *,
        clean=None,
        noise=None,
        microscope=None,
    ) -> Masks:
        """Masks of ``field`` from what was simulated; each rule reads only the inputs its
        class names.

        Parameters
        ----------
        geometry
            Capsules in nm with instance and class ids; supplies the class names when the
            emitters carry none. Only ``geometry_projection`` needs it.
        emitters
            Positions in nm (frame 0) with instance and class ids; every rule but
            ``geometry_projection`` needs them.
        field
            The imaging grid of the masks.
        clean
            The noise-free image (C, Z, Y, X) in expected photons (threshold rules).
        noise
            The noise model (``noise_level``).
        microscope
            The optics (``otsu_erode``, for its PSF).

        Returns
        -------
        Masks
            ``semantic`` (K, Z, Y, X) uint8 and ``instances`` (Z, Y, X) uint32.
        """
        names = class_names_for(geometry, emitters)
        semantic, instances = self._draw(
            names, geometry, emitters, field, clean=clean, noise=noise, microscope=microscope
        )
        return Masks(semantic, names, field.voxel_nm, instances)

    def _draw(self, names, geometry, emitters, field, **inputs):
        """(K, Z, Y, X) uint8 semantic masks, one per name, and (Z, Y, X) uint32 instances."""
        raise NotImplementedError


def require(rule: str, **given) -> None:
    """Raise a one-line :class:`ConfigError` naming each input ``rule`` needs but lacks."""
    missing = [name for name, value in given.items() if value is None]
    if missing:
        needs = ", ".join(f"{name}=" for name in missing)
        raise ConfigError(
            f"ground-truth rule {rule!r} needs {needs} (the caller did not pass it); "
            "choose 'physics' or 'geometry_projection' where only geometry and emitters exist"
        )


def clean_image(clean, field: Field) -> np.ndarray:
    """Check the noise-free image is ``(C, Z, Y, X)`` on ``field`` and finite; float64."""
    arr = np.asarray(clean, dtype=np.float64)
    if arr.ndim != 4 or arr.shape[1:] != field.shape:
        raise VolumeError(
            f"the clean image must be (C, Z, Y, X) with (Z, Y, X) = {field.shape}, "
            f"got shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise VolumeError("the clean image holds NaN or inf")
    return arr


def emitter_voxels(
    positions_nm: np.ndarray, field: Field, grid: tuple[int, int, int], *, clamp_z: bool = False
):
    """Flat index into ``grid`` of each position's voxel, and which positions fall inside.

    ``grid`` is ``field.shape`` or, to project along z, ``(1, Y, X)``: then z is dropped.
    With ``clamp_z`` positions above or below a z-stack count in its first or last plane.
    """
    if grid[0] == 1:  # a projection: z is dropped, so only y and x are computed
        return _plane_voxels(positions_nm, field, grid)
    idx = np.floor(positions_nm / np.asarray(field.voxel_nm)).astype(np.int64)
    if clamp_z:
        idx[:, 0] = np.clip(idx[:, 0], 0, grid[0] - 1)
    ok = ((idx >= 0) & (idx < np.asarray(grid))).all(axis=1)
    flat = np.ravel_multi_index(tuple(np.where(ok[:, None], idx, 0).T), grid)
    return flat, ok


def _plane_voxels(positions_nm: np.ndarray, field: Field, grid: tuple[int, int, int]):
    """:func:`emitter_voxels` on a ``(1, Y, X)`` grid, on y and x only. Bounds are checked on
    the floored floats, which agrees with checking their int64 casts: NaN, inf and values
    beyond int64 fail both ways."""
    positions_nm = np.asarray(positions_nm, dtype=float)
    _, vy, vx = field.voxel_nm
    iy = np.floor(positions_nm[:, 1] / vy)
    ix = np.floor(positions_nm[:, 2] / vx)
    ok = (iy >= 0) & (iy < grid[1]) & (ix >= 0) & (ix < grid[2])
    flat = np.where(ok, iy, 0).astype(np.int64) * grid[2]
    flat += np.where(ok, ix, 0).astype(np.int64)
    return flat, ok


def emitter_groups(instance: np.ndarray, klass: np.ndarray):
    """Distinct (instance, class) pairs as (G, 2), and each emitter's pair index."""
    instance, klass = instance.astype(np.int64), klass.astype(np.int64)
    if len(instance):
        i_lo, k_lo = int(instance.min()), int(klass.min())
        i_span, k_span = int(instance.max()) - i_lo + 1, int(klass.max()) - k_lo + 1
        if i_span * k_span <= _TABLE_MAX:
            # Few distinct ids (the usual case): a presence table replaces the sort. Keys
            # are ranked in (instance, class) order, as np.unique ranks them.
            key = (instance - i_lo) * k_span + (klass - k_lo)
            present = np.zeros(i_span * k_span, dtype=bool)
            present[key] = True
            keys = np.flatnonzero(present)
            rank = np.cumsum(present) - 1
            pairs = np.column_stack([keys // k_span + i_lo, keys % k_span + k_lo])
            return pairs, rank[key]
    # One int64 per pair: a 1-D unique sorts far faster than np.unique(..., axis=0).
    key = instance * _CLASS_SPAN + (klass + _CLASS_SPAN // 2)
    keys, group = np.unique(key, return_inverse=True)
    pairs = np.column_stack([keys // _CLASS_SPAN, keys % _CLASS_SPAN - _CLASS_SPAN // 2])
    return pairs, group.ravel()


def count_keys(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct non-negative integer keys, sorted, and how often each occurs."""
    if len(key) and key.max() < _BINCOUNT_MAX:  # a histogram beats sorting when it fits
        counts = np.bincount(key)
        keys = np.flatnonzero(counts)
        return keys, counts[keys]
    return np.unique(key, return_counts=True)


def resolve_overlaps(v_of, label, score, shape, dtype=np.uint32) -> np.ndarray:
    """Label image: voxel ``v_of[j]`` gets ``label[j]`` with the highest ``score[j]``; ties
    go to the lower label, labels <= 0 are skipped."""
    out = np.zeros(shape, dtype=dtype)
    keep = label > 0
    v, lab, s = v_of[keep], label[keep], score[keep]
    if len(v) and np.bincount(v, minlength=out.size).max() == 1:
        out.reshape(-1)[v] = lab  # one candidate per voxel: nothing to resolve
    elif len(v):
        order = np.lexsort((lab, -s, v))
        v, lab = v[order], lab[order]
        first = np.r_[True, v[1:] != v[:-1]]
        out.reshape(-1)[v[first]] = lab[first]
    return out


def seed_map(emitters: Emitters, field: Field):
    """Where the emitters are: a map of (instance, class) groups, for nearest-label lookup.

    Returns
    -------
    seeds
        ``field.shape`` int64: 1 + the group holding most emitters in the voxel, 0 where
        there are none. On a z-stack, emitters above or below it seed its end planes.
    pairs
        (G, 2) (instance, class) of each group.
    """
    grid = field.shape
    vox, ok = emitter_voxels(emitters.positions(0), field, grid, clamp_z=True)
    pairs, group = emitter_groups(emitters.instance[ok], emitters.klass[ok])
    n_vox = int(np.prod(grid))
    keys, counts = count_keys(group.astype(np.int64) * n_vox + vox[ok])
    seeds = resolve_overlaps(keys % n_vox, keys // n_vox + 1, counts, grid, dtype=np.int64)
    return seeds, pairs


def label_foreground(
    foreground: np.ndarray, emitters: Emitters, field: Field, names: tuple[str, ...]
):
    """Semantic masks and instances for a foreground: each voxel takes the (instance, class)
    of the nearest voxel holding emitters (Euclidean distance in nm).

    Parameters
    ----------
    foreground
        ``field.shape`` bool.
    emitters
        Where the structures are (frame 0 positions).
    field
        The grid, for voxel sizes.
    names
        Class names: one semantic channel each.

    Returns
    -------
    semantic, instances
        (K, Z, Y, X) uint8 and (Z, Y, X) uint32. Without any emitter both are empty.
    """
    semantic = np.zeros((len(names),) + field.shape, dtype=np.uint8)
    instances = np.zeros(field.shape, dtype=np.uint32)
    seeds, pairs = seed_map(emitters, field)
    if not foreground.any() or not seeds.any():
        return semantic, instances
    # One exact Euclidean feature transform (nm sampling) beats a k-d tree here: blurred
    # foregrounds hold far more voxels than there are seeds.
    nearest = ndimage.distance_transform_edt(
        seeds == 0, sampling=field.voxel_nm, return_distances=False, return_indices=True
    )
    fg = np.flatnonzero(foreground)
    owner = np.ravel_multi_index(tuple(n.reshape(-1)[fg] for n in nearest), field.shape)
    group = seeds.reshape(-1)[owner] - 1
    inst, klass = pairs[group, 0], pairs[group, 1]
    valid = (klass >= 0) & (klass < len(names))
    semantic.reshape(len(names), -1)[klass[valid], fg[valid]] = 1
    instances.reshape(-1)[fg] = np.where(inst > 0, inst, 0)
    return semantic, instances
