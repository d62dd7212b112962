"""Surface and volume labellings on unions of capsules: on the surface, uniform, exact counts."""

import numpy as np
import pytest

from subcell.core.capsules import segment_distance, union_distance
from subcell.core.model import Field, Geometry
from subcell.plugins.mitochondria import Mitochondria, MitochondriaConfig
from subcell.plugins.physics import (
    SurfaceLabelling,
    SurfaceLabellingConfig,
    VolumeLabelling,
    VolumeLabellingConfig,
)

R = 150.0  # tube radius, nm
STEP = 150.0  # capsule length: one radius, as the mitochondria structure uses


def _rng(seed=0):
    return np.random.default_rng(seed)


def _chain(vertices, radius=R, instance=1, klass=0, names=("tube",)):
    vertices = np.asarray(vertices, dtype=float)
    n = len(vertices) - 1
    return Geometry(
        names,
        vertices[:-1],
        vertices[1:],
        np.full(n, radius),
        np.full(n, instance),
        np.full(n, klass),
    )


def _bent(n=27, step=STEP):
    """A polyline along a helix (curved in x, y and z), vertices ``step`` apart."""
    helix_r, rise = 700.0, 0.25
    t = np.arange(n + 1) * step / (helix_r * np.sqrt(1 + rise**2))
    return np.column_stack([400 + rise * helix_r * t, helix_r * np.sin(t), helix_r * np.cos(t)])


def _turns(vertices):
    d = np.diff(vertices, axis=0)
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    return np.arccos(np.clip((u[:-1] * u[1:]).sum(1), -1, 1))


def _arc_position(points, vertices):
    """Arc length of each point's nearest point on the polyline (clipped to the ends)."""
    a, b = vertices[:-1], vertices[1:]
    dist = segment_distance(points[:, None], a[None], b[None])
    k = dist.argmin(axis=1)
    u = (b - a) / np.linalg.norm(b - a, axis=1, keepdims=True)
    step = np.linalg.norm(b - a, axis=1)
    t = np.clip(((points - a[k]) * u[k]).sum(1), 0, step[k])
    return np.concatenate([[0.0], np.cumsum(step)])[k] + t


def _bins(n_segments, per_bin=3):
    """Bin edges (in segments) at segment middles, so every joint lies inside one bin."""
    inner = np.arange(per_bin, n_segments, per_bin) - 0.5
    return np.concatenate([[0.0], inner, [float(n_segments)]])


def _within(count, expected, sigmas=4.0):
    return abs(count - expected) < sigmas * np.sqrt(expected) + 1


def test_emitters_lie_on_the_union_surface_of_branched_tubes():
    field = Field((1, 128, 128), (1300.0, 42.0, 42.0))
    cfg = MitochondriaConfig(count=(3, 3), network_fraction=1.0, length_nm=(2500, 4000))
    geom = Mitochondria(cfg).generate(field, _rng(5))
    em = SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=3000)).label(geom, _rng())
    assert len(em) > 10000
    # On the surface of its own instance's union: on some capsule, strictly inside none.
    dist = union_distance(em.position_nm, em.instance, geom, max_distance_nm=1.0)
    assert np.abs(dist).max() < 1e-6
    assert set(np.unique(em.instance)) == {1, 2, 3}
    assert em.class_names == ("mitochondria",) and (em.klass == 0).all()


@pytest.mark.parametrize("pieces", [1, 20])
def test_straight_tube_count_is_density_times_capsule_area(pieces):
    """One 3 µm capsule, or a chain of 20 that makes the same shape: 2πrL + 4πr²."""
    x = np.linspace(0, 3000.0, pieces + 1)
    geom = _chain(np.column_stack([np.full(pieces + 1, 600.0), np.full(pieces + 1, 900.0), x]))
    lab = SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=5000))
    counts = np.array([len(lab.label(geom, _rng(s))) for s in range(8)])
    expected = 5000e-6 * (2 * np.pi * R * 3000 + 4 * np.pi * R**2)  # ~ 14 490
    assert _within(counts.sum(), 8 * expected)
    # Poisson spread between runs: variance / mean about 1 (8 runs: loose bound).
    assert counts.var(ddof=1) / counts.mean() < 4


def _nudged(geom, nudge_nm):
    """The same capsules with every end moved by ``nudge_nm``: joints no longer shared bit
    for bit, so the labelling draws every cap in full and relies on thinning alone."""
    return Geometry(
        geom.class_names,
        geom.start_nm,
        geom.end_nm + [nudge_nm, 0.0, 0.0],
        geom.radius_nm,
        geom.instance,
        geom.klass,
    )


@pytest.mark.parametrize("nudge_nm", [0.0, 1e-7])
def test_surface_density_is_uniform_along_a_bent_tube_with_joints_and_caps(nudge_nm):
    vertices = _bent()
    geom = _nudged(_chain(vertices), nudge_nm)
    alpha = _turns(vertices)
    density = 0.02  # per nm² = 20 000 per µm²
    em = SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=density * 1e6)).label(
        geom, _rng(2)
    )
    s = _arc_position(em.position_nm, vertices)
    edges = _bins(len(vertices) - 1)
    counts = np.histogram(s, bins=edges * STEP)[0]
    # Area per bin: 2πr per unit arc length, each joint adds its outer lune 2r²α and loses
    # the inner mitre overlap 4r² tan(α/2), each end adds a hemisphere 2πr².
    joint = R**2 * (2 * alpha - 4 * np.tan(alpha / 2))
    joint_bin = np.digitize(np.arange(1, len(vertices) - 1), edges) - 1
    area = 2 * np.pi * R * np.diff(edges) * STEP + np.bincount(joint_bin, joint, len(counts))
    area[[0, -1]] += 2 * np.pi * R**2
    for c, a in zip(counts, area, strict=True):
        assert _within(c, density * a)
    # And the joints themselves: points on each joint sphere's outer wedge.
    d = np.diff(vertices, axis=0)
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    lune = 0
    for k in range(1, len(vertices) - 1):
        q = em.position_nm - vertices[k]
        on = np.abs(np.linalg.norm(q, axis=1) - R) < 1e-6
        lune += (on & (q @ u[k - 1] > 0) & (q @ u[k] < 0)).sum()
    assert _within(lune, density * 2 * R**2 * alpha.sum())


