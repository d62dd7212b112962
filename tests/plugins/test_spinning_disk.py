"""Spinning disk with optical reassignment: resolution, spectral channels, crosstalk."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from subcell.core.model import Emitters, Field
from subcell.plugins.microscopes import (
    Epi,
    EpiConfig,
    SpinningDisk,
    SpinningDiskConfig,
    band_fraction,
    emission_spectrum,
)
from subcell.plugins.microscopes.spectra import lognormal_width
from subcell.plugins.microscopes.theory import measured_fwhm_nm

BEAD_FIELD = Field((1, 101, 101), (1300.0, 12.0, 12.0))


def _fwhm_2d(image: np.ndarray) -> float:
    c = image.shape[0] // 2
    return float(np.mean([measured_fwhm_nm(image[c], 12.0), measured_fwhm_nm(image[:, c], 12.0)]))


def _emitters(pos, photons):
    pos = np.atleast_2d(pos)
    n = len(pos)
    return Emitters(pos, photons, np.arange(1, n + 1), np.zeros(n))


@pytest.fixture(scope="module")
def raw():
    return SpinningDisk(SpinningDiskConfig(device="cpu"))


# ------------------------------------------------------------------ spectra


def test_emission_spectrum_shape():
    lam = np.linspace(300.0, 1200.0, 90001)
    density = emission_spectrum(lam, 620.0, 100.0)
    assert np.trapezoid(density, lam) == pytest.approx(1.0, abs=1e-6)
    assert lam[np.argmax(density)] == pytest.approx(620.0, abs=0.02)
    above = lam[density >= density.max() / 2]
    assert above[-1] - above[0] == pytest.approx(100.0, abs=0.05)
    # skewed to the red: the half-maximum point on the long side is further from the peak
    assert above[-1] - 620.0 > 620.0 - above[0] + 3.0  # 52.0 against 48.0 nm


def test_band_fraction_is_the_integral_of_the_spectrum_and_vectorised():
    bands = np.array([[580.0, 653.0], [665.0, 705.0]])
    peaks = np.array([[580.0, 620.0], [640.0, 660.0]])
    got = band_fraction(peaks, 100.0, bands)
    assert got.shape == (2, 2, 2)
    for i, j in np.ndindex(2, 2):
        for c, (lo, hi) in enumerate(bands):
            expected = quad(emission_spectrum, lo, hi, args=(peaks[i, j], 100.0))[0]
            assert got[i, j, c] == pytest.approx(expected, abs=1e-9)
    # red / yellow rises with the emission peak (Nile Red's polarity read-out)
    ratio = got[..., 1].ravel() / got[..., 0].ravel()
    assert np.all(np.diff(ratio) > 0)
    assert band_fraction(620.0, 100.0, [[0.0001, 1e6]])[0] == pytest.approx(1.0)
    assert lognormal_width(620.0, 100.0) == pytest.approx(np.arcsinh(50 / 620) / 1.17741, 1e-5)


# ------------------------------------------------------------------ the microscope


def test_channels_receive_their_band_fraction_and_crosstalk(raw):
    assert raw.channel_names == ("yellow", "red")
    fractions = raw.band_fractions()  # peak 620 nm, FWHM 100 nm: 0.606 and 0.134
    assert fractions == pytest.approx([0.6063, 0.1344], abs=1e-4)
    field = Field((1, 96, 96), (1300.0, 40.0, 40.0))
    rng = np.random.default_rng(2)
    n = 100
    pos = np.column_stack([np.full(n, 650.0), rng.uniform(1500, 96 * 40 - 1500, (n, 2))])
    photons = rng.uniform(100.0, 200.0, n)
    image = raw.image(_emitters(pos, photons), field)
    assert image.shape == (2, 1, 96, 96) and image.dtype == np.float32
    sums = image.sum(axis=(1, 2, 3))
    # in focus and inside the field: each channel sums to photons × its band fraction
    assert sums == pytest.approx(photons.sum() * fractions, rel=0.02)
    assert sums.sum() == pytest.approx(photons.sum() * fractions.sum(), rel=0.02)
    # crosstalk: the red/yellow ratio of the images is that of the bands, per dye peak
    for peak in (590.0, 650.0):
        image = raw.image(_emitters(pos, photons), field, emission_peak_nm=np.full(n, peak))
        sums = image.sum(axis=(1, 2, 3))
        expected = raw.band_fractions(peak)
        assert sums[1] / sums[0] == pytest.approx(expected[1] / expected[0], rel=0.01)
    # FWHM 100 nm: red/yellow 0.089 for a nonpolar (590 nm) and 0.576 for a polar (650 nm) peak
    assert raw.band_fractions(590.0)[1] / raw.band_fractions(590.0)[0] == pytest.approx(
        0.0895, 1e-2
    )
    assert raw.band_fractions(650.0)[1] / raw.band_fractions(650.0)[0] == pytest.approx(
        0.5758, 1e-3
    )


def test_per_emitter_peaks_split_each_emitters_photons(raw):
    field = Field((1, 48, 48), (1300.0, 40.0, 40.0))
    pos = np.array([[650.0, 700.0, 700.0], [650.0, 1300.0, 1300.0]])
    peaks = np.array([580.0, 680.0])
    both = raw.image(_emitters(pos, [100.0, 100.0]), field, emission_peak_nm=peaks)
    for i in range(2):
        one = raw.image(_emitters(pos[i], [100.0]), field, emission_peak_nm=peaks[i : i + 1])
        assert one.sum(axis=(1, 2, 3)) == pytest.approx(100 * raw.band_fractions(peaks[i]), 0.02)
        both = both - one
    assert np.abs(both).max() < 1e-4 * 100 * 0.01


@pytest.mark.parametrize(
    ("deconvolution", "low", "high"),
    [(False, 1.6, 1.8), (True, 1.75, 1.95)],  # measured: 1.67 / 1.78 raw, 1.78 / 1.89 deconvolved
)
def test_lateral_fwhm_is_1_4_to_2_times_smaller_than_widefield(deconvolution, low, high):
    microscope = SpinningDisk(SpinningDiskConfig(deconvolution=deconvolution, device="cpu"))
    images = microscope.psf(BEAD_FIELD)
    for c, centre in enumerate(microscope.config.band_centres_nm()):
        epi = Epi(EpiConfig(emission_nm=centre, psf_radius_nm=1500.0, device="cpu"))
        ratio = _fwhm_2d(epi.psf(BEAD_FIELD)[0, 0]) / _fwhm_2d(images[c, 0])
        assert 1.4 <= ratio <= 2.0
        assert low < ratio < high


def test_plain_spinning_disk_without_reassignment_is_a_confocal():
    plain = SpinningDisk(SpinningDiskConfig(reassignment_factor=0.0, channels=(("y", 580, 653),)))
    epi = Epi(EpiConfig(emission_nm=616.5, psf_radius_nm=1500.0))
    ratio = _fwhm_2d(epi.psf(BEAD_FIELD)[0, 0]) / _fwhm_2d(plain.psf(BEAD_FIELD)[0, 0])
    assert 1.25 < ratio < 1.36  # ~1 AU pinhole: measured 1.31


def test_config_validation():
    assert SpinningDiskConfig(channels=[["a", 500, 550], ["b", 560, 600], ["c", 610, 700]])
    with pytest.raises(ValueError, match="channels"):
        SpinningDiskConfig(channels=(("a", 600.0, 550.0),))
    with pytest.raises(ValueError, match="distinct"):
        SpinningDiskConfig(channels=(("a", 500.0, 550.0), ("a", 560.0, 600.0)))
    with pytest.raises(ValueError, match="at least one"):
        SpinningDiskConfig(channels=())
    with pytest.raises(ValueError, match="channels"):
        SpinningDiskConfig(channels=(("a", 500.0),))
    with pytest.raises(ValueError, match="pinhole_nm"):
        SpinningDiskConfig(pinhole_nm=-1.0)
    config = SpinningDiskConfig()
    assert config.band_centres_nm() == pytest.approx([616.5, 685.0])
    assert config.reassignment_factor == pytest.approx(488**2 / (488**2 + 620**2))
