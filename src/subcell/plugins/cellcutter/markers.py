"""Nucleus markers: difference-of-Gaussians blob detection, markers from a synthetic-nucleus
probability map, Hungarian pairing against true markers, and input checks.

Markers are ``(M, 2)`` float arrays of ``(y, x)`` pixel coordinates in the array-index
convention: the centre of pixel ``(i, j)`` is at ``(i, j)``, so a marker inside a ``(Y, X)``
image lies in ``[-0.5, Y - 0.5) x [-0.5, X - 0.5)``.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from skimage.feature import peak_local_max
from skimage.measure import label, regionprops_table
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import watershed

from subcell.core.errors import VolumeError

#: Ratio of successive Gaussian scales of the DoG scale space (Lowe's 1.6 is coarser).
_SIGMA_RATIO = 1.3


def detect_markers(
    nucleus_image_2d: np.ndarray,
    *,
    nucleus_diameter_px: tuple[float, float] = (8.0, 20.0),
    threshold: float = 0.05,
    min_snr: float = 6.0,
    min_distance_px: float | None = None,
    percentiles: tuple[float, float] = (1.0, 99.5),
) -> np.ndarray:
    """Nucleus centres by difference-of-Gaussians blob detection.

    The image is mapped to [0, 1] by its ``percentiles`` (clipped, so a few very bright
    nuclei do not dim the rest), then filtered by a scale-normalised DoG at Gaussian scales
    ``sigma = d / (2 sqrt 2)`` spanning the nucleus diameters ``d``; a marker is a local
    maximum of the best response over scales that exceeds ``threshold`` and ``min_snr``
    times the noise of the response, and is at least ``min_distance_px`` from a stronger one.
    Positions are refined to subpixel precision by a parabola through the peak and its
    neighbours along each axis.

    Parameters
    ----------
    nucleus_image_2d
        ``(Y, X)`` nucleus image (bright nuclei on a dark background).
    nucleus_diameter_px
        ``(lo, hi)`` range of nucleus diameters in pixels.
    threshold
        Minimum DoG response, in units of the normalised intensity: a uniform disk of
        normalised intensity ``a`` at its matched scale responds about ``0.3 a``, so the
        default 0.05 finds nuclei down to ~1/6 of the bright ones.
    min_snr
        The threshold is raised to ``min_snr`` robust standard deviations (1.4826 x median
        absolute deviation) of the response, so that noise peaks in the background are not
        taken for nuclei whatever the noise level (background maxima measured at 4-6 SD on
        128 x 128 Poisson images); 0 turns this off.
    min_distance_px
        Minimum distance between markers in pixels; ``None`` uses half the smallest diameter.
    percentiles
        ``(lo, hi)`` percentiles mapped to 0 and 1.

    Returns
    -------
    np.ndarray
        ``(M, 2)`` float64 ``(y, x)`` marker positions (pixel centres), strongest first;
        ``M`` may be 0 (see :func:`check_markers`).

    Raises
    ------
    VolumeError
        If the image is not 2D, is empty, or holds NaN/inf.
    ValueError
        If a parameter is out of range.
    """
    image = _checked_image(nucleus_image_2d, "nucleus image")
    lo, hi = (float(v) for v in nucleus_diameter_px)
    if not 0 < lo <= hi:
        raise ValueError(f"nucleus_diameter_px must satisfy 0 < lo <= hi, got {(lo, hi)}")
    if not 0.0 <= percentiles[0] < percentiles[1] <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {percentiles}")
    if min_distance_px is None:
        min_distance_px = lo / 2
    if min_distance_px < 1:
        raise ValueError(f"min_distance_px must be >= 1, got {min_distance_px}")
    p_lo, p_hi = np.percentile(image, percentiles)
    if p_hi <= p_lo:
        return np.zeros((0, 2))
    x = np.clip((image - p_lo) / (p_hi - p_lo), 0.0, 1.0)
    response = dog_response(x, lo / (2 * np.sqrt(2)), hi / (2 * np.sqrt(2)))
    noise_sd = 1.4826 * np.median(np.abs(response - np.median(response)))
    peaks = peak_local_max(
        response,
        min_distance=max(1, int(round(min_distance_px))),
        threshold_abs=max(threshold, min_snr * noise_sd),
        exclude_border=False,
    )
    return _subpixel(response, peaks.reshape(-1, 2))


def _subpixel(response: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Peak positions refined by a parabola through each peak and its two axis neighbours."""
    refined = peaks.astype(np.float64)
    for axis in (0, 1):
        step = np.zeros(2, dtype=np.int64)
        step[axis] = 1
        size = response.shape[axis]
        # At the image edge the missing neighbour is mirrored: no shift along that axis.
        before = np.clip(peaks - step, 0, None)
        after = peaks + step
        after[:, axis] = np.minimum(after[:, axis], size - 1)
        r_minus = response[before[:, 0], before[:, 1]]
        r_zero = response[peaks[:, 0], peaks[:, 1]]
        r_plus = response[after[:, 0], after[:, 1]]
        curvature = r_minus - 2 * r_zero + r_plus
        edge = (peaks[:, axis] == 0) | (peaks[:, axis] == size - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where((curvature < 0) & ~edge, 0.5 * (r_minus - r_plus) / curvature, 0.0)
        refined[:, axis] += np.clip(shift, -0.5, 0.5)
    return refined


def dog_response(image: np.ndarray, min_sigma: float, max_sigma: float) -> np.ndarray:
    """Maximum over scales of the scale-normalised difference of Gaussians.

    ``(G_s - G_{k s}) / (k - 1)`` approximates ``-s**2 * Laplacian(G_s)``: positive on bright
    blobs, comparable across scales. Scales run from ``min_sigma`` to at least
    ``max_sigma`` in steps of ``k = 1.3``.
    """
    n_scales = max(1, int(np.ceil(np.log(max_sigma / min_sigma) / np.log(_SIGMA_RATIO))) + 1)
    sigmas = min_sigma * _SIGMA_RATIO ** np.arange(n_scales + 1)
    blurred = [ndimage.gaussian_filter(image, s, mode="nearest") for s in sigmas]
    response = np.full(image.shape, -np.inf)
    for fine, coarse in zip(blurred[:-1], blurred[1:], strict=False):
        np.maximum(response, (fine - coarse) / (_SIGMA_RATIO - 1), out=response)
    return response


def markers_from_probability(
    prob_2d: np.ndarray,
    *,
    threshold: float = 0.5,
    smooth_sigma_px: float = 1.0,
    split_depth_px: float = 0.75,
    min_area_px: float = 10.0,
) -> np.ndarray:
    """Nucleus markers from a synthetic-nucleus model's foreground probability.

    The probability is smoothed, thresholded, and touching nuclei are split by a watershed
    of the distance transform seeded at its h-maxima (peaks rising ``split_depth_px`` above
    the neck between them); a marker is the centroid of each piece of at least
    ``min_area_px`` pixels.

    Parameters
    ----------
    prob_2d
        ``(Y, X)`` probability of nucleus, in [0, 1].
    threshold
        Probability above which a pixel is nucleus.
    smooth_sigma_px
        Gaussian smoothing in pixels before thresholding; 0 for none.
    split_depth_px
        How much deeper (in pixels of distance to the background) two nuclei must be than the
        neck joining them to be split; larger values split less. The default 0.75 split
        disks of radius 6 px whose centres are >= 11.5 px apart (blurred, noisy maps) and
        kept 5-20 px ellipses whole at any angle; 0.25 split oblique ellipses.
    min_area_px
        Pieces smaller than this (pixels) give no marker.

    Returns
    -------
    np.ndarray
        ``(M, 2)`` float64 ``(y, x)`` centroids, in raster order of the pieces.

    Raises
    ------
    VolumeError
        If the map is not 2D, is empty, or holds NaN/inf.
    """
    prob = _checked_image(prob_2d, "nucleus probability")
    if split_depth_px <= 0:
        raise ValueError(f"split_depth_px must be > 0, got {split_depth_px}")
    if smooth_sigma_px > 0:
        prob = ndimage.gaussian_filter(prob, smooth_sigma_px)
    nucleus = prob > threshold
    if not nucleus.any():
        return np.zeros((0, 2))
    distance = ndimage.distance_transform_edt(nucleus)
    # h-maxima as plateaus: regional maxima of the reconstruction of distance - h under the
    # distance (skimage's h_maxima marks the peak pixels, which splits a ridge of equal peaks).
    raised = reconstruction(distance - split_depth_px, distance, method="dilation")
    seeds = label(local_maxima(raised, connectivity=2) & nucleus, connectivity=2)
    # A component too thin to have an h-maximum still gets its own seed (its whole area).
    components = label(nucleus)
    unseeded = np.setdiff1d(np.unique(components[nucleus]), np.unique(components[seeds > 0]))
    extra = np.isin(components, unseeded)
    seeds[extra] = components[extra] + seeds.max()
    pieces = watershed(-distance, seeds, mask=nucleus)
    table = regionprops_table(pieces, properties=("area", "centroid"))
    keep = table["area"] >= min_area_px
    return np.column_stack([table["centroid-0"][keep], table["centroid-1"][keep]]).astype(
        np.float64
    )


@attrs.frozen
class MarkerPairing:
    """One-to-one pairing of found markers with true markers within a distance.

    Attributes
    ----------
    pairs
        ``(K, 2)`` int indices ``(found, true)`` of the matched markers.
    distances_px
        ``(K,)`` distance of each matched pair, in pixels.
    n_found, n_true
        Numbers of found and true markers.
    false_negatives
        Indices of true markers left unmatched (missed nuclei).
    false_positives
        Indices of found markers left unmatched (extra markers).
    """

    pairs: np.ndarray
    distances_px: np.ndarray
    n_found: int
    n_true: int
    false_negatives: np.ndarray
    false_positives: np.ndarray

    @property
    def false_negative_rate(self) -> float:
        """Missed true markers / true markers (0 when there are none)."""
        return len(self.false_negatives) / self.n_true if self.n_true else 0.0

    @property
    def false_positive_rate(self) -> float:
        """Unmatched found markers / found markers (0 when none were found)."""
        return len(self.false_positives) / self.n_found if self.n_found else 0.0


def pair_markers(found_yx, true_yx, max_distance_px: float) -> MarkerPairing:
    """Pair found with true markers one-to-one (Hungarian), at most ``max_distance_px`` apart.

    The assignment first maximises the number of pairs within the distance, then minimises
    their total distance (pairs beyond it cost more than all allowed pairs together).

    Parameters
    ----------
    found_yx, true_yx
        ``(M, 2)`` and ``(T, 2)`` marker positions in pixels.
    max_distance_px
        Largest distance of a pair (the paper pairs within 15 µm; convert with the pixel size).

    Returns
    -------
    MarkerPairing
        Matched pairs, their distances, and the unmatched markers on either side.
    """
    found = np.asarray(found_yx, dtype=np.float64).reshape(-1, 2)
    true = np.asarray(true_yx, dtype=np.float64).reshape(-1, 2)
    if max_distance_px <= 0:
        raise ValueError(f"max_distance_px must be > 0, got {max_distance_px}")
    pairs = np.zeros((0, 2), dtype=np.int64)
    if len(found) and len(true):
        distance = cdist(found, true)
        allowed = distance <= max_distance_px
        forbidden_cost = max_distance_px * (min(len(found), len(true)) + 1)
        rows, cols = linear_sum_assignment(np.where(allowed, distance, forbidden_cost))
        ok = allowed[rows, cols]
        pairs = np.column_stack([rows[ok], cols[ok]]).astype(np.int64)
    distances = np.hypot(*(found[pairs[:, 0]] - true[pairs[:, 1]]).T) if len(pairs) else []
    return MarkerPairing(
        pairs=pairs,
        distances_px=np.asarray(distances, dtype=np.float64),
        n_found=len(found),
        n_true=len(true),
        false_negatives=np.setdiff1d(np.arange(len(true)), pairs[:, 1]),
        false_positives=np.setdiff1d(np.arange(len(found)), pairs[:, 0]),
    )


def check_markers(markers, shape: tuple[int, ...]) -> np.ndarray:
    """Markers as an ``(M, 2)`` float64 array, or a one-line VolumeError a user can act on.

    Parameters
    ----------
    markers
        ``(M, 2)`` ``(y, x)`` positions in pixels.
    shape
        The image shape; its last two entries are ``(Y, X)``.

    Raises
    ------
    VolumeError
        If there are no markers, the array is not ``(M, 2)``, a position is NaN/inf, or a
        marker lies outside the image.
    """
    markers = np.asarray(markers, dtype=np.float64)
    if markers.size == 0:
        raise VolumeError(
            "no nucleus markers found: check the nucleus channel, or lower the detection "
            "threshold / widen the nucleus diameter range"
        )
    if markers.ndim != 2 or markers.shape[1] != 2:
        raise VolumeError(f"markers must be an (M, 2) array of (y, x), got shape {markers.shape}")
    if not np.isfinite(markers).all():
        raise VolumeError("markers hold NaN or inf positions")
    height, width = shape[-2:]
    outside = (
        (markers < -0.5).any(axis=1)
        | (markers[:, 0] >= height - 0.5)
        | (markers[:, 1] >= width - 0.5)
    )
    if outside.any():
        first = markers[np.flatnonzero(outside)[0]]
        raise VolumeError(
            f"{outside.sum()} of {len(markers)} markers lie outside the {height}x{width} image "
            f"(first at y={first[0]:g}, x={first[1]:g}): markers and image do not match"
        )
    return markers


def _checked_image(image_2d, what: str) -> np.ndarray:
    """``image_2d`` as a finite float64 2D array, or a one-line VolumeError."""
    image = np.asarray(image_2d, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise VolumeError(f"the {what} must be a non-empty 2D (Y, X) image, got {image.shape}")
    if not np.isfinite(image).all():
        raise VolumeError(f"the {what} holds NaN or inf values")
    return image
