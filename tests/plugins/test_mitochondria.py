"""The mitochondria structure: sizes, 3D curvature, closed chains, networks, placement."""

import numpy as np
import pytest

from subcell.core.errors import ConfigError
from subcell.core.model import Field
from subcell.plugins.mitochondria import Mitochondria, MitochondriaConfig, register_structures

TILE = Field((1, 128, 128), (1300.0, 42.0, 42.0))  # the paper's tile: 5376 nm square
BIG = Field((1, 512, 512), (1300.0, 42.0, 42.0))


def _generate(config, field=TILE, seed=0):
    return Mitochondria(config).generate(field, np.random.default_rng(seed))


def _instances(geom):
    return [np.flatnonzero(geom.instance == i) for i in range(1, geom.n_instances + 1)]


def _degrees(geom, idx):
    """Degree of every distinct vertex of one instance (capsule ends meeting there)."""
    ends = np.concatenate([geom.start_nm[idx], geom.end_nm[idx]])
    _, counts = np.unique(ends, axis=0, return_counts=True)
    return counts


def test_defaults_reproduce_the_papers_simepi1mito_ranges():
    cfg = MitochondriaConfig()
    assert cfg.diameter_nm == (200.0, 600.0) and cfg.z_range_nm == (100.0, 1200.0)
    assert cfg.count == (1, 2) and cfg.length_nm[1] == 5000.0
    counts = {_generate(cfg, seed=s).n_instances for s in range(30)}
    assert counts == {1, 2}


def test_lengths_diameters_and_segments_within_ranges():
    cfg = MitochondriaConfig(
        count=(40, 40), length_nm=(800, 3000), diameter_nm=(250, 450), network_fraction=0
    )
    geom = _generate(cfg, field=BIG)
    lengths, diameters = [], []
    for idx in _instances(geom):
        lengths.append(geom.length_nm[idx].sum())
        assert np.ptp(geom.radius_nm[idx]) == 0  # one radius per tube
        diameters.append(2 * geom.radius_nm[idx[0]])
        # Segments no longer than the radius, so the union is a smooth tube.
        assert geom.length_nm[idx].max() <= geom.radius_nm[idx[0]] + 1e-9
        # A chain: consecutive capsules share their joint bit for bit, ends have degree 1.
        np.testing.assert_array_equal(geom.end_nm[idx[:-1]], geom.start_nm[idx[1:]])
        assert sorted(_degrees(geom, idx))[:2] == [1, 1] and _degrees(geom, idx).max() == 2
    lengths, diameters = np.array(lengths), np.array(diameters)
    assert lengths.min() >= 800 - 1e-6 and lengths.max() <= 3000 + 1e-6
    assert diameters.min() >= 250 and diameters.max() <= 450
    # Uniform draws fill the ranges (40 draws: the extremes come within 15 %).
    assert lengths.min() < 800 + 330 and lengths.max() > 3000 - 330
    assert np.ptp(diameters) > 0.7 * 200


def test_centrelines_curve_in_z_and_stay_inside_the_z_range():
    cfg = MitochondriaConfig(count=(30, 30), length_nm=(3000, 4000), network_fraction=0)
    geom = _generate(cfg, field=BIG, seed=1)
    wavy = []
    for idx in _instances(geom):
        z = np.append(geom.start_nm[idx, 0], geom.end_nm[idx[-1], 0])
        assert z.min() >= 100 - 1e-9 and z.max() <= 1200 + 1e-9
        s = np.concatenate([[0.0], np.cumsum(geom.length_nm[idx])])
        # Residual of the best straight line z(s): a linear ramp would leave ~0.
        residual = z - np.polyval(np.polyfit(s, z, 1), s)
        wavy.append(residual.std())
        # The curvature of z is smooth: second differences small next to the radius.
        assert np.abs(np.diff(z, 2)).max() < geom.radius_nm[idx[0]]
    # Most 3–4 µm tubes bend in z by tens of nm around the best ramp (σ = 250 nm profile
    # squeezed into the 1100 nm range).
    assert np.median(wavy) > 40 and np.mean(np.array(wavy) > 20) >= 0.8


def test_stiffer_tubes_are_straighter_as_a_worm_like_chain():
    """Horizontal end-to-end distance: <R²> = 2 Lp L [1 − (Lp/L)(1 − e^(−L/Lp))] for a
    heading correlation exp(−s/Lp); smoothing bends over one diameter makes tubes slightly
    straighter than that."""
    length = 5000.0
    r2 = {}
    for lp in (500.0, 3000.0):
        cfg = MitochondriaConfig(
            count=(100, 100),
            length_nm=(length, length),
            diameter_nm=(200, 200),
            persistence_length_nm=lp,
            z_undulation_nm=0,
            network_fraction=0,
            allow_partial=True,  # no rejection of tubes that would leave the field
        )
        ends = []
        for seed in range(3):
            geom = _generate(cfg, field=BIG, seed=seed)
            ends += [geom.end_nm[idx[-1]] - geom.start_nm[idx[0]] for idx in _instances(geom)]
        r2[lp] = np.mean(np.sum(np.square(ends), axis=1))
    theory = 2 * 3000 * length * (1 - 3000 / length * (1 - np.exp(-length / 3000)))
    assert 0.95 < r2[3000.0] / theory < 1.2
    assert r2[500.0] < 0.5 * r2[3000.0]


