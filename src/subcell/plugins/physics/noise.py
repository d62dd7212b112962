"""Noise models: expected photons per pixel to detector counts.

``poisson`` counts photons (shot noise only). ``poisson_gaussian`` is a CCD or an sCMOS
camera described by sensor-wide numbers: quantum efficiency, shot noise, full-well
saturation, Gaussian read noise, gain, offset, digitisation and clipping to the bit depth.
``emccd`` adds a gamma-distributed electron-multiplying gain before the read noise, which
doubles the shot-noise variance (excess noise factor F² = 2). ``scmos`` (in
:mod:`subcell.plugins.physics.scmos`) gives every pixel its own offset, gain and read noise.

Every model also answers :meth:`noise_sd_photons`: the standard deviation of its output at
an expected photon level, referred back to the input (divided by the mean counts per
photon), so that ``λ / noise_sd_photons(λ)`` is the signal-to-noise ratio of a pixel that
expects ``λ`` photons. These formulas hold below saturation (clipping only lowers the
variance) and include the 1/12 ADU² of rounding to whole ADU.
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

from subcell.core.errors import VolumeError
from subcell.core.validators import within

__all__ = [
    "Emccd",
    "EmccdConfig",
    "Poisson",
    "PoissonConfig",
    "PoissonGaussian",
    "PoissonGaussianConfig",
]

_DTYPES = ("float32", "uint16")
#: Variance of rounding a continuous value to whole ADU (uniform error on [-½, ½)).
QUANTISATION_VAR_ADU2 = 1.0 / 12.0


def _check_bit_depth_fits(instance, attribute, value):
    if instance.output_dtype == "uint16" and value > 16:
        raise ValueError(f"{attribute.name}={value} does not fit output_dtype 'uint16'")


def _qe_field(default: float = 0.8):
    return attrs.field(default=default, converter=float, validator=within(0, 1, low_open=True))


def _dtype_field():
    return attrs.field(default="float32", validator=attrs.validators.in_(_DTYPES))


def _float(default: float, validator):
    return attrs.field(default=default, converter=float, validator=validator)


def _bit_depth_field():
    return attrs.field(default=16, converter=int, validator=[within(1, 32), _check_bit_depth_fits])


_ge0 = attrs.validators.ge(0)
_gt0 = attrs.validators.gt(0)


@attrs.frozen(kw_only=True)
class PoissonConfig:
    """Shot noise only.

    Attributes
    ----------
    qe
        Quantum efficiency: the fraction of photons detected.
    output_dtype
        ``"float32"`` or ``"uint16"`` (counts above 65535 are clipped).
    """

    qe: float = _qe_field(1.0)
    output_dtype: Literal["float32", "uint16"] = _dtype_field()


@attrs.frozen(kw_only=True)
class PoissonGaussianConfig:
    """A CCD or sCMOS camera described by sensor-wide numbers.

    Attributes
    ----------
    qe
        Quantum efficiency: the fraction of photons converted to photo-electrons.
    read_noise_e
        Read noise, rms electrons (Gaussian).
    gain_adu_per_e
        Conversion gain, ADU per electron.
    offset_adu
        Camera offset (bias), ADU.
    full_well_e
        Full-well capacity, electrons: a pixel holds at most this many photo-electrons.
    bit_depth
        ADC bit depth; counts are rounded and clipped to ``[0, 2**bit_depth - 1]``.
    output_dtype
        ``"float32"`` or ``"uint16"``.
    """

    qe: float = _qe_field()
    read_noise_e: float = _float(1.5, _ge0)
    gain_adu_per_e: float = _float(1.0, _gt0)
    offset_adu: float = _float(100.0, _ge0)
    full_well_e: float = _float(30000.0, _gt0)
    output_dtype: Literal["float32", "uint16"] = _dtype_field()
    bit_depth: int = _bit_depth_field()


@attrs.frozen(kw_only=True)
class EmccdConfig:
    """An electron-multiplying CCD.

    Attributes
    ----------
    qe
        Quantum efficiency.
    em_gain
        Mean electron-multiplication gain.
    read_noise_e
        Read noise, rms electrons at the output (after multiplication).
    gain_adu_per_e
        Conversion gain, ADU per output electron.
    offset_adu
        Camera offset, ADU.
    em_full_well_e
        Capacity of the multiplication register, output electrons (multiplied charge is
        clipped there).
    bit_depth
        ADC bit depth; counts are rounded and clipped to ``[0, 2**bit_depth - 1]``.
    output_dtype
        ``"float32"`` or ``"uint16"``.
    """

    qe: float = _qe_field(0.9)
    em_gain: float = _float(300.0, attrs.validators.ge(1))
    read_noise_e: float = _float(50.0, _ge0)
    gain_adu_per_e: float = _float(0.1, _gt0)
    offset_adu: float = _float(100.0, _ge0)
    em_full_well_e: float = _float(800000.0, _gt0)
    output_dtype: Literal["float32", "uint16"] = _dtype_field()
    bit_depth: int = _bit_depth_field()


def check_photons(expected_photons) -> np.ndarray:
    """The noise-free image as float64, checked finite, FFT round-off below zero clipped.

    Raises
    ------
    VolumeError
        When the image holds NaN or inf.
    """
    lam = np.asarray(expected_photons, dtype=np.float64)
    if not np.isfinite(lam).all():
        raise VolumeError("expected photons hold NaN or inf")
    return np.clip(lam, 0.0, None)


def digitise(adu: np.ndarray, bit_depth: int, dtype: str) -> np.ndarray:
    """Round to whole ADU and clip to the ADC range, as the camera's converter does."""
    top = min(2.0**bit_depth - 1, np.iinfo(np.uint16).max if dtype == "uint16" else np.inf)
    return np.clip(np.rint(adu), 0, top).astype(dtype)


