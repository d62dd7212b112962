"""Capsule geometry: distances against brute force, neighbours, unions and their sampling
(subcell.core.capsules and subcell.core.capsule_union)."""

import numpy as np
import pytest

from subcell.core import capsule_union, capsules
from subcell.core.model import Geometry


def _rng(seed=0):
    return np.random.default_rng(seed)


def _chain(vertices, radius, instance=1):
    vertices = np.asarray(vertices, dtype=float)
    n = len(vertices) - 1
    return Geometry(
        ("tube",),
        vertices[:-1],
        vertices[1:],
        np.full(n, radius),
        np.full(n, instance),
        np.zeros(n, int),
    )


def _straight(length, n, radius=150.0):
    x = np.linspace(0.0, length, n + 1)
    return _chain(np.column_stack([np.full(n + 1, 500.0), np.full(n + 1, 800.0), x]), radius)


def _helix(n, step, helix_radius=700.0, rise=0.25):
    """A 3D polyline (curved in x, y and z) with vertices ``step`` apart along a helix."""
    t = np.arange(n + 1) * step / (helix_radius * np.sqrt(1 + rise**2))
    return np.column_stack(
        [300 + rise * helix_radius * t, helix_radius * np.sin(t), helix_radius * np.cos(t)]
    )


def _within_poisson(count, expected, sigmas=4.0):
    return abs(count - expected) < sigmas * np.sqrt(expected) + 1


def _brute_segment(points, a, b, k=20001):
    s = np.linspace(0, 1, k)[:, None]
    line = a + s * (b - a)
    return np.sqrt(((points[:, None, :] - line[None]) ** 2).sum(-1)).min(axis=1)


# --- elementary geometry -------------------------------------------------------------------


def test_area_and_volume_of_a_capsule_and_a_sphere():
    start = np.array([[0.0, 0, 0], [5.0, 5, 5]])
    end = np.array([[0.0, 0, 300], [5.0, 5, 5]])
    r = np.array([100.0, 50.0])
    np.testing.assert_allclose(
        capsules.capsule_area(start, end, r),
        [2 * np.pi * 100 * 300 + 4 * np.pi * 100**2, 4 * np.pi * 50**2],
    )
    np.testing.assert_allclose(
        capsules.capsule_volume(start, end, r),
        [np.pi * 100**2 * 300 + 4 / 3 * np.pi * 100**3, 4 / 3 * np.pi * 50**3],
    )


def test_segment_distance_matches_brute_force():
    rng = _rng()
    points = rng.uniform(-500, 500, (200, 3))
    a, b = np.array([0.0, -100, 50]), np.array([120.0, 200, -80])
    d = capsules.segment_distance(points, a, b)
    np.testing.assert_allclose(d, _brute_segment(points, a, b), atol=0.05)
    # A zero-length segment is a point.
    np.testing.assert_allclose(
        capsules.segment_distance(points, a, a), np.linalg.norm(points - a, axis=1)
    )


@pytest.mark.parametrize(
    "p2, q2",
    [
        ([50.0, 80, -30], [-40.0, 10, 90]),  # skew
        ([0.0, 30, 0], [0.0, 30, 400]),  # parallel, overlapping
        ([0.0, 30, 500], [0.0, 30, 900]),  # parallel, end to end
        ([10.0, 0, 200], [10.0, 0, 200]),  # a point
        ([0.0, 0, 150], [0.0, 300, 150]),  # crossing: distance 0
    ],
)
def test_segment_segment_distance_matches_brute_force(p2, q2):
    p1, q1 = np.array([0.0, 0, 0]), np.array([0.0, 0, 300])
    p2, q2 = np.array(p2), np.array(q2)
    got = capsules.segment_segment_distance(p1, q1, p2, q2)
    s = np.linspace(0, 1, 3001)[:, None]
    seg1, seg2 = p1 + s * (q1 - p1), p2 + s * (q2 - p2)
    brute = min(
        capsules.segment_distance(seg1, p2, q2).min(), capsules.segment_distance(seg2, p1, q1).min()
    )
    assert abs(got - brute) < 0.2
    # Symmetric, and a point-point case is the plain distance.
    assert abs(capsules.segment_segment_distance(p2, q2, p1, q1) - got) < 1e-9
    assert capsules.segment_segment_distance(p1, p1, q1, q1) == pytest.approx(300.0)


