"""The clumped-cells phantom: reproducible scenes, packed cells with one nucleus each, cell
sizes in range, Poisson emitter counts, membrane rims, dye and class selection, bad configs."""

import functools
import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.model import Field, Masks
from subcell.core.structuring import structure
from subcell.plugins.cellcutter.phantom import (
    CellDyeConfig,
    ClumpedCells,
    ClumpedCellsConfig,
    NucleusDyeConfig,
    nucleus_centroids_px,
)
from subcell.plugins.cellcutter.phantom_dyes import membrane_profile
from subcell.plugins.microscopes.base import UndersamplingWarning
from subcell.plugins.microscopes.epi import Epi, EpiConfig

PIXEL_NM = 550.0  # the configs' 20x camera pixel
TILE = Field((1, 160, 160), (1300.0, PIXEL_NM, PIXEL_NM))  # 88 µm square


@functools.cache
def _draw(config, field=TILE, seed=0):
    """A scene (cached: configs and fields are frozen, and tests only read scenes)."""
    return ClumpedCells(config).draw(field, np.random.default_rng(seed))


@functools.cache
def _layout(config, field=TILE, seed=0):
    """The layout ``draw`` uses with the same seed (its first spawned generator)."""
    return ClumpedCells(config).layout(field, np.random.default_rng(seed).spawn(3)[0])


def _touching_border(instances):
    edge = np.concatenate([instances[0], instances[-1], instances[:, 0], instances[:, -1]])
    return set(np.unique(edge[edge > 0]).tolist())


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    cfg = ClumpedCellsConfig()
    first, other = _draw(cfg), _draw(cfg, seed=1)
    again = ClumpedCells(cfg).draw(TILE, np.random.default_rng(0))
    for a, b in zip(first.dyes, again.dyes, strict=True):
        assert a.name == b.name
        for name in ("position_nm", "photons", "instance", "klass"):
            assert getattr(a.emitters, name).tobytes() == getattr(b.emitters, name).tobytes()
    assert first.masks.semantic.tobytes() == again.masks.semantic.tobytes()
    assert first.masks.instances.tobytes() == again.masks.instances.tobytes()
    assert first.masks.instances.tobytes() != other.masks.instances.tobytes()


def test_cells_tile_the_colony_in_one_piece_each_with_one_nucleus_inside():
    cfg = ClumpedCellsConfig(confluence=1.0)  # one sheet of cells over the whole field
    layout = _layout(cfg)
    rows, cols = layout.field_window(TILE.shape[1:], pad_px=20)
    cells = layout.cells[rows, cols]
    # Tightly packed: (almost) every pixel belongs to a cell; only cells cut down to the
    # largest size leave a little intercellular space.
    assert (cells > 0).mean() >= 0.99
    # One piece per cell (4-connected) on the supersampled grid.
    for box_id, box in enumerate(ndimage.find_objects(cells), start=1):
        if box is not None:
            assert ndimage.label(cells[box] == box_id)[1] == 1

    scene = _draw(cfg)
    inst = scene.masks.instances[0]
    nucleus = scene.masks.semantic[scene.masks.class_names.index("nucleus"), 0] > 0
    assert (nucleus <= (inst > 0)).all()
    labels, n_nuclei = ndimage.label(nucleus)
    owner = ndimage.labeled_comprehension(inst, labels, np.arange(1, n_nuclei + 1), np.max, int, 0)
    lowest = ndimage.labeled_comprehension(inst, labels, np.arange(1, n_nuclei + 1), np.min, int, 0)
    assert (owner == lowest).all()  # no nucleus straddles two cells
    # Exactly one nucleus per cell that lies wholly in the field, and it does not touch the
    # cell's border: a one-pixel dilation of it stays in the cell.
    inner = sorted(set(np.unique(inst[inst > 0]).tolist()) - _touching_border(inst))
    assert len(inner) >= 8
    counts = np.bincount(owner, minlength=inst.max() + 1)
    assert (counts[inner] == 1).all()
    for label in inner:
        ring = ndimage.binary_dilation(nucleus & (inst == label)) & ~nucleus
        assert (inst[ring] == label).all()