class Poisson:
    """Photon shot noise: counts ~ Poisson(qe·λ).

    Mean ``qe·λ`` and variance ``qe·λ`` counts; ``noise_sd_photons(λ) = √(λ / qe)``.

    Parameters
    ----------
    config
        Quantum efficiency and output type.
    """

    def __init__(self, config: PoissonConfig):
        self.config = config

    def apply(self, expected_photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw photon counts for each pixel of ``expected_photons`` (any shape)."""
        counts = rng.poisson(self.config.qe * check_photons(expected_photons))
        if self.config.output_dtype == "uint16":
            return np.clip(counts, 0, np.iinfo(np.uint16).max).astype(np.uint16)
        return counts.astype(np.float32)

    def noise_sd_photons(self, expected_photons: np.ndarray) -> np.ndarray:
        """Standard deviation of the counts at each expected photon level, in photons."""
        return np.sqrt(check_photons(expected_photons) / self.config.qe)


class PoissonGaussian:
    """CCD/sCMOS camera: ADU = g·(min(Poisson(qe·λ), full well) + Normal(0, σ)) + offset.

    With gain ``g`` (ADU/e⁻) and read noise ``σ`` (e⁻), the output has mean
    ``g·qe·λ + offset`` ADU and variance ``g²·(qe·λ + σ²) + 1/12`` ADU² (the 1/12 from
    rounding), below saturation. ``noise_sd_photons(λ)`` is that standard deviation divided
    by ``g·qe``.

    Parameters
    ----------
    config
        Camera parameters.
    """

    def __init__(self, config: PoissonGaussianConfig):
        self.config = config

    def apply(self, expected_photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw camera counts (ADU) for each pixel of ``expected_photons`` (any shape)."""
        cfg = self.config
        electrons = rng.poisson(cfg.qe * check_photons(expected_photons)).astype(np.float64)
        np.minimum(electrons, cfg.full_well_e, out=electrons)
        if cfg.read_noise_e > 0:
            electrons += rng.normal(0.0, cfg.read_noise_e, electrons.shape)
        return digitise(
            cfg.gain_adu_per_e * electrons + cfg.offset_adu, cfg.bit_depth, cfg.output_dtype
        )

    def noise_sd_photons(self, expected_photons: np.ndarray) -> np.ndarray:
        """Standard deviation of the counts at each expected photon level, in photons."""
        cfg = self.config
        g = cfg.gain_adu_per_e
        var_adu = g**2 * (cfg.qe * check_photons(expected_photons) + cfg.read_noise_e**2)
        return np.sqrt(var_adu + QUANTISATION_VAR_ADU2) / (g * cfg.qe)


class Emccd:
    """EMCCD camera: Poisson electrons, gamma EM gain, read noise, conversion, offset.

    ``n ~ Poisson(qe·λ)``; the multiplied charge is ``Gamma(shape=n, scale=G)`` (0 when
    n = 0), the standard high-gain model of the EM register, whose variance is
    ``2·G²·qe·λ``: the excess noise factor F² = 2. With conversion gain ``g`` and read noise
    ``σ`` (output e⁻), the output has mean ``g·G·qe·λ + offset`` ADU and variance
    ``g²·(2·G²·qe·λ + σ²) + 1/12`` ADU², below saturation. ``noise_sd_photons(λ)`` is that
    standard deviation divided by ``g·G·qe``.

    Parameters
    ----------
    config
        Camera parameters.
    """

    def __init__(self, config: EmccdConfig):
        self.config = config

    def apply(self, expected_photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw camera counts (ADU) for each pixel of ``expected_photons`` (any shape)."""
        cfg = self.config
        electrons = rng.poisson(cfg.qe * check_photons(expected_photons))
        # numpy's gamma gives exactly 0 for shape 0, so empty pixels stay empty.
        multiplied = rng.gamma(electrons.astype(np.float64), cfg.em_gain)
        np.minimum(multiplied, cfg.em_full_well_e, out=multiplied)
        if cfg.read_noise_e > 0:
            multiplied += rng.normal(0.0, cfg.read_noise_e, multiplied.shape)
        return digitise(
            cfg.gain_adu_per_e * multiplied + cfg.offset_adu, cfg.bit_depth, cfg.output_dtype
        )

    def noise_sd_photons(self, expected_photons: np.ndarray) -> np.ndarray:
        """Standard deviation of the counts at each expected photon level, in photons."""
        cfg = self.config
        g, em = cfg.gain_adu_per_e, cfg.em_gain
        shot = 2.0 * em**2 * cfg.qe * check_photons(expected_photons)
        var_adu = g**2 * (shot + cfg.read_noise_e**2) + QUANTISATION_VAR_ADU2
        return np.sqrt(var_adu) / (g * em * cfg.qe)
