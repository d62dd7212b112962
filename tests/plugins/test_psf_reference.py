"""Cross-validation of the scalar Gibson–Lanni PSF against psf-generator (EPFL, MIT licence).

psf-generator's ``ScalarSphericalPropagator`` evaluates

    E(r, z) = ∫₀^θmax A(θ) J₀(k n r sin θ) exp(i k n z cos θ) sin θ dθ

with Simpson's rule in float32. Our pupil is uniform in ρ = n sin θ / NA (Gibson–Lanni,
no apodisation), i.e. a measure ρ dρ ∝ sin θ cos θ dθ, which is psf-generator's
``cos_factor=True, apod_factor=False``. (Its ``apod_factor=True`` is the aplanatic √cos θ
variant: at NA 1.4 that PSF is ~4 % narrower; a test below checks the comparison sees it.)

Mapping of the axial coordinates:

* no index mismatch: psf-generator's defocus ``z`` is our ``particle_depth − nominal_focus``;
* ``gibson_lanni=True``: psf-generator focuses the stage paraxially on the emitter
  (``d = z_p n_i / n_s``) and its defocus kernel is ``exp(i k z n_s cos θ_i)`` with θ_i the
  immersion angle, i.e. a stage move of ``−z n_s / n_i``. So ``d = z_p n_i/n_s − z n_s/n_i``.

Known differences of psf-generator 0.1.0, both on its side and avoided
here: in ``gibson_lanni`` mode its Bessel argument uses ``n_s sin θ_i`` instead of
``n_i sin θ_i = NA ρ`` (the lateral profile comes out n_i/n_s = 1.14× too wide), and it
clamps supercritical angles (NA ρ > n_s) to the critical-angle phase at full amplitude
where the light from an emitter at depth is evanescent. So the mismatch test compares the
on-axis (r = 0) axial profile at NA 1.2 < n_s, where neither matters.
"""

import warnings

import numpy as np
import pytest

psf_generator = pytest.importorskip("psf_generator")

from subcell.plugins.microscopes.epi import Epi, EpiConfig  # noqa: E402
from subcell.plugins.microscopes.psf import (  # noqa: E402
    GibsonLanni,
    best_focus_nm,
    nominal_focus_nm,
    radial_psf,
)

WAVELENGTH_NM = 510.0
OIL = 1.515
WATER = 1.33


