"""The compartments analytics: counts, sizes and contact frequencies of a multi-class mask,
on small drawn masks with known answers and on the tiny Nile Red cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from subcell.core.config import load_layers
from subcell.core.errors import VolumeError
from subcell.core.model import Field, Masks
from subcell.core.structuring import structure
from subcell.plugins.measurements import Compartments, CompartmentsConfig
from subcell.plugins.measurements.compartments import (
    compartment_objects,
    compartment_table,
    contact_matrix,
)
from subcell.plugins.measurements.contacts import contacts
from subcell.plugins.nile_red.phantom import NileRedCell, NileRedCellConfig
from subcell.registry import build_registry

TINY = Path(__file__).parents[2] / "configs" / "nile_red" / "tiny" / "sim-cell.yaml"
ISO = (100.0, 100.0, 100.0)


def _masks(shape, boxes: dict, voxel=ISO, instances=None) -> Masks:
    """Classes drawn as boxes: name -> list of (z0, z1, y0, y1, x0, x1)."""
    semantic = np.zeros((len(boxes), *shape), dtype=np.uint8)
    for k, name in enumerate(boxes):
        for z0, z1, y0, y1, x0, x1 in boxes[name]:
            semantic[k, z0:z1, y0:y1, x0:x1] = 1
    return Masks(semantic, tuple(boxes), voxel, instances)


def _row(table, name: str) -> dict:
    rows = {r["compartment"]: r for r in table.rows()}
    return rows[name]


def test_touching_cubes_contact_both_ways():
    masks = _masks((8, 12, 12), {"a": [(2, 5, 2, 5, 2, 5)], "b": [(2, 5, 2, 5, 5, 8)]})
    table = compartment_table(masks)
    a, b = _row(table, "a"), _row(table, "b")
    assert a["count"] == b["count"] == 1
    assert a["contact_b"] == b["contact_a"] == 1.0
    assert a["contact_a"] == b["contact_b"] == 0.0  # the diagonal is not measured
    assert a["volume_um3"] == pytest.approx(27 * 1e6 / 1e9)
    assert a["mean_object_volume_um3"] == pytest.approx(a["volume_um3"])


@pytest.mark.parametrize(("distance_nm", "expected"), [(0.0, 0.0), (150.0, 0.0), (200.0, 1.0)])
def test_gap_of_two_voxels(distance_nm, expected):
    # Two empty voxels between the cubes: the gap from the voxel just outside a is 200 nm.
    masks = _masks((8, 12, 16), {"a": [(2, 5, 2, 5, 2, 5)], "b": [(2, 5, 2, 5, 7, 10)]})
    names, matrix = contact_matrix(masks, distance_nm=distance_nm)
    assert names == ("a", "b")
    assert matrix[0, 1] == matrix[1, 0] == expected


def test_gap_uses_the_voxel_size_along_z():
    voxel = (300.0, 100.0, 100.0)
    masks = _masks((12, 8, 8), {"a": [(1, 3, 2, 5, 2, 5)], "b": [(5, 7, 2, 5, 2, 5)]}, voxel)
    assert contact_matrix(masks, distance_nm=500.0)[1][0, 1] == 0.0
    assert contact_matrix(masks, distance_nm=600.0)[1][0, 1] == 1.0
    # The voxel size given overrides the mask's.
    assert contact_matrix(masks, ISO, distance_nm=200.0)[1][0, 1] == 1.0


def test_fraction_of_objects_in_contact_and_overlap():
    # Four a-cubes; one touches b, one lies inside the volume class v (overlap = contact).
    boxes = {
        "a": [(1, 3, 1, 3, 1, 3), (1, 3, 1, 3, 6, 8), (1, 3, 6, 8, 1, 3), (5, 7, 6, 8, 6, 8)],
        "b": [(1, 3, 1, 3, 3, 5)],
        "v": [(4, 8, 5, 9, 5, 9)],
    }
    table = compartment_table(_masks((9, 10, 10), boxes))
    a, b, v = _row(table, "a"), _row(table, "b"), _row(table, "v")
    assert a["count"] == 4
    assert a["contact_b"] == 0.25 and a["contact_v"] == 0.25
    assert b["contact_a"] == 1.0 and v["contact_a"] == 1.0
    assert b["contact_v"] == v["contact_b"] == 0.0


def test_counts_from_instances_or_components():
    boxes = {"a": [(1, 3, 1, 3, 1, 5)], "b": [(5, 7, 5, 7, 5, 7)]}
    shape = (8, 8, 8)
    instances = np.zeros(shape, dtype=np.uint32)
    instances[1:3, 1:3, 1:3] = 7  # two touching instances make one component
    instances[1:3, 1:3, 3:5] = 9
    with_ids = compartment_table(_masks(shape, boxes, instances=instances))
    assert _row(with_ids, "a")["count"] == 2
    assert _row(with_ids, "a")["mean_object_volume_um3"] == pytest.approx(8e-3)
    # b's voxels carry no id: its connected components.
    assert _row(with_ids, "b")["count"] == 1
    assert _row(compartment_table(_masks(shape, boxes)), "a")["count"] == 1
    labels = compartment_objects(_masks(shape, boxes, instances=instances), "a")
    assert sorted(np.unique(labels)) == [0, 1, 2]
    # One voxel of a without an id: a is measured as components again.
    instances[1, 1, 1] = 0
    assert _row(compartment_table(_masks(shape, boxes, instances=instances)), "a")["count"] == 1


def test_connectivity_decides_diagonal_neighbours():
    boxes = {"a": [(1, 2, 1, 2, 1, 2), (2, 3, 2, 3, 2, 3)]}
    masks = _masks((4, 4, 4), boxes)
    assert _row(compartment_table(masks), "a")["count"] == 1
    table = compartment_table(masks, connectivity="face")
    assert _row(table, "a")["count"] == 2


def test_empty_class_is_zero_not_nan():
    boxes = {"a": [(1, 3, 1, 3, 1, 3)], "empty": [], "b": [(1, 3, 1, 3, 3, 5)]}
    table = compartment_table(_masks((4, 6, 6), boxes), distance_nm=300.0)
    empty = _row(table, "empty")
    assert empty["count"] == 0
    assert empty["volume_um3"] == empty["mean_object_volume_um3"] == 0.0
    assert all(empty[f"contact_{n}"] == 0.0 for n in boxes)
    assert _row(table, "a")["contact_empty"] == 0.0
    assert _row(table, "a")["contact_b"] == 1.0
    for name, values in table.columns.items():
        if values.dtype.kind == "f":
            assert np.isfinite(values).all(), name


def test_2d_mask_has_areas():
    boxes = {"a": [(0, 1, 2, 5, 2, 5)], "b": [(0, 1, 2, 5, 5, 8)], "c": [(0, 1, 8, 10, 2, 5)]}
    masks = _masks((1, 12, 12), boxes, voxel=(500.0, 100.0, 100.0))
    table = compartment_table(masks)
    assert "area_um2" in table.columns and "volume_um3" not in table.columns
    a = _row(table, "a")
    assert a["area_um2"] == pytest.approx(9 * 1e4 / 1e6)
    assert a["mean_object_area_um2"] == pytest.approx(a["area_um2"])
    assert a["contact_b"] == 1.0 and a["contact_c"] == 0.0
    # Three empty rows between a and c: a gap of 300 nm; the z step (500 nm) plays no part.
    assert _row(compartment_table(masks, distance_nm=250.0), "a")["contact_c"] == 0.0
    assert _row(compartment_table(masks, distance_nm=300.0), "a")["contact_c"] == 1.0


def test_classes_select_and_order_the_rows():
    boxes = {"a": [(1, 3, 1, 3, 1, 3)], "b": [(1, 3, 1, 3, 3, 5)], "c": [(5, 6, 5, 6, 5, 6)]}
    table = compartment_table(_masks((8, 8, 8), boxes), classes=("c", "a"))
    assert list(table.columns["compartment"]) == ["c", "a"]
    assert [k for k in table.columns if k.startswith("contact_")] == ["contact_c", "contact_a"]
    with pytest.raises(VolumeError, match="no class 'x'"):
        compartment_table(_masks((8, 8, 8), boxes), classes=("a", "x"))


def test_config_and_plugin():
    with pytest.raises(ValueError, match="distance_nm"):
        CompartmentsConfig(distance_nm=-1)
    with pytest.raises(ValueError, match="classes"):
        CompartmentsConfig(classes=("a", "a"))
    registration = build_registry(use_entry_points=False).get("analytics", "compartments")
    assert registration.config_cls is CompartmentsConfig
    masks = _masks((8, 12, 16), {"a": [(2, 5, 2, 5, 2, 5)], "b": [(2, 5, 2, 5, 7, 10)]})
    plugin = registration.create(CompartmentsConfig(distance_nm=200.0, classes=("b", "a")))
    table = plugin.measure(masks)
    assert list(table.columns["compartment"]) == ["b", "a"]
    assert table.columns["contact_a"][0] == 1.0
    assert Compartments(CompartmentsConfig()).measure(masks).columns["contact_a"][1] == 0.0


@pytest.fixture(scope="module")
def tiny_cell() -> Masks:
    data, _ = load_layers(TINY)
    section = {k: v for k, v in data["phantom"].items() if k != "plugin"}
    config = structure(section, NileRedCellConfig, lambda kind, name: None)
    field = Field((8, 64, 64), (250.0, 164.6, 164.6))
    return NileRedCell(config).draw(field, np.random.default_rng(2)).masks


def test_tiny_nile_red_cell(tiny_cell):
    table = compartment_table(tiny_cell, distance_nm=200.0)
    rows = {r["compartment"]: r for r in table.rows()}
    assert list(rows) == list(tiny_cell.class_names)
    assert rows["nucleus"]["count"] == 1
    mito = rows["mitochondria"]
    ids = tiny_cell.instances[tiny_cell.semantic[tiny_cell.class_names.index("mitochondria")] > 0]
    assert mito["count"] == np.unique(ids).size > 0
    # Every structure voxel is also a volume voxel: each mitochondrion overlaps the cytosol.
    assert mito["contact_cytosol"] == 1.0
    field_um3 = 8 * 64 * 64 * 250.0 * 164.6**2 / 1e9
    total = sum(rows[n]["volume_um3"] for n in ("nucleus", "cytosol", "ecs"))
    assert total == pytest.approx(field_um3, rel=1e-9)
    # The same decisions as contacts() for a pair of classes.
    for a, b in (("mitochondria", "er"), ("lysosome", "plasma_membrane"), ("er", "golgi")):
        expected = contacts(
            compartment_objects(tiny_cell, a),
            compartment_objects(tiny_cell, b),
            tiny_cell.voxel_nm,
            200.0,
        ).summary["contact_frequency_a"]
        assert rows[a][f"contact_{b}"] == pytest.approx(expected or 0.0)
