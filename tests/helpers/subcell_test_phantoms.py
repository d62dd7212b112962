"""Drawn test phantoms shared by several test modules (tests/conftest.py puts this folder on
sys.path): noisy blurred discs with known truth."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

VOXEL = (200.0, 42.0, 42.0)
# (y, x, radius) in pixels: separated by at least 6 px so components never touch.
DISCS = [
    (20, 20, 9),
    (22, 60, 7),
    (25, 100, 10),
    (64, 35, 8),
    (70, 85, 11),
    (105, 20, 6),
    (105, 64, 9),
    (100, 108, 8),
]


def disc_mask(side=128, discs=DISCS):
    """Boolean (side, side) image of the discs."""
    yy, xx = np.mgrid[:side, :side]
    truth = np.zeros((side, side), dtype=bool)
    for y, x, r in discs:
        truth |= (yy - y) ** 2 + (xx - x) ** 2 <= r**2
    return truth


def noisy_image(truth, amplitude=60.0, seed=0, background=100.0, blur_px=2.0):
    """Discs blurred by a Gaussian 'PSF' on a background, with Poisson noise (photons)."""
    clean = background + amplitude * ndimage.gaussian_filter(truth.astype(float), blur_px)
    return np.random.default_rng(seed).poisson(clean).astype(float)


def iou(a, b):
    """Intersection over union of two boolean masks."""
    return float((a & b).sum() / (a | b).sum())