def test_neighbours_are_exactly_the_intersecting_same_instance_pairs():
    rng = _rng(1)
    m = 120
    start = rng.uniform(0, 1200, (m, 3))
    end = start + rng.normal(0, 150, (m, 3))
    radius = rng.uniform(20, 150, m)
    radius[:5] = 0.0  # point-like capsules never count
    geom = Geometry(("a",), start, end, radius, rng.integers(1, 4, m), np.zeros(m, int))
    nb = capsules.same_instance_neighbours(geom)
    got = {(i, int(j)) for i in range(m) for j in nb.indices[nb.indptr[i] : nb.indptr[i + 1]]}
    gap = capsules.segment_segment_distance(start[:, None], end[:, None], start[None], end[None])
    want = (
        (gap < radius[:, None] + radius[None])
        & (geom.instance[:, None] == geom.instance[None])
        & (radius[:, None] > 0)
        & (radius[None] > 0)
        & ~np.eye(m, dtype=bool)
    )
    assert got == set(zip(*np.nonzero(want), strict=True))
    assert len(got) > 50


def test_union_distance_and_containing_instance_match_brute_force():
    rng = _rng(2)
    tube = _chain(_helix(12, 100.0), 120.0, instance=1)
    geom = Geometry(
        ("tube",),
        np.vstack([tube.start_nm, [300.0, 0, 700]]),
        np.vstack([tube.end_nm, [300.0, 0, 700]]),
        np.append(tube.radius_nm, 400.0),
        np.append(tube.instance, 2),
        np.zeros(len(tube) + 1, int),
    )
    points = rng.uniform([-200, -900, -900], [900, 900, 1300], (8000, 3))
    for inst in (1, 2):
        mine = geom.instance == inst
        signed = (
            capsules.segment_distance(
                points[:, None], geom.start_nm[mine][None], geom.end_nm[mine][None]
            )
            - geom.radius_nm[mine][None]
        ).min(axis=1)
        got = capsules.union_distance(points, np.full(len(points), inst), geom, 200.0)
        near = signed <= 200.0
        np.testing.assert_allclose(got[near], signed[near], atol=1e-9)
        assert np.isinf(got[~near]).all()
    inside_tube = capsules.union_distance(points, np.ones(len(points)), geom, 0.0) <= 0
    inside_ball = capsules.union_distance(points, np.full(len(points), 2), geom, 0.0) <= 0
    want = np.where(inside_tube, 1, np.where(inside_ball, 2, 0))
    np.testing.assert_array_equal(capsules.containing_instance(points, geom), want)
    assert (want == 1).sum() > 50 and (want == 2).sum() > 50 and (inside_tube & inside_ball).any()


# --- joints and ownership -------------------------------------------------------------------


def test_joint_caps_of_a_chain_and_a_junction():
    vertices = np.array([[0.0, 0, 0], [0.0, 0, 100], [0.0, 50, 180], [0.0, 50, 180]])
    geom = Geometry(
        ("t",),
        np.vstack([vertices[:2], [[0.0, 0, 100]]]),
        np.vstack([vertices[1:3], [[0.0, -90, 100]]]),
        [100.0, 100.0, 60.0],  # capsule 2 is a thinner branch from the first joint
        [1, 1, 1],
        [0, 0, 0],
    )
    caps = capsule_union.joint_caps(geom)
    # Joint (0 end, 1 start, 2 start): the equal-radius pair keeps the lower index's cap,
    # the thinner branch's cap lies inside the others; free ends stay.
    np.testing.assert_array_equal(caps.surface_covered, [[0, 0], [1, 0], [1, 0]])
    np.testing.assert_array_equal(caps.volume_covered, [[0, 0], [1, 0], [1, 0]])
    u1 = (geom.end_nm[1] - geom.start_nm[1]) / geom.length_nm[1]
    np.testing.assert_allclose(caps.partner[0, 1], u1)  # into capsule 1 (not the thin one)
    # The branch's cap has two partners, either serves: back along 0 or into 1.
    assert np.allclose(caps.partner[2, 0], [0.0, 0, -1]) or np.allclose(caps.partner[2, 0], u1)
    assert np.isnan(caps.partner[0, 0]).all() and np.isnan(caps.partner[1, 1]).all()


