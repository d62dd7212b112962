"""Noise models: flat-field moments against theory, saturation, sCMOS maps, determinism."""

import numpy as np
import pytest

from subcell.core.errors import VolumeError
from subcell.plugins.physics import (
    Emccd,
    EmccdConfig,
    Poisson,
    PoissonConfig,
    PoissonGaussian,
    PoissonGaussianConfig,
    Scmos,
    ScmosConfig,
)

Q = 1 / 12  # variance of rounding to whole ADU


def _rng(seed=0):
    return np.random.default_rng(seed)


def _flat(lam, shape=(512, 512)):
    return np.full(shape, float(lam))


# --- sensor-wide models -----------------------------------------------------------------


def test_poisson_flat_field_and_sd():
    out = Poisson(PoissonConfig(qe=0.5)).apply(_flat(100), _rng()).astype(float)
    assert abs(out.mean() / 50 - 1) < 0.01 and abs(out.var() / 50 - 1) < 0.03
    sd = Poisson(PoissonConfig(qe=0.5)).noise_sd_photons(_flat(100))
    np.testing.assert_allclose(sd, np.sqrt(200))  # √(λ/qe)
    assert abs(np.std(out / 0.5) / sd[0, 0] - 1) < 0.03


@pytest.mark.parametrize("lam", [5.0, 100.0, 2000.0])
def test_poisson_gaussian_flat_field_matches_theory(lam):
    cfg = PoissonGaussianConfig(qe=0.8, read_noise_e=3.0, gain_adu_per_e=2.0, offset_adu=100)
    model = PoissonGaussian(cfg)
    out = model.apply(_flat(lam), _rng()).astype(float)
    np.testing.assert_array_equal(out, np.rint(out))
    mean, var = 2 * 0.8 * lam + 100, 4 * (0.8 * lam + 9) + Q
    assert abs(out.mean() / mean - 1) < 0.01
    assert abs(out.var() / var - 1) < 0.03
    # noise_sd_photons: the output's sd referred to the input, √var / (gain · qe).
    sd = model.noise_sd_photons(_flat(lam, (4, 4)))
    np.testing.assert_allclose(sd, np.sqrt(var) / 1.6)
    assert abs(np.std((out - 100) / 1.6) / sd[0, 0] - 1) < 0.03


def test_poisson_gaussian_saturates_at_full_well_and_bit_depth():
    cfg = PoissonGaussianConfig(read_noise_e=0, gain_adu_per_e=2.0, full_well_e=1000)
    out = PoissonGaussian(cfg).apply(np.array([[10.0, 1e5]]), _rng())
    assert out[0, 1] == 2 * 1000 + 100  # the well holds 1000 e-
    cfg12 = PoissonGaussianConfig(bit_depth=12, output_dtype="uint16", full_well_e=1e6)
    out12 = PoissonGaussian(cfg12).apply(np.array([[0.0, 1e5]]), _rng())
    assert out12.dtype == np.uint16 and out12[0, 1] == 4095 and out12[0, 0] < 120
    with pytest.raises(ValueError, match="bit_depth"):
        PoissonGaussianConfig(bit_depth=20, output_dtype="uint16")
    with pytest.raises(ValueError, match="full_well_e"):
        PoissonGaussianConfig(full_well_e=0)


def test_emccd_flat_field_excess_noise_and_sd():
    cfg = EmccdConfig(qe=0.9, em_gain=300, read_noise_e=10, gain_adu_per_e=0.1, offset_adu=100)
    model = Emccd(cfg)
    out = model.apply(_flat(20, (256, 256)), _rng()).astype(float)
    g, em, n = 0.1, 300, 0.9 * 20
    assert abs(out.mean() / (g * em * n + 100) - 1) < 0.01
    var = g**2 * (2 * em**2 * n + 10**2) + Q  # excess noise factor F² = 2
    assert abs(out.var() / var - 1) < 0.03
    electrons = (out - 100) / g
    assert abs((electrons.var() - 10**2) / (em**2 * n) - 2) < 0.06
    sd = model.noise_sd_photons(_flat(20, (2, 2)))
    np.testing.assert_allclose(sd, np.sqrt(var) / (g * em * 0.9))
    assert abs(np.std(electrons / (em * 0.9)) / sd[0, 0] - 1) < 0.03