def test_emitters_sit_in_their_own_cell():
    cfg = ClumpedCellsConfig()
    layout = _layout(cfg)
    scene = _draw(cfg)
    inst = scene.masks.instances[0]
    # Field ids of the layout's labels, from the masks: sample each cell at its pixels.
    lut = np.zeros(layout.n_cells + 1, dtype=np.int64)
    on_field = layout.on_field(layout.cells, TILE.shape[1:])
    lut[on_field[inst > 0]] = inst[inst > 0]
    for dye in scene.dyes:
        pos = dye.emitters.position_nm
        sub = np.floor((pos[:, 1:] - np.asarray(layout.origin_nm)) / layout.subpixel_nm)
        labels = layout.cells[sub[:, 0].astype(int), sub[:, 1].astype(int)]
        assert (labels > 0).all()
        seen = lut[labels] > 0
        assert seen.mean() > 0.5
        assert (dye.emitters.instance[seen] == lut[labels][seen]).all()
        if dye.name == "nucleus":
            assert layout.nuclei[sub[:, 0].astype(int), sub[:, 1].astype(int)].all()
        assert (pos[:, 0] >= 0).all() and (pos[:, 0] <= TILE.extent_nm[0]).all()


@pytest.mark.parametrize("diameter_um", [(12.0, 25.0), (8.0, 14.0)])
def test_cell_diameters_stay_in_the_configured_range(diameter_um):
    field = Field((1, 224, 224), (1300.0, PIXEL_NM, PIXEL_NM))
    cfg = ClumpedCellsConfig(cell_diameter_um=diameter_um, confluence=0.8, isolated_per_mm2=200)
    diameters = []
    for seed in range(2):
        layout = _layout(cfg, field, seed)
        inst = layout.on_field(layout.cells, field.shape[1:])
        area_um2 = np.bincount(inst.ravel())[1:] * (PIXEL_NM / 1e3) ** 2
        whole = sorted(set(np.unique(inst[inst > 0]).tolist()) - _touching_border(inst))
        diameters.append(2.0 * np.sqrt(area_um2[np.asarray(whole) - 1] / math.pi))
    diameters = np.concatenate(diameters)
    low, high = diameter_um
    assert len(diameters) >= 30
    assert diameters.min() >= low and diameters.max() <= high
    # The sizes spread over the range rather than piling up at one end.
    assert low + 0.2 * (high - low) < np.median(diameters) < high - 0.2 * (high - low)


def test_emitter_counts_are_poisson_with_the_configured_densities():
    cfg = ClumpedCellsConfig(
        cell_dye=CellDyeConfig(
            density_per_um2=30.0,
            brightness_sd=0.0,
            membrane_enrichment=1.0,
            nucleus_factor=0.5,
            photons_per_emitter=7.0,
        ),
        nucleus_dye=NucleusDyeConfig(density_per_um2=50.0, brightness_sd=0.0, texture=0.0),
    )
    layout = _layout(cfg)
    scene = _draw(cfg)
    window = layout.field_window(TILE.shape[1:], pad_px=math.ceil(3000 / PIXEL_NM))
    cells, nuclei = layout.cells[window] > 0, layout.nuclei[window]
    px_um2 = layout.subpixel_area_um2
    expected = {
        "cell": 30.0 * px_um2 * ((cells & ~nuclei).sum() + 0.5 * nuclei.sum()),
        "nucleus": 50.0 * px_um2 * nuclei.sum(),
    }
    for dye in scene.dyes:
        mean = expected[dye.name]
        assert mean > 1e4
        assert abs(len(dye.emitters) - mean) < 4.0 * math.sqrt(mean)
    cell = scene.dyes[0].emitters
    assert np.all(cell.photons == 7.0) and cell.class_names == ("cell",)