def _naive_surface(geom, density, rng):
    """Uniform points on every capsule's own surface, with no shortcut, then thinned."""
    u, v, w, length = capsules.capsule_frames(geom)
    area = capsules.capsule_area(geom.start_nm, geom.end_nm, geom.radius_nm)
    owner = np.repeat(np.arange(len(geom)), rng.poisson(density * area))
    n, r, ln = len(owner), geom.radius_nm[owner][:, None], length[owner][:, None]
    on_cylinder = rng.random((n, 1)) * (ln + 2 * r) < ln
    t, phi = rng.random((n, 1)) * ln, rng.random((n, 1)) * 2 * np.pi
    d = rng.standard_normal((n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    cylinder = (
        geom.start_nm[owner] + t * u[owner] + r * (np.cos(phi) * v[owner] + np.sin(phi) * w[owner])
    )
    ends = np.where(
        (d * u[owner]).sum(1, keepdims=True) >= 0, geom.end_nm[owner], geom.start_nm[owner]
    )
    points = np.where(on_cylinder, cylinder, ends + r * d)
    keep = capsule_union.surface_owned(points, owner, geom)
    return points[keep], owner[keep]


def _naive_volume(geom, density, rng):
    """Uniform points in every capsule by rejection from its bounding box, then thinned."""
    vol = capsules.capsule_volume(geom.start_nm, geom.end_nm, geom.radius_nm)
    owner = np.repeat(np.arange(len(geom)), rng.poisson(density * vol))
    lo = np.minimum(geom.start_nm, geom.end_nm) - geom.radius_nm[:, None]
    hi = np.maximum(geom.start_nm, geom.end_nm) + geom.radius_nm[:, None]
    points = np.empty((len(owner), 3))
    todo = np.arange(len(owner))
    while len(todo):
        c = owner[todo]
        p = lo[c] + rng.random((len(todo), 3)) * (hi[c] - lo[c])
        ok = capsules.segment_distance(p, geom.start_nm[c], geom.end_nm[c]) <= geom.radius_nm[c]
        points[todo[ok]] = p[ok]
        todo = todo[~ok]
    keep = capsule_union.volume_owned(points, owner, geom)
    return points[keep], owner[keep]


def test_thinning_a_straight_chain_leaves_one_capsule():
    """A 3 µm straight chain of 20 capsules has the area and volume of one capsule."""
    geom, r, length = _straight(3000.0, 20), 150.0, 3000.0
    points, owner = _naive_surface(geom, 0.01, _rng())
    assert _within_poisson(len(points), 0.01 * (2 * np.pi * r * length + 4 * np.pi * r**2))
    # Every point is on the union's surface: on its capsule, inside no other.
    dist = capsules.union_distance(points, geom.instance[owner], geom, 1.0)
    assert np.abs(dist).max() < 1e-6
    points, _ = _naive_volume(geom, 1e-4, _rng(1))
    assert _within_poisson(len(points), 1e-4 * (np.pi * r**2 * length + 4 / 3 * np.pi * r**3))


def test_thinning_counts_coincident_capsules_once():
    single = _straight(1000.0, 1)
    doubled = Geometry(
        ("tube",),
        np.repeat(single.start_nm, 2, 0),
        np.repeat(single.end_nm, 2, 0),
        [150.0, 150.0],
        [1, 1],
        [0, 0],
    )
    area = 2 * np.pi * 150 * 1000 + 4 * np.pi * 150**2
    assert _within_poisson(len(_naive_surface(doubled, 0.02, _rng())[0]), 0.02 * area)
    volume = np.pi * 150**2 * 1000 + 4 / 3 * np.pi * 150**3
    assert _within_poisson(len(_naive_volume(doubled, 2e-4, _rng())[0]), 2e-4 * volume)


def _joint_terms(vertices):
    """Turning angles at interior vertices of a polyline, and unit segment directions."""
    d = np.diff(vertices, axis=0)
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    return np.arccos(np.clip((u[:-1] * u[1:]).sum(1), -1, 1)), u


def test_thinning_a_bent_tube_gives_its_area_and_joint_wedges_once():
    """Union of a polyline tube: cylinders + caps, and per joint the outer lune 2r²α minus
    the inner mitre overlap 4r² tan(α/2); the lune (on two caps) is labelled once."""
    r, step, density = 150.0, 150.0, 0.02
    vertices = _helix(24, step)
    geom = _chain(vertices, r)
    alpha, u = _joint_terms(vertices)
    assert alpha.min() > 0.1  # a real bend at every joint
    area = 2 * np.pi * r * step * len(u) + 4 * np.pi * r**2
    area += r**2 * (2 * alpha - 4 * np.tan(alpha / 2)).sum()
    points, _ = _naive_surface(geom, density, _rng(3))
    assert _within_poisson(len(points), density * area)
    lune = 0
    for k in range(1, len(vertices) - 1):
        q = points - vertices[k]
        on_sphere = np.abs(np.linalg.norm(q, axis=1) - r) < 1e-6
        lune += (on_sphere & (q @ u[k - 1] > 0) & (q @ u[k] < 0)).sum()
    assert _within_poisson(lune, density * 2 * r**2 * alpha.sum())
    # Volume: per joint the outer wedge (2/3) r³ α minus the mitre overlap (4/3) r³ tan(α/2).
    volume = np.pi * r**2 * step * len(u) + 4 / 3 * np.pi * r**3
    volume += r**3 * (2 / 3 * alpha - 4 / 3 * np.tan(alpha / 2)).sum()
    points, owner = _naive_volume(geom, 1e-4, _rng(4))
    assert _within_poisson(len(points), 1e-4 * volume)
    assert (capsules.union_distance(points, geom.instance[owner], geom) <= 1e-9).all()


def test_surface_owned_axial_shortcut_changes_nothing():
    """The axial windows only skip pairs that cannot reject: same mask with and without."""
    geom = _chain(_helix(30, 120.0), 150.0)
    u, v, w, length = capsules.capsule_frames(geom)
    rng = _rng(5)
    owner = rng.integers(0, len(geom), 20000)
    t = rng.random(len(owner)) * length[owner]
    phi = rng.random(len(owner)) * 2 * np.pi
    points = (
        geom.start_nm[owner]
        + t[:, None] * u[owner]
        + 150.0 * (np.cos(phi)[:, None] * v[owner] + np.sin(phi)[:, None] * w[owner])
    )
    plain = capsule_union.surface_owned(points, owner, geom)
    fast = capsule_union.surface_owned(points, owner, geom, axial=t)
    np.testing.assert_array_equal(plain, fast)
    assert 0.2 < plain.mean() < 0.99  # the joints really remove some points


def test_cross_matches_numpy_bit_for_bit():
    rng = _rng(11)
    a = rng.normal(size=(500, 3)) * rng.choice([1e-9, 1.0, 1e6], (500, 3))
    b = rng.normal(size=(500, 3))
    a[::7], b[::5] = -0.0, [1.0, 0.0, 0.0]
    mine = capsules._cross(a, b)
    assert mine.tobytes() == np.cross(a, b).tobytes()


def _owned_reference(points, owner, geom, neighbours, rejects):
    """Every (point, neighbour) pair tested one by one, with the same arithmetic."""
    keep = np.ones(len(owner), dtype=bool)
    axis = geom.end_nm - geom.start_nm
    for p in range(len(owner)):
        i = owner[p]
        for j in neighbours.indices[neighbours.indptr[i] : neighbours.indptr[i + 1]]:
            w = (points[p] - geom.start_nm[j])[None]
            d = axis[j][None]
            dd = float(np.einsum("ij,ij->i", d, d)[0])
            s = np.einsum("ij,ij->i", w, d) * (1.0 / dd if dd > 1e-12 else 0.0)
            w = w - np.clip(s, 0.0, 1.0)[:, None] * d
            dist2 = np.einsum("ij,ij->i", w, w)
            if rejects(dist2, geom.radius_nm, np.array([j]), np.array([i]))[0]:
                keep[p] = False
    return keep


def test_flattened_ownership_matches_pair_by_pair_tests():
    """All pairs in one pass (with and without axial windows, points off the cylinder,
    beyond its ends and on zero-length capsules) give the pair-by-pair answer."""
    vertices = _helix(8, 90.0)
    geom = _chain(np.vstack([vertices, vertices[-1:]]), 120.0)  # last capsule: a sphere
    u, v, w, length = capsules.capsule_frames(geom)
    rng = _rng(12)
    owner = rng.integers(0, len(geom), 600)
    t = (rng.random(len(owner)) * 1.2 - 0.1) * length[owner]
    phi = rng.random(len(owner)) * 2 * np.pi
    points = (
        geom.start_nm[owner]
        + t[:, None] * u[owner]
        + 120.0 * (np.cos(phi)[:, None] * v[owner] + np.sin(phi)[:, None] * w[owner])
    )
    points[:40] = geom.end_nm[owner[:40]]  # exactly on joints
    axial = np.where(rng.random(len(owner)) < 0.2, np.nan, t)
    axial[:40] = np.nan  # not on their cylinder
    nb = capsules.same_instance_neighbours(geom)
    ref = _owned_reference(points, owner, geom, nb, capsule_union._surface_rejects)
    assert 0 < (~ref).sum() < len(ref)
    np.testing.assert_array_equal(capsule_union.surface_owned(points, owner, geom, nb), ref)
    np.testing.assert_array_equal(
        capsule_union.surface_owned(points, owner, geom, nb, axial=axial), ref
    )
    lower = capsule_union._lower(nb)
    ref = _owned_reference(points, owner, geom, lower, capsule_union._volume_rejects)
    np.testing.assert_array_equal(capsule_union.volume_owned(points, owner, geom, nb), ref)
