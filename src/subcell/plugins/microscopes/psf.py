"""Scalar Gibson–Lanni point spread function, radially, in real and in Fourier space.

The model is the scalar Kirchhoff diffraction integral of Gibson & Lanni (J. Opt. Soc. Am. A
8(10), 1601–1613, 1991) in the form used by Li, Xue & Blu (J. Opt. Soc. Am. A 34(6),
1029–1034, 2017)::

    E(r) = ∫₀¹ P(ρ) J₀(k NA r ρ) ρ dρ,      P(ρ) = exp(i k W(ρ)),
    W(ρ) = z_p S_s − d S_i + t_i⁰ (S_i − S_i⁰) + t_g S_g − t_g⁰ S_g⁰,
    S_n(ρ) = sqrt(n² − NA² ρ²),

with ``k = 2π/λ`` (vacuum emission wavelength), ``z_p`` the emitter's depth below the
coverslip, ``d`` the nominal (stage) focus depth — how far the objective was moved towards
the sample from focusing on the coverslip surface — and the ``⁰`` quantities the design
values of the objective. Where ``NA ρ > n`` the square root is taken on the branch with a
positive imaginary part, so supercritical light from an emitter at depth decays
evanescently. The pupil amplitude is uniform in ρ (no apodisation), as in Gibson–Lanni.

The integral over ρ is a Gauss–Legendre rule split at every kink ``ρ = n/NA`` of the
square roots; the node count follows the phase and Bessel oscillations it has to resolve.
The intensity is normalised by Parseval's theorem for the Hankel transform, so every plane
of the PSF integrates to exactly 1 over the infinite plane (before any truncation):
``I(r) = |E(r)|² (k NA)² / (2π ∫₀¹ |P|² ρ dρ)``.

The optical transfer function is the Hankel transform of that intensity truncated at a
radius ``R``, ``O(q) = 2π ∫₀ᴿ I(r) J₀(2π q r) r dr``; it vanishes beyond ``q = 2 NA/λ``.
"""

from __future__ import annotations

from functools import lru_cache

import attrs
import numpy as np
from numpy.polynomial.legendre import leggauss
from scipy.optimize import minimize_scalar
from scipy.special import j0

__all__ = [
    "GibsonLanni",
    "best_focus_nm",
    "nominal_focus_nm",
    "otf_cutoff_per_nm",
    "pupil",
    "radial_otf",
    "radial_psf",
]

#: Fewest Gauss–Legendre nodes in a ρ or r segment; enough for the in-focus Airy pattern.
_MIN_NODES = 24
#: Nodes per radian of phase (and Bessel argument) variation: keeps the OTF within 2e-5 of
#: a rule ten times finer (the sqrt kink at rho = n_s/NA limits it, not the node count).
_NODES_PER_RAD = 1.0


@attrs.frozen(kw_only=True)
class GibsonLanni:
    """Optical parameters of a Gibson–Lanni objective/coverslip/sample stack (all lengths nm).

    Attributes
    ----------
    na
        Numerical aperture; must be below both immersion indices.
    wavelength_nm
        Vacuum emission wavelength.
    immersion_index, immersion_design_index
        Refractive index of the immersion medium, actual and design.
    sample_index
        Refractive index of the sample (mounting medium or cytoplasm).
    coverslip_index, coverslip_design_index
        Refractive index of the coverslip, actual and design.
    coverslip_thickness_nm, coverslip_design_thickness_nm
        Coverslip thickness, actual and design.
    working_distance_nm
        Design thickness of the immersion layer.
    """

    na: float = 1.4
    wavelength_nm: float = 510.0
    immersion_index: float = 1.515
    immersion_design_index: float = 1.515
    sample_index: float = 1.33
    coverslip_index: float = 1.515
    coverslip_design_index: float = 1.515
    coverslip_thickness_nm: float = 170e3
    coverslip_design_thickness_nm: float = 170e3
    working_distance_nm: float = 150e3

    def __attrs_post_init__(self):
        if not 0 < self.na < min(self.immersion_index, self.immersion_design_index):
            raise ValueError(
                f"na ({self.na}) must be positive and below immersion_index "
                f"({self.immersion_index}) and immersion_design_index "
                f"({self.immersion_design_index})"
            )
        if self.wavelength_nm <= 0:
            raise ValueError(f"wavelength_nm must be > 0, got {self.wavelength_nm}")

    @property
    def k_per_nm(self) -> float:
        """Vacuum wave number 2π/λ in rad/nm."""
        return 2.0 * np.pi / self.wavelength_nm


def otf_cutoff_per_nm(optics: GibsonLanni) -> float:
    """Spatial frequency (cycles/nm) beyond which the incoherent OTF is zero: 2 NA / λ."""
    return 2.0 * optics.na / optics.wavelength_nm


