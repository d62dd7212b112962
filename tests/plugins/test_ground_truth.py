"""Ground-truth rules: physics, geometry_projection, otsu_clean, otsu_erode, noise_level."""

import numpy as np
import pytest
from scipy import ndimage

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.model import Emitters, Field, Geometry
from subcell.plugins.microscopes.epi import Epi, EpiConfig
from subcell.plugins.physics import (
    GeometryProjection,
    GeometryProjectionConfig,
    NoiseLevel,
    NoiseLevelConfig,
    OtsuClean,
    OtsuCleanConfig,
    OtsuErode,
    OtsuErodeConfig,
    Physics,
    PhysicsConfig,
    Poisson,
    PoissonConfig,
    PoissonGaussian,
    PoissonGaussianConfig,
    Scmos,
    ScmosConfig,
)
from subcell.plugins.physics.gt_threshold import otsu_foreground, psf_kernel

PLANE = Field((1, 64, 64), (500.0, 20.0, 20.0))
TILE = Field((1, 96, 96), (1300.0, 42.0, 42.0))


def _rng(seed=0):
    return np.random.default_rng(seed)


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


def _fill(geometry: Geometry, per_um3: float, rng) -> Emitters:
    """Emitters uniform inside each capsule (rejection from its bounding box)."""
    pos, inst, klass = [], [], []
    for a, b, r, i, k in zip(
        geometry.start_nm,
        geometry.end_nm,
        geometry.radius_nm,
        geometry.instance,
        geometry.klass,
        strict=True,
    ):
        lo, hi = np.minimum(a, b) - r, np.maximum(a, b) + r
        n_box = rng.poisson(per_um3 * np.prod(hi - lo) / 1e9)
        p = lo + rng.random((n_box, 3)) * (hi - lo)
        d = b - a
        t = np.clip((p - a) @ d / max(d @ d, 1e-12), 0, 1)
        p = p[np.linalg.norm(p - a - t[:, None] * d, axis=1) <= r]
        pos.append(p)
        inst.append(np.full(len(p), i))
        klass.append(np.full(len(p), k))
    return Emitters(
        np.concatenate(pos),
        np.full(sum(map(len, pos)), 50.0),
        np.concatenate(inst),
        np.concatenate(klass),
        geometry.class_names,
    )


def _scene(radius_nm=60.0):
    """Three thin tubes of two classes with ids 4, 9, 12, in the focal plane of TILE."""
    z = 650.0
    geom = Geometry(
        ("mito", "er"),
        [[z, 800, 600], [z, 2000, 900], [z, 3200, 2600]],
        [[z, 800, 3200], [z, 3000, 3000], [z, 3300, 3400]],
        [radius_nm, radius_nm, 1.5 * radius_nm],
        [4, 9, 12],
        [0, 1, 0],
    )
    return geom, _fill(geom, 3e4 * (60 / radius_nm) ** 2, _rng(1))


