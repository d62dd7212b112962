"""The nile_red_cell phantom: determinism, classes and their exclusivity, instances,
emitter densities, sizes, spectral ordering through the spinning disk, config errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from subcell.core.config import load_layers
from subcell.core.errors import ConfigError
from subcell.core.kinds import Phantom
from subcell.core.model import Emitters, Field
from subcell.core.structuring import structure
from subcell.plugins.microscopes.spectra import band_fraction
from subcell.plugins.microscopes.spinning_disk import (
    NILE_RED_CHANNELS,
    SpinningDisk,
    SpinningDiskConfig,
)
from subcell.plugins.nile_red.compartments import (
    BINARY,
    CLASS_NAMES,
    GROUPS,
    LabelConfig,
)
from subcell.plugins.nile_red.layout import SPHERE_CLASSES
from subcell.plugins.nile_red.organelles import SpheresConfig
from subcell.plugins.nile_red.phantom import NileRedCell, NileRedCellConfig

CONFIGS = Path(__file__).parents[2] / "configs" / "nile_red"
VOXEL = (250.0, 164.6, 164.6)
BANDS = np.array([(lo, hi) for _, lo, hi in NILE_RED_CHANNELS])


def _phantom_config(path: Path) -> NileRedCellConfig:
    data, _ = load_layers(path)
    section = {k: v for k, v in data["phantom"].items() if k != "plugin"}
    return structure(section, NileRedCellConfig, lambda kind, name: None)


@pytest.fixture(scope="module")
def tiny() -> NileRedCellConfig:
    return _phantom_config(CONFIGS / "tiny" / "sim-cell.yaml")


@pytest.fixture(scope="module")
def default_cell():
    """A default cell on the paper's working grid (256 x 256 x 24 at 164.6 / 250 nm)."""
    config = _phantom_config(CONFIGS / "sim-cell.yaml")
    field = Field((24, 256, 256), VOXEL)
    layout, rasters, dye = NileRedCell(config).draw_parts(field, np.random.default_rng(3))
    return config, field, layout, rasters, dye


def _channel(name: str) -> int:
    return CLASS_NAMES.index(name)


def test_same_seed_same_bytes(tiny):
    field = Field((8, 64, 64), VOXEL)
    phantom = NileRedCell(tiny)
    a = phantom.draw(field, np.random.default_rng(5))
    b = phantom.draw(field, np.random.default_rng(5))
    c = phantom.draw(field, np.random.default_rng(6))
    ea, eb = a.dyes[0].emitters, b.dyes[0].emitters
    assert ea.position_nm.tobytes() == eb.position_nm.tobytes()
    assert ea.photons.tobytes() == eb.photons.tobytes()
    assert ea.instance.tobytes() == eb.instance.tobytes()
    assert a.dyes[0].emission_peak_nm.tobytes() == b.dyes[0].emission_peak_nm.tobytes()
    assert a.masks.semantic.tobytes() == b.masks.semantic.tobytes()
    assert a.masks.instances.tobytes() == b.masks.instances.tobytes()
    assert a.masks.semantic.tobytes() != c.masks.semantic.tobytes()


def test_scene_is_one_nile_red_dye_with_15_classes(tiny):
    phantom = NileRedCell(tiny)
    assert isinstance(phantom, Phantom)
    field = Field((8, 64, 64), VOXEL)
    scene = phantom.draw(field, np.random.default_rng(0))
    (dye,) = scene.dyes
    assert dye.name == "nile_red"
    assert dye.emission_peak_nm.shape == (len(dye.emitters),)
    assert dye.emitters.class_names == CLASS_NAMES
    assert scene.masks.class_names == CLASS_NAMES
    assert scene.masks.semantic.shape == (15, 8, 64, 64)
    assert scene.masks.semantic.dtype == np.uint8
    assert scene.masks.instances.dtype == np.uint32
    assert len(dye.emitters) > 5000


def test_default_cell_has_every_class(default_cell):
    config, field, layout, rasters, dye = default_cell
    voxels = rasters.masks.semantic.reshape(15, -1).sum(axis=1)
    assert (voxels > 0).all(), dict(zip(CLASS_NAMES, voxels.tolist(), strict=True))
    # Volume classes are large, the thin and small ones a minority of the cell.
    assert voxels[_channel("cytosol")] > 50_000
    assert voxels[_channel("nucleus")] > 20_000
    assert voxels[_channel("er")] > 5_000
    emitted = np.bincount(dye.emitters.klass, minlength=15)
    assert (np.delete(emitted, _channel("ecs")) > 0).all()
    # A sane number of emitters for the renderer.
    assert 1e5 < len(dye.emitters) < 1.5e6