@pytest.mark.parametrize("nudge_nm", [0.0, 1e-7])
def test_volume_density_is_uniform_along_a_bent_tube(nudge_nm):
    vertices = _bent()
    geom = _nudged(_chain(vertices), nudge_nm)
    alpha = _turns(vertices)
    density = 2e-4  # per nm³ = 200 000 per µm³
    em = VolumeLabelling(VolumeLabellingConfig(density_per_um3=density * 1e9)).label(geom, _rng(3))
    assert (union_distance(em.position_nm, em.instance, geom) <= 1e-9).all()
    s = _arc_position(em.position_nm, vertices)
    edges = _bins(len(vertices) - 1)
    counts = np.histogram(s, bins=edges * STEP)[0]
    joint = R**3 * (2 / 3 * alpha - 4 / 3 * np.tan(alpha / 2))
    joint_bin = np.digitize(np.arange(1, len(vertices) - 1), edges) - 1
    volume = np.pi * R**2 * np.diff(edges) * STEP + np.bincount(joint_bin, joint, len(counts))
    volume[[0, -1]] += 2 / 3 * np.pi * R**3
    for c, v in zip(counts, volume, strict=True):
        assert _within(c, density * v)
    # Across the tube, the squared distance to the centreline is uniform on [0, r²].
    rho2 = (
        segment_distance(em.position_nm[:, None], vertices[None, :-1], vertices[None, 1:]).min(
            axis=1
        )
        / R
    ) ** 2
    inner = (s > STEP) & (s < s.max() - STEP)
    hist = np.histogram(rho2[inner], bins=5, range=(0, 1))[0]
    assert all(_within(h, inner.sum() / 5) for h in hist)


def test_shortcuts_at_unequal_and_branched_joints_change_nothing():
    """A thin tube meeting a thick one, with a third branch at the same junction: counts
    with exactly shared joints (caps skipped or cut to lunes) equal those without."""
    starts = np.array([[0.0, 0, 0], [0.0, 0, 400], [0.0, 0, 400], [0.0, 0, 400]])
    ends = np.array([[0.0, 0, 400], [0.0, 300, 700], [0.0, -250, 600], [100.0, 0, 900]])
    geom = Geometry(("t",), starts, ends, [100.0, 180.0, 120.0, 180.0], [1] * 4, [0] * 4)
    for lab in (
        SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=20000)),
        VolumeLabelling(VolumeLabellingConfig(density_per_um3=1e5)),
    ):
        exact = sum(len(lab.label(geom, _rng(s))) for s in range(10))
        loose = sum(len(lab.label(_nudged(geom, 1e-7), _rng(50 + s))) for s in range(10))
        # Two Poisson totals with the same mean: difference within 4 sd.
        assert abs(exact - loose) < 4 * np.sqrt(exact + loose)
        em = lab.label(geom, _rng(99))
        assert (union_distance(em.position_nm, em.instance, geom, 1.0) <= 1e-6).all()


def test_point_sources_in_a_geometry_of_capsules_get_one_emitter_each():
    tube = _chain(_bent(6))
    geom = Geometry(
        ("tube", "dot"),
        np.vstack([tube.start_nm, [[0.0, 0, 0], [0.0, 500, 500]]]),
        np.vstack([tube.end_nm, [[0.0, 0, 0], [0.0, 500, 900]]]),
        np.append(tube.radius_nm, [0.0, 0.0]),
        np.append(tube.instance, [2, 3]),
        np.append(tube.klass, [1, 1]),
    )
    for lab in (
        SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=1e4)),
        VolumeLabelling(VolumeLabellingConfig(density_per_um3=1e5)),
    ):
        em = lab.label(geom, _rng())
        dots = em.position_nm[em.klass == 1]
        np.testing.assert_array_equal(dots, [[0.0, 0, 0], [0.0, 500, 700]])
        assert (em.instance[em.klass == 0] == 1).all() and (em.klass == 0).sum() > 100


def test_same_seed_same_bytes_and_another_seed_differs():
    geom = _chain(_bent(12))
    for lab in (
        SurfaceLabelling(SurfaceLabellingConfig(photons_sd_fraction=0.2)),
        VolumeLabelling(VolumeLabellingConfig(density_per_um3=50000)),
    ):
        a, b, c = lab.label(geom, _rng(4)), lab.label(geom, _rng(4)), lab.label(geom, _rng(5))
        assert a.position_nm.tobytes() == b.position_nm.tobytes()
        assert a.photons.tobytes() == b.photons.tobytes()
        assert a.instance.tobytes() == b.instance.tobytes()
        assert len(a) != len(c) or a.position_nm.tobytes() != c.position_nm.tobytes()