def test_emccd_dark_pixels_stay_at_offset_and_register_saturates():
    np.testing.assert_array_equal(
        Emccd(EmccdConfig(read_noise_e=0.0)).apply(np.zeros((8, 8)), _rng()), 100.0
    )
    cfg = EmccdConfig(read_noise_e=0.0, em_full_well_e=1e5, gain_adu_per_e=0.1, bit_depth=16)
    assert Emccd(cfg).apply(np.array([[1e4]]), _rng())[0, 0] == 0.1 * 1e5 + 100


# --- sCMOS ------------------------------------------------------------------------------


def test_scmos_matches_per_pixel_theory():
    cfg = ScmosConfig(qe=0.8, gain_sd_adu_per_e=0.3, read_var_log_sd=1.0, offset_sd_adu=5.0)
    model = Scmos(cfg)
    frames = np.full((3000, 12, 12), 30.0)
    out = model.apply(frames, _rng()).astype(float)
    m = model.maps((12, 12))
    mean = m.gain_adu_per_e * 0.8 * 30 + m.offset_adu
    var = m.gain_adu_per_e**2 * 0.8 * 30 + m.read_var_adu2 + Q
    # Each pixel's mean and variance over 3000 frames follow its own maps.
    np.testing.assert_allclose(out.mean(axis=0), mean, rtol=0.01)
    emp = out.var(axis=0)
    assert abs(np.sum(emp * var) / np.sum(var**2) - 1) < 0.03  # slope through the origin
    assert abs(np.mean(emp / var) - 1) < 0.03
    z = (out - mean) / np.sqrt(var)  # standardised: variance 1 within 3 %
    assert abs(z.var() - 1) < 0.03
    # noise_sd_photons: each pixel's own sd, in photons.
    sd = model.noise_sd_photons(frames[:1])[0]
    np.testing.assert_allclose(sd, np.sqrt(var) / (m.gain_adu_per_e * 0.8))
    emp_sd = out.std(axis=0) / (m.gain_adu_per_e * 0.8)
    assert abs(np.mean(emp_sd / sd) - 1) < 0.03


def test_scmos_maps_belong_to_the_camera():
    model = Scmos(ScmosConfig(read_noise_median_e=1.5, read_var_log_sd=0.7))
    small, big = model.maps((32, 48)), model.maps((256, 256))
    # Drawn from map_seed, not the tile's rng: a small tile is the corner of a big one.
    for name in ("offset_adu", "gain_adu_per_e", "read_var_adu2"):
        np.testing.assert_array_equal(getattr(small, name), getattr(big, name)[:32, :48])
    assert model.maps((32, 48)) is small  # cached per shape
    again = Scmos(ScmosConfig(read_noise_median_e=1.5, read_var_log_sd=0.7)).maps((32, 48))
    assert again.read_var_adu2.tobytes() == small.read_var_adu2.tobytes()
    other = Scmos(ScmosConfig(map_seed=1)).maps((32, 48))
    assert not np.array_equal(other.offset_adu, small.offset_adu)
    # Log-normal read-noise variance (e-²): median 1.5², log sd 0.7, a heavy upper tail.
    var_e = big.read_var_adu2 / big.gain_adu_per_e**2
    assert abs(np.median(var_e) / 1.5**2 - 1) < 0.03
    assert abs(np.log(var_e).std() / 0.7 - 1) < 0.03
    assert np.percentile(var_e, 99.9) > 7 * np.median(var_e)
    assert abs(big.offset_adu.mean() - 100) < 0.05 and abs(big.offset_adu.std() / 2 - 1) < 0.03
    assert abs(big.gain_adu_per_e.std() / 0.05 - 1) < 0.03


