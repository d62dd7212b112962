"""Noise models: expected photons per pixel to detector counts.

``poisson`` counts photons (shot noise only). ``poisson_gaussian`` is an sCMOS/CCD camera:
quantum efficiency, shot noise, Gaussian read noise, gain, offset, digitisation and clipping
to the bit depth. ``emccd`` adds a gamma-distributed electron-multiplying gain before the read
noise, which doubles the shot-noise variance at high gain (excess noise factor F² = 2).
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

from subcell.core.errors import VolumeError

__all__ = [
    "Emccd",
    "EmccdConfig",
    "Poisson",
    "PoissonConfig",
    "PoissonGaussian",
    "PoissonGaussianConfig",
]

_DTYPES = ("float32", "uint16")


def _check_qe(instance, attribute, value):
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} must be in (0, 1], got {value}")


def _check_bit_depth(instance, attribute, value):
    if not 1 <= value <= 32:
        raise ValueError(f"{attribute.name} must be between 1 and 32, got {value}")
    if instance.output_dtype == "uint16" and value > 16:
        raise ValueError(f"{attribute.name}={value} does not fit output_dtype 'uint16'")


def _qe_field():
    return attrs.field(default=0.8, converter=float, validator=_check_qe)


def _dtype_field():
    return attrs.field(default="float32", validator=attrs.validators.in_(_DTYPES))


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

    qe: float = attrs.field(default=1.0, converter=float, validator=_check_qe)
    output_dtype: Literal["float32", "uint16"] = _dtype_field()


@attrs.frozen(kw_only=True)
class PoissonGaussianConfig:
    """An sCMOS or CCD camera.

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
    bit_depth
        ADC bit depth; counts are rounded and clipped to ``[0, 2**bit_depth - 1]``.
    output_dtype
        ``"float32"`` or ``"uint16"``.
    """

    qe: float = _qe_field()
    read_noise_e: float = attrs.field(
        default=1.5, converter=float, validator=attrs.validators.ge(0)
    )
    gain_adu_per_e: float = attrs.field(
        default=1.0, converter=float, validator=attrs.validators.gt(0)
    )
    offset_adu: float = attrs.field(
        default=100.0, converter=float, validator=attrs.validators.ge(0)
    )
    output_dtype: Literal["float32", "uint16"] = _dtype_field()
    bit_depth: int = attrs.field(default=16, converter=int, validator=_check_bit_depth)


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
    bit_depth
        ADC bit depth; counts are rounded and clipped to ``[0, 2**bit_depth - 1]``.
    output_dtype
        ``"float32"`` or ``"uint16"``.
    """

    qe: float = attrs.field(default=0.9, converter=float, validator=_check_qe)
    em_gain: float = attrs.field(default=300.0, converter=float, validator=attrs.validators.ge(1))
    read_noise_e: float = attrs.field(
        default=50.0, converter=float, validator=attrs.validators.ge(0)
    )
    gain_adu_per_e: float = attrs.field(
        default=0.1, converter=float, validator=attrs.validators.gt(0)
    )
    offset_adu: float = attrs.field(
        default=100.0, converter=float, validator=attrs.validators.ge(0)
    )
    output_dtype: Literal["float32", "uint16"] = _dtype_field()
    bit_depth: int = attrs.field(default=16, converter=int, validator=_check_bit_depth)


def _photons(expected_photons) -> np.ndarray:
    """Check the noise-free image and clip FFT round-off below zero."""
    lam = np.asarray(expected_photons, dtype=np.float64)
    if not np.isfinite(lam).all():
        raise VolumeError("expected photons hold NaN or inf")
    return np.clip(lam, 0.0, None)


def _digitise(adu: np.ndarray, bit_depth: int, dtype: str) -> np.ndarray:
    """Round to whole ADU and clip to the ADC range, as the camera's converter does."""
    top = min(2.0**bit_depth - 1, np.iinfo(np.uint16).max if dtype == "uint16" else np.inf)
    return np.clip(np.rint(adu), 0, top).astype(dtype)


class Poisson:
    """Photon shot noise: counts ~ Poisson(qe × expected photons).

    Parameters
    ----------
    config
        Quantum efficiency and output type.
    """

    def __init__(self, config: PoissonConfig):
        self.config = config

    def apply(self, expected_photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw photon counts for each pixel of ``expected_photons`` (any shape)."""
        counts = rng.poisson(self.config.qe * _photons(expected_photons))
        if self.config.output_dtype == "uint16":
            return np.clip(counts, 0, np.iinfo(np.uint16).max).astype(np.uint16)
        return counts.astype(np.float32)


class PoissonGaussian:
    """sCMOS/CCD camera: ADU = gain × (Poisson(qe λ) + Normal(0, σ_read)) + offset.

    Mean ``gain·qe·λ + offset``, variance ``gain²·(qe·λ + σ_read²)`` (before rounding and
    clipping).

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
        electrons = rng.poisson(cfg.qe * _photons(expected_photons)).astype(np.float64)
        if cfg.read_noise_e > 0:
            electrons += rng.normal(0.0, cfg.read_noise_e, electrons.shape)
        return _digitise(
            cfg.gain_adu_per_e * electrons + cfg.offset_adu, cfg.bit_depth, cfg.output_dtype
        )


class Emccd:
    """EMCCD camera: Poisson electrons, gamma EM gain, read noise, conversion, offset.

    ``n ~ Poisson(qe λ)``; the multiplied charge is ``Gamma(shape=n, scale=em_gain)`` (0 when
    n = 0), the standard high-gain model of the EM register.

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
        electrons = rng.poisson(cfg.qe * _photons(expected_photons))
        # numpy's gamma gives exactly 0 for shape 0, so empty pixels stay empty.
        multiplied = rng.gamma(electrons.astype(np.float64), cfg.em_gain)
        if cfg.read_noise_e > 0:
            multiplied += rng.normal(0.0, cfg.read_noise_e, multiplied.shape)
        return _digitise(
            cfg.gain_adu_per_e * multiplied + cfg.offset_adu, cfg.bit_depth, cfg.output_dtype
        )
