"""One simulated tile through the whole plugin chain: seeding, photon budget, motion, GT."""

import math

import numpy as np
import pytest

from subcell.core.errors import ConfigError
from subcell.core.model import Emitters, Geometry
from subcell.pipeline import photon_budget
from subcell.pipeline.config import load_config
from subcell.pipeline.motion import instance_shifts
from subcell.pipeline.schemas import MotionConfig
from subcell.pipeline.simulate import combine, imaging_field, simulate_field
from subcell.registry import get_registry

CONFIG = """\
step: simulate
seed: 11
tile_px: [48, 40]
structures:
  - structure: {plugin: beads, count: [3, 3], diameter_nm: 200, min_separation_nm: 600}
    labelling: {plugin: surface, density_per_um2: 3000, photons_per_emitter: 50}
  - structure: {plugin: beads, count: [2, 2], point_source: true}
    labelling: {plugin: volume, photons_per_emitter: 2000}
microscope: {plugin: epi, pixel_nm: 60, psf_radius_nm: 2000}
"""


def _physics_rule() -> str:
    """The emitter-projection GT rule under whichever name the registry has now."""
    names = get_registry().names("ground_truth")
    return "physics" if "physics" in names else "physics_projection"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text(CONFIG)
    gt = f"ground_truth={{plugin: {_physics_rule()}}}"
    return lambda *overrides: load_config(path, [gt, *overrides]).config


def test_same_seed_same_bytes_and_fields_differ(config):
    first = simulate_field(config(), index=0)
    again = simulate_field(config(), index=0)
    other = simulate_field(config(), index=1)
    assert first.image.data.tobytes() == again.image.data.tobytes()
    assert first.clean.tobytes() == again.clean.tobytes()
    assert first.masks.instances.tobytes() == again.masks.instances.tobytes()
    assert first.image.data.tobytes() != other.image.data.tobytes()
    reseeded = simulate_field(config("seed=12"), index=0)
    assert first.image.data.tobytes() != reseeded.image.data.tobytes()


def test_field_comes_from_the_microscope_and_tile(config):
    sim = simulate_field(config(), index=0)
    assert imaging_field(config()).shape == (1, 48, 40)
    assert sim.image.shape == (1, 1, 48, 40)
    assert sim.clean.shape == sim.image.shape
    assert sim.image.voxel_nm == (1300.0, 60.0, 60.0)
    assert sim.image.channel_names == ("widefield",)  # the microscope's channel names
    # 3 + 2 beads, instance ids unique across the two structure entries
    assert sim.geometry.n_instances == 5
    assert set(np.unique(sim.emitters.instance)) == {1, 2, 3, 4, 5}
    assert len(sim.frame_masks) == 1 and sim.frame_masks[0] is sim.masks


def test_detected_counts_match_photon_budget(config):
    """The image's mean signal above the camera offset equals the emitted photons x QE
    (the PSF conserves energy for emitters away from the edges)."""
    cfg = config(
        "noise={plugin: poisson, qe: 1.0}",
        "structures.0.structure.count=[0, 0]",
        "structures.1.structure.margin_nm=900",
    )
    sim = simulate_field(cfg, index=0)
    expected = sim.emitters.photons.sum()
    assert abs(sim.clean.sum() / expected - 1) < 0.05
    # Poisson counting: the total is within 4 standard deviations of the expected photons
    assert abs(sim.image.data.sum() - sim.clean.sum()) < 4 * np.sqrt(sim.clean.sum())
    assert sim.stats.photon_scale == 1.0 and math.isnan(sim.stats.snr_target)


def test_background_is_uniform_and_drawn_per_tile(config):
    plain = simulate_field(config(), index=0)
    flat = simulate_field(config("background_photons=[7, 7]"), index=0)
    # the same structures, 7 photons higher everywhere (float32 rounding only)
    np.testing.assert_allclose(flat.clean - plain.clean, 7.0, atol=1e-3)
    assert flat.stats.background_photons == 7.0
    drawn = [
        simulate_field(config("background_photons=[2, 9]"), index=i).stats.background_photons
        for i in range(4)
    ]
    assert all(2 <= b <= 9 for b in drawn) and len(set(drawn)) == 4


