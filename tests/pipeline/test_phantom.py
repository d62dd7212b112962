"""The phantom step: scenes drawn by a phantom plugin, imaged and written as a dataset."""

import importlib
import json
import sys
import textwrap
from argparse import Namespace
from types import SimpleNamespace

import numpy as np
import pytest
import zarr

from subcell.cli import simulate as simulate_cli
from subcell.core.errors import ConfigError, PluginError, SubcellError, VolumeError
from subcell.core.hookspecs import hookimpl
from subcell.core.model import Emitters
from subcell.pipeline import dataset as dataset_module
from subcell.pipeline.config import load_config
from subcell.pipeline.dataset import open_dataset, single_threaded, write_dataset
from subcell.pipeline.phantom import render_scene, simulate_phantom
from subcell.pipeline.schemas import PhantomConfig
from subcell.registry import build_registry

# The test phantom lives in a module written to a temporary folder on sys.path, so that
# spawned worker processes can import it by name (pytest's own module name is not
# importable there). Two discs of 4 px radius, dye "cell" on the left one, dye "nucleus" on
# the right one; emitters are drawn at random inside each disc, the masks are exact.
PHANTOM_MODULE = "subcell_test_two_discs"
PHANTOM_SOURCE = '''
import attrs
import numpy as np

from subcell.core.hookspecs import hookimpl
from subcell.core.model import Emitters, Masks
from subcell.core.scene import Dye, Scene

CENTRES_PX = ((16.0, 9.0), (16.0, 23.0))  # (y, x) of the left and right disc
RADIUS_PX = 4.0


@attrs.frozen(kw_only=True)
class TwoDiscsConfig:
    """Two discs, one dye each.

    Attributes
    ----------
    emitters_per_dye
        Emitters of each dye.
    photons_per_emitter
        Photons of each emitter, per frame.
    peaks_nm
        Emission peak of each dye, nm (0: the microscope's own).
    bad_masks
        Draw masks one pixel too narrow (a broken phantom).
    """

    emitters_per_dye: int = 40
    photons_per_emitter: float = 100.0
    peaks_nm: tuple[float, float] = (0.0, 0.0)
    bad_masks: bool = False


def disc_masks(shape, voxel_nm):
    """Semantic masks (2, Z, Y, X) and instance ids (Z, Y, X) of the two discs."""
    yy, xx = np.mgrid[: shape[1], : shape[2]] + 0.5
    discs = [(yy - y) ** 2 + (xx - x) ** 2 <= RADIUS_PX**2 for y, x in CENTRES_PX]
    semantic = np.stack([np.broadcast_to(d, shape) for d in discs]).astype(np.uint8)
    instances = (semantic[0] * 1 + semantic[1] * 2).astype(np.uint32)
    return Masks(semantic, ("left", "right"), voxel_nm, instances)


class TwoDiscs:
    def __init__(self, config):
        self.config = config

    def draw(self, field, rng):
        c = self.config
        dyes = []
        for k, (name, (y, x)) in enumerate(zip(("cell", "nucleus"), CENTRES_PX)):
            radius = RADIUS_PX * np.sqrt(rng.uniform(0, 1, c.emitters_per_dye))
            angle = rng.uniform(0, 2 * np.pi, c.emitters_per_dye)
            position = np.column_stack(
                [
                    np.full(c.emitters_per_dye, field.extent_nm[0] / 2),
                    (y + radius * np.sin(angle)) * field.voxel_nm[1],
                    (x + radius * np.cos(angle)) * field.voxel_nm[2],
                ]
            )
            emitters = Emitters(
                position,
                np.full(c.emitters_per_dye, c.photons_per_emitter),
                np.full(c.emitters_per_dye, k + 1),
                np.full(c.emitters_per_dye, k),
                ("left", "right"),
            )
            peak = np.full(c.emitters_per_dye, c.peaks_nm[k]) if c.peaks_nm[k] else None
            dyes.append(Dye(name, emitters, peak))
        shape = field.shape[:2] + (field.shape[2] - 1,) if c.bad_masks else field.shape
        return Scene(dyes, disc_masks(shape, field.voxel_nm))


@hookimpl
def register_phantoms(register):
    register("two_discs", TwoDiscsConfig, TwoDiscs, "two discs, one dye each")
'''

