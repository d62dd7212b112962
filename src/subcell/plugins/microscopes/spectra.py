"""Dye emission spectra and the fraction of photons each detection band receives.

A dye's emission band is skewed towards the red in wavelength: its long-wavelength tail is
longer. A log-normal density in wavelength captures that with two numbers, the peak
(mode) and the full width at half maximum (the log-normal line shape of Siano & Metzler,
J. Chem. Phys. 51, 1856–1861, 1969, is the same idea in wavenumber)::

    f(λ) = exp(−(ln λ − μ)² / (2 s²)) / (λ s sqrt(2π)),     μ = ln(peak) + s²,

so ``f`` is a Gaussian of width ``s`` in ``ln λ`` times ``1/λ``: in ``ln λ`` it peaks at
``ln(peak)``, and its half maximum lies at ``peak · exp(± s sqrt(2 ln 2))``, which fixes
``s = asinh(FWHM / (2 peak)) / sqrt(2 ln 2)``. The fraction in a band ``[lo, hi]`` is
``Φ((ln hi − μ)/s) − Φ((ln lo − μ)/s)`` in closed form, vectorised over peaks (a dye whose
emission shifts with its environment, as Nile Red's with membrane polarity, gives each
emitter its own peak).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

__all__ = ["band_fraction", "emission_spectrum", "lognormal_width"]

_HALF = np.sqrt(2.0 * np.log(2.0))


def lognormal_width(peak_nm, fwhm_nm) -> np.ndarray:
    """Width ``s`` (in ln λ) of the log-normal spectrum with this peak and FWHM."""
    return np.arcsinh(np.asarray(fwhm_nm, dtype=float) / (2.0 * np.asarray(peak_nm))) / _HALF


def emission_spectrum(wavelength_nm, peak_nm: float, fwhm_nm: float) -> np.ndarray:
    """Emission density per nm at ``wavelength_nm`` (integrates to 1 over all λ)."""
    lam = np.asarray(wavelength_nm, dtype=float)
    s = lognormal_width(peak_nm, fwhm_nm)
    mu = np.log(peak_nm) + s * s
    with np.errstate(divide="ignore"):
        z = (np.log(lam) - mu) / s
    return np.where(lam > 0, np.exp(-0.5 * z * z) / (lam * s * np.sqrt(2.0 * np.pi)), 0.0)


def band_fraction(peak_nm, fwhm_nm, bands_nm) -> np.ndarray:
    """Fraction of the emitted photons inside each detection band.

    Parameters
    ----------
    peak_nm
        Emission peak(s), any shape (e.g. one per emitter).
    fwhm_nm
        Spectral FWHM, broadcast against ``peak_nm``.
    bands_nm
        (C, 2) detection bands ``(lo, hi)`` in nm.

    Returns
    -------
    numpy.ndarray
        Shape ``peak.shape + (C,)``; bands that do not overlap sum to at most 1.
    """
    peak = np.asarray(peak_nm, dtype=float)[..., None]
    s = lognormal_width(peak, np.asarray(fwhm_nm, dtype=float)[..., None])
    mu = np.log(peak) + s * s
    bands = np.asarray(bands_nm, dtype=float).reshape(-1, 2)
    return ndtr((np.log(bands[:, 1]) - mu) / s) - ndtr((np.log(bands[:, 0]) - mu) / s)
