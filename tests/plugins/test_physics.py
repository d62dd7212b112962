"""The physics plugins: labellings, photophysics, noise models and ground-truth rules."""

import numpy as np
import pytest
from scipy import stats

from subcell.core.model import Emitters, Field, Geometry
from subcell.plugins import physics
from subcell.plugins.beads import Beads, BeadsConfig
from subcell.plugins.physics import (
    AlwaysOn,
    AlwaysOnConfig,
    Bleaching,
    BleachingConfig,
    Blinking,
    BlinkingConfig,
    GeometryProjection,
    GeometryProjectionConfig,
    Physics,
    PhysicsConfig,
    SurfaceLabelling,
    SurfaceLabellingConfig,
    VolumeLabelling,
    VolumeLabellingConfig,
)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _spheres(n, radius, klass=0, names=("vesicle",)):
    centres = np.column_stack([np.full(n, 250.0), np.arange(n) * 3000.0, np.full(n, 1000.0)])
    return Geometry.spheres(
        names, centres, np.full(n, radius), np.arange(1, n + 1), np.full(n, klass)
    )


def _emitters(position_nm, instance=None, klass=None, names=("thing",)):
    position_nm = np.asarray(position_nm, dtype=float).reshape(-1, 3)
    n = len(position_nm)
    return Emitters(
        position_nm,
        np.full(n, 100.0),
        np.ones(n, int) if instance is None else instance,
        np.zeros(n, int) if klass is None else klass,
        names,
    )


# --- labellings ---------------------------------------------------------------------------


def test_surface_count_poisson_and_on_the_sphere():
    geom = _spheres(400, 100.0)
    em = SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=2000)).label(geom, _rng())
    expected = 400 * 2000 * 4 * np.pi * 100.0**2 / 1e6  # ~100 531 emitters
    assert abs(len(em) - expected) < 3 * np.sqrt(expected)
    counts = np.bincount(em.instance, minlength=401)[1:]
    # Poisson: variance / mean = 1 (400 spheres: within 20 %).
    assert abs(counts.var() / counts.mean() - 1) < 0.2
    centre = geom.center_nm[em.instance - 1]
    r = np.linalg.norm(em.position_nm - centre, axis=1)
    np.testing.assert_allclose(r, 100.0, atol=1e-9)
    # Uniform on the sphere: mean direction 0, second moments 1/3 (within 2 %).
    u = (em.position_nm - centre) / 100.0
    assert np.abs(u.mean(axis=0)).max() < 0.01
    np.testing.assert_allclose((u**2).mean(axis=0), 1 / 3, rtol=0.02)


def test_volume_radial_distribution():
    geom = _spheres(50, 200.0)
    em = VolumeLabelling(VolumeLabellingConfig(density_per_um3=20000)).label(geom, _rng())
    expected = 50 * 20000 * 4 / 3 * np.pi * 200.0**3 / 1e9  # ~33 510
    assert abs(len(em) - expected) < 3 * np.sqrt(expected)
    r = np.linalg.norm(em.position_nm - geom.center_nm[em.instance - 1], axis=1)
    assert r.max() <= 200.0
    # Mean radius of a uniform ball is 3R/4 (within 1 %), and the CDF is (r/R)^3.
    assert abs(r.mean() / 150.0 - 1) < 0.01
    assert stats.kstest((r / 200.0) ** 3, "uniform").pvalue > 0.001


@pytest.mark.parametrize(
    "labelling",
    [
        SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=1e6)),
        VolumeLabelling(VolumeLabellingConfig(density_per_um3=1e9)),
    ],
)
def test_point_sources_get_exactly_one_emitter(labelling):
    geom = _spheres(5, 0.0)
    em = labelling.label(geom, _rng())
    assert len(em) == 5
    np.testing.assert_array_equal(em.position_nm, geom.center_nm)
    np.testing.assert_array_equal(em.instance, np.arange(1, 6))


def test_zero_density_allows_empty_spheres():
    em = SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=0)).label(
        _spheres(3, 100.0), _rng()
    )
    assert len(em) == 0 and em.on_fraction.shape == (1, 0)


def test_labelling_carries_ids_classes_and_brightness():
    geom = Geometry.spheres(("a", "b"), [[0, 0, 0], [0, 5000, 0]], [300.0, 300.0], [4, 9], [1, 0])
    cfg = SurfaceLabellingConfig(photons_per_emitter=500, photons_sd_fraction=0.3)
    em = SurfaceLabelling(cfg).label(geom, _rng())
    assert em.class_names == ("a", "b")
    assert set(zip(em.instance.tolist(), em.klass.tolist(), strict=True)) == {(4, 1), (9, 0)}
    # Gamma brightness: mean 500 and sd 150 (thousands of emitters: within 3 %).
    assert abs(em.photons.mean() / 500 - 1) < 0.03
    assert abs(em.photons.std() / 150 - 1) < 0.03
    assert (em.photons > 0).all()
    flat = SurfaceLabelling(SurfaceLabellingConfig()).label(geom, _rng())
    np.testing.assert_array_equal(flat.photons, 200.0)


def test_labelling_same_seed_same_bytes():
    geom = _spheres(20, 150.0)
    lab = VolumeLabelling(VolumeLabellingConfig(photons_sd_fraction=0.2))
    a, b = lab.label(geom, _rng(7)), lab.label(geom, _rng(7))
    assert a.position_nm.tobytes() == b.position_nm.tobytes()
    assert a.photons.tobytes() == b.photons.tobytes()


# --- photophysics -------------------------------------------------------------------------


def _many(n):
    return _emitters(np.zeros((n, 3)))


