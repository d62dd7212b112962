"""Photon budget: a uniform background and the photon scale that gives a target SNR.

SNR definition
--------------
Let ``s`` be the noise-free image of the structures alone (expected photons per pixel, one
frame, all channels), ``b`` the uniform background (photons per pixel) and ``σ(λ)`` the
noise model's standard deviation, in photons, at expected level ``λ``
(:meth:`~subcell.core.kinds.NoiseModel.noise_sd_photons`). The *signal pixels* ``P`` are
the voxels where ``s`` is at least half of its maximum in that channel (the half-maximum
region of the brightest structures; channels without signal are left out). Then::

    SNR = mean_P(s) / sqrt(mean_P(σ(b + s)²))

the mean structure signal above background over the signal pixels, divided by the rms
noise at those pixels' own levels. It is the usual (peak region − background) / noise
ratio of fluorescence microscopy, made robust by averaging over the half-maximum region
rather than taking one pixel. Multiplying every emitter's photons by ``a`` multiplies
``s`` by ``a`` and leaves ``P`` unchanged, and for shot-noise-limited detectors
``SNR(a)`` rises monotonically (∝ √a for Poisson noise, ∝ a while read noise dominates), so
the ``a`` giving a target SNR is unique; it is found by Brent's method on ``log a``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize

from subcell.core.errors import ConfigError

__all__ = ["SIGNAL_FRACTION", "SNR_DEFINITION", "photon_scale_for_snr", "signal_pixels", "snr"]

#: Signal pixels are those at or above this fraction of their channel's maximum.
SIGNAL_FRACTION = 0.5

#: One line for dataset attributes and docs.
SNR_DEFINITION = (
    "SNR = mean_P(s) / sqrt(mean_P(sd(b + s)^2)); s: noise-free structure image (photons, "
    "background excluded) of frame 0, b: uniform background (photons/pixel), sd: the noise "
    "model's noise_sd_photons, P: voxels where s >= 0.5 x its channel's maximum"
)

# Photon scales tried when bracketing the target: 1e-9 ... 1e12 covers any sane budget.
_LOG_SCALE_LIMITS = (math.log(1e-9), math.log(1e12))


def signal_pixels(structure: np.ndarray) -> np.ndarray:
    """The signal pixels ``P`` of a structure image (C, Z, Y, X): per channel, the voxels at
    or above :data:`SIGNAL_FRACTION` of that channel's maximum (none where it is 0)."""
    flat = structure.reshape(structure.shape[0], -1)
    peak = flat.max(axis=1, keepdims=True)
    return ((flat >= SIGNAL_FRACTION * peak) & (peak > 0)).reshape(structure.shape)


def snr(structure: np.ndarray, background: float, noise: Any, scale: float = 1.0) -> float:
    """The SNR (module definition) of ``scale × structure + background``.

    Parameters
    ----------
    structure
        Noise-free image of the structures alone, (C, Z, Y, X), expected photons.
    background
        Uniform background, photons per pixel.
    noise
        A noise model with ``noise_sd_photons``.
    scale
        Factor on every emitter's photons.

    Returns
    -------
    float
        NaN when the image holds no signal.
    """
    mask = signal_pixels(structure)
    if not mask.any():
        return math.nan
    return _snr_of(structure, mask, background, noise, scale)


def photon_scale_for_snr(
    structure: np.ndarray, background: float, noise: Any, target: float
) -> float:
    """The factor ``a`` on every emitter's photons that makes the tile's SNR ``target``.

    Parameters
    ----------
    structure
        Noise-free image of the structures alone at the labellings' photons, (C, Z, Y, X).
    background
        Uniform background, photons per pixel (not scaled).
    noise
        A noise model with ``noise_sd_photons``.
    target
        The SNR wanted, > 0.

    Returns
    -------
    float
        The scale; 1.0 when the image holds no signal (nothing to scale).

    Raises
    ------
    ConfigError
        If no scale between 1e-9 and 1e12 reaches ``target`` (the noise grows as fast as
        the signal, e.g. a saturated or multiplicative-noise detector).
    """
    mask = signal_pixels(structure)
    if not mask.any():
        return 1.0

    def excess(log_scale: float) -> float:
        return _snr_of(structure, mask, background, noise, math.exp(log_scale)) - target

    lo, hi = _bracket(excess)
    if lo is None:
        low, high = (excess(limit) + target for limit in _LOG_SCALE_LIMITS)
        raise ConfigError(
            f"snr: target {target:g} cannot be reached with this noise model (SNR "
            f"{low:.3g} at 1e-9 and {high:.3g} at 1e12 times the labellings' photons)"
        )
    return math.exp(optimize.brentq(excess, lo, hi, xtol=1e-12, rtol=1e-12))


def _snr_of(structure, mask, background: float, noise: Any, scale: float) -> float:
    signal = scale * structure
    sd = np.asarray(noise.noise_sd_photons(signal + background), dtype=np.float64)
    sd = np.broadcast_to(sd, structure.shape)[mask]
    rms = math.sqrt(float(np.mean(sd * sd)))
    mean = float(signal[mask].mean())
    return math.inf if rms == 0 else mean / rms


def _bracket(excess) -> tuple[float | None, float | None]:
    """Log-scales ``(lo, hi)`` with ``excess(lo) <= 0 <= excess(hi)``, stepping by ×4 from
    a scale of 1; ``(None, None)`` when the limits are reached first."""
    low_limit, high_limit = _LOG_SCALE_LIMITS
    step = math.log(4.0)
    lo = hi = 0.0
    if excess(0.0) >= 0:
        while excess(lo) > 0:
            hi, lo = lo, lo - step
            if lo < low_limit:
                return None, None
    else:
        while excess(hi) < 0:
            lo, hi = hi, hi + step
            if hi > high_limit:
                return None, None
    return lo, hi
