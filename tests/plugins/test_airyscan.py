"""Airyscan: reassigned confocal effective PSF, resolution gain over widefield, photometry."""

from __future__ import annotations

import numpy as np
import pytest

from subcell.core.model import Emitters, Field
from subcell.plugins.microscopes import Airyscan, AiryscanConfig, Epi, EpiConfig
from subcell.plugins.microscopes.airyscan import airy_unit_nm
from subcell.plugins.microscopes.confocal import detector_disk, sheppard_factor
from subcell.plugins.microscopes.psf import radial_psf
from subcell.plugins.microscopes.theory import measured_fwhm_nm

BEAD_FIELD = Field((1, 121, 121), (1300.0, 10.0, 10.0))


def _bead_fwhm(microscope) -> float:
    image = microscope.psf(BEAD_FIELD)[0, 0]
    return float(np.mean([measured_fwhm_nm(image[60], 10.0), measured_fwhm_nm(image[:, 60], 10.0)]))


@pytest.fixture(scope="module")
def epi_fwhm():
    return _bead_fwhm(Epi(EpiConfig(psf_radius_nm=1500.0, device="cpu")))  # 199 nm


@pytest.mark.parametrize(
    ("config", "low", "high"),
    [
        ({}, 1.50, 1.58),  # raw reassigned, 1.25 AU: measured 1.54
        ({"detector_diameter_au": 0.0}, 1.38, 1.46),  # closed pinhole h_ex·h_det: 1.42
        ({"processing": True}, 1.68, 1.78),  # Wiener reweighting: 1.72
    ],
)
def test_lateral_fwhm_is_smaller_than_widefield(epi_fwhm, config, low, high):
    ratio = epi_fwhm / _bead_fwhm(Airyscan(AiryscanConfig(device="cpu", **config)))
    assert low < ratio < high
    if config != {"detector_diameter_au": 0.0}:
        assert 1.4 <= ratio <= 2.0


def test_reassignment_is_what_keeps_the_resolution(epi_fwhm):
    # the same 1.25 AU detector summed without shifting back is an open-ish confocal
    ratio = epi_fwhm / _bead_fwhm(Airyscan(AiryscanConfig(reassignment_factor=0.0)))
    assert 1.0 < ratio < 1.1


def test_closed_pinhole_psf_is_excitation_times_detection():
    microscope = Airyscan(AiryscanConfig(detector_diameter_au=0.0))
    focal, nominal = microscope.plane_depths_nm(BEAD_FIELD)
    otf = microscope._otf(0, focal, nominal)
    heff = otf.effective_psf(np.array([900.0]))[0, 0]
    r = otf._r
    product = radial_psf(microscope.excitation, r, 900.0, nominal[0]) * radial_psf(
        microscope.optics, r, 900.0, nominal[0]
    )
    assert np.abs(heff - product).max() < 1e-4 * product.max()
    # and not the widefield PSF squared: 488 nm excitation is narrower than 510 nm emission
    squared = radial_psf(microscope.optics, r, 900.0, nominal[0]) ** 2
    core = r < 150.0  # inside the first dark ring, where the profiles fall monotonically
    half = [np.interp(0.5, (p[core] / p.max())[::-1], r[core][::-1]) for p in (heff, squared)]
    assert half[0] / half[1] == pytest.approx(0.98, abs=0.005)  # 2 % narrower


def test_detector_quadrature_integrates_the_disk():
    nodes, weights = detector_disk(600.0)
    assert weights.sum() == pytest.approx(np.pi * 300.0**2, rel=1e-12)
    # ∫ ρ² over the disk = π a⁴ / 2, with the half-disk nodes counting twice
    assert (weights * (nodes**2).sum(axis=1)).sum() == pytest.approx(np.pi * 300.0**4 / 2)
    assert np.all(nodes[:, 1] >= 0) and np.linalg.norm(nodes, axis=1).max() < 300.0
    point_nodes, point_weights = detector_disk(0.0)
    assert point_nodes.shape == (1, 2) and point_weights.tolist() == [1.0]


def test_in_focus_photons_are_conserved_and_defocus_dims():
    microscope = Airyscan(AiryscanConfig(device="cpu"))
    field = Field((1, 96, 96), (1300.0, 42.0, 42.0))
    rng = np.random.default_rng(5)
    n = 200
    pos = np.column_stack([np.full(n, 650.0), rng.uniform(1500, 96 * 42 - 1500, (n, 2))])
    photons = rng.uniform(50.0, 150.0, n)
    emitters = Emitters(pos, photons, np.arange(1, n + 1), np.zeros(n))
    assert microscope.image(emitters, field).sum() == pytest.approx(photons.sum(), rel=0.02)
    # optical sectioning: 500 nm out of focus the reassigned confocal sees less light
    defocused = Emitters(pos + [500.0, 0, 0], photons, np.arange(1, n + 1), np.zeros(n))
    ratio = microscope.image(defocused, field).sum() / photons.sum()
    assert ratio < 0.9


def test_config_defaults_and_validation():
    config = AiryscanConfig()
    assert config.reassignment_factor == pytest.approx(488**2 / (488**2 + 510**2))
    assert sheppard_factor(488.0, 510.0) == pytest.approx(0.478, abs=1e-3)
    assert AiryscanConfig(emission_nm=600.0).reassignment_factor == pytest.approx(
        sheppard_factor(488.0, 600.0)
    )
    assert airy_unit_nm(1.4, 510.0) == pytest.approx(444.4, abs=0.1)
    with pytest.raises(ValueError, match="reassignment_factor"):
        AiryscanConfig(reassignment_factor=1.5)
    with pytest.raises(ValueError, match="detector_diameter_au"):
        AiryscanConfig(detector_diameter_au=-1.0)
    with pytest.raises(ValueError, match="na"):
        AiryscanConfig(na=1.52)
