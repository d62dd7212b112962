"""Foreground mask by an exact graph cut of a two-label Markov random field (Din & Yu 2021).

The energy of a labelling ``y`` (1 = cell, 0 = background) of an image with normalised
intensity ``x`` in (0, 1) is

    E(y) = sum_i S_i(y_i) + kappa * #{4-neighbour pairs (i, j) with y_i != y_j},
    S_i(1) = -log(alpha * x_i),   S_i(0) = -log((1 - alpha) * (1 - x_i)),

with ``alpha`` the prior probability of foreground and ``kappa`` the cut penalty (nats per
boundary edge). The minimum is found exactly by a minimum s-t cut (Boykov & Kolmogorov): the
source side is the foreground. The max-flow solver is ``scipy.sparse.csgraph.maximum_flow``
(BSD; PyMaxflow is GPL and not used), which needs integer capacities: energies are scaled by
``1 / resolution`` and rounded, so the labelling minimises the energy to within
``resolution / 2`` per term (default 1e-3 nats).

Speed (Dinic's algorithm, 2 shared CPU cores): a 1024 x 1024 image of packed cells takes
1.5-3.5 s for kappa 0.5-4; ``downsample=2`` takes 0.25-0.4 s and agrees with the full
solution on 98.8 % of the pixels (the difference is the one-pixel boundary resolution).
Structureless noise is the slow case: uniform random x at kappa 2 took 90 s.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import breadth_first_order, maximum_flow
from skimage.transform import downscale_local_mean

from subcell.core.errors import VolumeError

#: Largest total flow the int32 solver can carry; the resolution is coarsened to stay below it.
_INT32_MAX = np.iinfo(np.int32).max


def foreground_mask(
    image_2d: np.ndarray,
    *,
    alpha: float = 0.5,
    kappa: float = 1.0,
    percentiles: tuple[float, float] | None = (1.0, 99.0),
    smooth_sigma_px: float = 0.0,
    eps: float = 1e-4,
    resolution: float = 1e-3,
    downsample: int = 1,
) -> np.ndarray:
    """Foreground (cell) mask of a 2D image by the minimum cut of the paper's MRF.

    Parameters
    ----------
    image_2d
        ``(Y, X)`` image, brighter where cells are (a fluorescence image, or a foreground
        probability map with ``percentiles=None``).
    alpha
        Prior probability of a pixel being foreground, in (0, 1) (the paper estimates it from
        the fraction of the area covered by cells).
    kappa
        Cut penalty in nats per pair of 4-neighbours with different labels, >= 0. 0 gives the
        per-pixel decision ``x > 1 - alpha``; larger values remove isolated pixels and small
        holes (an isolated pixel costs ``4 * kappa``).
    percentiles
        ``(lo, hi)`` percentiles mapped to 0 and 1 before clipping; ``None`` when the image is
        already a probability in [0, 1].
    smooth_sigma_px
        Gaussian smoothing (pixels) before normalisation; 0 for none.
    eps
        ``x`` is clipped to ``[eps, 1 - eps]`` so that the logarithms stay finite.
    resolution
        Energy quantum (nats) of the integer capacities; it is coarsened automatically when
        the largest possible flow would not fit in int32.
    downsample
        Integer factor: solve on the block-mean image and upsample the labels (nearest), with
        the unary terms scaled by ``downsample**2`` and the cut penalty by ``downsample`` so
        the energy keeps its balance. 1 solves at full resolution.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` bool mask, True for foreground.

    Raises
    ------
    VolumeError
        If the image is not 2D, is empty, or holds NaN/inf.
    ValueError
        If a parameter is out of range.
    """
    image = _checked_image(image_2d)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5), got {eps}")
    if resolution <= 0:
        raise ValueError(f"resolution must be > 0, got {resolution}")
    if int(downsample) != downsample or downsample < 1:
        raise ValueError(f"downsample must be an integer >= 1, got {downsample}")
    downsample = int(downsample)

    if smooth_sigma_px > 0:
        image = ndimage.gaussian_filter(image, smooth_sigma_px)
    x = normalise(image, percentiles)
    if downsample > 1:
        x = _block_mean(x, downsample)
    x = np.clip(x, eps, 1.0 - eps)
    # Foreground cost minus background cost of each pixel: -logit(x) - logit(alpha).
    unary = -(np.log(x) - np.log1p(-x)) - (np.log(alpha) - np.log1p(-alpha))
    labels = min_cut_labels(unary * downsample**2, kappa * downsample, resolution)
    if downsample > 1:
        labels = np.repeat(np.repeat(labels, downsample, 0), downsample, 1)
        labels = labels[: image.shape[0], : image.shape[1]]
    return labels


def normalise(image: np.ndarray, percentiles: tuple[float, float] | None) -> np.ndarray:
    """Map the ``(lo, hi)`` percentiles of ``image`` to 0 and 1 (not clipped).

    ``None`` returns the image as float64. A constant image maps to 0.
    """
    image = np.asarray(image, dtype=np.float64)
    if percentiles is None:
        return image
    lo, hi = percentiles
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {percentiles}")
    p_lo, p_hi = np.percentile(image, [lo, hi])
    if p_hi <= p_lo:
        return np.zeros_like(image)
    return (image - p_lo) / (p_hi - p_lo)


def min_cut_labels(unary: np.ndarray, kappa: float, resolution: float = 1e-3) -> np.ndarray:
    """Exact minimiser of ``sum_i unary_i * y_i + kappa * sum_(i~j) |y_i - y_j|`` on a 2D grid.

    Parameters
    ----------
    unary
        ``(Y, X)`` cost of foreground minus cost of background per pixel (nats).
    kappa
        Cost per pair of 4-neighbours with different labels (nats), >= 0.
    resolution
        Energy quantum of the integer capacities (see the module docstring).

    Returns
    -------
    np.ndarray
        ``(Y, X)`` bool labelling, True for foreground; ties go to background.
    """
    height, width = unary.shape
    n_pixels = height * width
    scale = _scale(unary, kappa, resolution)
    # Terminal capacities: source->p is paid when p is background, p->sink when foreground.
    cost = np.rint(unary.ravel() * scale).astype(np.int64)
    kappa_int = int(round(kappa * scale))
    pixel = np.arange(n_pixels, dtype=np.int64)
    source, sink = n_pixels, n_pixels + 1
    rows, cols, caps = [], [], []
    to_bg = cost < 0
    rows += [np.full(to_bg.sum(), source), pixel[cost > 0]]
    cols += [pixel[to_bg], np.full((cost > 0).sum(), sink)]
    caps += [-cost[to_bg], cost[cost > 0]]
    if kappa_int > 0:
        grid = pixel.reshape(height, width)
        for a, b in ((grid[:, :-1], grid[:, 1:]), (grid[:-1, :], grid[1:, :])):
            a, b = a.ravel(), b.ravel()
            rows += [a, b]
            cols += [b, a]
            caps += [np.full(a.size, kappa_int), np.full(a.size, kappa_int)]
    n_nodes = n_pixels + 2
    capacity = sparse.csr_array(
        (np.concatenate(caps).astype(np.int32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_nodes, n_nodes),
    )
    flow = maximum_flow(capacity, source, sink, method="dinic").flow
    # Residual graph: capacity minus flow (flow is antisymmetric, so reverse edges gain the
    # flow sent forward). The source side of the minimum cut is what the source still reaches.
    residual = sparse.csr_array(capacity.astype(np.int64) - flow.astype(np.int64))
    residual.data[residual.data < 0] = 0
    residual.eliminate_zeros()
    reached = breadth_first_order(residual, source, directed=True, return_predecessors=False)
    labels = np.zeros(n_nodes, dtype=bool)
    labels[reached] = True
    return labels[:n_pixels].reshape(height, width)


def _scale(unary: np.ndarray, kappa: float, resolution: float) -> float:
    """Capacity scale ``1 / resolution``, coarsened so that the maximum flow fits in int32.

    The maximum flow is at most the cost of the all-background cut, of the all-foreground cut
    and of the per-pixel (kappa = 0) labelling, whose unary part is zero after the reduction.
    """
    scale = 1.0 / resolution
    positive = float(np.clip(unary, 0, None).sum())
    negative = float(np.clip(-unary, 0, None).sum())
    sign = unary > 0
    disagreements = np.count_nonzero(sign[:, 1:] != sign[:, :-1]) + np.count_nonzero(
        sign[1:, :] != sign[:-1, :]
    )
    bound = min(positive, negative, kappa * disagreements)
    # Rounding adds at most 1/2 per terminal edge and per pairwise edge: 3 per pixel.
    limit = _INT32_MAX - 3 * unary.size
    if bound * scale > limit:
        scale = limit / bound
    return scale


def _block_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``x``, the last partial blocks padded by edge values (not zeros)."""
    pad = [(0, (-n) % factor) for n in x.shape]
    return downscale_local_mean(np.pad(x, pad, mode="edge"), (factor, factor))


def _checked_image(image_2d) -> np.ndarray:
    """``image_2d`` as a finite float64 2D array, or a one-line VolumeError."""
    image = np.asarray(image_2d, dtype=np.float64)
    if image.ndim != 2:
        raise VolumeError(f"foreground mask needs a 2D (Y, X) image, got shape {image.shape}")
    if image.size == 0:
        raise VolumeError(f"foreground mask needs a non-empty image, got shape {image.shape}")
    if not np.isfinite(image).all():
        raise VolumeError("foreground mask: the image holds NaN or inf values")
    return image