def test_membrane_rim_is_brighter_than_the_cytoplasm_in_a_noise_free_image():
    field = Field((1, 96, 96), (1300.0, PIXEL_NM, PIXEL_NM))
    cfg = ClumpedCellsConfig(
        confluence=1.0, dyes=("cell",), cell_dye=CellDyeConfig(brightness_sd=0.0)
    )
    scene = _draw(cfg, field)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndersamplingWarning)  # a 20x camera pixel
        epi = Epi(
            EpiConfig(
                na=0.75,
                emission_nm=670,
                pixel_nm=PIXEL_NM,
                immersion_index=1.0,
                immersion_design_index=1.0,
                depth_step_nm=100,
                device="cpu",
            )
        )
    image = epi.image(scene.dyes[0].emitters, field)[0, 0]
    inst = scene.masks.instances[0]
    nucleus = scene.masks.semantic[scene.masks.class_names.index("nucleus"), 0] > 0
    border = np.zeros(inst.shape, dtype=bool)
    for axis in (0, 1):
        differ = np.diff(inst, axis=axis) != 0
        lead = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
        trail = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
        border[lead] |= differ
        border[trail] |= differ
    border &= inst > 0
    interior = (ndimage.distance_transform_edt(~border) >= 4) & (inst > 0) & ~nucleus
    interior &= ~ndimage.binary_dilation(nucleus, iterations=2)
    assert border.sum() > 500 and interior.sum() > 500
    rim, cytoplasm = image[border].mean(), image[interior].mean()
    assert rim > 1.5 * cytoplasm
    # The nucleus region of the cell marker is dimmer than the cytoplasm.
    core = ndimage.binary_erosion(nucleus, iterations=2)
    assert image[core].mean() < 0.8 * cytoplasm


def test_membrane_profile_peaks_at_one_per_membrane():
    cells = np.zeros((90, 90), dtype=np.int32)
    cells[:, 10:45] = 1
    cells[:, 45:80] = 2  # an interface at x = 44.5 and free edges at 9.5 and 79.5
    profile = membrane_profile(cells, 0.3, (100.0, 100.0))[45]
    # Two membranes meet at the interface, each a line of peak 1; a free edge has one.
    assert profile[44] == pytest.approx(profile[45]) and 1.8 < profile[44] < 2.1
    assert 0.9 < profile[10] < 1.1 and 0.9 < profile[79] < 1.1
    assert profile[27] < 1e-6 and profile[0] < 0.01  # background gets no dye anyway


def test_dyes_and_classes_are_selected_and_the_rest_stays_the_same():
    full = _draw(ClumpedCellsConfig())
    only = _draw(ClumpedCellsConfig(dyes=("cell",), classes=("nucleus",)))
    assert [d.name for d in only.dyes] == ["cell"]
    assert only.masks.class_names == ("nucleus",) and only.masks.semantic.shape[0] == 1
    cell_full, cell_only = full.dyes[0].emitters, only.dyes[0].emitters
    assert cell_full.position_nm.tobytes() == cell_only.position_nm.tobytes()
    k = full.masks.class_names.index("nucleus")
    assert (full.masks.semantic[k] == only.masks.semantic[0]).all()
    reordered = _draw(ClumpedCellsConfig(dyes=("nucleus", "cell"), classes=("cell",)))
    assert [d.name for d in reordered.dyes] == ["nucleus", "cell"]


def test_instances_number_every_cell_seen_including_border_cells():
    scene = _draw(ClumpedCellsConfig(confluence=1.0))
    inst = scene.masks.instances[0]
    ids = np.unique(inst[inst > 0])
    assert (ids == np.arange(1, len(ids) + 1)).all()
    assert _touching_border(inst)  # cells cut by the image border keep their ids
    cell = scene.masks.semantic[scene.masks.class_names.index("cell"), 0]
    assert ((inst > 0) == (cell > 0)).all()
    # Emitters of cells outside the field carry ids above n.
    emitters = scene.dyes[0].emitters
    assert emitters.instance.min() >= 1 and emitters.instance.max() > ids[-1]


