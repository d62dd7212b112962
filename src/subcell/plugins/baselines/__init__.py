"""Classical segmentation baselines: global Otsu and local (adaptive) thresholding.

Both segment one channel of a ``CZYX`` volume, 2D (``Z == 1``) or 3D, into one semantic
class and number its connected components as instances. They are the references a learned
segmenter has to beat (Sekh et al. 2021 report Otsu 0.82 mIoU and adaptive thresholding
0.56 mIoU on simulated mitochondria). Arrays are computed in memory with numpy: a dask
volume is loaded channel by channel, so chunk large volumes before calling ``segment``.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_local, threshold_otsu
from skimage.measure import label
from skimage.segmentation import relabel_sequential

from subcell.core.errors import VolumeError
from subcell.core.hookspecs import hookimpl
from subcell.core.model import AXES_4D, Masks, Volume

__all__ = [
    "Adaptive",
    "AdaptiveConfig",
    "Otsu",
    "OtsuConfig",
    "register_segmenters",
]

#: Converts the median absolute deviation of a normal variable into its standard deviation.
_MAD_TO_SD = 1.4826


def _non_empty(instance, attribute, value):
    if not value.strip():
        raise ValueError(f"{attribute.name} must be a non-empty name")


def _odd_block(instance, attribute, value):
    if value < 3 or value % 2 == 0:
        raise ValueError(f"{attribute.name} must be an odd number of pixels >= 3, got {value}")


@attrs.frozen(kw_only=True)
class OtsuConfig:
    """Parameters of the global Otsu threshold.

    Attributes
    ----------
    channel
        Index of the channel to segment (0 for single-channel data).
    smooth_sigma_px
        Gaussian smoothing before thresholding, standard deviation in in-plane pixels
        (0: none). Along z it is scaled by the voxel aspect ratio so the blur is isotropic
        in nm.
    min_size_px
        Connected components with fewer voxels are removed from masks and instances.
    class_name
        Name of the single foreground class in the returned masks.
    """

    channel: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    smooth_sigma_px: float = attrs.field(
        default=0.0, converter=float, validator=attrs.validators.ge(0.0)
    )
    min_size_px: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    class_name: str = attrs.field(default="foreground", validator=_non_empty)


@attrs.frozen(kw_only=True)
class AdaptiveConfig:
    """Parameters of the local (adaptive) threshold, robust to uneven illumination.

    A voxel is foreground when it exceeds the Gaussian-weighted mean of its neighbourhood
    (``skimage.filters.threshold_local``) by ``offset_sd`` noise standard deviations. The
    noise standard deviation is estimated once per image, before smoothing, from
    neighbouring-pixel differences (median absolute deviation), so one offset suits images
    of any brightness.

    Attributes
    ----------
    channel
        Index of the channel to segment.
    block_size_px
        Odd side of the neighbourhood, in in-plane pixels; choose it a few times larger
        than the objects. Along z it is scaled by the voxel aspect ratio.
    offset_sd
        How far above the local mean a foreground voxel must be, in noise standard
        deviations (negative admits voxels slightly below the mean).
    smooth_sigma_px
        Gaussian smoothing before thresholding, in in-plane pixels (0: none).
    min_size_px
        Connected components with fewer voxels are removed from masks and instances.
    class_name
        Name of the single foreground class in the returned masks.
    """

    channel: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    block_size_px: int = attrs.field(default=51, converter=int, validator=_odd_block)
    offset_sd: float = attrs.field(default=2.0, converter=float)
    smooth_sigma_px: float = attrs.field(
        default=1.0, converter=float, validator=attrs.validators.ge(0.0)
    )
    min_size_px: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    class_name: str = attrs.field(default="foreground", validator=_non_empty)


class _ThresholdSegmenter:
    """Shared steps: pick and check a channel, smooth, threshold, label, drop small objects."""

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
            ``semantic`` of shape ``(1, Z, Y, X)`` (class ``config.class_name``) and
            ``instances`` numbered ``1..n`` by connected component (full connectivity).

        Raises
        ------
        VolumeError
            If the volume has a time axis, the channel does not exist, or the image is
            empty, holds NaN/inf, or is constant (no threshold separates anything).
        """
        raw = _channel_image(volume, self.config.channel)
        aspect = volume.voxel_nm[1] / volume.voxel_nm[0]  # in-plane pixel / z step
        image = raw
        if self.config.smooth_sigma_px > 0:
            sigma = self.config.smooth_sigma_px
            image = ndimage.gaussian_filter(raw, (sigma * aspect, sigma, sigma))
        foreground = self._foreground(image, raw, aspect)
        instances = _instances(foreground, self.config.min_size_px)
        semantic = (instances > 0).astype(np.uint8)[None]
        return Masks(semantic, (self.config.class_name,), volume.voxel_nm, instances)

    def _foreground(self, image: np.ndarray, raw: np.ndarray, aspect: float) -> np.ndarray:
        """Boolean foreground of the (smoothed) ``image``; ``raw`` is the unsmoothed one."""
        raise NotImplementedError