EPI = """\
step: phantom
seed: 3
tile_px: [32, 32]
n_tiles: 4
background_photons: [1, 2]
phantom: {plugin: two_discs}
microscope: {plugin: epi, pixel_nm: 80, psf_radius_nm: 1500}
noise: {plugin: poisson}
"""
SPINNING = """\
step: phantom
seed: 1
tile_px: [32, 32]
phantom: {plugin: two_discs, peaks_nm: [600, 690], photons_per_emitter: 1000}
microscope: {plugin: spinning_disk, pixel_nm: 60, psf_radius_nm: 1000, n_z: 2, z_step_nm: 300}
noise: {plugin: poisson}
"""
ARRAYS = ("images", "clean", "masks", "instances", "tile_stats", "split", "done")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """The test phantom's module, importable by name while this module's tests run."""
    folder = tmp_path_factory.mktemp("phantom_plugin")
    (folder / f"{PHANTOM_MODULE}.py").write_text(textwrap.dedent(PHANTOM_SOURCE))
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield importlib.import_module(PHANTOM_MODULE)
    sys.modules.pop(PHANTOM_MODULE, None)


@pytest.fixture(scope="module")
def registry(phantoms):
    return build_registry(use_entry_points=False, extra={"two_discs": phantoms})


@pytest.fixture
def config(tmp_path, registry):
    def load(text=EPI, *overrides):
        path = tmp_path / "phantom.yaml"
        path.write_text(text)
        return load_config(path, list(overrides), registry=registry).config

    return load


def _simulate(cfg, index, registry):
    with single_threaded():
        return simulate_phantom(cfg, index, registry)


def _arrays(path):
    group = zarr.open_group(path, mode="r")
    return {name: group[name][:] for name in ARRAYS}


def _same_bytes(a, b):
    first, second = _arrays(a), _arrays(b)
    return all(first[n].tobytes() == second[n].tobytes() for n in ARRAYS)


def test_epi_images_each_dye_in_its_own_channel(config, registry, phantoms):
    cfg = config()
    assert isinstance(cfg, PhantomConfig) and cfg.n_frames == 1 and not cfg.montage
    sim = _simulate(cfg, 0, registry)
    assert sim.image.channel_names == ("cell", "nucleus")
    assert sim.image.data.shape == sim.clean.shape == (2, 1, 32, 32)
    background = sim.stats.background_photons
    assert 1 <= background <= 2 and sim.stats.photon_scale == 1.0
    epi = registry.create("microscope", "epi", cfg.microscope.config)
    for c, dye in enumerate(sim.scene.dyes):
        # Channel c is dye c alone, imaged as the microscope images it, plus background.
        with single_threaded():
            alone = epi.image(dye.emitters, sim.field)[0]
        np.testing.assert_allclose(sim.clean[c], alone + background, rtol=1e-5, atol=1e-4)
        signal = float(sim.clean[c].sum() - background * sim.clean[c].size)
        emitted = 40 * 100.0
        assert 0.8 * emitted < signal <= 1.001 * emitted
        # Detector counts: Poisson around the clean image (5 sigma).
        total = float(sim.clean[c].sum())
        assert abs(float(sim.image.data[c].sum()) - total) < 5 * np.sqrt(total)
    masks = phantoms.disc_masks((1, 32, 32), sim.field.voxel_nm).semantic[:, 0]
    for c in range(2):
        # Each dye's light sits on its own disc: > 10x brighter there than on the other.
        own, other = sim.clean[c, 0][masks[c] > 0], sim.clean[c, 0][masks[1 - c] > 0]
        assert own.mean() - background > 10 * (other.mean() - background)


