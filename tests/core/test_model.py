"""The data model checks its arrays at construction."""

import numpy as np
import pytest

from subcell.core.errors import VolumeError
from subcell.core.model import Emitters, Field, Geometry, Masks, Table, Volume


def test_field_extent_and_validation():
    field = Field((1, 64, 32), (100, 42, 42))
    np.testing.assert_allclose(field.extent_nm, [100, 64 * 42, 32 * 42])
    with pytest.raises(ValueError, match="three positive numbers"):
        Field((1, 2, 3), (0, 1, 1))
    with pytest.raises(ValueError, match="three positive sizes"):
        Field((0, 2, 3), (1, 1, 1))


def test_geometry_concatenate_renumbers_instances_and_merges_classes():
    a = Geometry.spheres(("bead",), [[0, 0, 0], [0, 1, 1]], [10, 20], [1, 2], [0, 0])
    b = Geometry.spheres(("vesicle", "bead"), [[0, 5, 5], [0, 6, 6]], [30, 40], [1, 2], [0, 1])
    joined = Geometry.concatenate([a, b])
    assert joined.class_names == ("bead", "vesicle")
    assert joined.instance.tolist() == [1, 2, 3, 4]
    assert joined.klass.tolist() == [0, 0, 1, 0]
    assert joined.n_instances == 4


def test_geometry_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="radius_nm has 1 entries, expected 2"):
        Geometry.spheres(("bead",), [[0, 0, 0], [1, 1, 1]], [1], [1, 2], [0, 0])
    with pytest.raises(ValueError, match="no entry in class_names"):
        Geometry.spheres(("bead",), [[0, 0, 0]], [1], [1], [1])
    with pytest.raises(ValueError, match=">= 0 nm"):
        Geometry.spheres(("bead",), [[0, 0, 0]], [-1], [1], [0])


def test_emitters_default_on_fraction_and_frame_photons():
    emitters = Emitters([[0, 0, 0], [1, 1, 1]], [100, 200], [1, 1], [0, 0], ("bead",))
    assert emitters.on_fraction.shape == (1, 2)
    np.testing.assert_array_equal(emitters.frame_photons(0), [100, 200])
    with pytest.raises(ValueError, match=r"on_fraction must have shape \(T, 2\)"):
        Emitters([[0, 0, 0], [1, 1, 1]], [1, 1], [1, 1], [0, 0], on_fraction=np.ones((1, 3)))


def test_volume_axes_and_channel_names():
    volume = Volume(np.zeros((2, 1, 4, 4)), (100, 50, 50))
    assert volume.channel_names == ("c0", "c1")
    assert volume.field == Field((1, 4, 4), (100, 50, 50))
    with pytest.raises(VolumeError, match="needs 4 dimensions"):
        Volume(np.zeros((4, 4)), (1, 1, 1))
    with pytest.raises(VolumeError, match="axes must be"):
        Volume(np.zeros((1, 1, 4, 4)), (1, 1, 1), axes="XYZC")


def test_masks_shapes_checked():
    semantic = np.zeros((1, 1, 4, 4), np.uint8)
    Masks(semantic, ("a",), (1, 1, 1), np.zeros((1, 4, 4), np.uint32))
    with pytest.raises(VolumeError, match="2 class names for 1 mask channels"):
        Masks(semantic, ("a", "b"), (1, 1, 1))
    with pytest.raises(VolumeError, match="does not match"):
        Masks(semantic, ("a",), (1, 1, 1), np.zeros((1, 4, 5), np.uint32))


def test_table_rows_and_csv(tmp_path):
    table = Table({"label": [1, 2], "area_nm2": [10.5, 20.0]})
    assert len(table) == 2
    assert table.rows() == [{"label": 1, "area_nm2": 10.5}, {"label": 2, "area_nm2": 20.0}]
    text = table.to_csv(tmp_path / "t.csv").read_text().splitlines()
    assert text == ["label,area_nm2", "1,10.5", "2,20.0"]
    with pytest.raises(ValueError, match="differ in length"):
        Table({"a": [1], "b": [1, 2]})
