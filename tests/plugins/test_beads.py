"""The beads structure: counts, margins, z placement, separation, determinism."""

import numpy as np
import pytest

from subcell.core.errors import ConfigError
from subcell.core.model import Field
from subcell.plugins.beads import Beads, BeadsConfig, register_structures

FIELD = Field((1, 128, 128), (500.0, 40.0, 40.0))  # 5120 x 5120 nm, one 500 nm slab
STACK = Field((20, 64, 64), (100.0, 80.0, 80.0))  # 2000 nm deep


def _generate(config, field=FIELD, seed=0):
    return Beads(config).generate(field, np.random.default_rng(seed))


def test_count_drawn_in_inclusive_range():
    counts = [len(_generate(BeadsConfig(count=(2, 4)), seed=s).radius_nm) for s in range(60)]
    # Every value of the inclusive range appears, nothing outside it.
    assert set(counts) == {2, 3, 4}


def test_ids_classes_and_diameter():
    geom = _generate(BeadsConfig(count=(7, 7), diameter_nm=200))
    assert geom.class_names == ("bead",)
    np.testing.assert_array_equal(geom.instance, np.arange(1, 8))
    np.testing.assert_array_equal(geom.klass, 0)
    np.testing.assert_allclose(geom.radius_nm, 100.0)


def test_beads_stay_inside_margins():
    cfg = BeadsConfig(count=(200, 200), diameter_nm=300, diameter_sd_nm=60, margin_nm=250)
    geom = _generate(cfg)
    r = geom.radius_nm
    yx = geom.center_nm[:, 1:]
    extent = FIELD.extent_nm[1:]
    assert (yx - r[:, None] >= 250 - 1e-9).all()
    assert (yx + r[:, None] <= extent - 250 + 1e-9).all()
    # The diameters really vary, with the configured spread (200 draws: within 20 %).
    assert abs(np.std(2 * r) - 60) < 12
    # Positions fill the allowed box: uniform over ~4300 nm has sd ~1240 nm, so the mean of
    # 200 lies within 3 sigma (~263 nm) of the centre, and the spread matches (within 10 %).
    assert (np.abs(yx.mean(axis=0) - extent / 2) < 3 * 4300 / np.sqrt(12 * 200)).all()
    assert np.allclose(yx.std(axis=0), 4300 / np.sqrt(12), rtol=0.1)


def test_focal_plane_z_is_field_centre():
    geom = _generate(BeadsConfig(count=(10, 10)), field=STACK)
    np.testing.assert_allclose(geom.center_nm[:, 0], 1000.0)


def test_uniform_z_spans_the_depth():
    cfg = BeadsConfig(count=(400, 400), diameter_nm=200, z_placement="uniform")
    z = _generate(cfg, field=STACK).center_nm[:, 0]
    assert z.min() >= 100 and z.max() <= 1900
    # Uniform on [100, 1900]: sd = 1800 / sqrt(12) ~ 519.6 nm, within 10 %.
    assert abs(z.std() - 1800 / np.sqrt(12)) < 52


def test_min_separation_honoured():
    cfg = BeadsConfig(count=(40, 40), min_separation_nm=500)
    c = _generate(cfg).center_nm
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    assert d[np.triu_indices(len(c), 1)].min() >= 500


def test_impossible_separation_raises():
    cfg = BeadsConfig(count=(50, 50), min_separation_nm=3000)
    with pytest.raises(ConfigError, match="min_separation_nm"):
        _generate(cfg)


def test_margin_too_large_raises():
    with pytest.raises(ConfigError, match="margin_nm"):
        _generate(BeadsConfig(margin_nm=3000))


def test_same_seed_same_bytes():
    cfg = BeadsConfig(diameter_sd_nm=20, min_separation_nm=200, z_placement="uniform")
    a, b = _generate(cfg, STACK, seed=3), _generate(cfg, STACK, seed=3)
    c = _generate(cfg, STACK, seed=4)
    assert a.center_nm.tobytes() == b.center_nm.tobytes()
    assert a.radius_nm.tobytes() == b.radius_nm.tobytes()
    assert a.center_nm.shape != c.center_nm.shape or not np.array_equal(a.center_nm, c.center_nm)


def test_point_source_has_zero_radius_but_keeps_margin():
    cfg = BeadsConfig(count=(30, 30), diameter_nm=400, margin_nm=0, point_source=True)
    geom = _generate(cfg)
    np.testing.assert_array_equal(geom.radius_nm, 0.0)
    assert (geom.center_nm[:, 1:] >= 200).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"count": (5, 2)},
        {"count": (-1, 2)},
        {"diameter_nm": 0},
        {"margin_nm": -1},
        {"z_placement": "top"},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises((ValueError, TypeError)):
        BeadsConfig(**kwargs)


def test_registers_structure():
    seen = []
    register_structures(lambda *args: seen.append(args))
    ((name, config_cls, factory, description),) = seen
    assert name == "beads" and config_cls is BeadsConfig and factory is Beads
    assert "\n" not in description
