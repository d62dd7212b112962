"""Contacts between two label sets and per-cell assignment, on drawn configurations."""

from __future__ import annotations

import numpy as np
import pytest

from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Table
from subcell.plugins.measurements import (
    Contacts,
    ContactsConfig,
    PerCell,
    PerCellConfig,
    register_analytics,
)
from subcell.plugins.measurements.contacts import contacts
from subcell.plugins.measurements.per_cell import assign_cells, per_cell_summary

VOXEL = (100.0, 10.0, 10.0)


def _scene():
    """A: 1 touches B1, 2 is 30 nm (3 empty pixels) from B2, 3 overlaps B4, 4 is alone."""
    a = np.zeros((1, 50, 80), dtype=np.int32)
    b = np.zeros_like(a)
    a[0, 10:20, 5:15] = 1
    b[0, 10:20, 15:18] = 1  # adjacent to A1's right side
    a[0, 10:20, 30:40] = 2
    b[0, 12:16, 43:46] = 2  # columns 40-42 empty: a 30 nm gap
    b[0, 0:3, 0:3] = 3  # far from everything
    a[0, 30:40, 30:40] = 3
    b[0, 35:45, 35:45] = 4  # overlaps A3
    a[0, 40:45, 70:75] = 4
    return a, b


def test_touching_gapped_and_overlapping_pairs_at_two_distances():
    a, b = _scene()
    tight = contacts(a, b, VOXEL, 0.0)
    p = tight.pairs.columns
    assert list(zip(p["label_a"], p["label_b"], strict=True)) == [(1, 1), (3, 4)]
    np.testing.assert_allclose(p["min_gap_nm"], [0.0, 0.0])
    o = tight.objects.columns
    assert list(o["n_contacts"]) == [1, 0, 1, 0]
    # A1 shares exactly its right side (10 faces of 10 nm) with B1; its boundary is 400 nm.
    assert o["contact_length_nm"][0] == pytest.approx(100.0)
    assert o["contact_fraction"][0] == pytest.approx(0.25)
    np.testing.assert_allclose(o["min_gap_nm"][:3], [0.0, 30.0, 0.0])
    assert list(o["nearest_label"][:3]) == [1, 2, 4]
    s = tight.summary
    assert (s["n_a"], s["n_b"], s["n_pairs"]) == (4, 4, 2)
    assert s["contact_frequency_a"] == 0.5 and s["contact_frequency_b"] == 0.5

    loose = contacts(a, b, VOXEL, 30.0)
    p = loose.pairs.columns
    assert list(zip(p["label_a"], p["label_b"], strict=True)) == [(1, 1), (2, 2), (3, 4)]
    assert p["min_gap_nm"][1] == pytest.approx(30.0)
    # A2's right side faces B2 over B2's 4 rows at exactly 30 nm.
    assert p["contact_length_nm"][1] == pytest.approx(40.0)
    assert loose.summary["contact_frequency_a"] == 0.75


def test_face_contact_area_in_3d_with_anisotropic_voxels():
    voxel = (50.0, 20.0, 10.0)
    a = np.zeros((10, 12, 14), dtype=np.int32)
    b = np.zeros_like(a)
    a[2:6, 3:8, 2:7] = 1
    b[2:6, 3:8, 7:10] = 1  # shares the 4 x 5 voxel face at x = 7
    result = contacts(a, b, voxel, 0.0)
    assert "contact_area_nm2" in result.objects.columns
    assert result.objects.columns["contact_area_nm2"][0] == pytest.approx(4 * 5 * 50.0 * 20.0)


def test_no_b_objects_and_bad_inputs():
    a, _ = _scene()
    result = contacts(a, np.zeros_like(a), VOXEL, 50.0)
    assert list(result.objects.columns["n_contacts"]) == [0, 0, 0, 0]
    assert len(result.pairs) == 0 and result.summary["contact_frequency_b"] is None
    with pytest.raises(VolumeError, match="differ in shape"):
        contacts(a, a[:, :10], VOXEL, 0.0)
    with pytest.raises(VolumeError, match="integer"):
        contacts(a.astype(float), a, VOXEL, 0.0)
    with pytest.raises(VolumeError, match=">= 0"):
        contacts(-a, a, VOXEL, 0.0)


