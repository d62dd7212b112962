"""One simulated field through the whole plugin chain."""

import numpy as np
import pytest

from subcell.core.model import Emitters, Geometry
from subcell.pipeline.config import load_config
from subcell.pipeline.simulate import combine, imaging_field, simulate_field

CONFIG = """\
step: simulate
seed: 11
tile_px: [48, 40]
structures:
  - structure: {plugin: beads, count: [3, 3], diameter_nm: 200, min_separation_nm: 600}
    labelling: {plugin: surface, density_per_um2: 3000, photons_per_emitter: 50}
  - structure: {plugin: beads, count: [2, 2], point_source: true}
    labelling: {plugin: volume, photons_per_emitter: 2000}
microscope: {plugin: epi, pixel_nm: 60}
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text(CONFIG)
    return lambda *overrides: load_config(path, list(overrides)).config


def test_same_seed_same_bytes_and_fields_differ(config):
    first = simulate_field(config(), index=0)
    again = simulate_field(config(), index=0)
    other = simulate_field(config(), index=1)
    assert first.image.data.tobytes() == again.image.data.tobytes()
    assert first.masks.instances.tobytes() == again.masks.instances.tobytes()
    assert first.image.data.tobytes() != other.image.data.tobytes()
    reseeded = simulate_field(config("seed=12"), index=0)
    assert first.image.data.tobytes() != reseeded.image.data.tobytes()


def test_field_comes_from_the_microscope_and_tile(config):
    sim = simulate_field(config(), index=0)
    assert imaging_field(config()).shape == (1, 48, 40)
    assert sim.image.shape == (1, 1, 48, 40)
    assert sim.image.voxel_nm == (1300.0, 60.0, 60.0)
    # 3 + 2 beads, instance ids unique across the two structure entries
    assert sim.geometry.n_instances == 5
    assert set(np.unique(sim.emitters.instance)) == {1, 2, 3, 4, 5}


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


def test_movie_has_time_axis(config):
    cfg = config("n_frames=3", "photophysics={plugin: blinking}")
    sim = simulate_field(cfg, index=0)
    assert sim.image.axes == "TCZYX"
    assert sim.image.shape[:2] == (3, 1)
    assert not np.array_equal(sim.image.data[0], sim.image.data[1])


def test_combine_keeps_classes_by_name():
    g1 = Geometry.spheres(("a",), [[0, 0, 0]], [1], [1], [0])
    g2 = Geometry.spheres(("b",), [[0, 1, 1]], [1], [1], [0])
    e1 = Emitters([[0, 0, 0]], [1], [1], [0], ("a",))
    e2 = Emitters([[0, 1, 1], [0, 1, 2]], [1, 1], [1, 1], [0, 0], ("b",))
    geometry, emitters = combine([(g1, e1), (g2, e2)])
    assert geometry.class_names == ("a", "b")
    assert emitters.instance.tolist() == [1, 2, 2]
    assert emitters.klass.tolist() == [0, 1, 1]
