"""The widefield microscope: Gibson–Lanni PSF against theory, rendering, shared config rules."""

from __future__ import annotations

import warnings

import attrs
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import j1

from subcell.core.kinds import Microscope
from subcell.core.model import Emitters, Field
from subcell.core.registration import check_registration
from subcell.plugins.microscopes import (
    AiryscanConfig,
    Epi,
    EpiConfig,
    SpinningDiskConfig,
    UndersamplingWarning,
    register_microscopes,
)
from subcell.plugins.microscopes import theory as th
from subcell.plugins.microscopes.epi import halo_otf
from subcell.plugins.microscopes.psf import (
    GibsonLanni,
    best_focus_nm,
    otf_cutoff_per_nm,
    radial_otf,
    radial_psf,
)
from subcell.plugins.microscopes.theory import measured_fwhm_nm

MATCHED = dict(sample_index=1.515)  # no refractive-index mismatch


def _emitters(pos, photons=None):
    pos = np.atleast_2d(np.asarray(pos, dtype=float))
    n = len(pos)
    photons = np.ones(n) if photons is None else photons
    return Emitters(
        position_nm=pos,
        photons=photons,
        instance=np.arange(1, n + 1),
        klass=np.zeros(n),
        class_names=("point",),
    )


def _direct(microscope, field, pos, sub=7):
    """Image of one 1-photon emitter by evaluating the radial PSF on sub-sampled pixels."""
    ny, nx = field.shape[1:]
    p = field.voxel_nm[1]
    c = (np.arange(ny * sub) + 0.5) * p / sub
    r = np.hypot(c[:, None] - pos[1], (np.arange(nx * sub)[None, :] + 0.5) * p / sub - pos[2])
    depth = microscope.depth_nm(pos[0], field)
    focus = best_focus_nm(microscope.optics, microscope.config.focus_depth_nm)
    psf = radial_psf(microscope.optics, r, depth, focus)
    return psf.reshape(ny, sub, nx, sub).sum(axis=(1, 3)) * (p / sub) ** 2


# ---------------------------------------------------------------- the PSF model vs theory


def test_in_focus_radial_psf_is_the_airy_pattern():
    optics = GibsonLanni(**MATCHED)
    r = np.linspace(1e-3, 3000, 501)
    v = optics.k_per_nm * optics.na * r
    airy = (optics.k_per_nm * optics.na) ** 2 / np.pi * (j1(v) / v) ** 2  # unit integral
    got = radial_psf(optics, r, 800.0, 800.0)
    assert np.abs(got - airy).max() < 1e-9 * airy.max()


@pytest.mark.parametrize("na", [1.4, 0.8])
def test_in_focus_lateral_fwhm_matches_theory(na):
    microscope = Epi(EpiConfig(na=na, psf_radius_nm=1500.0, **MATCHED))
    image = microscope.psf(Field((1, 151, 151), (1300.0, 5.0, 5.0)))[0, 0]
    theory = th.lateral_fwhm_nm(na, 510.0)  # 187.4 nm at NA 1.4, 328.0 nm at NA 0.8
    for profile in (image[75], image[:, 75]):
        assert measured_fwhm_nm(profile, 5.0) == pytest.approx(theory, rel=0.01)


@pytest.mark.parametrize(
    ("depth", "focus"), [(0.0, 0.0), (1000.0, 1000.0), (1000.0, 0.0), (2000.0, 2630.0)]
)
def test_each_psf_plane_integrates_to_one(depth, focus):
    optics = GibsonLanni()  # oil into water, NA 1.4
    r = np.linspace(0.0, 40000.0, 4001)
    energy = np.trapezoid(radial_psf(optics, r, depth, focus) * 2 * np.pi * r, r)
    # the tail beyond 40 µm carries 0.06 % (in focus, 2 / (π k NA R)) to 0.2 % (aberrated)
    assert 0.995 < energy < 1.0005


@pytest.mark.parametrize("depth", [100.0, 650.0, 1200.0])
def test_rendered_psf_keeps_every_photon(depth):
    microscope = Epi(EpiConfig())  # psf_radius_nm 2000: the field holds all of it
    field = Field((1, 112, 112), (1300.0, 42.0, 42.0))
    image = microscope.image(_emitters([depth, 56.3 * 42, 55.8 * 42]), field)
    within = radial_otf(
        microscope.optics, 0.0, depth, best_focus_nm(microscope.optics, 650.0), 2000.0
    )
    # 1.2 % (in focus) to 11.5 % (550 nm below focus) of the light lies beyond 2 µm; it
    # is kept as a haze, so the image sums to the photon; clipping the band-limited
    # ringing below zero adds ~3e-4
    assert 0.88 < float(within) < 0.99
    assert image.sum() == pytest.approx(1.0, abs=1e-3)


