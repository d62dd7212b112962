"""In-memory segmentation: models, baselines, pixel-size rescaling, bad input, outputs."""

from __future__ import annotations

import json
import os
import pickle
import warnings

import numpy as np
import pytest
import tifffile
import torch

from subcell import models
from subcell.core.errors import SubcellError, VolumeError
from subcell.core.model import Masks, Volume
from subcell.pipeline import segment_steps as steps
from subcell.pipeline.segment import run_segment, segment_volume
from subcell.pipeline.segment_io import overlay_png, write_segmentation
from subcell.pipeline.segment_steps import check_channels, grid_shape, label_instances, pixel_sizes
from subcell.pipeline.volumes import read_volume
from subcell.plugins.networks.configs import UNetConfig
from subcell.registry import get_registry

MODEL_NM = 100.0


def tiny_model(directory, *, in_channels=1, pixel_nm=MODEL_NM, classes=("disc",)):
    """A 2D U-Net whose logit is 20 * (bilinear-resampled mean input - 0.5): bright is disc.

    The stride-2 encoder keeps the centre tap (every other pixel), batch norm in eval mode and
    PReLU of slope 1 are identities, the skip branch is zero, and the transposed convolution
    with kernel [0.5, 1, 0.5] x [0.5, 1, 0.5] interpolates back bilinearly.
    """
    config = {
        "spatial_dims": 2,
        "in_channels": in_channels,
        "out_channels": 1,
        "channels": [4, 8],
        "strides": [2],
        "num_res_units": 0,
        "norm": "batch",
    }
    net = get_registry().create("network", "unet", UNetConfig(**config))
    gain = 20.0
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.model[0].conv.weight[0, :, 1, 1] = 1.0 / in_channels
        net.model[0].adn.N.weight.fill_(1.0)
        net.model[0].adn.A.weight.fill_(1.0)
        k = torch.tensor([0.5, 1.0, 0.5])
        net.model[2].conv.weight[0, 0] = gain * torch.outer(k, k)
        net.model[2].conv.bias.fill_(-0.45 * gain)  # threshold just below half-way edges
    card = {
        "format": "subcell-model/1",
        "name": "tiny-disc",
        "description": "bright discs, for tests",
        "network": {"plugin": "unet", "config": config},
        "head": "sigmoid",
        "classes": list(classes),
        "in_channels": in_channels,
        "voxel_nm": [300.0, pixel_nm, pixel_nm],
        "pixel_nm": pixel_nm,
        "normalization": {"method": "percentile", "low_percentile": 1.0, "high_percentile": 99.8},
        "patch_px": [1, 64, 64],
        "input_multiple_px": 2,
        "threshold": 0.5,
    }
    return models.save(directory, net, card)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def disc(shape=(96, 96), centre=(48.3, 45.7), radius=20.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def noisy(mask, seed=0):
    rng = np.random.default_rng(seed)
    return (mask * 100.0 + 20.0 + rng.normal(0, 4, mask.shape)).astype(np.float32)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def radius(mask):
    return float(np.sqrt(mask.sum() / np.pi))


def volume(image, voxel=(1.0, MODEL_NM, MODEL_NM)):
    data = image[None, None] if image.ndim == 2 else image[None]
    return Volume(data, voxel)


def test_model_finds_a_bright_disc(model_dir):
    truth = disc()
    masks = segment_volume(volume(noisy(truth)), str(model_dir))
    assert masks.semantic.shape == (1, 1, 96, 96) and masks.semantic.dtype == np.uint8
    assert masks.class_names == ("disc",)
    assert iou(masks.semantic[0, 0].astype(bool), truth) >= 0.9
    assert masks.instances is None


def test_loaded_model_and_instances(model_dir):
    truth = disc(centre=(30, 30), radius=12) | disc(centre=(70, 66), radius=15)
    loaded = models.load(model_dir)
    masks = segment_volume(volume(noisy(truth)), loaded, instances=True)
    assert masks.instances.dtype == np.uint32
    assert sorted(np.unique(masks.instances)) == [0, 1, 2]
    assert (masks.instances[0, 30, 30], masks.instances[0, 70, 66]) == (1, 2)
    assert np.array_equal(masks.instances > 0, masks.semantic[0] > 0)


def test_label_instances_numbers_classes_in_turn():
    semantic = np.zeros((2, 1, 8, 8), np.uint8)
    semantic[0, 0, 1:3, 1:3] = semantic[0, 0, 5:7, 5:7] = 1
    semantic[1, 0, 1:3, 5:7] = 1
    labels = label_instances(semantic)
    assert labels.dtype == np.uint32
    assert (labels[0, 1, 1], labels[0, 5, 5], labels[0, 1, 5]) == (1, 2, 3)
    assert labels.max() == 3 and (labels == 0).sum() == 64 - 12


def test_half_pixel_size_is_rescaled_and_mapped_back(model_dir, monkeypatch):
    truth = disc(shape=(100, 96), radius=20)
    seen = []
    original = steps.predict_probabilities

    def spy(model, image, **kwargs):
        seen.append(image.shape)
        return original(model, image, **kwargs)

    monkeypatch.setattr(steps, "predict_probabilities", spy)
    result = run_segment(volume(noisy(truth)), str(model_dir), pixel_nm=MODEL_NM / 2)
    assert seen == [(1, 1, 50, 48)]  # the model saw the image at its own pixel size
    mask = result.masks.semantic[0, 0].astype(bool)
    assert mask.shape == truth.shape
    assert abs(radius(mask) - 20.0) <= 1.0
    assert iou(mask, truth) >= 0.9
    assert result.masks.voxel_nm == (1.0, 50.0, 50.0)
    assert result.pixels.scale == (1.0, 0.5, 0.5)


def test_pixel_size_rules():
    card = {"name": "m", "pixel_nm": 100.0, "voxel_nm": [300, 100, 100]}
    card["network"] = {"config": {"spatial_dims": 2}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = pixel_sizes((1, 101.5, 101.5), card=card)  # within 2 %: no rescaling, no warning
        given = pixel_sizes((1, 50, 50), pixel_nm=200, card=card)  # --pixel-nm wins, silently
    assert same.scale == (1, 1, 1) and same.used_nm == (1, 101.5, 101.5)
    assert given.scale == (1, 2, 2) and given.image_nm == (None, 50, 50)
    with pytest.warns(
        UserWarning, match=r"image pixel size 50 nm .* the model's 100 nm \(model 'm'\)"
    ):
        meta = pixel_sizes((1, 50, 50), card=card)
    assert meta.scale == (1, 0.5, 0.5)
    with pytest.warns(
        UserWarning, match=r"states no pixel size; assuming the model's, 100 nm \(model 'm';"
    ):
        unstated = pixel_sizes((1, 1, 1), card=card)
    assert unstated.used_nm == (1, 100, 100) and unstated.scale == (1, 1, 1)
    assert grid_shape((1, 99, 7), (1, 0.5, 0.5)) == (1, 50, 4)


def test_metadata_pixel_size_mismatch_warns_with_both_numbers(model_dir, tmp_path):
    truth = disc()
    path = tmp_path / "img.tif"
    tifffile.imwrite(
        path, noisy(truth), imagej=True, resolution=(1 / 0.05, 1 / 0.05), metadata={"unit": "um"}
    )
    image = read_volume(path)
    with pytest.warns(UserWarning, match=r"50 nm.*100 nm"):
        masks = segment_volume(image, str(model_dir))
    assert masks.voxel_nm[1:] == pytest.approx((50, 50))
    assert abs(radius(masks.semantic[0, 0].astype(bool)) - 20) <= 1


def test_stack_goes_through_a_2d_model_plane_by_plane(model_dir):
    radii = (10, 16, 22)
    truth = np.stack([disc(radius=r) for r in radii])
    masks = segment_volume(volume(noisy(truth)), str(model_dir))
    assert masks.semantic.shape == (1, 3, 96, 96)
    for z, r in enumerate(radii):
        assert abs(radius(masks.semantic[0, z].astype(bool)) - r) <= 1


def test_channel_mismatch_names_both_counts(model_dir):
    two = np.stack([noisy(disc()), noisy(disc())])[:, None]
    with pytest.raises(VolumeError, match=r"expects 1 input channel\(s\); the image has 2"):
        segment_volume(Volume(two, (1, 100, 100)), str(model_dir))
    with pytest.raises(VolumeError, match="has 3; it is a colour image"):
        check_channels({"in_channels": 1, "name": "m"}, 3)


def test_two_channel_model(tmp_path):
    directory = tiny_model(tmp_path / "two", in_channels=2)
    truth = disc()
    data = np.stack([noisy(truth, 1), noisy(truth, 2)])[:, None]
    masks = segment_volume(Volume(data, (1, 100, 100)), str(directory))
    assert iou(masks.semantic[0, 0].astype(bool), truth) >= 0.9


@pytest.mark.parametrize("method", ["model", "otsu"])
def test_all_zero_image_gives_an_empty_mask_and_a_warning(model_dir, method):
    zero = np.zeros((1, 1, 40, 40), np.uint16)
    with pytest.warns(UserWarning, match="constant .*mask is empty"):
        masks = segment_volume(
            Volume(zero, (1, 100, 100)), str(model_dir) if method == "model" else "otsu"
        )
    assert masks.semantic.shape == (1, 1, 40, 40) and masks.semantic.sum() == 0


def test_otsu_baseline_by_name():
    truth = disc()
    masks = segment_volume(volume(noisy(truth)), "otsu", instances=True)
    assert masks.class_names == ("foreground",)
    assert iou(masks.semantic[0, 0].astype(bool), truth) >= 0.9
    assert masks.instances.max() >= 1 and masks.instances.dtype == np.uint32


def test_directory_wins_over_segmenter_name(model_dir, tmp_path, monkeypatch):
    tiny_model(tmp_path / "otsu", classes=("dir-model",))
    monkeypatch.chdir(tmp_path)
    masks = segment_volume(volume(noisy(disc())), "otsu")
    assert masks.class_names == ("dir-model",)


def test_unknown_name_lists_what_exists():
    with pytest.raises(SubcellError, match=r"no such model directory.*segmenters: .*otsu"):
        segment_volume(volume(noisy(disc())), "no-such-model")


def test_foreign_weights_are_refused_without_running_code(model_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "card.json").write_text((model_dir / "card.json").read_text())
    (broken / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(models.ModelError, match="not a readable safetensors file"):
        segment_volume(volume(noisy(disc())), str(broken))
    marker = tmp_path / "code-ran"
    pickled = tmp_path / "x.pt"
    pickled.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(models.ModelError, match="pickled PyTorch files are not loaded"):
        segment_volume(volume(noisy(disc())), str(pickled))
    assert not marker.exists()


class _Payload:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_time_series_is_refused():
    data = np.zeros((2, 1, 1, 8, 8), np.float32)
    with pytest.raises(VolumeError, match="one time point at a time"):
        segment_volume(Volume(data, (1, 1, 1), axes="TCZYX"), "otsu")


def _masks():
    semantic = np.zeros((2, 1, 16, 16), np.uint8)
    semantic[0, 0, 2:6, 2:6] = 1
    semantic[1, 0, 9:14, 8:12] = 1
    return Masks(semantic, ("mito", "vesicle"), (300.0, 42.0, 42.0))


@pytest.mark.parametrize("suffix", [".tif", ".npy", ".png"])
def test_write_class_map_and_sidecar(tmp_path, suffix):
    out = write_segmentation(_masks(), tmp_path / f"mask{suffix}", attrs={"step": "segment"})
    if suffix == ".tif":
        data = tifffile.imread(out)
        back = read_volume(out)
        assert back.voxel_nm[1:] == pytest.approx((42, 42), rel=1e-5)
    elif suffix == ".npy":
        data = np.load(out)
    else:
        from PIL import Image

        data = np.asarray(Image.open(out))
    assert data.dtype == np.uint8 and data.shape == (16, 16)
    assert (data[3, 3], data[10, 9], data[0, 0]) == (1, 2, 0)
    side = json.loads((tmp_path / f"mask{suffix}.provenance.json").read_text())
    assert side["step"] == "segment" and side["output"]["classes"] == {"1": "mito", "2": "vesicle"}
    assert not list(tmp_path.glob(".*partial*"))


def test_write_instances(tmp_path):
    masks = _masks()
    out = write_segmentation(masks, tmp_path / "inst.tif", instances=True)
    data = tifffile.imread(out)
    assert data.dtype == np.uint32 and sorted(np.unique(data)) == [0, 1, 2]
    assert read_volume(out).voxel_nm[1:] == pytest.approx((42, 42), rel=1e-5)
    png = write_segmentation(masks, tmp_path / "inst.png", instances=True)
    from PIL import Image

    assert np.asarray(Image.open(png)).dtype == np.uint16
    stack = Masks(np.zeros((1, 2, 4, 4), np.uint8), ("a",), (1, 1, 1))
    with pytest.raises(VolumeError, match="PNG holds one plane"):
        write_segmentation(stack, tmp_path / "stack.png")
    many = np.zeros((1, 1, 600, 600), np.uint8)  # 90 000 isolated pixels
    many[0, 0, ::2, ::2] = 1
    with pytest.raises(VolumeError, match="do not fit a 16-bit PNG; write .tif"):
        write_segmentation(Masks(many, ("a",), (1, 1, 1)), tmp_path / "many.png", instances=True)
    assert not (tmp_path / "many.png.provenance.json").exists()  # refused before writing
    with pytest.raises(VolumeError, match="use one of .tif"):
        write_segmentation(masks, tmp_path / "mask.jpg")


def test_stack_tiff_keeps_z_step(tmp_path):
    semantic = np.zeros((1, 3, 8, 8), np.uint8)
    semantic[0, 1, 2:5, 2:5] = 1
    out = write_segmentation(Masks(semantic, ("a",), (250.0, 40.0, 40.0)), tmp_path / "s.tif")
    back = read_volume(out)
    assert back.shape == (1, 3, 8, 8)
    assert back.voxel_nm == pytest.approx((250, 40, 40), rel=1e-5)


def test_overlay_draws_class_outlines(tmp_path):
    from PIL import Image

    image = noisy(disc(shape=(32, 32), centre=(16, 16), radius=8))
    classes = disc(shape=(32, 32), centre=(16, 16), radius=8).astype(np.uint8)
    out = overlay_png(image, classes, tmp_path / "ov.png")
    rgb = np.asarray(Image.open(out))
    assert rgb.shape == (32, 32, 3)
    red = (rgb == (255, 60, 60)).all(axis=-1)
    assert red[16, 8] and not red[16, 16] and not red[0, 0]  # edge, inside, outside


def test_3d_model_rescales_z_too(tmp_path, monkeypatch):
    config = {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [4, 8]}
    config |= {"strides": [2], "num_res_units": 0, "norm": "batch"}
    net = get_registry().create("network", "unet", UNetConfig(**config))
    card = json.loads((tiny_model(tmp_path / "flat") / "card.json").read_text())
    card |= {"name": "tiny-3d", "head": "softmax", "voxel_nm": [200.0, 100.0, 100.0]}
    card |= {"network": {"plugin": "unet", "config": config}, "patch_px": [16, 32, 32]}
    directory = models.save(tmp_path / "three", net, card)
    seen = []
    original = steps.predict_probabilities
    monkeypatch.setattr(
        steps,
        "predict_probabilities",
        lambda m, image, **kw: seen.append(image.shape) or original(m, image, **kw),
    )
    data = np.random.default_rng(0).random((1, 10, 40, 40)).astype(np.float32)
    with pytest.warns(UserWarning) as record:
        result = run_segment(Volume(data, (400, 50, 50)), str(directory))
    messages = " | ".join(str(w.message) for w in record)
    assert (
        "pixel size 50 nm" in messages
        and "z step 400 nm differs from the model's 200 nm" in messages
    )
    assert seen == [(1, 20, 20, 20)]
    assert result.masks.semantic.shape == (1, 10, 40, 40)
    assert result.pixels.scale == (2.0, 0.5, 0.5)