def _surface_distance(geom: Geometry, yx_nm: np.ndarray) -> np.ndarray:
    """(P, M) lateral distance from points to each capsule's projected surface."""
    a, b = geom.start_nm[:, 1:], geom.end_nm[:, 1:]
    d = b - a
    rel = yx_nm[:, None, :] - a[None]
    t = np.clip((rel * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0, 1)
    return np.linalg.norm(rel - t[..., None] * d, axis=-1) - geom.radius_nm


def _clean(emitters, na=1.4, field=TILE):
    micro = Epi(EpiConfig(na=na, pixel_nm=field.voxel_nm[1]))
    return micro.image(emitters, field).astype(np.float64), micro


# --- physics ------------------------------------------------------------------------------


def test_physics_single_emitter_one_pixel():
    em = _emitters([[-3000.0, 410.0, 239.9]], instance=np.array([7]))
    masks = Physics(PhysicsConfig()).masks(Geometry.empty(), em, PLANE)
    assert masks.semantic.shape == (1, 1, 64, 64) and masks.semantic.dtype == np.uint8
    assert masks.semantic.sum() == 1 and masks.semantic[0, 0, 20, 11] == 1
    assert masks.instances.dtype == np.uint32 and masks.instances[0, 20, 11] == 7
    assert (masks.instances > 0).sum() == 1


def test_physics_min_emitters():
    em = _emitters([[0, 10, 10], [0, 15, 15], [0, 50, 50]])
    masks = Physics(PhysicsConfig(min_emitters=2)).masks(Geometry.empty(), em, PLANE)
    assert masks.semantic.sum() == 1 and masks.semantic[0, 0, 0, 0] == 1


def test_physics_shell_projects_to_filled_disc():
    u = _rng().normal(size=(20000, 3))
    shell = np.array([250.0, 640.0, 640.0]) + 400 * u / np.linalg.norm(u, axis=1)[:, None]
    masks = Physics(PhysicsConfig()).masks(Geometry.empty(), _emitters(shell), PLANE)
    # Max-pooling marks every pixel the disc touches: a little above its area.
    assert 1.0 < masks.semantic.sum() / (np.pi * 400**2 / 20**2) < 1.1
    np.testing.assert_array_equal(masks.instances > 0, masks.semantic[0] > 0)


def test_physics_fill_holes_turns_ring_into_disc():
    angle = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    ring = np.column_stack([np.zeros(2000), 640 + 300 * np.sin(angle), 640 + 300 * np.cos(angle)])
    em = _emitters(ring)
    filled = Physics(PhysicsConfig()).masks(Geometry.empty(), em, PLANE)
    hollow = Physics(PhysicsConfig(fill_holes=False)).masks(Geometry.empty(), em, PLANE)
    disc = np.pi * 300**2 / 20**2
    assert abs(filled.semantic.sum() / disc - 1) < 0.10
    assert hollow.semantic.sum() < 0.4 * disc
    assert filled.instances[0, 32, 32] == 1 and hollow.instances[0, 32, 32] == 0


def test_physics_masks_match_a_per_instance_reference():
    """Random blobs of three instances (two classes), some rings, overlapping: the rule's
    masks equal a plain reference (pixels with emitters, holes filled per instance with
    scipy, overlaps to the instance with more emitters, ties to the lower id)."""
    rng = _rng(21)
    pos, inst, klass = [], [], []
    for k, (cy, cx, r) in enumerate([(400, 400, 250), (700, 600, 300), (900, 300, 200)]):
        angle = rng.random(3000) * 2 * np.pi
        rad = r * (1 - 0.3 * rng.random(3000) ** 4)  # mostly a ring: holes to fill
        pos.append(
            np.column_stack(
                [rng.random(3000) * 900, cy + rad * np.sin(angle), cx + rad * np.cos(angle)]
            )
        )
        inst.append(np.full(3000, k + 1))
        klass.append(np.full(3000, k % 2))
    em = _emitters(np.vstack(pos), np.concatenate(inst), np.concatenate(klass), ("a", "b"))
    masks = Physics(PhysicsConfig()).masks(Geometry.empty(), em, PLANE)
    y = np.floor(em.position_nm[:, 1] / 20).astype(int)
    x = np.floor(em.position_nm[:, 2] / 20).astype(int)
    counts = np.zeros((4, 64, 64), int)
    np.add.at(counts, (em.instance, y, x), 1)
    filled = [ndimage.binary_fill_holes(counts[k] > 0) for k in range(4)]
    score = np.where(filled, counts, -1)
    score[0] = -1
    best = np.argmax(score, axis=0)  # ties: the lower id
    expected = np.where(score.max(axis=0) >= 0, best, 0)
    np.testing.assert_array_equal(masks.instances[0], expected)
    semantic = [filled[1] | filled[3], filled[2]]
    np.testing.assert_array_equal(masks.semantic[:, 0], np.array(semantic, dtype=np.uint8))
    assert (np.array(filled[1:]) & ~(counts[1:] > 0)).sum() > 50  # holes were filled


def test_physics_overlap_goes_to_instance_with_more_emitters():
    pos = [[0, 105, 105]] * 4 + [[0, 110, 110]] * 3
    em = _emitters(pos, instance=np.array([1, 2, 2, 2, 5, 5, 5]))
    em2 = _emitters([[0, 105, 105]] * 3, instance=np.array([3, 1, 3]))
    rule = Physics(PhysicsConfig(fill_holes=False))
    assert rule.masks(Geometry.empty(), em, PLANE).instances[0, 5, 5] == 2
    assert rule.masks(Geometry.empty(), em2, PLANE).instances[0, 5, 5] == 3


STACK = Field((4, 32, 32), (100.0, 20.0, 20.0))
STACK_EMITTERS = _emitters(
    [[50, 30, 30], [250, 30, 30], [399, 50, 50], [450, 30, 30], [-1, 30, 30]],
    instance=np.array([1, 2, 2, 3, 3]),
    klass=np.array([0, 1, 1, 0, 0]),
    names=("a", "b"),
)


def test_physics_keep_z_gives_each_plane_its_slab():
    masks = Physics(PhysicsConfig(keep_z=True)).masks(Geometry.empty(), STACK_EMITTERS, STACK)
    assert masks.semantic.shape == (2, 4, 32, 32)
    assert masks.semantic[0, 0, 1, 1] == 1 and masks.semantic[1, 2, 1, 1] == 1
    assert masks.semantic[1, 3, 2, 2] == 1
    assert masks.semantic.sum() == 3  # z = 450 and z = -1 lie outside the stack
    np.testing.assert_array_equal(np.unique(masks.instances), [0, 1, 2])


def test_physics_projects_a_stack_on_every_plane_and_keep_z_is_moot_on_one_plane():
    masks = Physics(PhysicsConfig()).masks(Geometry.empty(), STACK_EMITTERS, STACK)
    # Projected along z: every emitter counts, the same mask on each of the 4 planes.
    for plane in range(4):
        np.testing.assert_array_equal(masks.semantic[:, plane], masks.semantic[:, 0])
    assert masks.semantic[0, :, 1, 1].all() and masks.semantic[1, :, 2, 2].all()
    assert masks.semantic[1, :, 1, 1].all()  # class b at (1, 1) from the emitter at z = 250
    # (1, 1) holds one emitter of 1 and of 2 and two of 3: instance 3 wins everywhere.
    assert (masks.instances[:, 1, 1] == 3).all() and masks.semantic[:, 0].sum() == 3
    flat = Field((1, 32, 32), (500.0, 20.0, 20.0))
    a = Physics(PhysicsConfig()).masks(Geometry.empty(), STACK_EMITTERS, flat)
    b = Physics(PhysicsConfig(keep_z=True)).masks(Geometry.empty(), STACK_EMITTERS, flat)
    assert a.semantic.tobytes() == b.semantic.tobytes()
    assert a.instances.tobytes() == b.instances.tobytes()


def test_physics_unchanged_by_psf_and_noise():
    geom, em = _scene()
    rule = Physics(PhysicsConfig())
    reference = rule.masks(geom, em, TILE)
    for na in (1.4, 0.8):
        clean, micro = _clean(em, na)
        for noise in (Poisson(PoissonConfig()), Scmos(ScmosConfig())):
            masks = rule.masks(geom, em, TILE, clean=clean, noise=noise, microscope=micro)
            assert masks.semantic.tobytes() == reference.semantic.tobytes()
            assert masks.instances.tobytes() == reference.instances.tobytes()
    np.testing.assert_array_equal(np.unique(reference.instances), [0, 4, 9, 12])


# --- geometry_projection ------------------------------------------------------------------


def _geometry_masks(geom, field=PLANE):
    return GeometryProjection(GeometryProjectionConfig()).masks(geom, None, field)


@pytest.mark.parametrize(
    "start, end, radius",
    [
        ([100, 300, 310], [900, 300, 1010], 100.0),  # along x, tilted in z
        ([0, 213, 207], [400, 1001, 1033], 150.0),  # diagonal
        ([300, 641.3, 633.7], [300, 641.3, 633.7], 250.0),  # a sphere
        ([0, 150, 637], [-2000, 1050, 637], 60.0),  # along y, steep in z
    ],
)
def test_geometry_projection_stadium_area(start, end, radius):
    geom = Geometry(("tube",), [start], [end], [radius], [3], [0])
    masks = _geometry_masks(geom)
    length = np.linalg.norm(np.subtract(end, start)[1:])  # the projected segment
    area = (2 * radius * length + np.pi * radius**2) / 20**2
    perimeter = (2 * length + 2 * np.pi * radius) / 20
    assert abs(masks.semantic.sum() - area) < 0.1 * perimeter
    assert (masks.instances == 3).sum() == masks.semantic.sum()


def test_geometry_projection_cross_sections_in_a_stack():
    field = Field((10, 64, 64), (100.0, 20.0, 20.0))
    # A horizontal capsule: the plane at height dz cuts a stadium of radius √(r² − dz²).
    geom = Geometry(("tube",), [[450.0, 640, 450]], [[450.0, 640, 800]], [400.0], [1], [0])
    area = _geometry_masks(geom, field).semantic[0].sum(axis=(1, 2))
    dz = (np.arange(10) + 0.5) * 100 - 450
    w = np.sqrt(np.clip(400**2 - dz**2, 0, None))
    expected = (2 * w * 350 + np.pi * w**2) / 20**2
    big = expected > 200
    np.testing.assert_allclose(area[big], expected[big], rtol=0.05)
    assert area[expected == 0].sum() == 0 and big.sum() == 7
    # A vertical capsule: discs of radius r between its end points, shrinking caps beyond.
    geom = Geometry(("tube",), [[300.0, 640, 640]], [[600.0, 640, 640]], [200.0], [2], [0])
    area = _geometry_masks(geom, field).semantic[0].sum(axis=(1, 2))
    z = (np.arange(10) + 0.5) * 100
    beyond = np.clip(np.maximum(300 - z, z - 600), 0, None)
    expected = np.pi * np.clip(200**2 - beyond**2, 0, None) / 20**2
    np.testing.assert_allclose(area[expected > 50], expected[expected > 50], rtol=0.05)
    assert area[expected == 0].sum() == 0


def test_geometry_projection_thin_tube_stays_connected_and_point_shows():
    geom = Geometry(
        ("bead", "tube"),
        [[0, 410.0, 239.9], [0, 100, 100], [0, 640, 600], [0, 640, 700]],
        [[0, 410.0, 239.9], [0, 900, 1100], [0, 640, 600], [0, 640, 700]],
        [0.0, 2.0, 200.0, 100.0],
        [1, 5, 2, 3],
        [0, 1, 0, 0],
    )
    masks = _geometry_masks(geom)
    assert masks.instances[0, 20, 11] == 1 and (masks.instances == 1).sum() == 1
    tube = masks.semantic[1, 0] > 0
    assert ndimage.label(tube, np.ones((3, 3)))[1] == 1 and tube.sum() >= 50
    # Pixel centre at x = 710 nm: 110/200 deep in sphere 2, 10/100 deep in sphere 3.
    assert masks.instances[0, 32, 35] == 3 and masks.instances[0, 32, 30] == 2


# --- threshold rules ----------------------------------------------------------------------


def test_otsu_clean_grows_with_a_wider_psf():
    geom, em = _scene()
    areas = {}
    for na in (1.4, 0.9, 0.6):
        clean, _ = _clean(em, na)
        masks = OtsuClean(OtsuCleanConfig()).masks(geom, em, TILE, clean=clean)
        np.testing.assert_array_equal(
            masks.semantic.any(axis=0), otsu_foreground(clean.sum(axis=0))
        )
        areas[na] = masks.semantic.sum()
    # Tubes ~120 nm wide: the Otsu mask width follows the blur (λ/2NA: 182, 283, 425 nm).
    assert areas[0.9] > 1.2 * areas[1.4] and areas[0.6] > 1.2 * areas[0.9]


def test_psf_kernel_is_the_half_maximum_footprint():
    for na in (1.4, 0.8):
        micro = Epi(EpiConfig(na=na, pixel_nm=20.0))
        field = Field((1, 64, 64), (1300.0, 20.0, 20.0))
        kernel = psf_kernel(micro.psf(field))
        fwhm = 0.51 * 510 / na
        # Half-width of the footprint = FWHM / 2 to within a pixel; area ≈ π (FWHM / 2)².
        assert abs(kernel.shape[0] // 2 * 20 - fwhm / 2) <= 20
        assert abs(kernel.sum() * 20**2 / (np.pi * fwhm**2 / 4) - 1) < 0.25
        np.testing.assert_array_equal(kernel, kernel[::-1, ::-1])


def test_otsu_erode_shrinks_by_the_kernel():
    geom = Geometry.spheres(("vesicle",), [[650.0, 2016, 2016]], [900.0], [7], [0])
    em = _fill(geom, 2e3, _rng(2))
    clean, micro = _clean(em, 1.4)
    plain = OtsuClean(OtsuCleanConfig()).masks(geom, em, TILE, clean=clean)
    rule = OtsuErode(OtsuErodeConfig())
    eroded = rule.masks(geom, em, TILE, clean=clean, microscope=micro)
    kernel = rule.kernel(TILE, micro)
    expected = ndimage.binary_erosion(plain.semantic[0, 0], kernel, border_value=1)
    np.testing.assert_array_equal(eroded.semantic[0, 0], expected)
    # A disc eroded by a disc of radius ρ: its equivalent radius drops by ρ (±½ pixel).
    drop = np.sqrt(plain.semantic.sum() / np.pi) - np.sqrt(eroded.semantic.sum() / np.pi)
    assert abs(drop - kernel.shape[0] // 2) <= 0.5
    assert set(np.unique(eroded.instances)) == {0, 7}
    # kernel_nm overrides the PSF: a 420 nm disc has radius 5 pixels of 42 nm.
    wide = OtsuErode(OtsuErodeConfig(kernel_nm=420.0))
    assert wide.kernel(TILE).shape == (11, 11) and wide.kernel(TILE).sum() == 81
    shrunk = wide.masks(geom, em, TILE, clean=clean)
    drop = np.sqrt(plain.semantic.sum() / np.pi) - np.sqrt(shrunk.semantic.sum() / np.pi)
    assert abs(drop - 5) <= 0.5


def test_noise_level_threshold_and_area_grow_with_lower_noise():
    geom, em = _scene()
    clean, _ = _clean(em, 1.4)
    clean = clean + 2.0  # a uniform background of 2 photons per pixel
    rule = NoiseLevel(NoiseLevelConfig(k_sd=3.0))
    areas = []
    for read in (20.0, 5.0, 1.0):
        noise = PoissonGaussian(PoissonGaussianConfig(qe=0.8, read_noise_e=read))
        bg = np.percentile(clean, 5)  # the default background: 5th percentile, >= 2
        sd = np.sqrt(0.8 * bg + read**2 + 1 / 12) / 0.8
        assert rule.threshold(clean, noise) == pytest.approx(bg + 3 * sd, rel=1e-9)
        masks = rule.masks(geom, em, TILE, clean=clean, noise=noise)
        np.testing.assert_array_equal(masks.semantic.any(axis=0)[0], clean[0, 0] > bg + 3 * sd)
        areas.append(masks.semantic.sum())
    assert areas[0] < areas[1] < areas[2]
    fixed = NoiseLevel(NoiseLevelConfig(k_sd=2.0, background_photons=4.0))
    assert fixed.threshold(clean, Poisson(PoissonConfig())) == 4.0 + 2.0 * 2.0  # √4 photons


def test_every_rule_uses_the_geometry_instance_ids_and_classes():
    geom, em = _scene()
    clean, micro = _clean(em, 1.2)
    noise = PoissonGaussian(PoissonGaussianConfig())
    rules = [
        Physics(PhysicsConfig()),
        GeometryProjection(GeometryProjectionConfig()),
        OtsuClean(OtsuCleanConfig()),
        OtsuErode(OtsuErodeConfig()),
        NoiseLevel(NoiseLevelConfig(k_sd=20.0)),
    ]
    klass_of = {4: 0, 9: 1, 12: 0}
    for rule in rules:
        masks = rule.masks(geom, em, TILE, clean=clean, noise=noise, microscope=micro)
        assert masks.class_names == ("mito", "er")
        np.testing.assert_array_equal(np.unique(masks.instances), [0, 4, 9, 12])
        np.testing.assert_array_equal(masks.semantic.any(axis=0), masks.instances > 0)
        for inst, k in klass_of.items():
            assert masks.semantic[k][masks.instances == inst].all()
            assert not masks.semantic[1 - k][masks.instances == inst].any()
        # A labelled pixel belongs to the tube whose surface is nearest (98 % of them; the
        # threshold rules go by the nearest emitter voxel).
        yx = np.argwhere(masks.instances[0] > 0)
        nearest = geom.instance[np.argmin(_surface_distance(geom, (yx + 0.5) * 42), axis=1)]
        assert np.mean(nearest == masks.instances[0][tuple(yx.T)]) > 0.98


def test_threshold_rules_say_what_they_lack():
    geom, em = _scene()
    clean, micro = _clean(em)
    with pytest.raises(ConfigError, match="'otsu_clean' needs clean="):
        OtsuClean(OtsuCleanConfig()).masks(geom, em, TILE)
    with pytest.raises(ConfigError, match="'otsu_erode' needs microscope="):
        OtsuErode(OtsuErodeConfig()).masks(geom, em, TILE, clean=clean)
    with pytest.raises(ConfigError, match="'noise_level' needs noise="):
        NoiseLevel(NoiseLevelConfig()).masks(geom, em, TILE, clean=clean)
    with pytest.raises(VolumeError, match=r"\(C, Z, Y, X\)"):
        OtsuClean(OtsuCleanConfig()).masks(geom, em, TILE, clean=clean[0])
    with pytest.raises(ValueError, match="background_percentile"):
        NoiseLevelConfig(background_percentile=120)


def test_threshold_rules_on_a_z_stack_label_every_plane():
    field = Field((5, 48, 48), (250.0, 42.0, 42.0))
    geom = Geometry.spheres(
        ("vesicle",), [[625.0, 1000, 1000], [625, 1000, 1500]], [200.0, 200.0], [3, 8], [0, 0]
    )
    em = _fill(geom, 3e4, _rng(3))
    micro = Epi(EpiConfig(n_z=5, z_step_nm=250.0))
    clean = micro.image(em, field)
    masks = OtsuClean(OtsuCleanConfig()).masks(geom, em, field, clean=clean)
    assert masks.semantic.shape == (1, 5, 48, 48)
    np.testing.assert_array_equal(np.unique(masks.instances), [0, 3, 8])
    # Each pixel goes to the nearer vesicle: the split is at x = 1250 nm (pixel 29.76).
    cols = np.argwhere(masks.instances == 3)[:, 2]
    assert cols.max() <= 29 and np.argwhere(masks.instances == 8)[:, 2].min() >= 29