def nominal_focus_nm(optics: GibsonLanni, focal_depth_nm):
    """Stage (nominal) focus depth whose paraxial focus lies at ``focal_depth_nm``.

    Paraxially the defocus terms of ``z_p S_s`` and ``d S_i`` cancel when
    ``z_p / n_s = d / n_i``, so the focus moves ``n_s / n_i`` times as far as the stage
    (the classic axial scaling of refractive-index mismatch).
    """
    return np.asarray(focal_depth_nm, dtype=float) * optics.immersion_index / optics.sample_index


def best_focus_nm(optics: GibsonLanni, focal_depth_nm) -> np.ndarray:
    """Nominal (stage) focus depth at which an emitter at ``focal_depth_nm`` is sharpest.

    Sharpest means the highest peak (on-axis) intensity. Beyond the paraxial regime the
    focus moves less than ``n_s / n_i`` times the stage (NA 1.4 oil into water: ~0.76).
    Depths <= 0 (in the coverslip) map to themselves.

    Parameters
    ----------
    optics
        The objective, coverslip and sample.
    focal_depth_nm
        Emitter depth(s) below the coverslip surface.

    Returns
    -------
    numpy.ndarray
        Nominal focus depth(s), same shape.
    """
    depth = np.asarray(focal_depth_nm, dtype=float)
    out = np.array(depth, dtype=float)
    for i in np.flatnonzero(depth.ravel() > 0):
        out.flat[i] = _best_focus(optics, float(depth.flat[i]))
    return out


def _best_focus(optics: GibsonLanni, depth: float) -> float:
    paraxial = float(nominal_focus_nm(optics, depth))

    def minus_peak(d):
        return -_on_axis_intensity(optics, depth, np.atleast_1d(d))[0]

    # global search on a grid first: deep under strong aberration the axial profile has
    # side maxima a local search could settle on
    grid = np.linspace(0.5 * paraxial, 2.0 * paraxial, 301)
    best = int(np.argmax(_on_axis_intensity(optics, depth, grid)))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    return float(
        minimize_scalar(minus_peak, bounds=(lo, hi), method="bounded", options={"xatol": 1e-3}).x
    )


def _on_axis_intensity(optics: GibsonLanni, depth: float, nominal: np.ndarray) -> np.ndarray:
    """|E(r = 0)|² (unnormalised) for one emitter depth and many nominal foci."""
    rho, w = _rho_rule(optics, 0.0, depth, nominal)
    return np.abs(pupil(optics, rho, depth, nominal) @ (w * rho)) ** 2


def _sqrt_term(n: float, na_rho: np.ndarray) -> np.ndarray:
    # complex sqrt: the principal branch of sqrt(x + 0j) for x < 0 is +i sqrt(|x|), i.e.
    # exp(i k z S) decays with depth z for supercritical angles.
    return np.sqrt(n * n - na_rho * na_rho + 0j)


def _path_nm(optics: GibsonLanni, rho, particle_depth_nm, nominal_focus) -> np.ndarray:
    """Optical path difference W(ρ) (complex where evanescent), broadcast over depths."""
    na_rho = optics.na * np.asarray(rho, dtype=float)
    zp = np.asarray(particle_depth_nm, dtype=float)[..., None]
    d = np.asarray(nominal_focus, dtype=float)[..., None]
    s_i = _sqrt_term(optics.immersion_index, na_rho)
    w = zp * _sqrt_term(optics.sample_index, na_rho) - d * s_i
    if optics.immersion_index != optics.immersion_design_index:
        w = w + optics.working_distance_nm * (
            s_i - _sqrt_term(optics.immersion_design_index, na_rho)
        )
    if (optics.coverslip_index, optics.coverslip_thickness_nm) != (
        optics.coverslip_design_index,
        optics.coverslip_design_thickness_nm,
    ):
        w = w + optics.coverslip_thickness_nm * _sqrt_term(optics.coverslip_index, na_rho)
        w = w - optics.coverslip_design_thickness_nm * _sqrt_term(
            optics.coverslip_design_index, na_rho
        )
    return w


def pupil(optics: GibsonLanni, rho, particle_depth_nm, nominal_focus) -> np.ndarray:
    """Complex pupil ``exp(i k W(ρ))``; depths broadcast against each other, ρ is the last axis.

    The ρ-independent part of the phase is dropped (it does not change the intensity).
    """
    return np.exp(1j * optics.k_per_nm * _path_nm(optics, rho, particle_depth_nm, nominal_focus))


@lru_cache(maxsize=64)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [-1, 1] (cached: ``leggauss`` costs O(n³))."""
    return leggauss(n)


def _segments(breaks: list[float], n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [breaks[0], breaks[-1]], split at the breaks."""
    nodes, weights = [], []
    span = breaks[-1] - breaks[0]
    for lo, hi in zip(breaks[:-1], breaks[1:], strict=True):
        n = max(_MIN_NODES, int(np.ceil(n_nodes * (hi - lo) / span)))
        x, w = _legendre(n)
        nodes.append(lo + (hi - lo) * (x + 1.0) / 2.0)
        weights.append(w * (hi - lo) / 2.0)
    return np.concatenate(nodes), np.concatenate(weights)


