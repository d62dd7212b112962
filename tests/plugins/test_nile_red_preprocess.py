"""Nile Red preprocessing: intensity/ratio with a safe denominator, resizing, crops and merging."""

import numpy as np
import pytest

from subcell.core.errors import VolumeError
from subcell.core.network_input import safe_ratio, transform_channels
from subcell.plugins.nile_red.preprocess import (
    crops,
    extract_crop,
    intensity_ratio,
    merge_crops,
    resize_to_shape,
    resize_to_voxel,
)


def test_intensity_is_the_mean_and_ratio_red_over_yellow_where_bright():
    rng = np.random.default_rng(0)
    yellow = rng.uniform(50, 100, (4, 8, 8))
    red = rng.uniform(50, 100, (4, 8, 8))
    out = intensity_ratio(yellow, red, eps_fraction=1e-6)
    assert out.shape == (2, 4, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], (yellow + red) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[1], red / yellow, rtol=1e-5)


def test_zero_denominator_gives_finite_ratio_and_neutral_dark_pixels():
    yellow = np.zeros((2, 6, 6))
    red = np.zeros((2, 6, 6))
    yellow[0, :3] = 100.0
    red[0, :3] = 60.0
    red[1, 0, 0] = 80.0  # red where yellow is 0
    out = intensity_ratio(yellow, red, eps_fraction=0.05)
    assert np.isfinite(out).all()
    ratio = out[1]
    assert ratio[1, 3, 3] == 1.0  # both channels dark: neutral
    assert ratio[0, 5, 5] == 1.0
    eps = 0.05 * np.percentile((yellow + red) / 2, 99.8)
    assert ratio[1, 0, 0] == pytest.approx((80 + eps) / eps, rel=1e-5)
    assert ratio[0, 0, 0] == pytest.approx((60 + eps) / (100 + eps), rel=1e-6)
    # an all-zero image is all neutral, never NaN
    assert (intensity_ratio(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)))[1] == 1.0).all()


def test_negative_noise_is_clipped_and_bad_input_refused():
    assert safe_ratio(np.array([-3.0]), np.array([-5.0]), 0.1)[0] == 1.0
    with pytest.raises(VolumeError, match="differ in shape"):
        intensity_ratio(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))
    with pytest.raises(VolumeError, match="NaN"):
        intensity_ratio(np.full((2, 2, 2), np.nan), np.zeros((2, 2, 2)))


def test_network_transform_matches_the_plugin_rule():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (2, 3, 5, 5)).astype(np.float32)
    both = transform_channels(image, "intensity_ratio", eps=0.05)
    np.testing.assert_allclose(both[1], (image[1] + 0.05) / (image[0] + 0.05), rtol=1e-6)
    only = transform_channels(image, "intensity")
    assert only.shape == (1, 3, 5, 5)
    np.testing.assert_allclose(only[0], image.mean(axis=0), rtol=1e-6)
    swapped = transform_channels(image, "intensity_ratio", channels=[1, 0], eps=0.05)
    np.testing.assert_allclose(swapped[1] * both[1], 1.0, rtol=1e-5)


def test_resize_to_voxel_keeps_field_and_mask_labels():
    volume = np.random.default_rng(2).uniform(0, 1, (2, 12, 120, 120)).astype(np.float32)
    # the paper: 1200 px -> 802 px; here 120 -> 80 in-plane, 12 -> 24 planes
    out = resize_to_voxel(volume, (200, 65, 65), (100, 97.5, 97.5))
    assert out.shape == (2, 24, 80, 80) and out.dtype == np.float32
    assert abs(out.mean() - volume.mean()) < 0.01
    masks = np.zeros((12, 120, 120), np.uint8)
    masks[:, 30:90, 30:90] = 3
    small = resize_to_voxel(masks, (200, 65, 65), (100, 97.5, 97.5), masks=True)
    assert small.dtype == np.uint8 and set(np.unique(small)) == {0, 3}
    assert small.shape == (24, 80, 80)
    assert abs(small.astype(bool).mean() - masks.astype(bool).mean()) < 0.02
    back = resize_to_shape(small, (12, 120, 120), masks=True)
    assert (back != masks).mean() < 0.02


def test_crops_cover_the_field_and_merge_back_exactly():
    shape = (30, 300, 520)
    windows = crops(shape, (24, 256, 256), overlap=(8, 32, 32))
    assert all(w[0].stop <= 30 and w[1].stop <= 300 and w[2].stop <= 520 for w in windows)
    # z: 0, 6; y: 0, 44; x: 0, 224, 264
    assert len(windows) == 2 * 2 * 3
    field = np.random.default_rng(3).uniform(0, 1, (2, *shape)).astype(np.float32)
    parts = [extract_crop(field, w) for w in windows]
    assert all(p.shape == (2, 24, 256, 256) for p in parts)
    merged = merge_crops(parts, windows, shape)
    np.testing.assert_allclose(merged, field, rtol=1e-6)


def test_overlaps_are_averaged():
    windows = crops((1, 1, 6), (1, 1, 4), overlap=(0, 0, 2))
    assert [w[2].start for w in windows] == [0, 2]
    merged = merge_crops([np.zeros((1, 1, 1, 4)), np.ones((1, 1, 1, 4))], windows, (1, 1, 6))
    np.testing.assert_allclose(merged[0, 0, 0], [0, 0, 0.5, 0.5, 1, 1])


def test_field_smaller_than_the_crop_is_padded_not_refused():
    shape = (10, 100, 90)
    windows = crops(shape, (24, 256, 256), overlap=(0, 32, 32))
    assert len(windows) == 1
    field = np.arange(np.prod(shape), dtype=np.float32).reshape(1, *shape)
    crop = extract_crop(field, windows[0])
    assert crop.shape == (1, 24, 256, 256)
    assert crop[0, 10:].sum() == 0 and crop[0, :, 100:].sum() == 0
    np.testing.assert_array_equal(merge_crops([crop], windows, shape), field)


def test_bad_crop_settings_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        crops((24, 256, 256), (24, 256, 256), overlap=(24, 0, 0))
    with pytest.raises(ValueError, match="uncovered"):
        merge_crops([np.zeros((1, 1, 1, 2))], [(slice(0, 1), slice(0, 1), slice(0, 2))], (1, 1, 4))
