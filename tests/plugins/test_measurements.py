"""Per-object measurements in nm against objects of known size, position and intensity."""

from __future__ import annotations

import math

import attrs
import dask.array as da
import numpy as np
import pytest

from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Table, Volume
from subcell.plugins.measurements import RegionProps, RegionPropsConfig, register_analytics

PIXEL = 42.0
VOXEL = (150.0, PIXEL, PIXEL)
COLUMNS_2D = [
    "label",
    "class",
    "area_nm2",
    "centroid_z_nm",
    "centroid_y_nm",
    "centroid_x_nm",
    "equivalent_diameter_nm",
    "bbox_min_z_px",
    "bbox_min_y_px",
    "bbox_min_x_px",
    "bbox_max_z_px",
    "bbox_max_y_px",
    "bbox_max_x_px",
]


def _disc(shape, cy, cx, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def _masks(semantic_2d, names=("foreground",), instances=None, voxel=VOXEL):
    semantic = np.asarray(semantic_2d, dtype=np.uint8).reshape(
        len(names), 1, *semantic_2d.shape[-2:]
    )
    if instances is not None:
        instances = instances[None].astype(np.uint32)
    return Masks(semantic, names, voxel, instances)


def measure(masks, volume=None, **config):
    return RegionProps(RegionPropsConfig(**config)).measure(masks, volume)


def test_disc_area_centroid_and_diameter_in_nm():
    radius_px = 12
    disc = _disc((64, 80), 30, 41, radius_px)
    table = measure(_masks(disc))
    assert isinstance(table, Table)
    assert list(table.columns) == COLUMNS_2D
    assert len(table) == 1
    row = table.rows()[0]
    area_true = math.pi * (radius_px * PIXEL) ** 2
    assert abs(row["area_nm2"] - area_true) / area_true < 0.03
    assert row["area_nm2"] == disc.sum() * PIXEL**2  # exactly the pixel count in nm²
    # A symmetric disc centred on pixel (30, 41): centre of that pixel in nm.
    assert row["centroid_y_nm"] == pytest.approx(30.5 * PIXEL, abs=1e-9)
    assert row["centroid_x_nm"] == pytest.approx(41.5 * PIXEL, abs=1e-9)
    assert row["centroid_z_nm"] == pytest.approx(0.5 * VOXEL[0])
    diameter_true = 2 * radius_px * PIXEL
    assert abs(row["equivalent_diameter_nm"] - diameter_true) / diameter_true < 0.015
    assert (row["bbox_min_y_px"], row["bbox_max_y_px"]) == (18, 43)
    assert (row["bbox_min_x_px"], row["bbox_max_x_px"]) == (29, 54)
    assert (row["bbox_min_z_px"], row["bbox_max_z_px"]) == (0, 1)
    assert row["label"] == 1 and row["class"] == "foreground"


def test_anisotropic_pixels_scale_area():
    disc = _disc((40, 40), 20, 20, 8)
    square = measure(_masks(disc, voxel=(100.0, 40.0, 40.0))).rows()[0]
    stretched = measure(_masks(disc, voxel=(100.0, 40.0, 60.0))).rows()[0]
    assert stretched["area_nm2"] == pytest.approx(square["area_nm2"] * 1.5)
    assert stretched["centroid_x_nm"] == pytest.approx(20.5 * 60.0)


def test_ball_volume_in_3d():
    voxel = (42.0, 42.0, 42.0)
    zz, yy, xx = np.mgrid[:24, :24, :24]
    ball = (zz - 11) ** 2 + (yy - 12) ** 2 + (xx - 10) ** 2 <= 8**2
    masks = Masks(ball[None].astype(np.uint8), ("vesicle",), voxel)
    row = measure(masks).rows()[0]
    volume_true = 4 / 3 * math.pi * (8 * 42.0) ** 3
    assert abs(row["volume_nm3"] - volume_true) / volume_true < 0.03
    assert (row["centroid_z_nm"], row["centroid_y_nm"], row["centroid_x_nm"]) == pytest.approx(
        (11.5 * 42, 12.5 * 42, 10.5 * 42)
    )
    assert abs(row["equivalent_diameter_nm"] - 16 * 42) / (16 * 42) < 0.015
    assert (row["bbox_min_z_px"], row["bbox_max_z_px"]) == (3, 20)


def test_intensity_means_exact_on_constant_objects():
    a = _disc((48, 48), 12, 12, 6)
    b = _disc((48, 48), 34, 30, 9)
    instances = a * 1 + b * 2
    image = np.full((2, 1, 48, 48), 5.0)
    image[0, 0][a], image[0, 0][b] = 100.0, 250.0
    image[1, 0][a], image[1, 0][b] = 7.0, 3.0
    image[0, 0, 34, 30] = 400.0  # one brighter pixel: the max, not the mean's whole story
    volume = Volume(
        da.from_array(image, chunks=(1, 1, 24, 24)), VOXEL, channel_names=("yellow", "red")
    )
    table = measure(_masks(a | b, instances=instances), volume)
    rows = {r["label"]: r for r in table.rows()}
    assert rows[1]["mean_intensity_yellow"] == 100.0
    assert rows[1]["mean_intensity_red"] == 7.0
    assert rows[2]["mean_intensity_red"] == 3.0
    n_b = int(b.sum())
    assert rows[2]["mean_intensity_yellow"] == pytest.approx((250.0 * (n_b - 1) + 400.0) / n_b)
    assert rows[2]["max_intensity_yellow"] == 400.0
    assert rows[1]["max_intensity_red"] == 7.0


def test_empty_mask_gives_empty_table_with_columns():
    empty = np.zeros((32, 32), dtype=bool)
    table = measure(_masks(empty))
    assert len(table) == 0
    assert list(table.columns) == COLUMNS_2D
    with_volume = measure(_masks(empty), Volume(np.ones((1, 1, 32, 32)), VOXEL))
    assert len(with_volume) == 0
    assert "mean_intensity_c0" in with_volume.columns
    assert "max_intensity_c0" in with_volume.columns


def test_components_of_every_class_without_instances():
    mito = _disc((40, 40), 10, 10, 4) | _disc((40, 40), 10, 30, 4)
    vesicle = _disc((40, 40), 30, 20, 5)
    table = measure(_masks(np.stack([mito, vesicle]), names=("mitochondria", "vesicle")))
    assert list(table.columns["label"]) == [1, 2, 3]
    assert list(table.columns["class"]) == ["mitochondria", "mitochondria", "vesicle"]


def test_face_connectivity_splits_diagonal_neighbours():
    mask = np.zeros((8, 8), dtype=bool)
    mask[2, 2] = mask[3, 3] = True
    assert len(measure(_masks(mask))) == 1
    assert len(measure(_masks(mask), connectivity="face")) == 2


def test_instances_take_the_majority_class():
    left = _disc((40, 40), 20, 10, 5)
    right = _disc((40, 40), 20, 30, 5)
    instances = left * 1 + right * 3
    semantic = np.stack([left, right & (np.arange(40)[None, :] < 28)])  # part of the right one
    rows = measure(_masks(semantic, names=("a", "b"), instances=instances)).rows()
    assert [(r["label"], r["class"]) for r in rows] == [(1, "a"), (3, "b")]
    bare = measure(_masks(np.zeros((1, 40, 40)), instances=instances)).rows()
    assert [r["class"] for r in bare] == ["", ""]


def test_bad_volumes_raise_volume_error():
    masks = _masks(_disc((16, 16), 8, 8, 3))
    with pytest.raises(VolumeError, match="does not match"):
        measure(masks, Volume(np.ones((1, 1, 16, 17)), VOXEL))
    with pytest.raises(VolumeError, match="CZYX"):
        measure(masks, Volume(np.ones((2, 1, 1, 16, 16)), VOXEL, axes="TCZYX"))


def test_table_writes_csv(tmp_path):
    table = measure(_masks(_disc((16, 16), 8, 8, 3)))
    text = table.to_csv(tmp_path / "objects.csv").read_text().splitlines()
    assert text[0].split(",") == COLUMNS_2D and len(text) == 2


def test_register_analytics():
    seen = {}
    register_analytics(lambda name, cls, factory, desc: seen.setdefault(name, (cls, factory)))
    assert list(seen) == ["region_props", "contacts", "per_cell", "compartments"]
    cls, factory = seen["region_props"]
    assert attrs.has(cls) and hasattr(factory(cls()), "measure")
    with pytest.raises(ValueError, match="connectivity"):
        RegionPropsConfig(connectivity="diagonal")
