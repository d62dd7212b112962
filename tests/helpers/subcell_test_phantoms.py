"""Drawn test phantoms shared by several test modules (tests/conftest.py puts this folder on
sys.path): noisy blurred discs with known truth."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

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


def touching_cells(seed, size=128, n_cells=14, nucleus_gain=(1.0, 1.0)):
    """Voronoi cells packed in a disk colony, bright membranes, Gaussian nuclei, Poisson noise.

    Returns the true instances (label i + 1 = cell of centre i), the cell image, the nucleus
    image and the ``(n, 2)`` nucleus centres (n <= n_cells; 14 for seeds 0-5).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2
    colony = np.hypot(yy - centre, xx - centre) < 0.42 * size
    # Greedy dart throwing over a fixed number of candidates: at most n_cells centres.
    centres = []
    for p in rng.uniform(0.12 * size, 0.88 * size, (2000, 2)):
        inside = np.hypot(*(p - centre)) < 0.36 * size
        if inside and all(np.hypot(*(p - q)) > 0.16 * size for q in centres):
            centres.append(p)
            if len(centres) == n_cells:
                break
    centres = np.array(centres)
    d2 = (yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2
    instances = np.where(colony, d2.argmin(-1) + 1, 0).astype(np.uint32)
    membrane = find_boundaries(instances, mode="inner") & colony
    cell = ndimage.gaussian_filter(3.0 + 12.0 * colony + 40.0 * membrane, 1.0)
    nucleus = np.full((size, size), 3.0)
    for (y, x), gain in zip(centres, rng.uniform(*nucleus_gain, len(centres)), strict=True):
        nucleus += 60.0 * gain * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 2.5**2))
    return instances, rng.poisson(cell).astype(float), rng.poisson(nucleus).astype(float), centres