class Otsu(_ThresholdSegmenter):
    """Global Otsu threshold of one channel, connected components as instances.

    Parameters
    ----------
    config
        The segmenter's parameters.
    """

    def __init__(self, config: OtsuConfig):
        super().__init__(config)

    def _foreground(self, image, raw, aspect):
        return image > threshold_otsu(image)


class Adaptive(_ThresholdSegmenter):
    """Local Gaussian-weighted threshold of one channel, connected components as instances.

    Parameters
    ----------
    config
        The segmenter's parameters.
    """

    def __init__(self, config: AdaptiveConfig):
        super().__init__(config)

    def _foreground(self, image, raw, aspect):
        block = self.config.block_size_px
        block_z = max(1, int(round(block * aspect)) // 2 * 2 + 1)  # odd, >= 1
        local = threshold_local(image, (block_z, block, block), method="gaussian", mode="reflect")
        # Noise is measured before smoothing: smoothing correlates neighbours and would make
        # the difference-based estimate, and so the offset, too small.
        return image > local + self.config.offset_sd * _noise_sd(raw)


def _channel_image(volume: Volume, channel: int) -> np.ndarray:
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
    if image.min() == image.max():
        raise VolumeError(
            f"image is constant ({image.min():g}): no threshold separates "
            f"foreground from background"
        )
    return image


def _noise_sd(image: np.ndarray) -> float:
    """Robust noise standard deviation from differences of neighbouring pixels along x.

    The difference of two independent pixels has sd ``sqrt(2) * sigma``; the median absolute
    deviation ignores the few differences that straddle object edges.
    """
    diffs = np.diff(image, axis=-1)
    if diffs.size == 0:  # one pixel wide: fall back to the plain spread
        return float(image.std())
    mad = np.median(np.abs(diffs - np.median(diffs)))
    return float(_MAD_TO_SD * mad / np.sqrt(2.0))


def _instances(foreground: np.ndarray, min_size_px: int) -> np.ndarray:
    """Connected components of ``foreground`` as uint32 labels 1..n, small ones removed."""
    labels = label(foreground, connectivity=foreground.ndim)
    if min_size_px > 1 and labels.max() > 0:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_size_px
        small[0] = False
        labels[small[labels]] = 0
        labels = relabel_sequential(labels)[0]
    return labels.astype(np.uint32)


@hookimpl
def register_segmenters(register):
    """Register the classical threshold baselines."""
    register(
        "otsu",
        OtsuConfig,
        Otsu,
        "global Otsu threshold of one channel, connected components as instances",
    )
    register(
        "adaptive",
        AdaptiveConfig,
        Adaptive,
        "local Gaussian-weighted threshold of one channel, robust to uneven illumination",
    )
