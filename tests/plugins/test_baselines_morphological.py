"""The morphological (gradient + h-minima + watershed) baseline on blurred noisy discs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from subcell_test_phantoms import DISCS, VOXEL
from subcell_test_phantoms import disc_mask as _discs
from subcell_test_phantoms import iou as _iou
from subcell_test_phantoms import noisy_image as _image

from subcell.core.model import Volume
from subcell.plugins.baselines import (
    Morphological,
    MorphologicalConfig,
    Otsu,
    OtsuConfig,
)


def _segment(image, **config):
    volume = Volume(image[None, None] if image.ndim == 2 else image[None], VOXEL)
    return Morphological(MorphologicalConfig(**config)).segment(volume)


def test_bright_discs_are_found_one_basin_each():
    truth = _discs()
    image = _image(truth, amplitude=60)  # peak contrast-to-noise ~6 before blur
    masks = _segment(image, class_name="vesicles")
    assert masks.semantic.shape == (1, 1, 128, 128) and masks.semantic.dtype == np.uint8
    assert masks.instances.dtype == np.uint32
    assert masks.class_names == ("vesicles",)
    assert _iou(masks.semantic[0, 0] > 0, truth) >= 0.8  # 0.87
    assert masks.instances.max() == len(DISCS)
    assert len(np.unique(masks.instances)) == len(DISCS) + 1  # labels 1..n, no gaps
    # Every disc centre lies in its own instance.
    centres = [masks.instances[0, y, x] for y, x, _ in DISCS]
    assert 0 not in centres and len(set(centres)) == len(DISCS)


def test_dynamic_follows_the_noise_not_the_brightness():
    truth = _discs()
    image = _image(truth, amplitude=60)
    a = _segment(image)
    b = _segment(7.0 * image + 1000.0)  # another gain and offset: same relative noise
    assert np.array_equal(a.semantic, b.semantic)
    assert a.instances.max() == b.instances.max()


def test_noise_free_image_uses_the_edges_as_scale():
    # No noise: the robust noise estimate is 0, and h falls back to the spread of the
    # neighbour differences (the edges) instead of 0, which would make every pixel-flat
    # patch its own basin.
    truth = _discs()
    masks = _segment(truth.astype(float))
    assert _iou(masks.semantic[0, 0] > 0, truth) >= 0.95  # 0.98
    assert masks.instances.max() == len(DISCS)


def test_pure_noise_gives_no_foreground():
    noise = np.random.default_rng(4).poisson(100.0, (128, 128)).astype(float)
    masks = _segment(noise)
    # h = 2 noise sd removes every noise minimum: one basin, nothing brighter than it.
    assert masks.semantic.sum() == 0
    assert masks.instances.max() == 0


def test_too_large_dynamic_loses_faint_discs():
    truth = _discs()
    image = _image(truth, amplitude=60)
    assert _segment(image, dynamic_sd=50.0).semantic.sum() == 0


def test_watershed_splits_discs_that_blur_together():
    # Two discs with a 2 px gap, blurred into one blob with a shallow saddle.
    left, right = _discs(64, [(32, 20, 9)]), _discs(64, [(32, 41, 9)])
    image = _image(left | right, amplitude=150, blur_px=2.0, seed=0)
    otsu = Otsu(OtsuConfig(smooth_sigma_px=1.0)).segment(Volume(image[None, None], VOXEL))
    masks = _segment(image)
    assert otsu.instances.max() == 1  # a threshold merges them
    # The watershed line between the discs separates them. The flat saddle between them
    # is a gradient minimum too and may form a small basin of its own (47 px here).
    a, b = masks.instances[0, 32, 20], masks.instances[0, 32, 41]
    assert 0 < a != b > 0
    assert _iou(masks.instances[0] == a, left) >= 0.8  # 0.92
    assert _iou(masks.instances[0] == b, right) >= 0.8  # 0.89
    assert masks.instances.max() <= 3


def test_3d_balls():
    zz, yy, xx = np.mgrid[:10, :48, :48]
    # Anisotropic voxels: a 500 nm ball is 24 px across in-plane and 5 planes deep.
    truth = np.zeros((10, 48, 48), dtype=bool)
    for cz, cy, cx in [(4, 14, 14), (5, 33, 32)]:
        truth |= ((zz - cz) * 200) ** 2 + ((yy - cy) * 42) ** 2 + ((xx - cx) * 42) ** 2 <= 500**2
    rng = np.random.default_rng(5)
    clean = 100 + 80 * ndimage.gaussian_filter(truth.astype(float), (0.5, 2.0, 2.0))
    image = rng.poisson(clean).astype(float)
    masks = _segment(image)
    assert masks.semantic.shape == (1, 10, 48, 48)
    assert _iou(masks.semantic[0] > 0, truth) >= 0.7
    assert masks.instances.max() == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dynamic_sd", 0),
        ("gradient_radius_px", 0),
        ("smooth_sigma_px", -1),
        ("min_size_px", -1),
        ("channel", -1),
        ("class_name", ""),
    ],
)
def test_bad_configs_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        MorphologicalConfig(**{field: value})