def test_montage_tiles_share_background_and_snr_target(config):
    """The four tiles of a montage are one camera frame: no seams between them."""
    setting = ("montage=true", "background_photons=[2, 9]", "snr=[2, 4]")
    stats = [simulate_field(config(*setting), index=i).stats for i in range(8)]
    first, second = stats[:4], stats[4:]
    assert len({s.background_photons for s in first}) == 1
    assert len({s.snr_target for s in first}) == 1
    assert first[0].background_photons != second[0].background_photons
    assert first[0].snr_target != second[0].snr_target
    # each tile still reaches the shared target with its own photon scale
    assert all(abs(s.snr - s.snr_target) < 1e-6 * s.snr_target for s in stats)


@pytest.mark.parametrize("bad", ["[5, 1]", "[-1, 2]"])
def test_bad_ranges_are_config_errors(config, bad):
    with pytest.raises(ConfigError, match="background_photons"):
        config(f"background_photons={bad}")
    with pytest.raises(ConfigError, match="snr"):
        config(f"snr={bad}")
    with pytest.raises(ConfigError, match="diffusion_um2_per_s"):
        config(f"motion.diffusion_um2_per_s={bad}")
    with pytest.raises(ConfigError, match="snr"):
        config("snr=[0, 2]")


def test_snr_target_is_met_in_the_noisy_image(config):
    """The SNR the pipeline reports equals the target, and matches the SNR measured on
    many independent noise draws of the same clean image (empirical sd at P)."""
    cfg = config("snr=[3, 3]", "background_photons=[20, 20]")
    sim = simulate_field(cfg, index=0)
    assert sim.stats.snr_target == 3.0
    assert sim.stats.snr == pytest.approx(3.0, rel=1e-6)
    base = simulate_field(config("background_photons=[20, 20]"), index=0)
    scale = sim.stats.photon_scale
    np.testing.assert_allclose(sim.emitters.photons, base.emitters.photons * scale)
    np.testing.assert_allclose(sim.clean - 20, (base.clean - 20) * scale, rtol=1e-5, atol=1e-3)

    camera = cfg.noise.config  # poisson_gaussian defaults: counts -> photons
    noise = get_registry().create("noise", cfg.noise.plugin, camera)
    rng = np.random.default_rng(0)
    draws = np.stack([noise.apply(sim.clean, rng) for _ in range(400)]).astype(np.float64)
    photons = (draws - camera.offset_adu) / (camera.gain_adu_per_e * camera.qe)
    structure = sim.clean.astype(np.float64) - 20
    signal = photon_budget.signal_pixels(structure)
    measured = structure[signal].mean() / np.sqrt(photons.var(axis=0)[signal].mean())
    assert measured == pytest.approx(3.0, rel=0.05)


def test_snr_scale_is_monotone_and_poisson_scales_as_square_root(config):
    """Shot noise only, no background: SNR ∝ sqrt(photons), so SNR 4 needs 4x the photons
    of SNR 2."""
    scales = {
        t: simulate_field(config(f"snr=[{t}, {t}]", "noise={plugin: poisson}"), 0).stats
        for t in (2, 4)
    }
    assert scales[4].photon_scale / scales[2].photon_scale == pytest.approx(4.0, rel=1e-6)
    drawn = [simulate_field(config("snr=[2, 4]"), i).stats for i in range(3)]
    assert all(2 <= s.snr_target <= 4 and s.snr == pytest.approx(s.snr_target) for s in drawn)


def test_unreachable_snr_is_a_config_error():
    class Multiplicative:  # sd grows as fast as the signal: SNR never passes 2
        def noise_sd_photons(self, expected):
            return 0.5 * np.asarray(expected) + 1.0

    structure = np.zeros((1, 1, 8, 8))
    structure[0, 0, 4, 4] = 10.0
    assert photon_budget.photon_scale_for_snr(structure, 0.0, Multiplicative(), 1.5) > 0
    with pytest.raises(ConfigError, match="cannot be reached"):
        photon_budget.photon_scale_for_snr(structure, 0.0, Multiplicative(), 3.0)
    # no signal: nothing to scale, SNR undefined
    assert photon_budget.photon_scale_for_snr(structure * 0, 1.0, Multiplicative(), 3.0) == 1.0
    assert math.isnan(photon_budget.snr(structure * 0, 1.0, Multiplicative()))


def test_movie_has_time_axis_and_masks_per_frame(config):
    cfg = config("n_frames=3", "photophysics={plugin: blinking}")
    sim = simulate_field(cfg, index=0)
    assert sim.image.axes == "TCZYX"
    assert sim.image.shape[:2] == (3, 1)
    assert sim.clean.shape == sim.image.shape
    assert len(sim.frame_masks) == 3
    assert not np.array_equal(sim.image.data[0], sim.image.data[1])