def test_photon_conservation_for_emitters_inside_the_field():
    rng = np.random.default_rng(3)
    n = 400
    # 2 µm (the PSF radius) from every edge of a 6.7 µm field, depths across the slab
    pos = np.column_stack([rng.uniform(100, 1200, n), rng.uniform(2000, 4720, (n, 2))])
    photons = rng.uniform(50, 150, n)
    image = Epi(EpiConfig()).image(_emitters(pos, photons), Field((1, 160, 160), (1300, 42, 42)))
    assert image.sum() == pytest.approx(photons.sum(), rel=0.02)
    assert abs(image.sum() / photons.sum() - 1) < 1e-3  # in fact


def test_halo_stays_inside_the_psf_radius():
    r = np.linspace(0, 2000, 2001)
    sigma = 2000 / 3
    gauss = np.exp(-(r**2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    assert np.trapezoid(gauss * 2 * np.pi * r, r) > 0.988
    assert halo_otf(0.0, 2000.0) == 1.0 and halo_otf(2.8 / 510, 2000.0) < 1e-30


def test_in_focus_otf_matches_the_circular_pupil_otf():
    optics = GibsonLanni(**MATCHED)
    cutoff = otf_cutoff_per_nm(optics)
    q = np.linspace(0.0, 1.2 * cutoff, 121)
    otf = radial_otf(optics, q, 500.0, 500.0, radius_nm=8000.0)
    # truncating the PSF at 8 µm drops 0.46 % of the light
    assert np.abs(otf - th.airy_otf(q, optics.na, optics.wavelength_nm)).max() < 6e-3
    assert np.all(otf[q >= cutoff] == 0.0)


@pytest.mark.parametrize("na", [0.8, 1.2, 1.4])
def test_axial_profile_without_mismatch_is_symmetric_and_matches_theory(na):
    optics = GibsonLanni(na=na, **MATCHED)
    z = np.linspace(-1500.0, 1500.0, 301)
    on_axis = radial_psf(optics, np.zeros(1), 2000.0, 2000.0 + z)[:, 0]
    assert np.abs(on_axis - on_axis[::-1]).max() < 1e-9 * on_axis.max()
    expected = th.axial_intensity(z, na, 510.0, 1.515)
    assert np.abs(on_axis / on_axis.max() - expected).max() < 1e-9
    half = brentq(lambda x: th.axial_intensity(x, na, 510.0, 1.515) - 0.5, 1.0, 3000.0)
    # the uniform-in-sinθ pupil is 0.8 % (NA 0.8) to 4.7 % (NA 1.4) longer than Cole et al.
    assert 2 * half == pytest.approx(th.axial_fwhm_nm(na, 510.0, 1.515), rel=0.05)


@pytest.mark.parametrize(
    ("na", "low", "high", "asymmetry"), [(1.4, 0.70, 0.80, 0.05), (0.8, 0.83, 0.878, 1e-4)]
)
def test_index_mismatch_shifts_the_focus_towards_the_paraxial_estimate(na, low, high, asymmetry):
    optics = GibsonLanni(na=na)  # oil 1.515 into water 1.33
    nominal = np.linspace(1500.0, 3500.0, 2001)
    on_axis = radial_psf(optics, np.zeros(1), 2000.0, nominal)[:, 0]
    peak = nominal[np.argmax(on_axis)]
    ratio = 2000.0 / peak  # actual over nominal focus depth
    paraxial = float(th.paraxial_focal_depth_nm(1.0, 1.33, 1.515))  # 0.878
    assert peak > 2000.0  # the stage must go deeper than the focus
    assert low < ratio < high
    assert ratio == pytest.approx(paraxial, rel=0.15)
    assert float(best_focus_nm(optics, 2000.0)) == pytest.approx(peak, abs=1.5)
    # spherical aberration makes the profile asymmetric about its peak (14 % of the peak
    # 400 nm either side at NA 1.4, 0.04 % at NA 0.8; below 1e-9 without mismatch)
    i = int(np.argmax(on_axis))
    assert np.abs(on_axis[i - 400] - on_axis[i + 400]) > asymmetry * on_axis[i]


# ---------------------------------------------------------------- the microscope


def test_z_stack_is_symmetric_only_without_mismatch():
    for config, symmetric in ((EpiConfig(**MATCHED), True), (EpiConfig(), False)):
        microscope = Epi(attrs.evolve(config, n_z=9, z_step_nm=150.0, focus_depth_nm=1500.0))
        stack = microscope.psf(microscope.field((48, 48)))[0]
        peaks = stack.max(axis=(1, 2))
        assert int(np.argmax(peaks)) == 4  # the emitter's own plane is in best focus
        asymmetry = np.abs(peaks - peaks[::-1]).max() / peaks.max()
        assert (asymmetry < 1e-4) if symmetric else (asymmetry > 0.02)


def test_single_emitter_matches_the_psf_at_its_exact_position():
    microscope = Epi(EpiConfig())
    field = Field((1, 48, 48), (1300.0, 42.0, 42.0))
    for depth_z in (625.0, 613.7):  # on the 25 nm PSF grid, and between two of its depths
        pos = np.array([depth_z, 24 * 42 + 13.3, 22 * 42 + 7.7])
        image = microscope.image(_emitters(pos), field)[0, 0]
        direct = _direct(microscope, field, pos)
        tol = 1e-3 if depth_z == 625.0 else 3e-3
        assert np.abs(image - direct).max() < tol * direct.max()
        window = (slice(24 - 15, 24 + 16), slice(22 - 15, 22 + 16))
        yy, xx = (np.mgrid[window] + 0.5) * 42.0
        weights = image[window]
        centroid = np.array([(weights * yy).sum(), (weights * xx).sum()]) / weights.sum()
        assert np.abs(centroid - pos[1:]).max() < 2.0


@pytest.mark.parametrize(("exact", "tol"), [(True, 1e-6), (False, 5e-5)])
def test_sub_pixel_shifts_are_exact(exact, tol):
    # the float64 reference is exact to float32 rounding; the fast path (spreading
    # kernel, float32) errs by ~2e-7 of the photons, 6e-6 of a lone emitter's peak
    microscope = Epi(EpiConfig())
    field = Field((1, 64, 64), (1300.0, 42.0, 42.0))

    def image(pos):
        return microscope.image(_emitters(pos), field, exact=exact)[0, 0]

    base = np.array([650.0, 30 * 42 + 5.0, 31 * 42 + 11.0])
    rolled = np.roll(image(base), (1, -2), axis=(0, 1))
    moved = image(base + [0.0, 42.0, -84.0])
    assert np.abs(moved[8:-8, 8:-8] - rolled[8:-8, 8:-8]).max() < tol * rolled.max()
    # on the boundary between pixels 31 and 32 the image is mirror-symmetric about it;
    # half a pixel further it is symmetric about the centre of pixel 31
    boundary = image([650.0, 32 * 42.0, 32 * 42.0])
    assert np.abs(boundary - boundary[::-1, ::-1]).max() < tol * boundary.max()
    centred = image([650.0, 31.5 * 42.0, 31.5 * 42.0])
    core = centred[:63, :63]  # pixels 0..62, centred on pixel 31
    assert np.abs(core - core[::-1, ::-1]).max() < tol * centred.max()
    assert np.abs(core - core.T).max() < tol * centred.max()


def test_coarse_pixels_integrate_like_fine_pixels_binned():
    # pixels are integrated exactly in Fourier space (a sinc per frequency), even 120 nm
    # ones, above the 91 nm Nyquist pixel at NA 1.4
    microscope = Epi(EpiConfig())
    pos = np.array([[650.0, 1234.5, 1111.1], [900.0, 700.0, 1900.0]])
    with pytest.warns(UndersamplingWarning):
        coarse_field = Field((1, 24, 24), (1300.0, 120.0, 120.0))
        Epi(EpiConfig(pixel_nm=140.0))  # what a 140 nm config would say
    for exact, tol in ((True, 1e-6), (False, 5e-5)):
        coarse = microscope.image(_emitters(pos), coarse_field, exact=exact)
        fine = microscope.image(_emitters(pos), Field((1, 72, 72), (1300.0, 40, 40)), exact=exact)
        binned = fine[0, 0].reshape(24, 3, 24, 3).sum(axis=(1, 3))
        assert np.abs(coarse[0, 0] - binned).max() < tol * binned.max()


def test_rendering_is_linear_and_deterministic():
    rng = np.random.default_rng(7)
    pos = np.column_stack([rng.uniform(100, 1200, 60), rng.uniform(-300, 2300, (60, 2))])
    photons = rng.uniform(50, 500, 60)
    field = Field((1, 48, 48), (1300.0, 42.0, 42.0))
    microscope = Epi(EpiConfig())
    both = microscope.image(_emitters(pos, photons), field)
    first = microscope.image(_emitters(pos[:30], photons[:30]), field)
    second = microscope.image(_emitters(pos[30:], photons[30:]), field)
    assert np.abs(both - (first + second)).max() < 1e-5 * both.max()
    again = Epi(EpiConfig()).image(_emitters(pos, photons), field)
    assert again.tobytes() == both.tobytes()
    assert both.shape == (1, 1, 48, 48) and both.dtype == np.float32
    assert both.min() >= 0.0


def test_frames_scale_photons_and_far_emitters_are_dark():
    microscope = Epi(EpiConfig())
    field = Field((1, 32, 32), (1300.0, 42.0, 42.0))
    pos = [[650.0, 672.0, 672.0], [650.0, 672.0, 672.0 + 42.0 * 32 + 4500.0]]
    emitters = Emitters(
        position_nm=pos,
        photons=[100.0, 1e6],
        instance=[1, 2],
        klass=[0, 0],
        on_fraction=np.array([[1.0, 1.0], [0.25, 1.0]], dtype=np.float32),
    )
    full, quarter = (microscope.image(emitters, field, frame=t) for t in (0, 1))
    assert np.allclose(quarter, full / 4, rtol=1e-6, atol=1e-7 * full.max())
    # the bright emitter lies 4.5 µm outside the field, beyond psf_radius_nm: no light
    alone = microscope.image(_emitters(pos[:1], np.array([100.0])), field)
    assert full.tobytes() == alone.tobytes()
    with pytest.raises(IndexError, match="frame 2"):
        microscope.image(emitters, field, frame=2)
    assert not Epi(EpiConfig()).image(_emitters(np.zeros((0, 3))), field).any()


def test_bead_fwhm_matches_the_model_under_index_mismatch():
    microscope = Epi(EpiConfig())  # oil into water, in focus 650 nm deep
    image = microscope.psf(Field((1, 121, 121), (1300.0, 8.0, 8.0)))[0, 0]
    r = np.arange(0.0, 400.0, 0.05)
    model = radial_psf(microscope.optics, r, 650.0, best_focus_nm(microscope.optics, 650.0))
    model_fwhm = 2 * r[np.argmax(model < model[0] / 2)]  # 197.9 nm: aberrated
    for profile in (image[60], image[:, 60]):
        assert measured_fwhm_nm(profile, 8.0) == pytest.approx(model_fwhm, rel=0.05)
        # pixel integration of 8 nm widens it by ~0.3 %; Airy (no mismatch): 187.4 nm
        assert measured_fwhm_nm(profile, 8.0) == pytest.approx(
            th.lateral_fwhm_nm(1.4, 510.0), rel=0.1
        )


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="na"):
        EpiConfig(na=1.6)
    with pytest.raises(ValueError, match="emission_nm"):
        EpiConfig(emission_nm=-5)
    with pytest.raises(ValueError, match="immersion_design_index"):
        EpiConfig(immersion_design_index=1.33)
    with pytest.raises(ValueError, match="psf_radius_nm"):
        EpiConfig(psf_radius_nm=300.0)
    with pytest.raises(ValueError, match="device"):
        EpiConfig(device="tpu")


@pytest.mark.parametrize(
    ("config", "nyquist"),
    [  # 1 / (2 × OTF cutoff): λ/(4 NA) widefield, 1/(4 NA (1/λex + 1/λem)) confocal
        (EpiConfig, 510 / (4 * 1.4)),
        (AiryscanConfig, 1 / (4 * 1.4 * (1 / 488 + 1 / 510))),
        (SpinningDiskConfig, 1 / (4 * 1.4 * (1 / 488 + 1 / 616.5))),
    ],
)
def test_pixels_far_above_nyquist_warn_with_the_numbers(config, nyquist):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config(pixel_nm=1.45 * nyquist)  # below 1.5× Nyquist: silent
    with pytest.warns(UndersamplingWarning, match=rf"{nyquist:.1f} nm") as record:
        config(pixel_nm=1.6 * nyquist)
    assert "1.6×" in str(record[0].message) and "na 1.4" in str(record[0].message)


def test_registration_and_protocol():
    calls = []
    register_microscopes(lambda *args: calls.append(args))
    assert [c[0] for c in calls] == ["epi", "airyscan", "spinning_disk"]
    for call in calls:
        check_registration("microscope", *call)
        assert isinstance(call[2](call[1]()), Microscope)
    microscope = calls[0][2](calls[0][1]())
    field = microscope.field((64, 64))
    assert field.shape == (1, 64, 64) and field.voxel_nm == (1300.0, 42.0, 42.0)
    for call in calls:  # the canonical keys every microscope accepts
        config = call[1](
            na=1.2,
            emission_nm=600,
            pixel_nm=50,
            immersion_index=1.33,
            immersion_design_index=1.33,
            z_step_nm=150,
            n_z=3,
        )
        assert call[2](config).field((8, 8)).shape == (3, 8, 8)


def test_measured_fwhm_of_a_sampled_gaussian_and_bad_profiles():
    x = np.arange(-50, 51) * 4.0
    sigma = 37.0
    gaussian = np.exp(-(x**2) / (2 * sigma**2))
    assert measured_fwhm_nm(gaussian, 4.0) == pytest.approx(2.3548 * sigma, rel=5e-3)
    with pytest.raises(ValueError, match="half its maximum"):
        measured_fwhm_nm(np.linspace(0.0, 1.0, 20), 1.0)  # a ramp: no left crossing
