"""Closed-form reference values for the widefield PSF, for tests, docs and calibration."""

from __future__ import annotations

import numpy as np

__all__ = [
    "AIRY_FWHM_FACTOR",
    "airy_otf",
    "axial_fwhm_nm",
    "axial_intensity",
    "lateral_fwhm_nm",
    "measured_fwhm_nm",
    "paraxial_focal_depth_nm",
]

#: FWHM of the Airy intensity (2 J₁(v)/v)² is v = 3.2327, i.e. 0.5145 λ/NA
#: (Born & Wolf, Principles of Optics, §8.5.2; the "0.51 λ/NA" of Cole et al. 2011).
AIRY_FWHM_FACTOR = 3.2326799 / (2.0 * np.pi)


def measured_fwhm_nm(profile, step_nm: float) -> float:
    """Full width at half maximum of a sampled peak (e.g. a line through a bead image).

    Parameters
    ----------
    profile
        1-D intensity samples holding one peak that falls below half its maximum on
        both sides.
    step_nm
        Sample spacing, nm.

    Returns
    -------
    float
        Distance between the two half-maximum crossings, each found by linear
        interpolation between the samples around it, nm.
    """
    profile = np.asarray(profile, dtype=float)
    c = int(np.argmax(profile))
    half = profile[c] / 2
    right = c + int(np.argmax(profile[c:] < half))
    left = c - int(np.argmax(profile[c::-1] < half))
    if right == c or left == c:
        raise ValueError("the profile does not fall below half its maximum on both sides")
    xr = right - 1 + (profile[right - 1] - half) / (profile[right - 1] - profile[right])
    xl = left + 1 - (profile[left + 1] - half) / (profile[left + 1] - profile[left])
    return float((xr - xl) * step_nm)


def lateral_fwhm_nm(na: float, wavelength_nm: float) -> float:
    """In-focus lateral FWHM of a widefield PSF with a uniform circular pupil: 0.5145 λ/NA."""
    return AIRY_FWHM_FACTOR * wavelength_nm / na


def axial_fwhm_nm(na: float, wavelength_nm: float, index: float) -> float:
    """Widefield axial FWHM, ``0.88 λ / (n − sqrt(n² − NA²))``.

    Cole, Jinadasa & Brown, "Measuring and interpreting point spread functions to
    determine confocal microscope resolution and ensure quality control", Nat. Protoc. 6,
    1929–1941 (2011). It is exact for a pupil uniform in ``n cos θ``; for the
    Gibson–Lanni pupil (uniform in ``sin θ``) use :func:`axial_intensity`.
    """
    return 0.88 * wavelength_nm / (index - np.sqrt(index**2 - na**2))


def axial_intensity(z_nm, na: float, wavelength_nm: float, index: float) -> np.ndarray:
    """On-axis intensity of a defocused uniform (in ``sin θ``) pupil, 1 at focus.

    With ``u = sqrt(n² − NA² ρ²)`` the field ``∫₀¹ exp(ikzu) ρ dρ`` becomes
    ``NA⁻² ∫ u exp(ikzu) du`` from ``u₀ = sqrt(n² − NA²)`` to ``n``, which integrates in
    closed form. No index mismatch: the sample index equals ``index``.
    """
    z = np.asarray(z_nm, dtype=float)
    k = 2.0 * np.pi / wavelength_nm
    u0 = np.sqrt(index**2 - na**2)
    focus = (index**2 - u0**2) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        kz = k * z

        def antiderivative(u):
            return np.exp(1j * kz * u) * (u / (1j * kz) + 1.0 / kz**2)

        field = antiderivative(index) - antiderivative(u0)
    field = np.where(np.abs(kz) < 1e-9, focus, field)
    return np.abs(field) ** 2 / focus**2


def airy_otf(q_per_nm, na: float, wavelength_nm: float) -> np.ndarray:
    """In-focus incoherent OTF of a circular pupil, ``(2/π)(acos s − s sqrt(1 − s²))``."""
    s = np.clip(np.asarray(q_per_nm, dtype=float) * wavelength_nm / (2.0 * na), 0.0, 1.0)
    return 2.0 / np.pi * (np.arccos(s) - s * np.sqrt(1.0 - s**2))


def paraxial_focal_depth_nm(nominal_focus_nm, sample_index: float, immersion_index: float):
    """Actual (paraxial) focal depth in the sample for a nominal (stage) focus depth.

    ``n_s / n_i × nominal`` — e.g. Diel et al., "Tutorial: avoiding and correcting
    sample-induced spherical aberration artifacts in 3D fluorescence microscopy",
    Nat. Protoc. 15, 2773–2784 (2020). At high NA the intensity maximum lies shallower
    (NA 1.4 oil into water: 0.71–0.76 × nominal at 0.65–2 µm depth, see
    :func:`~subcell.plugins.microscopes.psf.best_focus_nm`).
    """
    return np.asarray(nominal_focus_nm, dtype=float) * sample_index / immersion_index