def test_groups_are_exclusive_and_volume_covers_all(default_cell):
    _, _, _, rasters, _ = default_cell
    sem = rasters.masks.semantic.astype(np.int32)
    volume = sum(sem[_channel(n)] for n in GROUPS["volume"])
    assert (volume == 1).all()
    for group in ("er", "pm"):
        assert sum(sem[_channel(n)] for n in GROUPS[group]).max() == 1
    structure_layer = sum(sem[_channel(n)] for n in CLASS_NAMES if n not in GROUPS["volume"])
    assert structure_layer.max() == 1
    binary = sum(sem[_channel(n)] for n in BINARY)
    assert binary.max() == 1
    # Binary classes overlap the volume classes (organelles sit in the cytosol).
    assert (sem[_channel("mitochondria")] & sem[_channel("cytosol")]).sum() > 100
    # Membranes are thin: the plasma membrane has at most 2 voxels along z in a column
    # of the thick part of the cell, and the nuclear envelope is the nucleus's rim.
    nucleus = sem[_channel("nucleus")].astype(bool)
    envelope = sem[_channel("nuclear_membrane")].astype(bool)
    assert envelope.sum() < 0.3 * nucleus.sum()
    assert not (envelope & ~nucleus).any()


def test_instances_are_per_object_and_match_emitters(default_cell):
    _, _, layout, rasters, dye = default_cell
    ids = rasters.masks.instances
    structure = rasters.structure
    present = np.unique(ids[ids > 0])
    # Each id sits on voxels of one class only.
    classes = {int(i): set() for i in present}
    for i, code in zip(ids[ids > 0].tolist(), structure[ids > 0].tolist(), strict=True):
        classes[i].add(code)
    assert all(len(c) == 1 for c in classes.values())
    counts = layout.counts()
    n_objects = sum(counts.values())
    assert present.max() <= n_objects
    # Droplets: every droplet whose centre lies in the field shows with its own id.
    drops = layout.objects["lipid_droplet"]
    assert set(drops.instance.tolist()) <= set(present.tolist())
    # Emitters carry the same ids as the masks, and of the same class.
    em = dye.emitters
    objects = em.instance > 0
    assert set(np.unique(em.instance[objects]).tolist()) <= set(range(1, n_objects + 1))
    ld = em.klass == _channel("lipid_droplet")
    assert set(np.unique(em.instance[ld]).tolist()) == set(drops.instance.tolist())
    assert (em.instance[em.klass == _channel("er")] == 0).all()


def test_emitter_counts_within_poisson_bounds(default_cell):
    config, _, layout, _, dye = default_cell
    em = dye.emitters
    lab = config.labelling

    def check(name, expected):
        n = int((em.klass == _channel(name)).sum())
        assert abs(n - expected) < 4 * np.sqrt(expected) + 1, (name, n, expected)
        return n

    drops = layout.radii_nm("lipid_droplet")
    check(
        "lipid_droplet", lab.lipid_droplet.volume_per_um3 * (4 / 3 * np.pi * drops**3).sum() / 1e9
    )
    pero = layout.radii_nm("peroxisome")
    check("peroxisome", lab.peroxisome.surface_per_um2 * (4 * np.pi * pero**2).sum() / 1e6)
    envelope = layout.shape.nucleus.area_nm2() / 1e6
    check("nuclear_membrane", lab.nuclear_membrane.surface_per_um2 * envelope)
    g = layout.golgi
    faces = 2 * np.pi * (np.repeat(g.radius_nm, g.cisternae) ** 2).sum() / 1e6
    check("golgi", lab.golgi.surface_per_um2 * faces)


def test_sizes_within_configured_ranges(default_cell):
    config, field, layout, rasters, _ = default_cell
    spheres = config.spheres()
    for kind in SPHERE_CLASSES:
        r = layout.radii_nm(kind)
        low, high = spheres[kind].radius_nm
        assert len(r) >= spheres[kind].count[0] // 4, kind
        assert r.min() >= low and r.max() <= high, kind
    for kind, cfg in (
        ("mitochondria", config.mitochondria),
        ("filopodia", config.filopodia),
        ("nuclear_reticulum", config.nucleus),
    ):
        r = layout.radii_nm(kind)
        bounds = getattr(cfg, "radius_nm", None) or cfg.reticulum_radius_nm
        assert r.min() >= bounds[0] and r.max() <= bounds[1], kind
    mito = layout.objects["mitochondria"]
    length = np.bincount(mito.instance - mito.instance.min(), weights=mito.length_nm)
    assert length.min() >= config.mitochondria.length_um[0] * 1e3 - 1
    assert length.max() <= config.mitochondria.length_um[1] * 1e3 + 150
    g = layout.golgi
    assert config.golgi.stacks[0] // 2 <= len(g) <= config.golgi.stacks[1]
    assert g.radius_nm.min() >= config.golgi.cisterna_radius_nm[0]
    # Masks agree with the drawn sizes: equivalent radius of big droplets within 35 %.
    drops = layout.objects["lipid_droplet"]
    voxel_volume = np.prod(field.voxel_nm)
    ids = rasters.masks.instances
    for i, r in zip(drops.instance, drops.radius_nm, strict=True):
        if r >= 300:
            r_mask = np.cbrt(3 * (ids == i).sum() * voxel_volume / (4 * np.pi))
            assert abs(r_mask / r - 1) < 0.35, (r, r_mask)