def test_spinning_disk_splits_photons_by_emission_peak(config, registry):
    cfg = config(SPINNING)
    sim = _simulate(cfg, 0, registry)
    disk = registry.create("microscope", "spinning_disk", cfg.microscope.config)
    assert sim.image.channel_names == disk.channel_names == ("yellow", "red")
    assert sim.clean.shape == (2, 2, 32, 32)
    # The left disc's dye peaks at 600 nm, the right one's at 690 nm: red fraction per half.
    left = sim.clean[..., :16].sum(axis=(1, 2, 3))
    right = sim.clean[..., 16:].sum(axis=(1, 2, 3))
    red_left, red_right = left[1] / left.sum(), right[1] / right.sum()
    expected = disk.band_fractions(np.array([600.0, 690.0]))
    expected_red = expected[:, 1] / expected.sum(axis=1)
    assert red_right > red_left + 0.5
    assert red_left == pytest.approx(expected_red[0], abs=0.05)
    assert red_right == pytest.approx(expected_red[1], abs=0.05)

    # A dye without emission peaks is imaged at the microscope's emission_nm (620 nm).
    plain = config(SPINNING, "phantom.peaks_nm=[0, 690]")
    scene = _simulate(plain, 0, registry).scene
    peaks = np.concatenate([np.full(40, 620.0), np.full(40, 690.0)])
    with single_threaded():
        got, names = render_scene(scene, sim.field, disk)
        joined = Emitters.concatenate([d.emitters for d in scene.dyes], [0, 0])
        want = disk.image(joined, sim.field, emission_peak_nm=peaks)
    assert names == ("yellow", "red")
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_reruns_are_byte_identical_and_the_seed_matters(config, registry):
    cfg = config()
    first, second = _simulate(cfg, 2, registry), _simulate(cfg, 2, registry)
    assert first.image.data.tobytes() == second.image.data.tobytes()
    assert first.clean.tobytes() == second.clean.tobytes()
    other = _simulate(config(EPI, "seed=4"), 2, registry)
    assert other.image.data.tobytes() != first.image.data.tobytes()
    assert _simulate(cfg, 1, registry).image.data.tobytes() != first.image.data.tobytes()


def test_snr_target_scales_every_dye(config, registry):
    sim = _simulate(config(EPI, "snr=[3, 3]", "background_photons=[5, 5]"), 0, registry)
    assert sim.stats.snr_target == 3.0
    assert sim.stats.snr == pytest.approx(3.0, rel=1e-6)
    scale = sim.stats.photon_scale
    assert scale != 1.0
    for dye in sim.scene.dyes:
        np.testing.assert_allclose(dye.emitters.photons, 100.0 * scale)


def test_dataset_holds_the_scene_truth_and_names(tmp_path, config, registry, phantoms):
    cfg = config()
    result = write_dataset(cfg, tmp_path / "d.zarr", registry=registry)
    assert (result.status, result.n_images, result.n_simulated) == ("written", 4, 4)
    data = open_dataset(tmp_path / "d.zarr")
    assert data.channel_names == ("cell", "nucleus")
    assert data.class_names == ("left", "right")
    assert data.images.shape == (4, 2, 1, 32, 32) and data.masks.shape == (4, 2, 1, 32, 32)
    truth = phantoms.disc_masks((1, 32, 32), data.voxel_nm)
    for i in range(4):
        np.testing.assert_array_equal(data.masks[i], truth.semantic)
        np.testing.assert_array_equal(data.instances[i], truth.instances)
        sim = _simulate(cfg, i, registry)
        assert data.images[i].tobytes() == sim.image.data.tobytes()
    assert sorted(np.unique(data.instances[:]).tolist()) == [0, 1, 2]
    attrs = data.attrs
    assert attrs["phantom"] == {"plugin": "two_discs", "acquisition": "sequential"}
    assert attrs["provenance"]["step"] == "phantom"
    assert attrs["n_frames"] == 1 and attrs["montage"] is None
    assert sum(len(v) for v in attrs["split"].values()) == 4
    assert all(1 <= b <= 2 for b in np.ravel(attrs["tiles"]["background_photons"]))
    json.dumps(attrs)  # plain JSON throughout