def _reference(
    na,
    *,
    n_s=OIL,
    defocus_step_nm=0.0,
    n_defocus=1,
    n_pix=101,
    grid_nm=10.0,
    gibson_lanni=False,
    z_p_nm=0.0,
    aplanatic=False,
):
    """psf-generator intensity (planes, Y, X) on a square grid, its x axis and defocus list.

    psf-generator's grid is ``linspace(-fov/2, fov/2, n_pix)`` with ``fov = pix_size × n_pix``,
    so ``pix_size`` is chosen for a sample spacing of exactly ``grid_nm``.
    """
    prop = psf_generator.ScalarSphericalPropagator(
        n_pix_pupil=513,  # odd (Simpson), fine enough near the critical-angle kink
        n_pix_psf=n_pix,
        wavelength=WAVELENGTH_NM,
        na=na,
        pix_size=grid_nm * (n_pix - 1) / n_pix,
        defocus_step=defocus_step_nm,
        n_defocus=n_defocus,
        cos_factor=not aplanatic,
        apod_factor=aplanatic,
        gibson_lanni=gibson_lanni,
        z_p=z_p_nm,
        n_s=n_s,
        n_i=OIL,
        n_i0=OIL,
        n_g=OIL,
        n_g0=OIL,
        t_g=170e3,
        t_g0=170e3,
        t_i0=150e3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        intensity = prop.compute_focus_field().abs().double().numpy()[:, 0] ** 2
    x = np.linspace(-prop.fov / 2, prop.fov / 2, n_pix)
    # psf-generator's defocus planes: linspace(-step·n//2, step·n//2, n)
    z = np.linspace(prop.defocus_min, prop.defocus_max, n_defocus)
    return intensity, x, z


def _matched(na):
    return GibsonLanni(
        na=na,
        wavelength_nm=WAVELENGTH_NM,
        immersion_index=OIL,
        immersion_design_index=OIL,
        sample_index=OIL,
    )


def _fwhm(r, profile):
    """Full width at half maximum of a radial profile peaking at r = 0 (linear interpolation)."""
    p = profile / profile[0]
    i = int(np.argmax(p < 0.5))
    return 2.0 * (r[i - 1] + (0.5 - p[i - 1]) * (r[i] - r[i - 1]) / (p[i] - p[i - 1]))


def _lateral(na, *, aplanatic=False, defocus_step_nm=0.0, n_defocus=1):
    """(ours, reference, r, z): radial profiles (planes, R) normalised to the in-focus peak."""
    ref, x, z = _reference(
        na, defocus_step_nm=defocus_step_nm, n_defocus=n_defocus, n_pix=301, aplanatic=aplanatic
    )
    centre = len(x) // 2
    r = x[centre:]
    ref = ref[:, centre, centre:]
    ours = radial_psf(_matched(na), r, np.zeros_like(z), -z)
    focus = int(np.flatnonzero(z == 0.0)[0])
    return ours / ours[focus, 0], ref / ref[focus, 0], r, z


@pytest.mark.parametrize("na", [1.4, 0.8])
def test_in_focus_profile_and_fwhm_match_reference(na):
    ours, ref, r, _ = _lateral(na)
    within = r <= 3 * 0.61 * WAVELENGTH_NM / na  # three Airy radii
    assert np.abs(ours - ref)[0, within].max() < 2e-3  # measured ~1e-6 of the peak
    fwhm_ours, fwhm_ref = _fwhm(r, ours[0]), _fwhm(r, ref[0])
    assert fwhm_ours == pytest.approx(fwhm_ref, rel=2e-3)  # measured < 1e-6
    # and both are the uniform-pupil (Airy) width 0.5145 λ/NA
    assert fwhm_ours == pytest.approx(0.5145 * WAVELENGTH_NM / na, rel=0.01)


def test_comparison_tells_the_aplanatic_pupil_apart():
    """The tolerances above discriminate pupil conventions: with √cos θ apodisation the
    reference is ~3.7 % narrower at NA 1.4 and its profile differs by ~3 % of the peak."""
    ours, ref, r, _ = _lateral(1.4, aplanatic=True)
    assert np.abs(ours - ref)[0].max() > 0.02
    assert _fwhm(r, ref[0]) < 0.97 * _fwhm(r, ours[0])


@pytest.mark.parametrize("na", [1.4, 0.8])
def test_defocused_profiles_match_reference(na):
    ours, ref, r, z = _lateral(na, defocus_step_nm=400.0, n_defocus=5)
    np.testing.assert_allclose(z, [-1000.0, -500.0, 0.0, 500.0, 1000.0])
    # whole grid (r <= 1.5 µm), every plane, relative to the in-focus peak
    assert np.abs(ours - ref).max() < 3e-3  # measured ~1e-6
    # defocus really lowers the peak, by the same amount on both sides
    assert ours[0, 0] < 0.9 and ours[-1, 0] == pytest.approx(ours[0, 0], rel=1e-6)


def _axial(na_ours, na_ref, depth_nm):
    """On-axis intensity of an emitter ``depth_nm`` into water under oil, both models, on
    psf-generator's defocus grid; returns (ours, ref, z, optics)."""
    ref, x, z = _reference(
        na_ref,
        n_s=WATER,
        gibson_lanni=True,
        z_p_nm=depth_nm,
        defocus_step_nm=25.0,
        n_defocus=241,
        n_pix=3,
    )
    optics = GibsonLanni(na=na_ours, wavelength_nm=WAVELENGTH_NM, sample_index=WATER)
    nominal = float(nominal_focus_nm(optics, depth_nm)) - z * WATER / OIL
    ours = radial_psf(optics, np.array([0.0]), depth_nm, nominal)[:, 0]
    return ours / ours.max(), ref[:, 1, 1] / ref[:, 1, 1].max(), z, optics


def _peak(z, profile):
    """Position of the maximum, refined by a parabola through the three top samples."""
    i = int(np.argmax(profile))
    a, b, c = profile[i - 1 : i + 2]
    return z[i] + 0.5 * (a - c) / (a - 2 * b + c) * (z[1] - z[0])


def _asymmetry(z, profile, peak):
    """(light beyond the peak − light before it) / all light, along the axial profile."""
    return (profile[z > peak].sum() - profile[z < peak].sum()) / profile.sum()


@pytest.mark.parametrize("depth_nm", [2000.0, 5000.0])
def test_index_mismatch_axial_profile_matches_reference(depth_nm):
    """Oil (1.515) into water (1.33), NA 1.2: the on-axis axial profile (±3 µm around the
    paraxial focus) agrees point for point, so do its peak (the focal shift beyond the
    paraxial n_s/n_i scaling) and its asymmetry."""
    ours, ref, z, optics = _axial(1.2, 1.2, depth_nm)
    assert np.abs(ours - ref).max() < 2e-3  # measured < 1e-4
    peak_ref = _peak(z, ref)
    # our best focus (a continuous optimum) in psf-generator's axial coordinate
    best = float(best_focus_nm(optics, depth_nm))
    peak_ours = -(best - float(nominal_focus_nm(optics, depth_nm))) * OIL / WATER
    assert peak_ours == pytest.approx(peak_ref, abs=5.0)  # nm; the shift is -277 / -653 nm
    assert abs(peak_ref) > 200.0
    assert _asymmetry(z, ours, peak_ref) == pytest.approx(_asymmetry(z, ref, peak_ref), abs=0.01)


def test_supercritical_light_is_evanescent():
    """At NA 1.4 > n_s our PSF of an emitter 2 µm deep equals the reference restricted to
    sub-critical angles (NA just below n_s): the supercritical light decays before it
    reaches the coverslip. (psf-generator itself clamps those angles, see module notes.)"""
    ours, ref, z, _ = _axial(1.4, WATER - 1e-4, 2000.0)
    assert np.abs(ours - ref).max() < 0.01  # measured 0.5 %


@pytest.mark.parametrize("na", [1.4, 0.8])
def test_epi_microscope_psf_matches_pixel_integrated_reference(na):
    """End to end: ``Epi.psf`` (40 nm pixels, planes at −500/0/+500 nm, index matched) equals
    the reference PSF sampled every 5 nm and integrated over each pixel (trapezoid rule)."""
    config = EpiConfig(
        na=na,
        emission_nm=WAVELENGTH_NM,
        pixel_nm=40.0,
        sample_index=OIL,
        n_z=3,
        z_step_nm=500.0,
        focus_depth_nm=3000.0,
        device="cpu",
    )
    epi = Epi(config)
    ours = epi.psf(epi.field((33, 33)))[0].astype(float)
    sub = 8  # 5 nm samples per 40 nm pixel
    ref, x, z = _reference(
        na,
        defocus_step_nm=1000.0 / 3,
        n_defocus=3,
        n_pix=2 * (16 * sub + sub // 2) + 1,
        grid_nm=40.0 / sub,
    )
    np.testing.assert_allclose(z, [-500.0, 0.0, 500.0])
    weights = np.ones(sub + 1)
    weights[[0, -1]] = 0.5
    # pixel j of the (33, 33) image spans samples [sub j, sub (j + 1)]
    windows = np.lib.stride_tricks.sliding_window_view(ref, (sub + 1, sub + 1), axis=(1, 2))
    boxed = np.einsum("zyxij,i,j->zyx", windows[:, ::sub, ::sub], weights, weights)
    assert boxed.shape == ours.shape
    assert np.abs(ours / ours[1].max() - boxed / boxed[1].max()).max() < 5e-3  # measured ≤ 0.13 %
