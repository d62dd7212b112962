"""Resampling a block between the input's and the model's grids in whole-image coordinates.

The in-memory path resamples the whole image with
:func:`~subcell.pipeline.segment_steps.resample` (skimage ``resize``: linear interpolation,
edge mode, a Gaussian of sigma ``(factor - 1) / 2`` first when shrinking), which samples
output voxel ``j`` at input coordinate ``(j + 0.5) * in / out - 0.5``. Resampling a block
on its own would put its samples elsewhere. Here a block samples exactly those coordinates
of the whole image (scipy's ``gaussian_filter`` and ``affine_transform``, the routines
``resize`` runs), so its model-grid voxels are the whole image's, the sliding windows fall
where they fall for the whole image, and mapping the probabilities back gives the whole
image's values on the core. The block's region (:class:`~.blocks.AxisWindows.span`) holds
every voxel the filters and interpolation taps reach.
"""

from __future__ import annotations

import numpy as np

from subcell.pipeline.chunked.blocks import AxisWindows, Block

__all__ = ["to_input_grid", "to_model_grid"]


def _sigma(factor: float) -> float:
    return max(0.0, (factor - 1.0) / 2.0)


def _resample(data: np.ndarray, factors, offsets, shape) -> np.ndarray:
    """Sample (C, ...) ``data`` at ``offset + factor * j`` per axis, after skimage's
    anti-aliasing Gaussian."""
    from scipy import ndimage

    sigma = [0.0, *(_sigma(f) for f in factors)]
    if any(s > 0 for s in sigma):
        data = ndimage.gaussian_filter(data, sigma, mode="nearest")
    return ndimage.affine_transform(
        data,
        [1.0, *factors],
        offset=[0.0, *offsets],
        output_shape=(data.shape[0], *shape),
        order=1,
        mode="nearest",
    )


def _factor(windows: AxisWindows | None, forward: bool) -> float:
    if windows is None:
        return 1.0
    return windows.size / windows.model_size if forward else windows.model_size / windows.size


def to_model_grid(region: np.ndarray, block: Block, windows) -> np.ndarray:
    """The model-grid voxels ``block.model`` of a block's input ``region`` (C, Z, Y, X)."""
    factors = [_factor(w, True) for w in windows]
    offsets = [
        (m.start + 0.5) * f - 0.5 - r.start
        for m, r, f in zip(block.model, block.region[1:], factors, strict=True)
    ]
    shape = tuple(m.stop - m.start for m in block.model)
    return _resample(np.asarray(region, dtype=np.float32), factors, offsets, shape)


def to_input_grid(probabilities: np.ndarray, block: Block, windows) -> np.ndarray:
    """The core's voxels (K, Z, Y, X) of probabilities predicted on ``block.model``."""
    factors = [_factor(w, False) for w in windows]
    offsets = [
        (c.start + 0.5) * f - 0.5 - m.start
        for c, m, f in zip(block.core[1:], block.model, factors, strict=True)
    ]
    shape = tuple(c.stop - c.start for c in block.core[1:])
    return _resample(np.asarray(probabilities, dtype=np.float32), factors, offsets, shape)