def test_interrupted_run_resumes_to_identical_bytes(tmp_path, config, registry, monkeypatch):
    cfg = config()
    write_dataset(cfg, tmp_path / "ref.zarr", registry=registry)
    real = dataset_module.dataset_image
    calls = []

    def failing(*args, **kwargs):
        if len(calls) == 2:
            raise RuntimeError("power cut")
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset_module, "dataset_image", failing)
    with pytest.raises(RuntimeError, match="power cut"):
        write_dataset(cfg, tmp_path / "cut.zarr", registry=registry)
    assert zarr.open_group(tmp_path / "cut.zarr", mode="r")["done"][:].tolist() == [1, 1, 0, 0]
    monkeypatch.setattr(dataset_module, "dataset_image", real)
    result = write_dataset(cfg, tmp_path / "cut.zarr", registry=registry)
    assert (result.status, result.n_simulated) == ("resumed", 2)
    assert _same_bytes(tmp_path / "ref.zarr", tmp_path / "cut.zarr")
    with pytest.raises(ConfigError, match="different config"):
        write_dataset(config(EPI, "seed=9"), tmp_path / "cut.zarr", registry=registry)


def test_workers_do_not_change_bytes(tmp_path, config, registry):
    cfg = config(EPI, "n_tiles=3")
    write_dataset(cfg, tmp_path / "one.zarr", workers=1, registry=registry)
    write_dataset(cfg, tmp_path / "two.zarr", workers=2, registry=registry)
    assert _same_bytes(tmp_path / "one.zarr", tmp_path / "two.zarr")


def test_plugins_workers_cannot_import_are_refused_before_spawning(tmp_path, config, phantoms):
    def register_phantoms(register):
        factory = lambda c: phantoms.TwoDiscs(c)  # noqa: E731 - a lambda cannot be pickled
        register("two_discs", phantoms.TwoDiscsConfig, factory, "two discs, one dye each")

    plugin = SimpleNamespace(register_phantoms=hookimpl(register_phantoms))
    local = build_registry(use_entry_points=False, extra={"local": plugin})
    path = tmp_path / "p.yaml"
    path.write_text(EPI)
    cfg = load_config(path, ["n_tiles=3"], registry=local).config
    with pytest.raises(PluginError, match="phantom 'two_discs'.*cannot be sent to worker"):
        write_dataset(cfg, tmp_path / "w.zarr", workers=2, registry=local)


def test_unknown_phantom_names_the_registered_ones(config):
    with pytest.raises(SubcellError, match="two_discs"):
        config(EPI.replace("plugin: two_discs", "plugin: two_disks"))


def test_scene_masks_off_the_field_are_refused(config, registry):
    with pytest.raises(VolumeError, match="masks have shape \\(2, 1, 32, 31\\), expected"):
        simulate_phantom(config(EPI, "phantom.bad_masks=true"), 0, registry)


def test_a_phantom_must_return_a_scene(config, registry, monkeypatch, phantoms):
    monkeypatch.setattr(phantoms.TwoDiscs, "draw", lambda self, field, rng: None)
    with pytest.raises(PluginError, match="returned NoneType, expected a Scene"):
        simulate_phantom(config(), 0, registry)


def test_cli_runs_phantom_configs_and_refuses_wrong_steps(tmp_path, registry, monkeypatch):
    monkeypatch.setattr(simulate_cli, "registry", lambda: registry)
    path = tmp_path / "p.yaml"
    path.write_text(EPI)

    def args(**extra):
        base = dict(
            file=str(path),
            out=str(tmp_path / "cli.zarr"),
            n=2,
            seed=None,
            workers=1,
            overwrite=False,
            montage=False,
            overrides=[],
        )
        return Namespace(**(base | extra))

    assert simulate_cli._cmd_simulate(args()) == 0
    assert open_dataset(tmp_path / "cli.zarr").images.shape[0] == 2
    with pytest.raises(ConfigError, match="phantom images have no montage"):
        simulate_cli._cmd_simulate(args(montage=True))
    wrong = tmp_path / "seg.yaml"
    wrong.write_text("step: segment\nsegmenter: {plugin: otsu}\n")
    with pytest.raises(ConfigError, match="a segment config; simulate needs step: simulate or"):
        simulate_cli._cmd_simulate(args(file=str(wrong)))