def test_networks_have_junctions_of_degree_three():
    cfg = MitochondriaConfig(
        count=(6, 6),
        length_nm=(3000, 4000),
        network_fraction=1.0,
        branches_per_network=(2, 3),
        branch_length_nm=(600, 1200),
    )
    geom = _generate(cfg, field=BIG, seed=2)
    for idx in _instances(geom):
        deg = _degrees(geom, idx)
        junctions = (deg >= 3).sum()
        assert 2 <= junctions <= 3  # one per branch
        # Tips: main tube 2 + one per branch.
        assert (deg == 1).sum() == 2 + junctions
    # Without networks there is never a junction.
    plain = _generate(MitochondriaConfig(count=(6, 6), network_fraction=0.0), field=BIG)
    assert max(_degrees(plain, idx).max() for idx in _instances(plain)) == 2


def test_dots_rods_and_networks_all_occur():
    cfg = MitochondriaConfig(count=(60, 60), length_nm=(0, 5000), network_fraction=0.3)
    geom = _generate(cfg, field=BIG, seed=3)
    kinds = set()
    for idx in _instances(geom):
        branched = _degrees(geom, idx).max() >= 3
        total = geom.length_nm[idx].sum()
        kinds.add("network" if branched else "dot" if total < 2 * geom.radius_nm[idx[0]] else "rod")
    assert kinds == {"dot", "rod", "network"}


def test_whole_tubes_inside_the_field_unless_partial_allowed():
    cfg = MitochondriaConfig(count=(20, 20), network_fraction=0.5)
    extent = TILE.extent_nm
    for seed in range(5):
        geom = _generate(cfg, seed=seed)
        r = geom.radius_nm[:, None]
        for pts in (geom.start_nm, geom.end_nm):
            assert (pts[:, 1:] - r >= -1e-9).all() and (pts[:, 1:] + r <= extent[1:] + 1e-9).all()
    partial = MitochondriaConfig(count=(20, 20), length_nm=(4000, 5000), allow_partial=True)
    geom = _generate(partial, seed=0)
    outside = (geom.start_nm[:, 1:] < 0) | (geom.start_nm[:, 1:] > extent[1:])
    assert outside.any()


def test_ids_classes_and_determinism():
    cfg = MitochondriaConfig(count=(4, 4), network_fraction=0.5, class_name="mito")
    geom = _generate(cfg, seed=7)
    assert geom.class_names == ("mito",) and (geom.klass == 0).all()
    assert set(np.unique(geom.instance)) == {1, 2, 3, 4}
    again = _generate(cfg, seed=7)
    for name in ("start_nm", "end_nm", "radius_nm", "instance"):
        assert getattr(geom, name).tobytes() == getattr(again, name).tobytes()
    other = _generate(cfg, seed=8)
    assert geom.start_nm.shape != other.start_nm.shape or not np.array_equal(
        geom.start_nm, other.start_nm
    )


def test_density_sets_the_mean_count():
    cfg = MitochondriaConfig(density_per_100um2=50, length_nm=(300, 1000), network_fraction=0)
    counts = [_generate(cfg, seed=s).n_instances for s in range(40)]
    area = (5376 / 1000) ** 2  # µm²
    expected = 50 * area / 100  # ~ 14.5 per tile
    assert abs(np.mean(counts) - expected) < 4 * np.sqrt(expected / 40)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"diameter_nm": (600, 200)}, "diameter_nm"),
        ({"diameter_nm": (0, 200)}, "diameter_nm"),
        ({"length_nm": (-5, 200)}, "length_nm"),
        ({"z_range_nm": (1200, 100)}, "z_range_nm"),
        ({"count": (3, 1)}, "count"),
        ({"branch_length_nm": (10, 5)}, "branch_length_nm"),
        ({"network_fraction": 1.5}, "network_fraction"),
        ({"persistence_length_nm": 0}, "persistence_length_nm"),
    ],
)
def test_bad_ranges_are_rejected_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MitochondriaConfig(**kwargs)


def test_a_tube_that_cannot_fit_is_a_config_error():
    small = Field((1, 24, 24), (1300.0, 42.0, 42.0))  # 1 µm square
    cfg = MitochondriaConfig(length_nm=(5000, 5000), persistence_length_nm=1e6)
    with pytest.raises(ConfigError, match="allow_partial"):
        _generate(cfg, field=small)


def test_tubes_far_longer_than_the_field_are_a_config_error_not_a_crash():
    cfg = MitochondriaConfig(length_nm=(50000, 60000))
    for seed in range(5):
        with pytest.raises(ConfigError, match="could not fit"):
            _generate(cfg, seed=seed)


def test_registers_the_structure():
    seen = []
    register_structures(lambda *args: seen.append(args))
    assert [(a[0], a[1], a[2]) for a in seen] == [
        ("mitochondria", MitochondriaConfig, Mitochondria)
    ]