def test_drift_moves_images_and_masks_by_whole_pixels(config):
    """A drift of 120 nm/s at 1 s per frame is exactly 2 pixels of 60 nm per frame in y:
    the masks are the first frame's shifted, and so is the noise-free image."""
    cfg = config(
        "n_frames=3",
        "motion={frame_interval_s: 1.0, drift_nm_per_s: [0, 120, 0]}",
        "structures.0.structure.margin_nm=700",
        "structures.1.structure.margin_nm=700",
        "tile_px=[64, 48]",
    )
    sim = simulate_field(cfg, index=0)
    shift = sim.emitters.shift_nm
    assert shift.shape == (3, sim.geometry.n_instances + 1, 3)
    np.testing.assert_allclose(shift[:, :, 1], [[0.0] * 6, [120.0] * 6, [240.0] * 6])
    first = sim.frame_masks[0]
    for t in (1, 2):
        moved = sim.frame_masks[t]
        np.testing.assert_array_equal(moved.semantic, np.roll(first.semantic, 2 * t, axis=2))
        np.testing.assert_array_equal(moved.instances, np.roll(first.instances, 2 * t, axis=1))
        # off-grid rendering is shift-invariant: frame t is frame 0 moved down 2t rows
        # (to within 1 % of the peak: the renderer's own accuracy, far below what a
        # one-pixel error would give)
        moved_image, first_image = sim.clean[t, ..., 2 * t :, :], sim.clean[0, ..., : -2 * t, :]
        assert np.abs(moved_image - first_image).max() < 0.01 * first_image.max()


def test_diffusion_mean_squared_displacement():
    """Brownian steps: MSD per axis = 2 D t; drift moves instance 0 too, diffusion does not."""
    config = MotionConfig(
        frame_interval_s=0.1, drift_nm_per_s=(0.0, 0.0, 50.0), diffusion_um2_per_s=(0.2, 0.2)
    )
    shift = instance_shifts(config, 11, 3000, np.random.default_rng(1))
    assert shift.shape == (11, 3001, 3)
    assert not shift[0].any()
    drift = 50.0 * 0.1 * np.arange(11)
    np.testing.assert_allclose(shift[:, 0, 2], drift)
    np.testing.assert_allclose(shift[:, 0, :2], 0.0)
    displacement = shift[:, 1:] - np.stack([np.zeros(11), np.zeros(11), drift], axis=1)[:, None]
    for t in (1, 5, 10):
        msd = (displacement[t] ** 2).mean(axis=0)  # per axis, nm²
        theory = 2 * 0.2e6 * t * 0.1
        # mean of 3000 chi-square(1) variables: relative sd sqrt(2 / 3000) ≈ 2.6 %
        np.testing.assert_allclose(msd, theory, rtol=4 * np.sqrt(2 / 3000))


def test_ground_truth_rule_gets_clean_noise_and_microscope(config, monkeypatch):
    registry = get_registry()
    seen = []
    create = registry.create

    class Spy:
        def __init__(self, rule):
            self.rule = rule

        def masks(self, geometry, emitters, field, **kwargs):
            seen.append(kwargs)
            return self.rule.masks(geometry, emitters, field, **kwargs)

    def spying_create(kind, name, cfg=None):
        made = create(kind, name, cfg)
        return Spy(made) if kind == "ground_truth" else made

    monkeypatch.setattr(registry, "create", spying_create)
    sim = simulate_field(config("n_frames=2", "background_photons=[3, 3]"), index=0)
    assert len(seen) == 2
    for t, kwargs in enumerate(seen):
        np.testing.assert_array_equal(kwargs["clean"], sim.clean[t])
        assert callable(kwargs["noise"].apply)
        assert kwargs["microscope"].channel_names == ("widefield",)


def test_combine_keeps_classes_by_name():
    g1 = Geometry.spheres(("a",), [[0, 0, 0]], [1], [1], [0])
    g2 = Geometry.spheres(("b",), [[0, 1, 1]], [1], [1], [0])
    e1 = Emitters([[0, 0, 0]], [1], [1], [0], ("a",))
    e2 = Emitters([[0, 1, 1], [0, 1, 2]], [1, 1], [1, 1], [0, 0], ("b",))
    geometry, emitters = combine([(g1, e1), (g2, e2)])
    assert geometry.class_names == ("a", "b")
    assert emitters.instance.tolist() == [1, 2, 2]
    assert emitters.klass.tolist() == [0, 1, 1]
