"""The classical baselines: Otsu and adaptive thresholds on synthetic discs with known truth,
and what all four segmenters share (empty-content rule, volume checks, registration)."""

from __future__ import annotations

import warnings

import attrs
import dask.array as da
import numpy as np
import pytest
from skimage.filters import threshold_otsu
from subcell_test_phantoms import DISCS, VOXEL
from subcell_test_phantoms import disc_mask as _discs
from subcell_test_phantoms import iou as _iou

from subcell.core.errors import VolumeError
from subcell.core.model import Volume
from subcell.plugins.baselines import (
    Adaptive,
    AdaptiveConfig,
    Backprop,
    BackpropConfig,
    Morphological,
    MorphologicalConfig,
    Otsu,
    OtsuConfig,
    register_segmenters,
)
from subcell.plugins.baselines._common import bright_regions


def _volume(plane, **kwargs):
    return Volume(plane[None, None], VOXEL, **kwargs)


def test_otsu_recovers_noisy_discs():
    truth = _discs()
    rng = np.random.default_rng(1)
    image = 100 + 400 * truth + rng.normal(0, 130, truth.shape)  # contrast-to-noise ~3
    masks = Otsu(OtsuConfig(smooth_sigma_px=1.0, min_size_px=10)).segment(_volume(image))
    unsmoothed = Otsu(OtsuConfig()).segment(_volume(image))
    # Without smoothing, noise splits the background into hundreds of specks.
    assert _iou(unsmoothed.semantic[0, 0] > 0, truth) < 0.5
    assert unsmoothed.instances.max() > 100
    assert masks.semantic.shape == (1, 1, 128, 128) and masks.semantic.dtype == np.uint8
    assert masks.instances.dtype == np.uint32
    assert masks.class_names == ("foreground",)
    assert masks.voxel_nm == VOXEL
    assert _iou(masks.semantic[0, 0] > 0, truth) >= 0.93  # 0.96
    assert masks.instances.max() == len(DISCS)
    assert len(np.unique(masks.instances)) == len(DISCS) + 1  # labels 1..n, no gaps


def test_min_size_removes_speckle():
    truth = _discs()
    image = truth.astype(float)
    image[60, 5] = 1.0  # a one-pixel object
    plain = Otsu(OtsuConfig()).segment(_volume(image))
    cleaned = Otsu(OtsuConfig(min_size_px=5)).segment(_volume(image))
    assert plain.instances.max() == len(DISCS) + 1
    assert cleaned.instances.max() == len(DISCS)
    assert cleaned.semantic[0, 0, 60, 5] == 0


def _uneven():
    """Discs under illumination falling from 1 to 0.15 across the field."""
    truth = _discs()
    illumination = np.linspace(0.15, 1.0, truth.shape[1])[None, :]
    rng = np.random.default_rng(2)
    image = 1000 * illumination * (0.3 + truth) + rng.normal(0, 15, truth.shape)
    return truth, image


def test_adaptive_beats_otsu_under_uneven_illumination():
    truth, image = _uneven()
    otsu = Otsu(OtsuConfig(smooth_sigma_px=1.0)).segment(_volume(image))
    adaptive = Adaptive(AdaptiveConfig(block_size_px=41, offset_sd=2.0, min_size_px=10)).segment(
        _volume(image)
    )
    iou_otsu = _iou(otsu.semantic[0, 0] > 0, truth)
    iou_adaptive = _iou(adaptive.semantic[0, 0] > 0, truth)
    # Otsu marks the bright side's background and misses the dim side's discs.
    assert iou_otsu < 0.7, iou_otsu  # 0.67
    assert iou_adaptive > 0.93, iou_adaptive  # 0.95
    assert iou_adaptive > iou_otsu + 0.2
    assert adaptive.instances.max() == len(DISCS)


def test_otsu_3d_balls_and_dask_channel():
    zz, yy, xx = np.mgrid[:12, :40, :40]
    # Anisotropic voxels: a 420 nm ball is 10 px across in-plane and ~4 planes deep.
    ball_a = ((zz - 5) * 200) ** 2 + ((yy - 12) * 42) ** 2 + ((xx - 12) * 42) ** 2 <= 420**2
    ball_b = ((zz - 6) * 200) ** 2 + ((yy - 28) * 42) ** 2 + ((xx - 28) * 42) ** 2 <= 420**2
    truth = ball_a | ball_b
    rng = np.random.default_rng(3)
    signal = 50 + 300 * truth + rng.normal(0, 20, truth.shape)
    data = da.from_array(np.stack([rng.normal(0, 1, truth.shape), signal]), chunks=(1, 6, 20, 20))
    volume = Volume(data, VOXEL, channel_names=("other", "mito"))
    masks = Otsu(OtsuConfig(channel=1, class_name="mito")).segment(volume)
    assert masks.semantic.shape == (1, 12, 40, 40)
    assert masks.class_names == ("mito",)
    assert _iou(masks.semantic[0] > 0, truth) >= 0.95
    assert masks.instances.max() == 2


