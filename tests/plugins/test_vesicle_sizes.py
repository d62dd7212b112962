"""Vesicle radii, intensities and classes on drawn discs and spheres of known radius."""

from __future__ import annotations

import numpy as np
import pytest

from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Volume
from subcell.plugins.vesicles import VesicleSizes, VesicleSizesConfig, register_analytics

PIXEL = 30.0


def _discs(shape, discs) -> np.ndarray:
    """Labels 1..n of discs (cy, cx, radius in px): pixel centres within the radius."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.int32)
    for k, (cy, cx, r) in enumerate(discs, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = k
    return labels


def _masks(labels, voxel=(100.0, PIXEL, PIXEL), names=("vesicles",)) -> Masks:
    labels = labels[None] if labels.ndim == 2 else labels
    semantic = (labels > 0)[None].astype(np.uint8).repeat(len(names), axis=0)
    return Masks(semantic, names, voxel, instances=labels.astype(np.uint32))


def test_fitted_and_equivalent_radius_of_drawn_discs_within_5_percent():
    radii = [4.3, 10.0, 20.6]
    labels = _discs((120, 160), [(25, 25, radii[0]), (30, 80, radii[1]), (80, 100, radii[2])])
    c = VesicleSizes(VesicleSizesConfig()).measure(_masks(labels)).columns
    truth = np.array(radii) * PIXEL
    np.testing.assert_allclose(c["fitted_radius_nm"], truth, rtol=0.05)
    np.testing.assert_allclose(c["equivalent_radius_nm"], truth, rtol=0.05)
    # Fitted centres in nm, pixel i centred at (i + 0.5) * pixel.
    np.testing.assert_allclose(c["fit_centre_y_nm"], (np.array([25, 30, 80]) + 0.5) * PIXEL, atol=1)
    assert np.all(c["fit_rms_nm"] < 0.5 * PIXEL)


def test_a_disc_cut_by_the_border_is_fitted_on_its_arc():
    labels = _discs((60, 60), [(30, 52, 15)])  # a third of it outside the image
    c = VesicleSizes(VesicleSizesConfig()).measure(_masks(labels)).columns
    assert abs(c["fitted_radius_nm"][0] / (15 * PIXEL) - 1) < 0.05
    assert c["equivalent_radius_nm"][0] < 0.9 * 15 * PIXEL  # the area misses the cut part


def test_sphere_radius_in_3d_with_anisotropic_voxels():
    voxel = (60.0, 30.0, 30.0)
    zz, yy, xx = np.mgrid[:20, :40, :40]
    radius_nm = 300.0
    inside = ((zz - 10) * voxel[0]) ** 2 + ((yy - 20) * 30) ** 2 + ((xx - 19) * 30) ** 2
    labels = (inside <= radius_nm**2).astype(np.int32)
    c = VesicleSizes(VesicleSizesConfig()).measure(_masks(labels, voxel=voxel)).columns
    assert "volume_nm3" in c and "centroid_z" in c
    assert abs(c["fitted_radius_nm"][0] / radius_nm - 1) < 0.05
    assert abs(c["equivalent_radius_nm"][0] / radius_nm - 1) < 0.05
    assert c["class"][0] == "large"


def test_small_and_large_at_a_configurable_radius():
    labels = _discs((60, 100), [(30, 20, 100 / PIXEL), (30, 65, 200 / PIXEL)])  # 100, 200 nm
    masks = _masks(labels)
    assert list(VesicleSizes(VesicleSizesConfig()).measure(masks).columns["class"]) == [
        "small",
        "large",
    ]
    loose = VesicleSizes(VesicleSizesConfig(small_max_radius_nm=250)).measure(masks)
    assert list(loose.columns["class"]) == ["small", "small"]
    by_area = VesicleSizes(VesicleSizesConfig(radius="equivalent")).analyze(masks)
    assert by_area.summary["counts"] == {"small": 1, "large": 1}
    with pytest.raises(ValueError, match="small_max_radius_nm"):
        VesicleSizesConfig(small_max_radius_nm=0)


def test_mean_and_integrated_intensity_per_channel():
    labels = _discs((40, 60), [(20, 15, 5), (20, 45, 8)])
    image = np.zeros((2, 1, 40, 60))
    image[0, 0][labels == 1] = 3.0
    image[0, 0][labels == 2] = 5.0
    image[1, 0] = 1.0
    volume = Volume(image, (100.0, PIXEL, PIXEL), channel_names=("green", "red"))
    c = VesicleSizes(VesicleSizesConfig()).measure(_masks(labels), volume).columns
    np.testing.assert_allclose(c["mean_intensity_green"], [3.0, 5.0])
    np.testing.assert_allclose(c["integrated_intensity_green"], 3.0 * c["area_px"] * [1, 5 / 3])
    np.testing.assert_allclose(c["integrated_intensity_red"], c["area_px"])
    with pytest.raises(VolumeError, match="does not match"):
        VesicleSizes(VesicleSizesConfig()).measure(
            _masks(labels), Volume(np.zeros((1, 1, 40, 61)), (100.0, PIXEL, PIXEL))
        )


def test_empty_mask_and_bad_labels():
    result = VesicleSizes(VesicleSizesConfig()).analyze(_masks(np.zeros((10, 10), np.int32)))
    assert len(result.objects) == 0 and "fitted_radius_nm" in result.objects.columns
    assert result.summary["counts"] == {"small": 0, "large": 0}
    masks = _masks(np.ones((10, 10), np.int32))
    bad = Masks(masks.semantic, masks.class_names, masks.voxel_nm, np.full((1, 10, 10), 0.5))
    with pytest.raises(VolumeError, match="integers"):
        VesicleSizes(VesicleSizesConfig()).measure(bad)


def test_registers_the_vesicles_analytics():
    seen = {}
    register_analytics(lambda name, cls, factory, desc: seen.setdefault(name, (cls, factory)))
    cls, factory = seen["vesicles"]
    assert cls is VesicleSizesConfig and hasattr(factory(cls()), "measure")
