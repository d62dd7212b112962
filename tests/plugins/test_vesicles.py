"""The vesicles structure: radius distributions, no overlaps, placement, shells vs filled."""

import numpy as np
import pytest
from scipy import stats

from subcell.core.errors import ConfigError
from subcell.core.model import Field
from subcell.plugins.physics import (
    SurfaceLabelling,
    SurfaceLabellingConfig,
    VolumeLabelling,
    VolumeLabellingConfig,
)
from subcell.plugins.vesicles import Vesicles, VesiclesConfig, register_structures

TILE = Field((1, 128, 128), (1300.0, 80.0, 80.0))  # the paper's vesicle tile: 10.24 µm
BIG = Field((1, 512, 512), (1300.0, 80.0, 80.0))


def _generate(config, field=TILE, seed=0):
    return Vesicles(config).generate(field, np.random.default_rng(seed))


def test_defaults_reproduce_the_papers_simepi1vesi():
    cfg = VesiclesConfig()
    assert cfg.radius_nm == (50.0, 300.0) and cfg.z_range_nm == (0.0, 1300.0)
    geom = _generate(cfg)
    assert geom.class_names == ("vesicles",)
    assert {_generate(cfg, seed=s).n_instances for s in range(30)} == {1, 2}


@pytest.mark.parametrize("distribution", ["uniform", "log_uniform"])
def test_radius_distribution_shape(distribution):
    low, high = 30.0, 1000.0
    cfg = VesiclesConfig(count=(400, 400), radius_nm=(low, high), radius_distribution=distribution)
    radii = np.concatenate([_generate(cfg, field=BIG, seed=s).radius_nm for s in range(2)])
    assert radii.min() >= low and radii.max() <= high
    if distribution == "uniform":
        # Median (low + high) / 2 = 515 nm; KS against the uniform law.
        assert abs(np.median(radii) - 515) < 40
        assert stats.kstest(radii, "uniform", args=(low, high - low)).pvalue > 0.001
    else:
        # Median sqrt(low * high) ~ 173 nm: half the vesicles are below the resolution.
        assert abs(np.median(radii) / np.sqrt(low * high) - 1) < 0.1
        u = np.log(radii / low) / np.log(high / low)
        assert stats.kstest(u, "uniform").pvalue > 0.001


def test_no_overlaps_with_minimum_gap_and_inside_the_field():
    cfg = VesiclesConfig(count=(150, 150), radius_nm=(100, 500), min_gap_nm=50)
    geom = _generate(cfg, field=BIG, seed=1)
    c, r = geom.center_nm, geom.radius_nm
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    gap = d - r[:, None] - r[None]
    np.fill_diagonal(gap, np.inf)
    assert gap.min() >= 50 - 1e-9
    extent = BIG.extent_nm
    assert (c[:, 1:] - r[:, None] >= 0).all() and (c[:, 1:] + r[:, None] <= extent[1:]).all()
    assert c[:, 0].min() >= 0 and c[:, 0].max() <= 1300
    # Spheres, ids 1..n from the largest down.
    np.testing.assert_array_equal(geom.start_nm, geom.end_nm)
    np.testing.assert_array_equal(geom.instance, np.arange(1, 151))
    assert (np.diff(r) <= 0).all()


def test_partial_vesicles_may_cross_the_edge():
    cfg = VesiclesConfig(count=(100, 100), radius_nm=(300, 300), allow_partial=True)
    geom = _generate(cfg)
    yx, r = geom.center_nm[:, 1:], geom.radius_nm[:, None]
    assert ((yx - r < 0) | (yx + r > TILE.extent_nm[1:])).any()
    assert (yx >= 0).all() and (yx <= TILE.extent_nm[1:]).all()


def test_density_and_determinism():
    cfg = VesiclesConfig(density_per_100um2=20, radius_distribution="log_uniform")
    counts = [_generate(cfg, seed=s).n_instances for s in range(40)]
    expected = 20 * 10.24**2 / 100  # ~ 21 per tile
    assert abs(np.mean(counts) - expected) < 4 * np.sqrt(expected / 40)
    a, b = _generate(cfg, seed=3), _generate(cfg, seed=3)
    assert a.center_nm.tobytes() == b.center_nm.tobytes()
    assert a.radius_nm.tobytes() == b.radius_nm.tobytes()


def test_surface_labelling_gives_shells_and_volume_labelling_fills():
    geom = _generate(VesiclesConfig(count=(20, 20), radius_nm=(200, 400)), seed=2)
    centre = geom.center_nm
    shell = SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=3000)).label(
        geom, np.random.default_rng(0)
    )
    r = np.linalg.norm(shell.position_nm - centre[shell.instance - 1], axis=1)
    np.testing.assert_allclose(r, geom.radius_nm[shell.instance - 1], atol=1e-9)
    filled = VolumeLabelling(VolumeLabellingConfig(density_per_um3=30000)).label(
        geom, np.random.default_rng(0)
    )
    big_r = geom.radius_nm[filled.instance - 1]
    rel = np.linalg.norm(filled.position_nm - centre[filled.instance - 1], axis=1) / big_r
    assert rel.max() <= 1
    # Uniform in the ball: (r / R)³ is uniform.
    assert stats.kstest(rel**3, "uniform").pvalue > 0.001


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"radius_nm": (300, 50)}, "radius_nm"),
        ({"radius_nm": (-1, 50)}, "radius_nm"),
        ({"radius_nm": (0, 50), "radius_distribution": "log_uniform"}, "radius_nm"),
        ({"z_range_nm": (1300, 0)}, "z_range_nm"),
        ({"count": (2, 1)}, "count"),
        ({"min_gap_nm": -1}, "min_gap_nm"),
        ({"radius_distribution": "normal"}, "radius_distribution"),
    ],
)
def test_bad_parameters_are_rejected_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        VesiclesConfig(**kwargs)


def test_overfull_field_is_a_config_error():
    with pytest.raises(ConfigError, match="no free place"):
        _generate(VesiclesConfig(count=(400, 400), radius_nm=(400, 400)))
    with pytest.raises(ConfigError, match="does not fit"):
        _generate(VesiclesConfig(radius_nm=(6000, 6000)))


def test_registers_the_structure():
    seen = []
    register_structures(lambda *args: seen.append(args))
    assert [(a[0], a[1], a[2]) for a in seen] == [("vesicles", VesiclesConfig, Vesicles)]
