"""Ground-truth rules that threshold the noise-free image: ``otsu_clean``, ``otsu_erode``,
``noise_level``.

These are the alternatives to physics-based ground truth that Sekh et al. (2021) compared
(Supplementary Note 7): they see the blur of the microscope, and ``noise_level`` the noise
of the camera. Each thresholds the clean image summed over channels, ``(Z, Y, X)``, with one
threshold for the whole field; every foreground voxel then takes the instance and class of
the nearest voxel holding emitters (:func:`~subcell.plugins.physics.ground_truth.label_foreground`),
so instance ids are the geometry's.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from subcell.core.model import Emitters, Field
from subcell.core.validators import within
from subcell.plugins.physics.ground_truth import (
    MaskRule,
    clean_image,
    label_foreground,
    require,
)

__all__ = [
    "NoiseLevel",
    "NoiseLevelConfig",
    "OtsuClean",
    "OtsuCleanConfig",
    "OtsuErode",
    "OtsuErodeConfig",
    "otsu_foreground",
    "psf_kernel",
]


@attrs.frozen(kw_only=True)
class OtsuCleanConfig:
    """Otsu's threshold on the noise-free image: no parameters."""


@attrs.frozen(kw_only=True)
class OtsuErodeConfig:
    """Otsu's threshold, then erosion by a PSF-sized kernel.

    Attributes
    ----------
    kernel_nm
        Diameter of a disc-shaped erosion kernel, nm. 0 (the default) takes the kernel from
        the microscope: the pixels where its in-focus PSF is at least half its maximum.
    """

    kernel_nm: float = attrs.field(default=0.0, converter=float, validator=attrs.validators.ge(0))


@attrs.frozen(kw_only=True)
class NoiseLevelConfig:
    """Threshold at the noise level: background + ``k_sd`` × noise standard deviation.

    Attributes
    ----------
    k_sd
        How many noise standard deviations above the background the threshold lies.
    background_percentile
        The background of each channel is this percentile of its clean image.
    background_photons
        When >= 0, the background of each channel in expected photons per pixel, instead of
        the percentile; negative (the default) means use the percentile.
    """

    k_sd: float = attrs.field(default=1.0, converter=float, validator=attrs.validators.ge(0))
    background_percentile: float = attrs.field(
        default=5.0, converter=float, validator=within(0, 100)
    )
    background_photons: float = attrs.field(default=-1.0, converter=float)


class _ThresholdRule(MaskRule):
    """Shared drawing: a foreground from :meth:`_foreground`, labelled by nearest emitters."""

    name = ""

    def _draw(self, names, geometry, emitters: Emitters, field: Field, *, clean, **inputs):
        require(self.name, clean=clean)
        foreground = self._foreground(clean_image(clean, field), field, **inputs)
        return label_foreground(foreground, emitters, field, names)

    def _foreground(self, image, field, *, noise, microscope) -> np.ndarray:
        raise NotImplementedError


def otsu_foreground(image: np.ndarray) -> np.ndarray:
    """Voxels of ``image`` above its Otsu threshold (none when the image is constant)."""
    if not image.size or image.max() <= image.min():
        return np.zeros(image.shape, dtype=bool)
    return image > threshold_otsu(image)


class OtsuClean(_ThresholdRule):
    """Otsu's threshold on the noise-free image summed over channels.

    Parameters
    ----------
    config
        No parameters.
    """

    name = "otsu_clean"

    def _foreground(self, image, field, *, noise, microscope) -> np.ndarray:
        return otsu_foreground(image.sum(axis=0))


