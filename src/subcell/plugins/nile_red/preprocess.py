"""Nile Red preprocessing: intensity and ratio images, working voxel size, crops and merging.

Zhanghao et al. divide the red channel by the yellow one (the emission ratio, which follows
membrane polarity) and average the two (the intensity image); the 1200 × 1200 × Nz field is
resized to 802 × 802 × 24 and cut into 256 × 256 × 24 crops, whose predictions are merged
and resized back.

The ratio's denominator is made safe as in :mod:`subcell.core.network_input` (the same code
computes a model's network input): ``ratio = (max(red, 0) + eps) / (max(yellow, 0) + eps)``,
finite everywhere, 1 (the neutral value: no spectral shift) where both channels are dark.
Here, on raw images, ``eps = eps_fraction × the 99.8th percentile of the intensity`` (its
bright level); on a model's percentile-normalised input the bright level is 1, so the card's
``ratio_eps`` is the same fraction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from subcell.core.errors import VolumeError
from subcell.core.network_input import intensity_ratio as _intensity_ratio

__all__ = [
    "BRIGHT_PERCENTILE",
    "crops",
    "extract_crop",
    "intensity_ratio",
    "merge_crops",
    "resize_to_shape",
    "resize_to_voxel",
]

#: The percentile of the intensity taken as the image's bright level (``eps`` scale).
BRIGHT_PERCENTILE = 99.8


def intensity_ratio(
    yellow: np.ndarray, red: np.ndarray, *, eps_fraction: float = 0.05
) -> np.ndarray:
    """Intensity (mean of the channels) and safe ratio red / yellow, (2, Z, Y, X) float32.

    Parameters
    ----------
    yellow, red
        The two detection channels (Z, Y, X) (or any equal shapes), background-subtracted
        (a camera offset left in both pulls the ratio towards 1).
    eps_fraction
        The ratio's regulariser as a fraction of the intensity's bright level (its 99.8th
        percentile, at least the smallest positive float): ``ratio = (max(red, 0) + eps) /
        (max(yellow, 0) + eps)``. Where yellow is 0 the ratio is finite; where both
        channels are 0 it is exactly 1.

    Returns
    -------
    numpy.ndarray
        (2, *shape) float32: intensity, ratio.

    Raises
    ------
    VolumeError
        Shapes differ, or an input holds NaN or infinity.
    """
    yellow = np.asarray(yellow, dtype=np.float64)
    red = np.asarray(red, dtype=np.float64)
    if yellow.shape != red.shape:
        raise VolumeError(f"yellow {yellow.shape} and red {red.shape} differ in shape")
    if not (np.isfinite(yellow).all() and np.isfinite(red).all()):
        raise VolumeError("the yellow or red channel holds NaN or infinity")
    if not eps_fraction > 0:
        raise ValueError(f"eps_fraction must be positive, got {eps_fraction}")
    bright = float(np.percentile(np.maximum((yellow + red) / 2.0, 0.0), BRIGHT_PERCENTILE))
    eps = eps_fraction * max(bright, np.finfo(np.float32).tiny)
    return _intensity_ratio(yellow, red, eps=eps)


def _target_shape(shape, voxel_nm, target_voxel_nm) -> tuple[int, ...]:
    if len(voxel_nm) != 3 or len(target_voxel_nm) != 3:
        raise ValueError("voxel sizes are (z, y, x) in nm")
    if any(not float(v) > 0 for v in (*voxel_nm, *target_voxel_nm)):
        raise ValueError(f"voxel sizes must be positive, got {voxel_nm} and {target_voxel_nm}")
    return tuple(
        max(1, int(round(s * float(v) / float(t))))
        for s, v, t in zip(shape, voxel_nm, target_voxel_nm, strict=True)
    )


def resize_to_shape(volume: np.ndarray, shape: Sequence[int], *, masks: bool = False):
    """Resize the last three axes of ``volume`` to ``shape`` (leading axes kept).

    Images: linear interpolation, anti-aliased when shrinking, float32. Masks
    (``masks=True``): nearest neighbour, the input dtype kept (no new labels appear).
    """
    from skimage.transform import resize

    volume = np.asarray(volume)
    if volume.ndim < 3:
        raise VolumeError(f"expected (..., Z, Y, X), got shape {volume.shape}")
    shape = tuple(int(s) for s in shape)
    full = (*volume.shape[:-3], *shape)
    if tuple(volume.shape[-3:]) == shape:
        return volume.copy() if masks else volume.astype(np.float32)
    if masks:
        out = resize(volume, full, order=0, mode="edge", anti_aliasing=False, preserve_range=True)
        return out.astype(volume.dtype)
    shrinking = any(t < s for t, s in zip(shape, volume.shape[-3:], strict=True))
    out = resize(
        volume.astype(np.float32),
        full,
        order=1,
        mode="edge",
        anti_aliasing=shrinking,
        preserve_range=True,
    )
    return out.astype(np.float32)


def resize_to_voxel(
    volume: np.ndarray,
    voxel_nm: Sequence[float],
    target_voxel_nm: Sequence[float],
    *,
    masks: bool = False,
) -> np.ndarray:
    """Resample ``volume`` (..., Z, Y, X) from ``voxel_nm`` to ``target_voxel_nm`` (z, y, x).

    The new shape is ``round(shape × voxel / target)`` per axis (at least 1), so the field
    of view is kept to within half a target voxel. Images are interpolated linearly (with
    anti-aliasing when shrinking); masks (``masks=True``) take the nearest voxel.

    Returns
    -------
    numpy.ndarray
        float32 for images, the input dtype for masks.
    """
    volume = np.asarray(volume)
    if volume.ndim < 3:
        raise VolumeError(f"expected (..., Z, Y, X), got shape {volume.shape}")
    shape = _target_shape(volume.shape[-3:], voxel_nm, target_voxel_nm)
    return resize_to_shape(volume, shape, masks=masks)


def _triple(value, name: str) -> tuple[int, int, int]:
    values = (value,) * 3 if np.isscalar(value) else tuple(value)
    if len(values) != 3:
        raise ValueError(f"{name} needs one value per axis (z, y, x), got {value}")
    return tuple(int(v) for v in values)


def crops(
    shape: Sequence[int],
    crop_zyx: Sequence[int] = (24, 256, 256),
    overlap: int | Sequence[int] = (0, 32, 32),
) -> list[tuple[slice, slice, slice]]:
    """Windows of ``crop_zyx`` covering a field of ``shape`` (Z, Y, X).

    Along each axis windows start every ``crop - overlap`` voxels and the last one ends at
    the field's edge (so every voxel is covered and every window lies inside the field).
    An axis shorter than the crop gets a single window from 0 of the crop's size, which
    reaches past the field: :func:`extract_crop` pads it.

    Returns
    -------
    list of (slice, slice, slice)
        Windows in raster order (z slowest).
    """
    shape = _triple(shape, "shape")
    crop = _triple(crop_zyx, "crop_zyx")
    step = _triple(overlap, "overlap")
    if any(s < 1 for s in shape) or any(c < 1 for c in crop):
        raise ValueError(f"shape {shape} and crop {crop} must be positive")
    if any(not 0 <= o < c for o, c in zip(step, crop, strict=True)):
        raise ValueError(f"overlap {step} must be at least 0 and smaller than the crop {crop}")
    starts = []
    for size, c, o in zip(shape, crop, step, strict=True):
        if size <= c:
            starts.append([0])
            continue
        axis = list(range(0, size - c, c - o)) + [size - c]
        starts.append(sorted(set(axis)))
    return [
        (slice(z, z + crop[0]), slice(y, y + crop[1]), slice(x, x + crop[2]))
        for z in starts[0]
        for y in starts[1]
        for x in starts[2]
    ]


def extract_crop(
    volume: np.ndarray, window: tuple[slice, slice, slice], *, pad_mode: str = "constant"
) -> np.ndarray:
    """The ``window`` of ``volume`` (..., Z, Y, X), padded at the far end where it reaches
    past the field (``pad_mode`` of :func:`numpy.pad`; zeros by default)."""
    volume = np.asarray(volume)
    crop = volume[(..., *window)]
    want = [w.stop - w.start for w in window]
    pad = [(0, 0)] * (volume.ndim - 3) + [
        (0, w - s) for w, s in zip(want, crop.shape[-3:], strict=True)
    ]
    if not any(p[1] for p in pad):
        return crop
    return np.pad(crop, pad, mode=pad_mode)


def merge_crops(
    predictions: Sequence[np.ndarray],
    windows: Sequence[tuple[slice, slice, slice]],
    shape: Sequence[int],
) -> np.ndarray:
    """Merge per-crop predictions (K, cz, cy, cx) back into the field (K, Z, Y, X).

    Overlapping predictions are averaged; the padded parts of windows reaching past the
    field are dropped. Every voxel of the field must be covered (as :func:`crops` does).

    Returns
    -------
    numpy.ndarray
        float32 (K, *shape).
    """
    shape = _triple(shape, "shape")
    if len(predictions) != len(windows) or not windows:
        raise ValueError(f"{len(predictions)} predictions for {len(windows)} windows")
    n_classes = int(np.asarray(predictions[0]).shape[0])
    total = np.zeros((n_classes, *shape), dtype=np.float64)
    count = np.zeros(shape, dtype=np.int32)
    for prediction, window in zip(predictions, windows, strict=True):
        prediction = np.asarray(prediction)
        want = tuple(w.stop - w.start for w in window)
        if prediction.shape != (n_classes, *want):
            raise ValueError(f"prediction {prediction.shape} does not fit window {want}")
        inside = tuple(slice(w.start, min(w.stop, s)) for w, s in zip(window, shape, strict=True))
        part = tuple(slice(0, i.stop - i.start) for i in inside)
        total[(slice(None), *inside)] += prediction[(slice(None), *part)]
        count[inside] += 1
    if (count == 0).any():
        raise ValueError(f"the windows leave {int((count == 0).sum())} voxel(s) uncovered")
    return (total / count).astype(np.float32)
