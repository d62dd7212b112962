"""Simulated datasets in zarr: layout, split, montage, videos, workers, resume, refusals."""

import json

import numpy as np
import pytest
import zarr

from subcell.core.errors import ConfigError, SubcellError, VolumeError
from subcell.pipeline import dataset as dataset_module
from subcell.pipeline.config import load_config
from subcell.pipeline.dataset import open_dataset, single_threaded, split_indices, write_dataset
from subcell.pipeline.simulate import simulate_field
from subcell.pipeline.tiles import dataset_image

CONFIG = """\
step: simulate
seed: 4
tile_px: [32, 32]
n_tiles: 5
structures:
  - structure: {plugin: beads, count: [1, 3], diameter_nm: 300, margin_nm: 300}
    labelling: {plugin: surface, density_per_um2: 1500, photons_per_emitter: 60}
microscope: {plugin: epi, pixel_nm: 80, psf_radius_nm: 1500}
ground_truth: {plugin: geometry_projection}
"""
ARRAYS = ("images", "clean", "masks", "instances", "tile_stats", "split", "done")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "sim.yaml"
    path.write_text(CONFIG)
    return lambda *overrides: load_config(path, list(overrides)).config


def _arrays(path):
    group = zarr.open_group(path, mode="r")
    return {name: group[name][:] for name in ARRAYS}


def _simulate(cfg, index):
    """A tile as the writer makes it: one BLAS thread, so the last bits match."""
    with single_threaded():
        return simulate_field(cfg, index)


def _same_bytes(a, b):
    first, second = _arrays(a), _arrays(b)
    return all(first[n].tobytes() == second[n].tobytes() for n in ARRAYS)


def test_layout_attributes_and_split(tmp_path, config):
    cfg = config("snr=[2, 4]", "background_photons=[1, 5]")
    result = write_dataset(cfg, tmp_path / "d.zarr")
    assert (result.status, result.n_images, result.n_simulated) == ("written", 5, 5)
    data = open_dataset(tmp_path / "d.zarr")
    assert data.complete and len(data) == 5
    assert data.images.shape == (5, 1, 1, 32, 32) and data.images.dtype == np.float32
    assert data.clean.shape == (5, 1, 1, 32, 32) and data.clean.dtype == np.float32
    assert data.masks.shape == (5, 1, 1, 32, 32) and data.masks.dtype == np.uint8
    assert data.instances.shape == (5, 1, 32, 32) and data.instances.dtype == np.uint32
    assert data.images.chunks == (1, 1, 1, 32, 32)  # one tile per chunk
    assert data.class_names == ("bead",) and data.channel_names == ("widefield",)
    assert data.voxel_nm == (1300.0, 80.0, 80.0)
    attrs = data.attrs
    assert attrs["axes"]["images"] == "NCZYX" and attrs["axes"]["masks"] == "NKZYX"
    assert attrs["provenance"]["seed"] == 4 and attrs["provenance"]["config"]["n_tiles"] == 5
    assert "noise_sd_photons" in attrs["snr_definition"]
    # every image is exactly the tile simulate_field makes for its index
    for i in range(5):
        sim = _simulate(cfg, i)
        assert data.images[i].tobytes() == sim.image.data.tobytes()
        assert data.clean[i].tobytes() == sim.clean.tobytes()
        assert data.masks[i].tobytes() == sim.masks.semantic.tobytes()
        assert data.instances[i].tobytes() == sim.masks.instances.tobytes()
        assert data.tile_stats[i, 0].tolist() == list(sim.stats.as_tuple())
    # per-tile photon budget: targets in range and met, background in range
    targets, snr = np.array(attrs["tiles"]["snr_target"]), np.array(attrs["tiles"]["snr"])
    assert ((targets >= 2) & (targets <= 4)).all()
    np.testing.assert_allclose(snr, targets, rtol=1e-6)
    background = np.array(attrs["tiles"]["background_photons"])
    assert ((background >= 1) & (background <= 5)).all()
    # 60/20/20 of 5: 3/1/1, disjoint, covering, same as the split array
    parts = [data.split(name) for name in ("train", "val", "test")]
    assert [len(p) for p in parts] == [3, 1, 1]
    assert sorted(sum(parts, [])) == list(range(5))
    codes = zarr.open_group(tmp_path / "d.zarr", mode="r")["split"][:]
    for code, part in enumerate(parts):
        assert np.flatnonzero(codes == code).tolist() == part


def test_split_is_deterministic_and_adjustable(config):
    assert split_indices(10, (0.6, 0.2, 0.2), 1) == split_indices(10, (0.6, 0.2, 0.2), 1)
    assert split_indices(10, (0.6, 0.2, 0.2), 1) != split_indices(10, (0.6, 0.2, 0.2), 2)
    sizes = {k: len(v) for k, v in split_indices(10, (0.7, 0.1, 0.2), 1).items()}
    assert sizes == {"train": 7, "val": 1, "test": 2}
    assert config("split=[0.5, 0.5, 0]").split == (0.5, 0.5, 0.0)
    with pytest.raises(ConfigError, match="split"):
        config("split=[0.5, 0.2, 0.2]")


def test_workers_do_not_change_bytes_and_seed_does(tmp_path, config):
    cfg = config("n_tiles=3", "background_photons=[0, 3]")
    write_dataset(cfg, tmp_path / "one.zarr", workers=1)
    write_dataset(cfg, tmp_path / "two.zarr", workers=2)
    assert _same_bytes(tmp_path / "one.zarr", tmp_path / "two.zarr")
    write_dataset(config("n_tiles=3", "background_photons=[0, 3]", "seed=5"), tmp_path / "s.zarr")
    assert not np.array_equal(
        _arrays(tmp_path / "one.zarr")["images"], _arrays(tmp_path / "s.zarr")["images"]
    )