def test_scmos_loaded_maps_cropped_and_validated(tmp_path):
    np.save(tmp_path / "offset.npy", np.arange(40 * 50, dtype=float).reshape(40, 50))
    np.save(tmp_path / "gain.npy", np.full((40, 50), 3.0))
    np.save(tmp_path / "var.npy", np.zeros((40, 50)))
    cfg = ScmosConfig(
        qe=1.0,
        offset_map_path=str(tmp_path / "offset.npy"),
        gain_map_path=str(tmp_path / "gain.npy"),
        read_var_map_path=str(tmp_path / "var.npy"),
    )
    model = Scmos(cfg)
    m = model.maps((10, 20))
    np.testing.assert_array_equal(m.offset_adu, np.arange(2000.0).reshape(40, 50)[:10, :20])
    out = model.apply(np.zeros((10, 20)), _rng())
    np.testing.assert_array_equal(out, m.offset_adu)  # dark, noiseless: exactly the offset
    sd = model.noise_sd_photons(np.full((10, 20), 9.0))
    np.testing.assert_allclose(sd, np.sqrt(9 * 9 + Q) / 3)
    with pytest.raises(VolumeError, match=r"smaller than the image's \(Y, X\) = \(41, 20\)"):
        model.apply(np.zeros((41, 20)), _rng())
    np.save(tmp_path / "cube.npy", np.zeros((2, 40, 50)))
    with pytest.raises(VolumeError, match="2-D"):
        Scmos(ScmosConfig(gain_map_path=str(tmp_path / "cube.npy"))).maps((4, 4))
    np.save(tmp_path / "bad_gain.npy", np.zeros((40, 50)))
    with pytest.raises(VolumeError, match="gains must be > 0"):
        Scmos(ScmosConfig(gain_map_path=str(tmp_path / "bad_gain.npy"))).maps((4, 4))
    with pytest.raises(VolumeError, match="cannot read"):
        Scmos(ScmosConfig(offset_map_path=str(tmp_path / "missing.npy"))).maps((4, 4))
    with pytest.raises(ValueError, match="offset_map_path"):
        ScmosConfig(offset_map_path="offset.tif")


def test_scmos_population_sd_for_scalars_and_saturation():
    model = Scmos(ScmosConfig())
    pixels = model.noise_sd_photons(np.full((256, 256), 20.0))
    scalar = float(model.noise_sd_photons(np.float64(20.0)))
    # The population value is the rms pixel's noise (within 3 %).
    assert abs(scalar / np.sqrt(np.mean(pixels**2)) - 1) < 0.03
    sat = Scmos(ScmosConfig(full_well_e=500, gain_adu_per_e=2.0, gain_sd_adu_per_e=0.0))
    out = sat.apply(np.full((8, 8), 1e6), _rng()).astype(float)
    m = sat.maps((8, 8))
    assert np.abs(out - (2.0 * 500 + m.offset_adu)).max() < 8 * np.sqrt(m.read_var_adu2.max())


# --- every model ------------------------------------------------------------------------

MODELS = [
    Poisson(PoissonConfig()),
    PoissonGaussian(PoissonGaussianConfig()),
    Emccd(EmccdConfig()),
    Scmos(ScmosConfig()),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_noise_same_seed_same_bytes_and_rejects_nan(model):
    img = np.linspace(0, 50, 2 * 64).reshape(2, 8, 8)
    a, b = model.apply(img, _rng(5)), model.apply(img, _rng(5))
    assert a.tobytes() == b.tobytes() and a.shape == img.shape
    assert a.tobytes() != model.apply(img, _rng(6)).tobytes()
    with pytest.raises(VolumeError):
        model.apply(np.full((2, 2), np.nan), _rng())
    # The sd grows with the signal (shot noise).
    sd = model.noise_sd_photons(img)
    assert sd.shape == img.shape and (model.noise_sd_photons(img + 10) > sd).all()