def test_nucleus_centroids_match_the_drawn_nuclei():
    cfg = ClumpedCellsConfig(confluence=1.0)
    scene, layout = _draw(cfg), _layout(cfg)
    ids, centroids = nucleus_centroids_px(scene.masks)
    inst = scene.masks.instances[0]
    assert len(ids) == len(centroids) and set(ids.tolist()) <= set(inst.ravel().tolist())
    # The drawn ellipse centres, in pixel indices (pixel i's centre at i).
    frames = layout.nucleus_frames
    centre_px = (frames.centre_um * 1e3 + np.asarray(layout.origin_nm)) / PIXEL_NM - 0.5
    on_field = layout.on_field(layout.cells, TILE.shape[1:])
    inner = set(np.unique(inst[inst > 0]).tolist()) - _touching_border(inst)
    checked = 0
    for cell_id, centroid in zip(ids, centroids, strict=True):
        if cell_id in inner:
            label = int(np.bincount(on_field[inst == cell_id]).argmax())
            assert np.abs(centroid - centre_px[label - 1]).max() < 0.35
            checked += 1
    assert checked >= 8
    no_nucleus = Masks(scene.masks.semantic[:1], ("cell",), TILE.voxel_nm, scene.masks.instances)
    with pytest.raises(VolumeError, match="nucleus"):
        nucleus_centroids_px(no_nucleus)


def test_a_gap_separates_neighbours_and_isolated_cells_stand_alone():
    gapped = _layout(ClumpedCellsConfig(confluence=1.0, gap_um=0.6))
    cells = gapped.cells
    touching = 0
    for a, b in ((cells[:, :-1], cells[:, 1:]), (cells[:-1], cells[1:])):
        touching += ((a != b) & (a > 0) & (b > 0)).sum()
    assert touching < 0.001 * (cells > 0).sum()

    lone = _layout(ClumpedCellsConfig(confluence=0.0, isolated_per_mm2=400.0))
    assert lone.isolated.all() and lone.n_cells >= 3
    assert not lone.colony.any()


def test_stacks_repeat_the_plane_and_emitters_fill_the_slab():
    field = Field((2, 64, 64), (500.0, PIXEL_NM, PIXEL_NM))
    scene = _draw(ClumpedCellsConfig(), field)
    assert scene.masks.instances.shape == (2, 64, 64)
    assert (scene.masks.instances[0] == scene.masks.instances[1]).all()
    z = scene.dyes[0].emitters.position_nm[:, 0]
    assert z.min() >= 0 and z.max() <= 1000 and z.max() > 900 and z.min() < 100


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"dyes": ()}, "dyes"),
        ({"dyes": ("cell", "membrane")}, "dyes"),
        ({"classes": ("cell", "cell")}, "classes"),
        ({"cell_diameter_um": (25.0, 12.0)}, "cell_diameter_um"),
        ({"nucleus_area_fraction": (0.2, 1.5)}, "nucleus_area_fraction"),
        ({"nucleus_aspect": (0.5, 1.5)}, "nucleus_aspect"),
        ({"supersample": 2}, "supersample"),
        ({"confluence": 1.5}, "confluence"),
        ({"nucleus_clearance_um": 5.0}, "nucleus_clearance_um"),
    ],
)
def test_invalid_configs_name_the_field(changes, field_name):
    with pytest.raises(ValueError, match=field_name):
        ClumpedCellsConfig(**changes)


def test_config_errors_from_yaml_name_the_key_path():
    def resolver(kind, name):
        raise AssertionError("no plugins here")

    with pytest.raises(ConfigError, match=r"cell_dye\.density_per_um2"):
        structure({"cell_dye": {"density_per_um2": -1.0}}, ClumpedCellsConfig, resolver)
    with pytest.raises(ConfigError, match="dyes"):
        structure({"dyes": ["membrane"]}, ClumpedCellsConfig, resolver)
    data = {"dyes": ["cell"], "cell_dye": {"density_per_um2": 5}}
    cfg = structure(data, ClumpedCellsConfig, resolver)
    assert cfg.dyes == ("cell",) and cfg.cell_dye.density_per_um2 == 5.0
