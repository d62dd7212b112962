"""Morphological segmentation in the manner of MorphoLibJ's "Morphological Segmentation".

The image is (optionally) smoothed, its morphological gradient (dilation minus erosion)
is flooded from the regional minima that survive an h-minima transform (marker-controlled
watershed), and the resulting catchment basins are split into bright (foreground) and dark
(background) ones. Works in 2D (``Z == 1``) and 3D.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy import ndimage
from skimage.measure import label
from skimage.morphology import h_minima
from skimage.segmentation import relabel_sequential, watershed

from subcell.plugins.baselines._common import (
    BaselineSegmenter,
    bright_regions,
    noise_sd,
    non_empty,
    smoothing_sigma,
)

__all__ = ["Morphological", "MorphologicalConfig"]


@attrs.frozen(kw_only=True)
class MorphologicalConfig:
    """Parameters of the gradient + h-minima + watershed segmentation.

    The dynamic ``h`` of the h-minima transform is expressed in units of the noise of the
    image the gradient is taken of: ``h = dynamic_sd * sigma``, where ``sigma`` is the raw
    image's noise standard deviation (median absolute deviation of neighbouring-pixel
    differences) times the noise gain of the smoothing filter. Gradient minima shallower
    than ``h`` are noise and are merged into their neighbours' basins; a structure whose
    edge rises more than ``h`` above its interior keeps its own basin. Tying ``h`` to the
    noise, rather than to the dynamic range as MorphoLibJ's default tolerance (10 grey
    levels of an 8-bit image) does, makes one default suit images of any brightness.

    Attributes
    ----------
    channel
        Index of the channel to segment.
    smooth_sigma_px
        Gaussian smoothing before the gradient, standard deviation in in-plane pixels
        (0: none, as in MorphoLibJ). Along z it is scaled by the voxel aspect ratio.
    gradient_radius_px
        Radius of the square (cubic in 3D) neighbourhood of the morphological gradient, in
        voxels along every axis (MorphoLibJ's default is 1).
    dynamic_sd
        The dynamic ``h`` of the h-minima transform, in noise standard deviations of the
        smoothed image. The default 2 is the smallest that removes every minimum of pure
        noise (256 x 256 white noise, 1 px smoothing: 1568, 309, 15 and 1 basins at 0.5,
        1, 1.5 and 2); larger values lose faint structures into the background's basin.
    min_size_px
        Foreground basins with fewer voxels are removed from masks and instances.
    class_name
        Name of the single foreground class in the returned masks.
    """

    channel: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    smooth_sigma_px: float = attrs.field(
        default=1.0, converter=float, validator=attrs.validators.ge(0.0)
    )
    gradient_radius_px: int = attrs.field(
        default=1, converter=int, validator=attrs.validators.ge(1)
    )
    dynamic_sd: float = attrs.field(default=2.0, converter=float, validator=attrs.validators.gt(0))
    min_size_px: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    class_name: str = attrs.field(default="foreground", validator=non_empty)


class Morphological(BaselineSegmenter):
    """Watershed of the morphological gradient from h-minima markers; bright basins.

    Foreground is the set of catchment basins whose mean (raw) intensity exceeds Otsu's
    threshold over the basin means weighted by basin size; each foreground basin is one
    instance. Basins are not merged where they touch: the watershed line between two
    touching bright basins is exactly where it separates two objects, which is what a
    watershed is for. (The flat saddle between two blurred objects is a gradient minimum
    too and may form a small basin of its own.) Unlike MorphoLibJ's default output the
    basins have no one-voxel dams between them, so they tile the image.

    Parameters
    ----------
    config
        The segmenter's parameters.
    """

    def __init__(self, config: MorphologicalConfig):
        super().__init__(config)

    def _label(self, image, voxel_nm):
        basins = self.basins(image, voxel_nm)
        bright = bright_regions(basins, image)
        instances = np.where(bright[basins], basins, 0)
        return relabel_sequential(instances)[0].astype(np.uint32)

    def basins(self, image: np.ndarray, voxel_nm: tuple[float, float, float]) -> np.ndarray:
        """Catchment basins (labels 1..n, tiling the image) of a ``(Z, Y, X)`` image."""
        smoothed, gain = image, 1.0
        if self.config.smooth_sigma_px > 0:
            sigma = smoothing_sigma(self.config.smooth_sigma_px, voxel_nm)
            smoothed = ndimage.gaussian_filter(image, sigma)
            gain = _noise_gain(sigma, image.shape)
        radius = self.config.gradient_radius_px
        size = [2 * radius + 1] * 3
        if image.shape[0] == 1:
            size[0] = 1  # a single plane: a 2D square neighbourhood
        gradient = ndimage.morphological_gradient(smoothed, size=tuple(size))
        h = self.config.dynamic_sd * _noise_scale(image) * gain
        markers = label(h_minima(gradient, h), connectivity=gradient.ndim)
        return watershed(gradient, markers)


def _noise_scale(image: np.ndarray) -> float:
    """The image's noise sd; where that is 0, the sd of neighbouring-pixel differences.

    The robust estimate is 0 when most neighbours are equal: a noise-free image, or a
    quantised one with a flat background. The plain sd of the differences then measures
    the edges instead, which keeps ``h`` a fraction of the structures' contrast rather than
    0 (where every flat patch would become a basin).
    """
    sd = noise_sd(image)
    if sd == 0:
        sd = float(np.diff(image, axis=-1).std() / np.sqrt(2.0)) if image.shape[-1] > 1 else 0.0
    if sd == 0:  # constant along x (stripes): any positive h keeps the true minima
        sd = float(image.std()) or 1.0
    return sd


def _noise_gain(sigma: tuple, shape: tuple) -> float:
    """How much Gaussian smoothing with ``sigma`` reduces the sd of white noise."""
    # The filtered impulse is the filter's kernel; its L2 norm is the noise gain. The
    # impulse sits in a box large enough for the kernel and no larger than the image.
    box = tuple(min(n, 2 * int(4 * s + 0.5) + 1) for n, s in zip(shape, sigma, strict=True))
    impulse = np.zeros(box)
    impulse[tuple(n // 2 for n in box)] = 1.0
    return float(np.sqrt((ndimage.gaussian_filter(impulse, sigma) ** 2).sum()))