def _rho_rule(optics: GibsonLanni, r_max_nm: float, particle_depth_nm, nominal_focus):
    """Quadrature in ρ fine enough for the pupil phase and for J₀ out to ``r_max_nm``."""
    kinks = sorted(
        n / optics.na
        for n in (optics.sample_index, optics.coverslip_index, optics.coverslip_design_index)
        if n < optics.na
    )
    breaks = [0.0, *kinks, 1.0]
    # total variation of the real phase along ρ, measured on a coarse grid
    coarse = np.linspace(0.0, 1.0, 257)
    phase = (
        optics.k_per_nm
        * _path_nm(optics, coarse, np.ravel(particle_depth_nm), np.ravel(nominal_focus)).real
    )
    variation = float(np.abs(np.diff(phase, axis=-1)).sum(axis=-1).max(initial=0.0))
    bessel = optics.k_per_nm * optics.na * r_max_nm
    n_nodes = int(_MIN_NODES + _NODES_PER_RAD * (variation + bessel))
    return _segments(breaks, n_nodes)


def _field(optics, r_nm, particle_depth_nm, nominal_focus):
    """Complex field E(r) (unnormalised) and the pupil power ∫|P|²ρdρ, per depth pair."""
    r_nm = np.asarray(r_nm, dtype=float)
    zp, d = np.broadcast_arrays(
        np.asarray(particle_depth_nm, dtype=float), np.asarray(nominal_focus, dtype=float)
    )
    rho, w = _rho_rule(optics, float(np.max(r_nm, initial=0.0)), zp, d)
    p = pupil(optics, rho, zp, d)  # (..., Q)
    bessel = j0(optics.k_per_nm * optics.na * np.outer(r_nm.ravel(), rho))  # (R, Q)
    field = (p * (w * rho)) @ bessel.T  # (..., R)
    power = (np.abs(p) ** 2 * (w * rho)).sum(axis=-1)
    return field.reshape(zp.shape + r_nm.shape), power


def radial_psf(optics: GibsonLanni, r_nm, particle_depth_nm=0.0, nominal_focus=0.0):
    """Intensity PSF in 1/nm² at lateral distances ``r_nm``.

    Parameters
    ----------
    optics
        The objective, coverslip and sample.
    r_nm
        Lateral distances from the emitter (any shape).
    particle_depth_nm
        Emitter depth below the coverslip surface, >= 0 (scalar or array).
    nominal_focus
        Nominal (stage) focus depth, see :func:`nominal_focus_nm`; broadcast against
        ``particle_depth_nm``.

    Returns
    -------
    numpy.ndarray
        Shape ``broadcast(depths).shape + r_nm.shape``; each plane integrates to 1 over the
        infinite plane.
    """
    field, power = _field(optics, r_nm, particle_depth_nm, nominal_focus)
    scale = (optics.k_per_nm * optics.na) ** 2 / (2.0 * np.pi * power)
    return np.abs(field) ** 2 * scale.reshape(scale.shape + (1,) * np.ndim(r_nm))


def radial_otf(
    optics: GibsonLanni,
    q_per_nm,
    particle_depth_nm=0.0,
    nominal_focus=0.0,
    radius_nm: float = 4000.0,
):
    """Optical transfer function at spatial frequencies ``q_per_nm`` (cycles/nm).

    The PSF is truncated at ``radius_nm`` (the light beyond is dropped, not redistributed),
    so ``O(0)`` is the fraction of the light that lands within that radius. Frequencies
    at or beyond the cutoff ``2 NA / λ`` get exactly 0.

    Returns
    -------
    numpy.ndarray
        Real, shape ``broadcast(depths).shape + q_per_nm.shape``.
    """
    q = np.asarray(q_per_nm, dtype=float)
    zp, d = np.broadcast_arrays(
        np.asarray(particle_depth_nm, dtype=float), np.asarray(nominal_focus, dtype=float)
    )
    # the integrand I(r) J0(2πqr) r oscillates at up to 4 NA/λ cycles per nm
    n_r = int(
        _MIN_NODES + _NODES_PER_RAD * 2.0 * np.pi * 2.0 * otf_cutoff_per_nm(optics) * radius_nm
    )
    x, w = _legendre(n_r)
    r = radius_nm * (x + 1.0) / 2.0
    w = w * radius_nm / 2.0
    intensity = radial_psf(optics, r, zp, d)  # (..., n_r)
    kernel = j0(2.0 * np.pi * np.outer(r, q.ravel())) * (2.0 * np.pi * r * w)[:, None]
    otf = intensity @ kernel
    otf[..., q.ravel() >= otf_cutoff_per_nm(optics)] = 0.0
    return otf.reshape(zp.shape + q.shape)
