"""Mitochondria morphology on drawn shapes of known class, length and width."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import line

from subcell.core.errors import VolumeError
from subcell.core.model import Masks
from subcell.plugins.mitochondria import (
    Morphology,
    MorphologyConfig,
    register_analytics,
    register_structures,
)
from subcell.plugins.mitochondria.skeleton import separate_touching, skeleton_graph

PIXEL = 42.0


def _lines(shape, segments) -> np.ndarray:
    """One-pixel lines (r0, c0, r1, c1)."""
    image = np.zeros(shape, dtype=bool)
    for r0, c0, r1, c1 in segments:
        rr, cc = line(r0, c0, r1, c1)
        image[rr, cc] = True
    return image


def _thick(shape, segments, radius) -> np.ndarray:
    """Tubes of ``radius`` pixels around lines: pixels within ``radius`` of the centreline."""
    return ndi.distance_transform_edt(~_lines(shape, segments)) <= radius


def _masks(labels, voxel=(100.0, PIXEL, PIXEL), names=("mitochondria",)) -> Masks:
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = labels[None]
    semantic = (labels > 0)[None].astype(np.uint8).repeat(len(names), axis=0)
    return Masks(semantic, names, voxel, instances=labels.astype(np.uint32))


def _scene() -> np.ndarray:
    """Dot (1), rod (2), Y network (3), X network (4), each well apart."""
    shape = (130, 170)
    labels = np.zeros(shape, dtype=np.int32)
    labels[_thick(shape, [(15, 15, 15, 15)], 3.5)] = 1  # 37 px
    labels[_thick(shape, [(40, 10, 40, 60)], 3)] = 2  # about 330 px
    labels[_thick(shape, [(70, 110, 35, 110), (70, 110, 100, 80), (70, 110, 100, 140)], 2)] = 3
    labels[_thick(shape, [(75, 10, 120, 55), (75, 55, 120, 10)], 2)] = 4
    return labels


@pytest.fixture(scope="module")
def scene():
    labels = _scene()
    return labels, Morphology(MorphologyConfig()).analyze(_masks(labels))


def _row(result, label):
    c = result.objects.columns
    i = int(np.flatnonzero(c["label"] == label)[0])
    return {k: v[i] for k, v in c.items()}


def test_area_rule_classes_drawn_dot_rod_y_and_x(scene):
    _, result = scene
    assert list(result.objects.columns["class"]) == ["dot", "rod", "network", "network"]
    y, x = _row(result, 3), _row(result, 4)
    assert (y["n_junctions"], y["n_endpoints"], y["n_branches"], y["max_degree"]) == (1, 3, 3, 3)
    assert (x["n_junctions"], x["n_endpoints"], x["n_branches"], x["max_degree"]) == (1, 4, 4, 4)
    rod = _row(result, 2)
    assert (rod["n_junctions"], rod["n_endpoints"], rod["max_degree"]) == (0, 2, 1)
    assert rod["length_tip_tip_nm"] == rod["skeleton_length_nm"] > 0
    assert y["length_tip_junction_nm"] == pytest.approx(y["skeleton_length_nm"])
    assert result.summary["counts"] == {"dot": 1, "rod": 1, "network": 2}
    by_length = Morphology(MorphologyConfig(rule="length")).measure(_masks(scene[0])).columns
    assert list(by_length["class"]) == ["dot", "rod", "network", "network"]
    assert by_length["skeleton_length_nm"][1] > 1500 >= by_length["skeleton_length_nm"][0]


def test_length_rule_disagrees_with_area_rule_where_it_should():
    shape = (60, 120)
    labels = np.zeros(shape, dtype=np.int32)
    labels[_lines(shape, [(10, 10, 10, 70)])] = 1  # 61 px but 2520 nm long
    labels[_thick(shape, [(40, 20, 40, 35)], 5)] = 2  # > 120 px but 630 nm long
    masks = _masks(labels)
    area = Morphology(MorphologyConfig(rule="area")).measure(masks).columns
    length = Morphology(MorphologyConfig(rule="length", dot_max_length_nm=1500)).measure(masks)
    assert list(area["class"]) == ["dot", "rod"]
    assert list(length.columns["class"]) == ["rod", "dot"]
    assert area["area_px"][0] == 61 and area["area_px"][1] > 120
    looser = Morphology(MorphologyConfig(dot_max_area_px=1000)).measure(masks).columns
    assert list(looser["class"]) == ["dot", "dot"]


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside skan.summarize
def test_drawn_line_lengths_within_3_percent_and_equal_to_skan():
    from skan import Skeleton, summarize

    shape = (120, 170)
    segments = [(10, 10, 10, 90), (30, 160, 100, 160), (40, 10, 100, 70)]  # -, |, diagonal
    y_arms = [(60, 110, 20, 110), (60, 110, 95, 75), (60, 110, 90, 140)]
    labels = np.zeros(shape, dtype=np.int32)
    for k, seg in enumerate(segments, start=1):
        labels[_lines(shape, [seg])] = k
    labels[_lines(shape, y_arms)] = 4
    result = Morphology(MorphologyConfig()).analyze(_masks(labels))
    c = result.objects.columns
    truth = [80 * PIXEL, 70 * PIXEL, 60 * np.sqrt(2) * PIXEL]
    np.testing.assert_allclose(c["skeleton_length_nm"][:3], truth, rtol=0.03)
    assert list(c["class"]) == ["dot", "dot", "dot", "network"]  # 1-px lines: <= 120 px
    b = result.branches.columns
    arms = np.sort(b["length_nm"][b["label"] == 4])
    expected = np.sort([40 * PIXEL, 35 * np.sqrt(2) * PIXEL, 30 * np.sqrt(2) * PIXEL])
    np.testing.assert_allclose(arms, expected, rtol=0.03)
    assert set(b["type"][b["label"] == 4]) == {"tip_junction"}
    peer = summarize(Skeleton(result.skeleton[0], spacing=PIXEL), separator="_")
    np.testing.assert_allclose(np.sort(b["length_nm"]), np.sort(peer["branch_distance"]))
    assert c["skeleton_length_nm"].sum() == pytest.approx(peer["branch_distance"].sum())


def test_3d_tube_width_within_one_voxel():
    voxel = 50.0
    volume = np.zeros((21, 31, 61), dtype=np.int32)
    zz, yy, xx = np.mgrid[:21, :31, :61]
    # A tube of radius 4 voxels along a slightly tilted axis from x = 10 to x = 50.
    t = np.clip((xx - 10) / 40, 0, 1)
    cz, cy, cx = 10 + 0.0 * t, 13 + 5 * t, 10 + 40 * t
    volume[(zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = 1
    row = Morphology(MorphologyConfig()).measure(_masks(volume, voxel=(voxel,) * 3)).columns
    assert "volume_nm3" in row and "centroid_z" in row
    assert abs(row["mean_width_nm"][0] - 8 * voxel) <= voxel
    assert row["class"][0] == "rod"
    assert abs(row["skeleton_length_nm"][0] - np.hypot(40, 5) * voxel) < 8 * voxel


def test_width_is_the_distance_transform_along_the_skeleton():
    labels = _scene()
    spacing = np.array([30.0, 50.0])
    graph = skeleton_graph(labels, spacing)
    edt = ndi.distance_transform_edt(separate_touching(labels), sampling=spacing)
    expected = 2 * edt[tuple(graph.node_coords.T)]
    np.testing.assert_allclose(graph.node_width_nm, expected, rtol=1e-12)


def test_touching_objects_get_their_own_skeletons():
    labels = np.zeros((40, 80), dtype=np.int32)
    labels[10:16, 10:70] = 1
    labels[16:22, 10:70] = 2  # touches 1 along its whole length
    c = Morphology(MorphologyConfig()).measure(_masks(labels)).columns
    assert list(c["class"]) == ["rod", "rod"]
    assert np.all(c["n_junctions"] == 0)
    assert np.all(np.abs(c["skeleton_length_nm"] - 55 * PIXEL) < 6 * PIXEL)


def test_spurs_inside_blunt_ends_are_pruned():
    shape = (40, 90)
    labels = _thick(shape, [(20, 15, 20, 75)], 6).astype(np.int32)
    labels[12:15, 44:47] = 1  # a 2-px bump on the side gives the skeleton a short spur
    kept = Morphology(MorphologyConfig(spur_ratio=0)).measure(_masks(labels)).columns
    pruned = Morphology(MorphologyConfig()).measure(_masks(labels)).columns
    assert kept["class"][0] == "network" and kept["n_junctions"][0] >= 1
    assert pruned["class"][0] == "rod" and pruned["n_junctions"][0] == 0


def test_mina_parameters_of_the_scene(scene):
    _, result = scene
    mina = result.summary["mina"]
    assert (mina["individuals"], mina["networks"]) == (2, 2)
    assert mina["mean_network_size_branches"] == 3.5
    assert mina["sd_network_size_branches"] == pytest.approx(np.std([3, 4], ddof=1))
    lengths = result.branches.columns["length_nm"]
    assert len(lengths) == 1 + 3 + 4  # the rod, the Y's and the X's branches
    assert mina["mean_branch_length_nm"] == pytest.approx(lengths.mean())
    assert mina["median_branch_length_nm"] == pytest.approx(np.median(lengths))
    area = result.objects.columns["area_nm2"].sum()
    assert mina["footprint_um2"] == pytest.approx(area / 1e6)
    assert area == pytest.approx((_scene() > 0).sum() * PIXEL**2)


def test_empty_mask_gives_an_empty_table_with_headers():
    result = Morphology(MorphologyConfig()).analyze(_masks(np.zeros((20, 20), np.int32)))
    assert len(result.objects) == 0
    assert {"label", "class", "area_nm2", "skeleton_length_nm", "mean_width_nm"} <= set(
        result.objects.columns
    )
    assert result.summary["counts"] == {"dot": 0, "rod": 0, "network": 0}
    assert result.summary["mina"]["mean_branch_length_nm"] is None


def test_objects_of_the_named_class_and_components_without_instances():
    labels = _scene()
    semantic = np.stack([labels == 2, labels == 3])[:, None].astype(np.uint8)
    masks = Masks(semantic, ("rods", "mitochondria"), (100.0, PIXEL, PIXEL))
    c = Morphology(MorphologyConfig()).measure(masks).columns
    assert len(c["label"]) == 1 and c["class"][0] == "network"
    with pytest.raises(VolumeError, match="no class 'er'"):
        Morphology(MorphologyConfig(class_name="er")).measure(masks)


def test_float_or_negative_instances_are_refused():
    masks = _masks(_scene())
    bad = Masks(
        masks.semantic, masks.class_names, masks.voxel_nm, instances=np.full((1, 130, 170), 1.5)
    )
    with pytest.raises(VolumeError, match="integers"):
        Morphology(MorphologyConfig()).measure(bad)
    neg = Masks(
        masks.semantic,
        masks.class_names,
        masks.voxel_nm,
        instances=-np.ones((1, 130, 170), np.int32),
    )
    with pytest.raises(VolumeError, match=">= 0"):
        Morphology(MorphologyConfig()).measure(neg)


def test_registers_structure_and_analytics_named_mitochondria():
    seen = {}
    register_analytics(lambda name, cls, factory, desc: seen.setdefault(name, (cls, factory)))
    register_structures(lambda name, cls, factory, desc: None)
    cls, factory = seen["mitochondria"]
    assert cls is MorphologyConfig and hasattr(factory(cls()), "measure")
    with pytest.raises(ValueError, match="rule"):
        MorphologyConfig(rule="volume")
    with pytest.raises(ValueError, match="dot_max_area_px"):
        MorphologyConfig(dot_max_area_px=-1)