class OtsuErode(_ThresholdRule):
    """Otsu's threshold on the noise-free image, then binary erosion in each plane by a
    PSF-sized kernel, to undo the blur's widening. Structures smaller than the kernel
    vanish. The tile's edge does not erode (the structure may go on beyond it).

    Parameters
    ----------
    config
        The kernel: from the microscope's PSF, or a disc of ``kernel_nm``.
    """

    name = "otsu_erode"

    def __init__(self, config: OtsuErodeConfig):
        super().__init__(config)
        self._kernels: dict[Field, tuple[object, np.ndarray]] = {}

    def kernel(self, field: Field, microscope=None) -> np.ndarray:
        """The erosion kernel (odd height, odd width) bool, in pixels of ``field``."""
        if self.config.kernel_nm > 0:
            return _disc(self.config.kernel_nm / 2, field.voxel_nm[1:])
        require(self.name, microscope=microscope)
        cached = self._kernels.get(field)
        if cached is None or cached[0] is not microscope:
            cached = (microscope, psf_kernel(microscope.psf(field)))
            self._kernels[field] = cached
        return cached[1]

    def _foreground(self, image, field, *, noise, microscope) -> np.ndarray:
        foreground = otsu_foreground(image.sum(axis=0))
        kernel = self.kernel(field, microscope)
        if not foreground.any() or kernel.sum() <= 1:
            return foreground
        return ndimage.binary_erosion(foreground, structure=kernel[None], border_value=1)


def psf_kernel(psf: np.ndarray) -> np.ndarray:
    """The half-maximum footprint of a PSF's in-focus plane, centred on its peak.

    Parameters
    ----------
    psf
        (C, Z, Y, X) or (Z, Y, X) image of a point; channels are summed, and the plane with
        the highest peak is the in-focus one.

    Returns
    -------
    numpy.ndarray
        bool (2h + 1, 2w + 1): the connected pixels at or above half the peak, around it.
    """
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim == 4:
        psf = psf.sum(axis=0)
    plane = psf[int(np.argmax(psf.max(axis=(1, 2))))]
    cy, cx = np.unravel_index(int(np.argmax(plane)), plane.shape)
    labels, _ = ndimage.label(plane >= 0.5 * plane[cy, cx])
    ys, xs = np.nonzero(labels == labels[cy, cx])
    hy, hx = int(np.abs(ys - cy).max()), int(np.abs(xs - cx).max())
    kernel = np.zeros((2 * hy + 1, 2 * hx + 1), dtype=bool)
    kernel[ys - cy + hy, xs - cx + hx] = True
    return kernel


def _disc(radius_nm: float, pixel_nm) -> np.ndarray:
    """Pixels whose centres lie within ``radius_nm`` of the centre pixel's centre."""
    hy, hx = (int(np.floor(radius_nm / p)) for p in pixel_nm)
    yy = (np.arange(-hy, hy + 1) * pixel_nm[0])[:, None]
    xx = (np.arange(-hx, hx + 1) * pixel_nm[1])[None, :]
    return yy**2 + xx**2 <= radius_nm**2


class NoiseLevel(_ThresholdRule):
    """Threshold the noise-free image at background + ``k_sd`` × the noise level.

    Channel ``c`` has background ``b_c`` (a low percentile of its clean image, or
    ``background_photons``) and noise ``s_c``, the median over pixels of
    ``noise.noise_sd_photons`` at ``b_c`` (the median, so a few noisy sCMOS pixels do not
    move it). The channel sum is foreground where it exceeds ``Σ b_c + k_sd · √(Σ s_c²)``:
    where the structure stands out of the background by ``k_sd`` noise standard deviations.

    Parameters
    ----------
    config
        ``k_sd`` and how the background is found.
    """

    name = "noise_level"

    def threshold(self, image: np.ndarray, noise) -> float:
        """The threshold, in expected photons, for the channel sum of ``image`` (C, Z, Y, X)."""
        require(self.name, noise=noise)
        cfg = self.config
        total_bg, total_var = 0.0, 0.0
        for channel in image:
            if cfg.background_photons >= 0:
                bg = cfg.background_photons
            else:
                bg = float(np.percentile(channel, cfg.background_percentile))
            sd = np.asarray(noise.noise_sd_photons(np.full(channel.shape, bg)), dtype=float)
            total_bg += bg
            total_var += float(np.median(sd)) ** 2
        return total_bg + cfg.k_sd * float(np.sqrt(total_var))

    def _foreground(self, image, field, *, noise, microscope) -> np.ndarray:
        return image.sum(axis=0) > self.threshold(image, noise)