def test_interrupted_run_resumes_to_identical_bytes(tmp_path, config, monkeypatch):
    cfg = config()
    write_dataset(cfg, tmp_path / "ref.zarr")
    real = dataset_module.dataset_image
    calls = []

    def failing(*args, **kwargs):
        if len(calls) == 3:
            raise RuntimeError("power cut")
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset_module, "dataset_image", failing)
    with pytest.raises(RuntimeError, match="power cut"):
        write_dataset(cfg, tmp_path / "cut.zarr")
    group = zarr.open_group(tmp_path / "cut.zarr", mode="r")
    assert group.attrs["complete"] is False
    assert group["done"][:].tolist() == [1, 1, 1, 0, 0]
    with pytest.raises(VolumeError, match="incomplete dataset \\(3 of 5"):
        open_dataset(tmp_path / "cut.zarr")
    partial = open_dataset(tmp_path / "cut.zarr", allow_incomplete=True)
    assert not partial.complete and not partial.images[4].any()

    monkeypatch.setattr(dataset_module, "dataset_image", real)
    result = write_dataset(cfg, tmp_path / "cut.zarr")
    assert (result.status, result.n_simulated) == ("resumed", 2)
    assert open_dataset(tmp_path / "cut.zarr").complete
    assert _same_bytes(tmp_path / "ref.zarr", tmp_path / "cut.zarr")
    again = write_dataset(cfg, tmp_path / "cut.zarr")
    assert (again.status, again.n_simulated) == ("complete", 0)


def test_existing_outputs_are_refused_unless_overwritten(tmp_path, config):
    out = tmp_path / "d.zarr"
    write_dataset(config("n_tiles=2"), out)
    with pytest.raises(ConfigError, match="different config") as caught:
        write_dataset(config("n_tiles=2", "seed=9"), out)
    assert "\n" not in str(caught.value)
    result = write_dataset(config("n_tiles=2", "seed=9"), out, overwrite=True)
    assert result.status == "written" and open_dataset(out).attrs["seed"] == 9

    other = tmp_path / "notes.txt"
    other.write_text("mine")
    with pytest.raises(ConfigError, match="not a subcell dataset"):
        write_dataset(config("n_tiles=1"), other)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="refusing to delete"):
        write_dataset(config("n_tiles=1"), folder, overwrite=True)
    assert (folder / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="workers"):
        write_dataset(config(), tmp_path / "w.zarr", workers=0)


def test_montage_places_four_tiles_with_unique_ids(tmp_path, config):
    cfg = config(
        "n_tiles=2", "montage=true", "tile_px=[16, 16]", "structures.0.structure.margin_nm=100"
    )
    write_dataset(cfg, tmp_path / "m.zarr")
    data = open_dataset(tmp_path / "m.zarr")
    assert data.images.shape == (2, 1, 1, 32, 32) and data.tile_stats.shape == (2, 4, 4)
    assert data.attrs["montage"]["grid"] == [[0, 1], [2, 3]]
    for i in range(2):
        offset = 0
        for j, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
            sim = _simulate(cfg, 4 * i + j)
            window = (..., slice(16 * row, 16 * row + 16), slice(16 * col, 16 * col + 16))
            assert data.images[i][window].tobytes() == sim.image.data.tobytes()
            assert data.masks[i][window].tobytes() == sim.masks.semantic.tobytes()
            local = sim.masks.instances
            expected = np.where(local > 0, local + offset, 0).astype(np.uint32)
            assert data.instances[i][window].tobytes() == expected.tobytes()
            offset += sim.geometry.n_instances


def test_video_dataset_has_a_time_axis(tmp_path, config):
    cfg = config(
        "n_tiles=2",
        "n_frames=3",
        "motion={frame_interval_s: 0.5, diffusion_um2_per_s: [0.01, 0.05]}",
    )
    write_dataset(cfg, tmp_path / "v.zarr")
    data = open_dataset(tmp_path / "v.zarr")
    assert data.images.shape == (2, 3, 1, 1, 32, 32)
    assert data.masks.shape == (2, 3, 1, 1, 32, 32)
    assert data.instances.shape == (2, 3, 1, 32, 32)
    assert data.attrs["axes"]["images"] == "NTCZYX" and data.attrs["frame_interval_s"] == 0.5
    sim = _simulate(cfg, 1)
    for t in range(3):
        assert data.masks[1, t].tobytes() == sim.frame_masks[t].semantic.tobytes()
    assert not np.array_equal(data.instances[1, 0], data.instances[1, 2])  # they moved


def test_progress_bar_and_reader_refusals(tmp_path, config, capsys):
    write_dataset(config("n_tiles=2"), tmp_path / "p.zarr", progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "images/s" in err
    with pytest.raises(VolumeError, match="not a subcell simulated dataset"):
        open_dataset(tmp_path / "missing.zarr")
    attrs = json.loads((tmp_path / "p.zarr" / "zarr.json").read_text())["attributes"]
    assert attrs["complete"] is True and attrs["format"] == dataset_module.FORMAT


def test_mask_channels_follow_the_dataset_classes(config):
    cfg = config()
    own = dataset_image(cfg, 0)
    assert own.class_names == ("bead",) and own.masks.any()
    wider = dataset_image(cfg, 0, class_names=("vesicle", "bead"))
    assert wider.masks.shape == (2, *own.masks.shape[1:])
    assert not wider.masks[0].any() and np.array_equal(wider.masks[1], own.masks[0])
    with pytest.raises(SubcellError, match="has classes \\['bead'\\]"):
        dataset_image(cfg, 0, class_names=("vesicle",))
