"""Object counts, centre boxes and rejection placement shared by the structures."""

import numpy as np
import pytest
from scipy import stats

from subcell.core.errors import ConfigError
from subcell.core.placement import centre_boxes, draw_count, numbered_spheres, place_apart

EXTENT = np.array([1000.0, 20000.0, 10000.0])  # 2 x 100 µm² laterally


def test_count_is_uniform_in_the_inclusive_range():
    rng = np.random.default_rng(0)
    counts = np.array([draw_count(rng, (2, 5)) for _ in range(4000)])
    assert set(counts) == {2, 3, 4, 5}
    assert stats.chisquare(np.bincount(counts)[2:]).pvalue > 0.001
    assert draw_count(rng, (7, 7)) == 7


def test_density_gives_poisson_counts_per_100um2():
    rng = np.random.default_rng(1)
    counts = np.array([draw_count(rng, (0, 0), 3.0, EXTENT) for _ in range(4000)])
    # Mean 3 × 2 = 6; the mean of 4000 Poisson(6) draws lies within 4 sd of it.
    assert abs(counts.mean() - 6.0) < 4 * np.sqrt(6.0 / 4000)
    assert abs(counts.var() / counts.mean() - 1) < 0.1


def test_count_draws_are_those_of_the_generator():
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert draw_count(a, (1, 9)) == int(b.integers(1, 10))
    assert draw_count(a, (0, 0), 2.0, EXTENT) == int(b.poisson(4.0))


def test_centre_boxes_keep_margins_and_z_bounds():
    low, high = centre_boxes(EXTENT, [100.0, 6000.0], 50.0, np.array([900.0, 800.0]))
    np.testing.assert_array_equal(low, [[50.0, 100.0, 100.0], [50.0, 6000.0, 6000.0]])
    np.testing.assert_array_equal(high, [[900.0, 19900.0, 9900.0], [800.0, 14000.0, 4000.0]])
    assert (high < low).any(axis=1).tolist() == [False, True]  # 12 µm does not fit in 10


def test_place_apart_keeps_surfaces_apart_inside_the_boxes():
    rng = np.random.default_rng(2)
    radius = np.sort(rng.uniform(100, 600, 60))[::-1]
    low, high = centre_boxes(EXTENT, radius, 0.0, 1000.0)
    centres = place_apart(low, high, rng, radius_nm=radius, gap_nm=50.0)
    assert ((centres >= low) & (centres <= high)).all()
    gap = np.linalg.norm(centres[:, None] - centres[None], axis=-1) - radius[:, None] - radius
    np.fill_diagonal(gap, np.inf)
    assert gap.min() >= 50.0


def test_place_apart_points_and_same_seed_same_bytes():
    low, high = centre_boxes(EXTENT, np.zeros(30), 500.0, 500.0)
    a = place_apart(low, high, np.random.default_rng(3), gap_nm=1500.0)
    b = place_apart(low, high, np.random.default_rng(3), gap_nm=1500.0)
    assert a.tobytes() == b.tobytes()
    d = np.linalg.norm(a[:, None] - a[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() >= 1500.0 and (a[:, 0] == 500.0).all()


def test_first_object_takes_the_first_candidate():
    low, high = np.zeros((1, 3)), np.ones((1, 3))
    rng = np.random.default_rng(4)
    got = place_apart(low, high, rng)
    np.testing.assert_array_equal(got[0], np.random.default_rng(4).random((64, 3))[0])


def test_no_free_place_is_a_config_error_naming_what_to_change():
    low, high = centre_boxes(EXTENT, np.zeros(10), 0.0, 0.0)
    with pytest.raises(ConfigError, match=r"dots: dot 2 of 10: no free place .* lower gap_nm"):
        place_apart(
            low, high, np.random.default_rng(0), gap_nm=1e6, what="dots: dot", hint="lower gap_nm"
        )


def test_numbered_spheres_are_one_instance_each_of_the_first_class():
    geom = numbered_spheres(("vesicle",), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [10.0, 0.0])
    assert geom.instance.tolist() == [1, 2] and geom.klass.tolist() == [0, 0]
    np.testing.assert_array_equal(geom.start_nm, geom.end_nm)
    np.testing.assert_array_equal(geom.center_nm, [[1, 2, 3], [4, 5, 6]])
    assert numbered_spheres(("x",), np.zeros((0, 3)), np.zeros(0)).n_instances == 0
