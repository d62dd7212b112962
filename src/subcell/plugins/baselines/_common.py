"""Steps shared by the classical baselines: channel checks, the empty-content rule, noise
estimation, small-object removal and the bright-region decision."""

from __future__ import annotations

import warnings

import numpy as np
from skimage.filters import threshold_otsu
from skimage.measure import label
from skimage.segmentation import relabel_sequential

from subcell.core.errors import VolumeError
from subcell.core.model import AXES_4D, Masks, Volume

#: Converts the median absolute deviation of a normal variable into its standard deviation.
MAD_TO_SD = 1.4826


def non_empty(instance, attribute, value):
    """attrs validator: a non-blank name."""
    if not value.strip():
        raise ValueError(f"{attribute.name} must be a non-empty name")


class BaselineSegmenter:
    """Shared frame of the baselines: check and load a channel, segment it, build ``Masks``.

    Subclasses implement ``_label(image, voxel_nm)``, returning uint32 instance labels
    ``1..n`` of the ``(Z, Y, X)`` float64 ``image``; every labelled voxel is foreground.
    Their configs have ``channel``, ``min_size_px`` and ``class_name`` fields.
    """

    def __init__(self, config):
        self.config = config

    def segment(self, volume: Volume) -> Masks:
        """Segment one channel of ``volume`` into foreground masks and instances.

        Parameters
        ----------
        volume
            A ``CZYX`` volume (numpy or dask), 2D when ``Z == 1``.

        Returns
        -------
        Masks
            ``semantic`` of shape ``(1, Z, Y, X)`` uint8 (class ``config.class_name``) and
            ``instances`` (Z, Y, X) uint32 numbered ``1..n``. A constant image (all zero,
            say) has no content: its masks are empty and a warning says so.

        Raises
        ------
        VolumeError
            If the volume has a time axis, the channel does not exist, or the image has no
            voxels or holds NaN/inf.
        """
        image = channel_image(volume, self.config.channel)
        low, high = image.min(), image.max()
        if low == high:
            warnings.warn(f"image is constant ({low:g}): empty mask", stacklevel=2)
            instances = np.zeros(image.shape, dtype=np.uint32)
        else:
            instances = remove_small(self._label(image, volume.voxel_nm), self.config.min_size_px)
        semantic = (instances > 0).astype(np.uint8)[None]
        return Masks(semantic, (self.config.class_name,), volume.voxel_nm, instances)

    def _label(self, image: np.ndarray, voxel_nm: tuple[float, float, float]) -> np.ndarray:
        raise NotImplementedError


def channel_image(volume: Volume, channel: int) -> np.ndarray:
    """Load ``channel`` of a CZYX volume as float64 (Z, Y, X), with the checks users need."""
    if volume.axes != AXES_4D:
        raise VolumeError(
            f"baseline segmenters take a {AXES_4D} volume, got {volume.axes!r}; "
            f"segment one time point at a time"
        )
    n_channels = volume.shape[0]
    if channel >= n_channels:
        raise VolumeError(
            f"channel {channel} does not exist: the volume has {n_channels} "
            f"channel(s) {volume.channel_names}"
        )
    image = np.asarray(volume.data[channel], dtype=np.float64)
    if image.size == 0:
        raise VolumeError(f"cannot segment an empty image of shape {image.shape}")
    if not np.isfinite(image).all():
        raise VolumeError("image holds NaN or infinite values")
    return image


def smoothing_sigma(sigma_px: float, voxel_nm: tuple[float, float, float]) -> tuple:
    """Per-axis Gaussian sigma (z, y, x) for an in-plane ``sigma_px``, isotropic in nm."""
    aspect = voxel_nm[1] / voxel_nm[0]  # in-plane pixel / z step
    return (sigma_px * aspect, sigma_px, sigma_px)


def noise_sd(image: np.ndarray) -> float:
    """Robust noise standard deviation from differences of neighbouring pixels along x.

    The difference of two independent pixels has sd ``sqrt(2) * sigma``; the median absolute
    deviation ignores the few differences that straddle object edges.
    """
    diffs = np.diff(image, axis=-1)
    if diffs.size == 0:  # one pixel wide: fall back to the plain spread
        return float(image.std())
    mad = np.median(np.abs(diffs - np.median(diffs)))
    return float(MAD_TO_SD * mad / np.sqrt(2.0))


def components(foreground: np.ndarray) -> np.ndarray:
    """Connected components (full connectivity) of a boolean array as uint32 labels 1..n."""
    return label(foreground, connectivity=foreground.ndim).astype(np.uint32)


def remove_small(labels: np.ndarray, min_size_px: int) -> np.ndarray:
    """Drop labels with fewer than ``min_size_px`` voxels; renumber the rest 1..n (uint32)."""
    labels = labels.astype(np.uint32, copy=False)
    if min_size_px > 1 and labels.max() > 0:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size_px
        small[0] = False
        labels = labels.copy()
        labels[small[labels]] = 0
        labels = relabel_sequential(labels)[0].astype(np.uint32)
    return labels


def bright_regions(regions: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Which regions are bright: Otsu's threshold over the region means, weighted by size.

    This is Otsu's threshold of the image in which every voxel is replaced by the mean
    intensity of its region, so each region goes to foreground or background as a whole.
    Subcellular structures are sparse, so the largest region is taken to be background,
    and regions darker than it (dark noise, a dim corner) are background too: they are
    left out of the threshold, where a large dark region would otherwise pull it down to
    between itself and the true background. Where fewer than two regions are at least as
    bright as the largest one, all regions take part.

    Parameters
    ----------
    regions
        Non-negative integer labels, same shape as ``image``; every label is a region
        (label 0 included).
    image
        The intensities the means are taken of.

    Returns
    -------
    numpy.ndarray
        Boolean, one entry per label ``0..regions.max()``: True for bright regions. All
        False when the regions have fewer than two distinct means (nothing to separate).
    """
    flat = regions.ravel()
    sizes = np.bincount(flat)
    sums = np.bincount(flat, weights=image.ravel(), minlength=len(sizes))
    present = sizes > 0
    means = np.zeros(len(sizes))
    means[present] = sums[present] / sizes[present]
    candidates = present & (means >= means[np.argmax(sizes)])
    if np.unique(means[candidates]).size < 2:
        candidates = present
    values, inverse = np.unique(means[candidates], return_inverse=True)
    if len(values) < 2:
        return np.zeros(len(sizes), dtype=bool)
    counts = np.bincount(inverse, weights=sizes[candidates])
    threshold = threshold_otsu(hist=(counts, values))
    return candidates & (means > threshold)