def test_contacts_plugin_reads_two_classes_of_the_masks():
    a, b = _scene()
    semantic = np.stack([a > 0, b > 0]).astype(np.uint8)
    masks = Masks(semantic, ("mitochondria", "vesicles"), VOXEL)  # components, no instances
    table = Contacts(ContactsConfig(distance_nm=0)).measure(masks)
    assert list(table.columns["n_contacts"]) == [1, 0, 1, 0]
    with pytest.raises(VolumeError, match="no class 'er'"):
        Contacts(ContactsConfig(class_b="er")).measure(masks)


def test_each_object_goes_to_the_cell_it_overlaps_most():
    objects = np.zeros((1, 20, 40), dtype=np.int32)
    cells = np.zeros_like(objects)
    cells[0, :, :20] = 7
    cells[0, :, 20:35] = 3
    objects[0, 2:6, 2:6] = 1  # inside cell 7
    objects[0, 8:12, 16:26] = 2  # 4 columns in 7, 6 in 3
    objects[0, 14:18, 36:40] = 3  # outside every cell
    objects[0, 14:18, 18:22] = 4  # a tie: the lower cell label
    c = assign_cells(objects, cells).columns
    assert list(c["label"]) == [1, 2, 3, 4]
    assert list(c["cell"]) == [7, 3, 0, 3]
    np.testing.assert_allclose(c["overlap_fraction"], [1.0, 0.6, 0.0, 0.5])
    with pytest.raises(VolumeError, match="differ in shape"):
        assign_cells(objects, cells[:, :10])


def test_per_cell_summary_counts_and_averages():
    objects = np.zeros((1, 20, 40), dtype=np.int32)
    cells = np.zeros_like(objects)
    cells[0, :, :20] = 1
    cells[0, :, 20:] = 2
    objects[0, 2:4, 2:4] = 1
    objects[0, 6:8, 2:4] = 2
    objects[0, 2:4, 30:32] = 3
    table = Table(
        {
            "label": np.array([1, 2, 3]),
            "class": np.array(["dot", "rod", "rod"]),
            "area_nm2": np.array([400.0, 400.0, 400.0]),
            "skeleton_length_nm": np.array([0.0, 30.0, 50.0]),
        }
    )
    summary = per_cell_summary(
        table, assign_cells(objects, cells), cells, VOXEL, classes=("dot", "rod", "network")
    ).columns
    assert list(summary["cell"]) == [1, 2]
    assert list(summary["n_objects"]) == [2, 1]
    assert list(summary["n_dot"]) == [1, 0] and list(summary["n_network"]) == [0, 0]
    np.testing.assert_allclose(summary["fraction_rod"], [0.5, 1.0])
    np.testing.assert_allclose(summary["mean_skeleton_length_nm"], [15.0, 50.0])
    np.testing.assert_allclose(summary["cell_area_nm2"], [400 * 100.0] * 2)
    np.testing.assert_allclose(summary["objects_size_fraction"], [800 / 40000, 400 / 40000])


def test_per_cell_plugin_and_registration():
    objects = np.zeros((1, 20, 40), dtype=np.uint8)
    objects[0, 2:4, 2:4] = 1
    objects[0, 2:4, 30:32] = 1
    cells = np.zeros_like(objects)
    cells[0, :, :10] = 1
    cells[0, :, 25:] = 1
    masks = Masks(np.stack([objects, cells]), ("mitochondria", "cell"), VOXEL)
    c = PerCell(PerCellConfig()).measure(masks).columns
    assert list(c["cell"]) == [1, 2]
    seen = {}
    register_analytics(lambda name, cls, factory, desc: seen.setdefault(name, (cls, factory)))
    assert {"region_props", "contacts", "per_cell"} <= set(seen)
    for cls, factory in seen.values():
        assert hasattr(factory(cls()), "measure")