def test_same_input_same_output():
    truth, image = _uneven()
    a = Adaptive(AdaptiveConfig()).segment(_volume(image))
    b = Adaptive(AdaptiveConfig()).segment(_volume(image))
    assert a.instances.tobytes() == b.instances.tobytes()


@pytest.mark.parametrize(
    ("volume", "config", "match"),
    [
        (Volume(np.zeros((1, 1, 1, 8, 8)), VOXEL, axes="TCZYX"), OtsuConfig(), "CZYX"),
        (
            Volume(np.random.default_rng(0).random((1, 1, 8, 8)), VOXEL),
            OtsuConfig(channel=1),
            "channel 1 does not exist",
        ),
        (Volume(np.array([[[[0.0, np.nan], [1.0, 2.0]]]]), VOXEL), AdaptiveConfig(), "NaN"),
        (Volume(np.zeros((1, 1, 0, 8)), VOXEL), OtsuConfig(), "empty"),
    ],
)
def test_bad_volumes_raise_volume_error(volume, config, match):
    segmenter = Otsu(config) if isinstance(config, OtsuConfig) else Adaptive(config)
    with pytest.raises(VolumeError, match=match):
        segmenter.segment(volume)


SEGMENTERS = [
    (Otsu, OtsuConfig),
    (Adaptive, AdaptiveConfig),
    (Backprop, BackpropConfig),
    (Morphological, MorphologicalConfig),
]


@pytest.mark.parametrize(("factory", "config"), SEGMENTERS)
@pytest.mark.parametrize(("value", "shape"), [(0.0, (1, 1, 16, 16)), (3.5, (1, 4, 8, 8))])
def test_constant_image_gives_empty_masks_and_a_warning(factory, config, value, shape):
    volume = Volume(np.full(shape, value, dtype=np.float32), VOXEL)
    with pytest.warns(UserWarning, match=rf"^image is constant \({value:g}\): empty mask$"):
        masks = factory(config(class_name="mito")).segment(volume)
    assert masks.semantic.shape == (1, *shape[1:]) and masks.semantic.dtype == np.uint8
    assert masks.instances.shape == shape[1:] and masks.instances.dtype == np.uint32
    assert masks.class_names == ("mito",)
    assert not masks.semantic.any() and not masks.instances.any()


@pytest.mark.parametrize(("factory", "config"), SEGMENTERS)
def test_every_segmenter_rejects_nan_and_missing_channels(factory, config):
    image = np.random.default_rng(0).random((1, 1, 8, 8))
    with pytest.raises(VolumeError, match="channel 2 does not exist"):
        factory(config(channel=2)).segment(Volume(image, VOXEL))
    image[0, 0, 3, 3] = np.inf
    with pytest.raises(VolumeError, match="NaN or infinite"):
        factory(config()).segment(Volume(image, VOXEL))


def test_a_normal_image_gives_no_warning():
    truth = _discs()
    image = 100 + 400 * truth + np.random.default_rng(1).normal(0, 50, truth.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Otsu(OtsuConfig()).segment(_volume(image))
        Morphological(MorphologicalConfig()).segment(_volume(image))


def test_bright_regions_ignore_regions_darker_than_the_background():
    # Background (label 0, 900 px at 100), a dark patch (80 px at 90), a spot (20 px at 110).
    regions = np.repeat([0, 1, 2], [900, 80, 20])
    image = np.repeat([100.0, 90.0, 110.0], [900, 80, 20])
    assert bright_regions(regions, image).tolist() == [False, False, True]
    # With every region, Otsu would split the dark patch from the rest.
    assert threshold_otsu(hist=(np.array([80, 900, 20]), np.array([90.0, 100.0, 110.0]))) == 90
    # Fewer than two regions at least as bright as the largest: all of them take part.
    dense = np.repeat([0, 1], [300, 700])
    assert bright_regions(dense, np.repeat([10.0, 50.0], [300, 700])).tolist() == [False, True]
    assert not bright_regions(np.zeros(5, dtype=int), np.ones(5)).any()


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: AdaptiveConfig(block_size_px=40), "block_size_px"),
        (lambda: OtsuConfig(smooth_sigma_px=-1), "smooth_sigma_px"),
        (lambda: OtsuConfig(min_size_px=-1), "min_size_px"),
        (lambda: OtsuConfig(channel=-1), "channel"),
        (lambda: OtsuConfig(class_name=" "), "class_name"),
    ],
)
def test_bad_configs_name_the_field(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_register_segmenters():
    seen = {}
    register_segmenters(lambda name, cls, factory, desc: seen.setdefault(name, (cls, factory)))
    assert set(seen) == {"otsu", "adaptive", "backprop", "morphological"}
    for cls, factory in seen.values():
        assert attrs.has(cls)
        assert hasattr(factory(cls()), "segment")