def _ratio_by_class(dye) -> dict[str, float]:
    """Red / yellow ratio of all photons each compartment emits into the two bands."""
    frac = band_fraction(dye.emission_peak_nm, 100.0, BANDS)
    out = {}
    for i, name in enumerate(CLASS_NAMES):
        sel = dye.emitters.klass == i
        if sel.any():
            photons = dye.emitters.photons[sel, None] * frac[sel]
            out[name] = float(photons[:, 1].sum() / photons[:, 0].sum())
    return out


def test_emitted_ratio_follows_lipid_polarity(default_cell):
    """Lipid droplets < plasma membrane < Golgi < ER < mitochondria in red / yellow."""
    ratio = _ratio_by_class(default_cell[4])
    order = ["lipid_droplet", "plasma_membrane", "golgi", "er", "mitochondria"]
    values = [ratio[n] for n in order]
    assert values == sorted(values), dict(zip(order, values, strict=True))
    assert ratio["lipid_droplet"] < 0.1 < ratio["plasma_membrane"] < 0.22 < ratio["er"]


def _window(dye, rasters, field, centre_vox, size):
    """Emitters and masks of a window of ``size`` voxels around ``centre_vox`` (z from 0)."""
    size = np.asarray(size)
    start = np.clip(np.asarray(centre_vox) - size // 2, 0, np.asarray(field.shape) - size)
    start[0] = 0
    origin = start * np.asarray(field.voxel_nm)
    sub = Field(tuple(size), field.voxel_nm)
    pos = dye.emitters.position_nm - origin
    keep = ((pos > -1000) & (pos < sub.extent_nm + 1000)).all(axis=1)
    em = dye.emitters
    emitters = Emitters(
        pos[keep], em.photons[keep], em.instance[keep], em.klass[keep], em.class_names
    )
    box = tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))
    return sub, emitters, dye.emission_peak_nm[keep], rasters.masks.semantic[(slice(None), *box)]


def _largest_object_centre(rasters, name: str) -> np.ndarray:
    """Voxel at the centroid of the class's largest instance (or of all its voxels)."""
    inside = rasters.masks.semantic[_channel(name)].astype(bool)
    ids = rasters.masks.instances[inside]
    where = np.argwhere(inside)
    if ids.any():
        where = where[ids == np.bincount(ids).argmax()]
    return where[np.argmin(np.linalg.norm(where - where.mean(axis=0), axis=1))]


def test_spinning_disk_ratio_follows_lipid_polarity(tiny):
    """Rendered through the spinning disk, red / yellow over each class's voxels in a
    small window around it: lipid droplets < plasma membrane < ER < mitochondria."""
    field = Field((8, 64, 64), VOXEL)
    _, rasters, dye = NileRedCell(tiny).draw_parts(field, np.random.default_rng(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the working grid is undersampled, as the paper's
        scope = SpinningDisk(
            SpinningDiskConfig(
                na=1.49,
                pixel_nm=VOXEL[1],
                z_step_nm=VOXEL[0],
                n_z=4,
                focus_depth_nm=500.0,
                depth_step_nm=200.0,
                psf_radius_nm=1000.0,
                device="cpu",
            )
        )
    ratios = {}
    for name in ("lipid_droplet", "plasma_membrane", "er", "mitochondria"):
        centre = _largest_object_centre(rasters, name)
        sub, emitters, peaks, masks = _window(dye, rasters, field, centre, (4, 16, 16))
        image = scope.image(emitters, sub, emission_peak_nm=peaks)
        inside = masks[_channel(name)].astype(bool)
        ratios[name] = float(image[1][inside].sum() / image[0][inside].sum())
    values = list(ratios.values())
    assert values == sorted(values), ratios
    assert ratios["lipid_droplet"] < 0.6 * ratios["plasma_membrane"], ratios
    assert 0.05 < ratios["lipid_droplet"] < 0.15 < ratios["plasma_membrane"] < 0.3, ratios


def test_invalid_configs_name_the_field():
    with pytest.raises(ValueError, match="'count'"):
        SpheresConfig(count=(5, 1))
    with pytest.raises(ValueError, match="'emission_peak_nm'"):
        LabelConfig(emission_peak_nm=1000.0)
    resolver = lambda kind, name: None  # noqa: E731 - no plugin specs inside
    with pytest.raises(ConfigError, match=r"lysosomes\.count"):
        structure({"lysosomes": {"count": [5, 1]}}, NileRedCellConfig, resolver)
    with pytest.raises(ConfigError, match=r"nucleus\.aspect"):
        structure({"nucleus": {"aspect": [0.5, 1.2]}}, NileRedCellConfig, resolver)
    with pytest.raises(ConfigError, match=r"labelling\.er\.surface_per_um2"):
        structure({"labelling": {"er": {"surface_per_um2": -1}}}, NileRedCellConfig, resolver)
    with pytest.raises(ConfigError, match="mitochondira"):
        structure({"mitochondira": {}}, NileRedCellConfig, resolver)