def test_always_on():
    em = AlwaysOn(AlwaysOnConfig()).apply(_many(7), 4, _rng())
    assert em.on_fraction.shape == (4, 7)
    np.testing.assert_array_equal(em.on_fraction, 1.0)


def _blink_moments(p, tau, e):
    """Mean, variance of the on-fraction over an exposure e, and the lag-1 covariance (no gap)."""
    big_e = np.exp(-e / tau)
    var = 2 * p * (1 - p) / e**2 * (e * tau - tau**2 * (1 - big_e))
    cov = p * (1 - p) * tau**2 * (1 - big_e) ** 2 / e**2
    return p, var, cov


def test_blinking_matches_telegraph_theory():
    cfg = BlinkingConfig(t_on_s=0.1, t_off_s=0.3, exposure_s=0.05, frame_interval_s=0.05)
    on = Blinking(cfg).apply(_many(10000), 50, _rng()).on_fraction
    assert on.shape == (50, 10000) and on.min() >= 0 and on.max() <= 1
    tau = 1 / (1 / 0.1 + 1 / 0.3)
    mean, var, cov = _blink_moments(0.25, tau, 0.05)
    assert abs(on.mean() / mean - 1) < 0.02
    # Exact continuous-time simulation gives the exact exposure-averaged variance (5 %).
    assert abs(on.var() / var - 1) < 0.05
    # Back-to-back exposures: correlated through the shared dwell (lag-1 corr ~0.66).
    lag = np.mean((on[1:] - mean) * (on[:-1] - mean))
    assert abs(lag / cov - 1) < 0.05
    # Steady state from frame 0: the first frame already has the long-run mean (within 5 %).
    assert abs(on[0].mean() / mean - 1) < 0.05


def test_blinking_dead_time_decorrelates():
    tau = 1 / (1 / 0.1 + 1 / 0.3)
    cfg = BlinkingConfig(t_on_s=0.1, t_off_s=0.3, exposure_s=1e-5, frame_interval_s=0.05)
    on = Blinking(cfg).apply(_many(4000), 30, _rng(1)).on_fraction
    # Near-instant exposures sample the state; its correlation after 0.05 s is exp(-0.05/tau).
    corr = np.corrcoef(on[1:].ravel(), on[:-1].ravel())[0, 1]
    assert abs(corr - np.exp(-0.05 / tau)) < 0.03


def test_bleaching_survival_is_exponential():
    cfg = BleachingConfig(t_bleach_s=1.0, exposure_s=0.05, frame_interval_s=0.1)
    on = Bleaching(cfg).apply(_many(50000), 11, _rng()).on_fraction
    t = np.arange(11) * 0.1
    surviving = (on > 0).mean(axis=1)
    np.testing.assert_allclose(surviving, np.exp(-t), rtol=0.03)
    # Within the first exposure: mean on-fraction (tau/e)(1 - exp(-e/tau)) (within 1 %).
    assert abs(on[0].mean() / (20 * (1 - np.exp(-0.05))) - 1) < 0.01
    assert (np.diff(on, axis=0) <= 0).all()  # bleaching is irreversible


@pytest.mark.parametrize("cls, cfg", [(Blinking, BlinkingConfig), (Bleaching, BleachingConfig)])
def test_photophysics_same_seed_same_bytes_and_keeps_emitters(cls, cfg):
    em = _many(50)
    a, b = cls(cfg()).apply(em, 5, _rng(2)), cls(cfg()).apply(em, 5, _rng(2))
    assert a.on_fraction.tobytes() == b.on_fraction.tobytes()
    assert a.on_fraction.dtype == np.float32
    assert a.position_nm is em.position_nm and a.instance is em.instance


def test_frame_interval_shorter_than_exposure_rejected():
    with pytest.raises(ValueError, match="frame_interval_s"):
        BlinkingConfig(exposure_s=0.1, frame_interval_s=0.05)


# --- labelling to ground truth (noise and GT rules: test_noise.py, test_ground_truth.py) --


def test_beads_through_labelling_to_ground_truth():
    field = Field((1, 128, 128), (500.0, 40.0, 40.0))
    geom = Beads(BeadsConfig(count=(6, 6), diameter_nm=400, min_separation_nm=800)).generate(
        field, _rng()
    )
    em = SurfaceLabelling(SurfaceLabellingConfig()).label(geom, _rng(1))
    phys = Physics(PhysicsConfig()).masks(geom, em, field)
    geo = GeometryProjection(GeometryProjectionConfig()).masks(geom, em, field)
    assert phys.class_names == geo.class_names == ("bead",)
    np.testing.assert_array_equal(np.unique(phys.instances), np.arange(7))
    # Both rules agree on each bead to within the rim pixels (IoU > 0.75).
    inter = np.logical_and(phys.semantic, geo.semantic).sum()
    union = np.logical_or(phys.semantic, geo.semantic).sum()
    assert inter / union > 0.75


def test_registers_every_plugin():
    seen = {}
    for hook in (
        "register_labellings",
        "register_photophysics",
        "register_noise_models",
        "register_ground_truth_rules",
    ):
        getattr(physics, hook)(lambda name, cfg, factory, desc: seen.update({name: (cfg, factory)}))
    assert set(seen) == {
        "surface",
        "volume",
        "always_on",
        "blinking",
        "bleaching",
        "poisson",
        "poisson_gaussian",
        "emccd",
        "scmos",
        "physics",
        "geometry_projection",
        "otsu_clean",
        "otsu_erode",
        "noise_level",
    }
    for cfg, factory in seen.values():
        assert (
            hasattr(factory(cfg()), "apply")
            or hasattr(factory(cfg()), "label")
            or hasattr(factory(cfg()), "masks")
        )
