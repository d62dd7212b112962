"""Chunked segmentation: same answer as whole-image inference, stitched instances, resume,
processes vs threads, bounded memory, inputs and bad input."""

from __future__ import annotations

import argparse
import tracemalloc
import warnings

import numpy as np
import pytest
import tifffile
import torch
import zarr
from monai.data.utils import dense_patch_slices

from subcell import models
from subcell.cli import segment as segment_cli
from subcell.cli.segment_chunked import run_chunked, wants_chunked
from subcell.core.errors import SubcellError, VolumeError
from subcell.core.model import Volume
from subcell.core.omezarr import read_labels, write_ome_zarr
from subcell.models.predict import class_masks, normalize, predict_probabilities
from subcell.pipeline.chunked import infer, read_result, segment_chunked, stitch
from subcell.pipeline.chunked.blocks import plan_blocks, window_starts
from subcell.pipeline.segment import run_segment
from subcell.pipeline.segment_steps import label_instances
from subcell.plugins.networks.configs import UNetConfig
from subcell.registry import get_registry

MODEL_NM = 100.0


def random_model(directory, *, dims=2, patch=(64, 64), in_channels=1, seed=0, classes=("blob",)):
    """A small U-Net with random weights and instance normalisation: its output depends on
    everything in a window, so only identical windows give identical answers."""
    config = {
        "spatial_dims": dims,
        "in_channels": in_channels,
        "out_channels": len(classes),
        "channels": [4, 8],
        "strides": [2],
        "num_res_units": 0,
        "norm": "instance",
    }
    torch.manual_seed(seed)
    net = get_registry().create("network", "unet", UNetConfig(**config))
    card = {
        "format": "subcell-model/1",
        "name": f"random-{dims}d",
        "description": "random weights, for tests",
        "network": {"plugin": "unet", "config": config},
        "head": "sigmoid",
        "classes": list(classes),
        "in_channels": in_channels,
        "voxel_nm": [MODEL_NM, MODEL_NM, MODEL_NM],
        "pixel_nm": MODEL_NM,
        "normalization": {"method": "percentile", "low_percentile": 1.0, "high_percentile": 99.8},
        "patch_px": list(patch),
        "input_multiple_px": 2,
        "threshold": 0.5,
    }
    return models.save(directory, net, card)


@pytest.fixture(scope="module")
def model2d(tmp_path_factory):
    return random_model(tmp_path_factory.mktemp("m") / "m2d")


@pytest.fixture(scope="module")
def model3d(tmp_path_factory):
    return random_model(tmp_path_factory.mktemp("m") / "m3d", dims=3, patch=(16, 32, 32))


def smooth_noise(shape, seed=0, sigma=2.0):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    image = rng.gamma(2.0, 10.0, size=shape).astype(np.float32)
    return ndimage.gaussian_filter(image, sigma).astype(np.float32)


def write_zarr(path, data, axes="zyx", chunks=None):
    array = zarr.create_array(
        str(path),
        shape=data.shape,
        dtype=data.dtype,
        chunks=chunks or tuple(min(s, 64) for s in data.shape),
        dimension_names=list(axes) if axes else None,
    )
    array[:] = data
    return path


def whole_image(model_dir, image_czyx, tta=False):
    """Whole-image MONAI sliding-window inference, as the in-memory path runs it."""
    model = models.load(model_dir)
    normalized, _ = normalize(image_czyx, model.card["normalization"])
    probs = predict_probabilities(model, normalized, tta=tta)
    return probs, class_masks(probs, "sigmoid", 0.5)


def chunked(image, model_dir, out, **kwargs):
    kwargs.setdefault("pixel_nm", MODEL_NM)
    kwargs.setdefault("progress", False)
    return segment_chunked(image, model_dir, out, **kwargs)


def arrays(out):
    result = read_result(out)
    inst = result["instances"]
    return (
        result["probabilities"][:],
        result["mask"][:],
        None if inst is None else inst[:],
    )


# ----------------------------------------------------------------------------- the window grid


@pytest.mark.parametrize(
    ("size", "roi"), [(200, 64), (64, 64), (50, 64), (513, 512), (1000, 96), (97, 32)]
)
def test_window_starts_are_monais(size, roi):
    interval = roi if roi >= size else int(roi * 0.75)
    expected = [s[0].start for s in dense_patch_slices((max(size, roi),), (roi,), (interval,))]
    assert window_starts(size, roi) == expected


# ----------------------------------------------------------------------------- same answer


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A (3, 200, 232) stack as a zarr array with axis names."""
    image = smooth_noise((3, 200, 232), seed=1, sigma=1.5)
    path = write_zarr(tmp_path_factory.mktemp("in") / "stack.zarr", image)
    return path, image


@pytest.mark.parametrize("block", [(1, 48, 48), (2, 100, 77), (3, 64, 232), None])
def test_chunked_mask_equals_whole_image_inference_2d(model2d, stack, tmp_path, block):
    path, image = stack
    ref_probs, ref_mask = whole_image(model2d, image[None])
    result = chunked(path, model2d, tmp_path / "out.zarr", block=block)
    probs, mask, _ = arrays(tmp_path / "out.zarr")
    agree = float((mask == ref_mask).mean())
    assert agree >= 0.999
    # float16 storage of probabilities in [0, 1]: at most half a unit in the last place
    assert np.abs(probs.astype(np.float32) - ref_probs).max() <= 2.5e-4
    assert 0.05 < ref_mask.mean() < 0.95  # a mask with plenty of edges to disagree on
    assert result.n_blocks == len(result.plan)


def test_chunked_tta_equals_whole_image_tta(model2d, stack, tmp_path):
    path, image = stack
    ref_probs, ref_mask = whole_image(model2d, image[None], tta=True)
    plain_probs, _ = whole_image(model2d, image[None])
    out = tmp_path / "out.zarr"
    chunked(path, model2d, out, block=(2, 100, 77), tta=True)
    probs, mask, _ = arrays(out)
    assert (mask == ref_mask).mean() >= 0.999
    assert np.abs(probs.astype(np.float32) - ref_probs).max() <= 2.5e-4
    # A random network is not symmetric: the views change its answer.
    assert np.abs(ref_probs - plain_probs).max() > 0.01
    attributes = read_result(out)["attrs"]
    assert attributes["provenance"]["config"]["tta"] is True and attributes["chunked"]["tta"]
    with pytest.raises(VolumeError, match="different segmentation job"):
        chunked(path, model2d, out, block=(2, 100, 77))


@pytest.mark.parametrize("block", [(12, 24, 24), (20, 45, 35)])
def test_chunked_mask_equals_whole_image_inference_3d(model3d, tmp_path, block):
    image = smooth_noise((40, 90, 70), seed=2)
    path = write_zarr(tmp_path / "v.zarr", image, chunks=(8, 32, 32))
    _, ref_mask = whole_image(model3d, image[None])
    result = chunked(path, model3d, tmp_path / "out.zarr", block=block)
    _, mask, _ = arrays(tmp_path / "out.zarr")
    assert (mask == ref_mask).mean() >= 0.999
    assert result.n_blocks > 1 and max(result.plan.halo) > 0


def test_rescaled_input_agrees_with_in_memory_path(model2d, tmp_path):
    """An image at 80 nm for a 100 nm model is rescaled; blocks agree closely, not exactly."""
    image = smooth_noise((1, 240, 260), seed=3, sigma=2.5)
    path = write_zarr(tmp_path / "im.zarr", image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = run_segment(Volume(image[None], (MODEL_NM, 80.0, 80.0)), model2d, pixel_nm=80.0)
    result = chunked(path, model2d, tmp_path / "out.zarr", block=(1, 96, 96), pixel_nm=80.0)
    _, mask, _ = arrays(tmp_path / "out.zarr")
    assert result.pixels.scale == pytest.approx((1.0, 0.8, 0.8))
    assert (mask == ref.masks.semantic).mean() >= 0.999


# ----------------------------------------------------------------------------- instances


def test_objects_crossing_blocks_get_one_id(model3d, tmp_path):
    image = smooth_noise((40, 90, 70), seed=2, sigma=4.0)
    path = write_zarr(tmp_path / "v.zarr", image)
    result = chunked(path, model3d, tmp_path / "out.zarr", block=(12, 24, 24), instances=True)
    _, mask, inst = arrays(tmp_path / "out.zarr")
    reference = label_instances(mask)
    fg = mask[0] > 0
    assert result.n_instances == reference.max() == inst.max() > 100
    assert np.array_equal(np.unique(inst), np.arange(result.n_instances + 1))
    assert np.array_equal(fg, inst > 0)
    # one of ours <-> one global component, both ways
    pairs = np.unique(np.stack([inst[fg], reference[fg]]), axis=1)
    assert pairs.shape[1] == result.n_instances
    # many objects do cross block boundaries (so the stitching is exercised)
    owners = {}
    for number in range(len(result.plan)):
        core = result.plan[number].core[1:]
        for i in np.unique(inst[core]):
            owners.setdefault(int(i), set()).add(number)
    spans = [len(v) for k, v in owners.items() if k]
    assert sum(n > 1 for n in spans) >= 20 and max(spans) >= 8


def test_two_classes_are_labelled_and_stitched_class_by_class(tmp_path):
    model = random_model(tmp_path / "m", classes=("a", "b"), seed=3)
    image = smooth_noise((2, 120, 110), seed=7, sigma=3.0)
    path = write_zarr(tmp_path / "v.zarr", image)
    result = chunked(path, model, tmp_path / "out.zarr", block=(1, 48, 48), instances=True)
    _, mask, inst = arrays(tmp_path / "out.zarr")
    reference = label_instances(mask)  # class 1's components first, then class 2's
    assert mask[0].any() and mask[1].any() and (mask[0] & mask[1]).any()  # overlapping
    assert result.n_instances == reference.max()
    fg = reference > 0
    pairs = np.unique(np.stack([inst[fg], reference[fg]]), axis=1)
    assert pairs.shape[1] == result.n_instances
    # ids of class 1 objects come before those of class 2, as in label_instances
    first_class = reference[(mask[0] > 0)].max()
    assert inst[mask[0] > 0].max() == first_class
    local, counts = stitch.label_block(mask)
    assert np.array_equal(local, reference) and counts.sum() == reference.max()


def test_relabel_table_numbers_by_class_then_first_block():
    counts = np.array([[2, 1], [1, 1]])  # block 0: ids 1, 2 (class 1), 3 (class 2); block 1: 4, 5
    pairs = np.array([[2, 4], [3, 5]])
    table = stitch.relabel_table(pairs, counts)
    assert table.tolist() == [0, 1, 2, 3, 2, 3]


# ----------------------------------------------------------------------------- scale-out


def test_local_cluster_processes_match_threads(model3d, tmp_path):
    # Small, so the default suite can afford starting a local cluster of two processes.
    image = smooth_noise((24, 64, 48), seed=2)
    path = write_zarr(tmp_path / "v.zarr", image)
    kwargs = {"block": (12, 32, 24), "instances": True}
    chunked(path, model3d, tmp_path / "threads.zarr", **kwargs)
    chunked(path, model3d, tmp_path / "procs.zarr", workers=2, **kwargs)
    for a, b in zip(
        arrays(tmp_path / "threads.zarr"), arrays(tmp_path / "procs.zarr"), strict=True
    ):
        assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- resume


class _Killed(RuntimeError):
    pass


def _fail_after(monkeypatch, module, name, calls):
    real = getattr(module, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        if count["n"] >= calls:
            raise _Killed(f"killed after {calls} calls")
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize(("module", "name"), [(infer, "run_block"), (stitch, "relabel_block")])
def test_killed_run_resumes_to_the_same_output(model3d, tmp_path, monkeypatch, module, name):
    image = smooth_noise((40, 90, 70), seed=2)
    path = write_zarr(tmp_path / "v.zarr", image)
    kwargs = {"block": (20, 45, 35), "instances": True}
    chunked(path, model3d, tmp_path / "whole.zarr", **kwargs)
    with monkeypatch.context() as patch:
        _fail_after(patch, module, name, 3)
        with pytest.raises(_Killed):
            chunked(path, model3d, tmp_path / "out.zarr", **kwargs)
    with pytest.raises(VolumeError, match="incomplete"):
        read_result(tmp_path / "out.zarr")
    partial = read_result(tmp_path / "out.zarr", allow_incomplete=True)
    assert partial["attrs"]["complete"] is False
    resumed = chunked(path, model3d, tmp_path / "out.zarr", **kwargs)
    assert resumed.blocks_run == (len(resumed.plan) - 3 if module is infer else 0)
    for a, b in zip(arrays(tmp_path / "whole.zarr"), arrays(tmp_path / "out.zarr"), strict=True):
        assert np.array_equal(a, b)
    again = chunked(path, model3d, tmp_path / "out.zarr", **kwargs)
    assert again.status == "already complete" and again.blocks_run == 0


# ----------------------------------------------------------------------------- memory


def _traced_peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _peaks(model_dir, tmp_path, monkeypatch, *, instances: bool):
    """Traced peaks of runs over 2 and 16 blocks of the same size, and the provisional
    objects each found."""
    monkeypatch.setattr(infer, "SAMPLE_VOXELS", 2**14)
    kwargs = {"block": (2, 128, 128), "instances": instances}
    peaks, objects = [], []
    for depth in (4, 32):
        image = write_zarr(
            tmp_path / f"{depth}.zarr", smooth_noise((depth, 128, 128), seed=4), chunks=(1, 64, 64)
        )
        chunked(image, model_dir, tmp_path / f"warm{depth}.zarr", **kwargs)  # imports, caches
        out = tmp_path / f"out{depth}.zarr"
        peaks.append(_traced_peak(lambda: chunked(image, model_dir, out, **kwargs)))  # noqa: B023
        objects.append(int(np.asarray(zarr.open_group(str(out))["_progress/counts"]).sum()))
    return peaks, objects


VOLUME_GROWTH = (32 - 4) * 128 * 128 * 4  # float32 bytes the larger volume adds


def test_peak_memory_is_set_by_the_block_not_the_volume(model2d, tmp_path, monkeypatch):
    """Traced (numpy and Python) memory of a semantic run over 16 blocks stays near that of
    a run over 2 blocks of the same size: it is set by the block, not the 8x larger volume."""
    (small, large), _ = _peaks(model2d, tmp_path, monkeypatch, instances=False)
    assert large - small < VOLUME_GROWTH / 10
    assert large < 1.2 * small


def test_instance_stitching_memory_grows_with_objects_not_voxels(model2d, tmp_path, monkeypatch):
    """Stitching keeps one id table over all provisional objects (tens of bytes each) and
    nothing per voxel. The random model cuts noise into an object per ~30 voxels, far
    denser than any real image, so the bound is per object."""
    (small, large), (few, many) = _peaks(model2d, tmp_path, monkeypatch, instances=True)
    assert many - few > 5000  # the test has teeth only if objects grow a lot
    assert (large - small) / (many - few) < 80
    assert large - small < VOLUME_GROWTH / 2


# ----------------------------------------------------------------------------- inputs and output


def test_time_series_frames_are_segmented_each_with_its_own_percentiles(model2d, tmp_path):
    frames = np.stack([smooth_noise((1, 96, 80), seed=s) for s in (5, 6)])[:, None]
    frames[1] = frames[0] * 3.0  # a brighter frame: per-frame percentiles make this irrelevant
    path = write_zarr(tmp_path / "t.zarr", frames, axes="tczyx")
    chunked(path, model2d, tmp_path / "out.zarr", block=(1, 48, 48), instances=True)
    probs, mask, inst = arrays(tmp_path / "out.zarr")
    assert mask.shape == (2, 1, 1, 96, 80) and inst.shape == (2, 1, 96, 80)
    for t in range(2):
        _, ref = whole_image(model2d, frames[t])
        assert (mask[t] == ref).mean() >= 0.999
    assert (mask[0] == mask[1]).mean() >= 0.999


def test_tiff_and_ome_zarr_inputs_give_the_zarr_answer(model2d, stack, tmp_path):
    path, image = stack
    chunked(path, model2d, tmp_path / "a.zarr", block=(1, 100, 116))
    tifffile.imwrite(tmp_path / "s.tif", image, imagej=True, metadata={"axes": "ZYX"})
    chunked(tmp_path / "s.tif", model2d, tmp_path / "b.zarr", block=(1, 100, 116))
    write_ome_zarr(Volume(image[None], (300.0, MODEL_NM, MODEL_NM)), tmp_path / "s.ome.zarr")
    chunked(tmp_path / "s.ome.zarr", model2d, tmp_path / "c.zarr", block=(1, 100, 116))
    reference = arrays(tmp_path / "a.zarr")[1]
    assert np.array_equal(arrays(tmp_path / "b.zarr")[1], reference)
    assert np.array_equal(arrays(tmp_path / "c.zarr")[1], reference)


def test_output_is_ome_zarr_with_labels(model2d, stack, tmp_path):
    path, _ = stack
    chunked(path, model2d, tmp_path / "out.zarr", block=(1, 100, 116), instances=True)
    masks = read_labels(tmp_path / "out.zarr")  # what evaluate and analyze read
    _, mask, inst = arrays(tmp_path / "out.zarr")
    assert np.array_equal(masks.semantic, mask) and np.array_equal(masks.instances, inst)
    assert masks.voxel_nm[1:] == (MODEL_NM, MODEL_NM)
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert group["probabilities"].dtype == np.float16
    assert group["labels/mask/0"].metadata.chunk_grid.chunk_shape == (1, 1, 100, 116)  # a shard
    image_models = pytest.importorskip("ome_zarr_models.v05.image")
    label_models = pytest.importorskip("ome_zarr_models.v05.image_label")
    image_models.Image.from_zarr(group)
    label_models.ImageLabel.from_zarr(group["labels/mask"])
    label_models.ImageLabel.from_zarr(group["labels/instances"])


# ----------------------------------------------------------------------------- bad input


def test_block_smaller_than_the_halo_names_the_minimum(model2d, stack, tmp_path):
    path, _ = stack
    with pytest.raises(VolumeError, match="minimum --block along y is 48"):
        chunked(path, model2d, tmp_path / "out.zarr", block=(1, 20, 100))


def test_plan_minimum_follows_the_window_step():
    card = {
        "network": {"config": {"spatial_dims": 2}},
        "patch_px": [512, 512],
        "input_multiple_px": 16,
    }
    plan = plan_blocks((1, 4, 1000, 1500), card)
    assert plan.block == (4, 1000, 1500)  # whole planes: no window computed twice
    assert plan_blocks((1, 1, 5000, 5000), card).block == (1, 1920, 1920)  # 5 window steps
    with pytest.raises(VolumeError, match="minimum --block along x is 384"):
        plan_blocks((1, 1, 2000, 3000), card, block=(1, 512, 300))


def test_existing_outputs(model2d, stack, tmp_path):
    path, _ = stack
    out = tmp_path / "out.zarr"
    chunked(path, model2d, out, block=(3, 200, 232))
    with pytest.raises(VolumeError, match="different segmentation job.*--overwrite"):
        chunked(path, model2d, out, block=(1, 200, 232))
    replaced = chunked(path, model2d, out, block=(1, 200, 232), overwrite=True)
    assert replaced.status == "complete"
    with pytest.raises(VolumeError, match="would overlap the input"):
        chunked(path, model2d, path, overwrite=True)
    assert zarr.open_array(str(path), mode="r").shape == (3, 200, 232)
    (tmp_path / "file.zarr").write_text("not zarr")
    with pytest.raises(VolumeError, match="not a zarr hierarchy"):
        chunked(path, model2d, tmp_path / "file.zarr", overwrite=True)
    assert (tmp_path / "file.zarr").read_text() == "not zarr"


def test_two_channel_input_matches_whole_image(tmp_path):
    model = random_model(tmp_path / "m", in_channels=2, seed=4)
    image = np.stack([smooth_noise((2, 90, 100), seed=s) for s in (8, 9)])
    image[1] *= 5.0  # channels with their own ranges
    path = write_zarr(tmp_path / "c.zarr", image, axes="czyx")
    chunked(path, model, tmp_path / "out.zarr", block=(1, 48, 48))
    _, ref = whole_image(model, image)
    assert (arrays(tmp_path / "out.zarr")[1] == ref).mean() >= 0.999


def test_channel_count_and_method_are_checked(model2d, tmp_path):
    two = write_zarr(tmp_path / "two.zarr", smooth_noise((2, 1, 64, 64)), axes="czyx")
    with pytest.raises(VolumeError, match="expects 1 input channel.*has 2"):
        chunked(two, model2d, tmp_path / "o.zarr")
    one = write_zarr(tmp_path / "one.zarr", smooth_noise((1, 64, 64)))
    with pytest.raises(SubcellError, match="segmenter plugins run in memory"):
        chunked(one, "otsu", tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists()


def test_constant_image_gives_an_empty_mask_and_nan_is_refused(model2d, tmp_path):
    path = write_zarr(tmp_path / "c.zarr", np.full((1, 64, 64), 7.0, np.float32))
    with pytest.warns(UserWarning, match="the image is constant"):
        chunked(path, model2d, tmp_path / "o.zarr")
    probs, mask, _ = arrays(tmp_path / "o.zarr")
    assert mask.max() == 0 and probs.max() == 0
    data = smooth_noise((1, 64, 64))
    data[0, 10, 10] = np.nan
    path = write_zarr(tmp_path / "nan.zarr", data)
    with pytest.raises(VolumeError, match=r"NaN or infinite values \(in t 0:1, z 0:1, y 0:64"):
        chunked(path, model2d, tmp_path / "n.zarr")


def test_plain_array_without_axes_is_assumed_and_said(model2d, tmp_path):
    path = write_zarr(tmp_path / "plain.zarr", smooth_noise((2, 64, 64)), axes=None)
    with pytest.warns(UserWarning, match="without axes metadata; reading it as ZYX"):
        result = chunked(path, model2d, tmp_path / "o.zarr")
    assert result.plan.shape == (1, 2, 64, 64)
    with pytest.warns(UserWarning, match="states no pixel size"):
        chunked(path, model2d, tmp_path / "p.zarr", pixel_nm=None, axes="ZYX")


# ----------------------------------------------------------------------------- command line


def _segment_parser():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers()
    segment_cli.add_commands(commands)
    return parser


def test_command_line_takes_the_chunked_path(model2d, stack, tmp_path, capsys):
    path, _ = stack
    parser = _segment_parser()
    argv = [
        "segment",
        str(path),
        "--model",
        str(model2d),
        "--out",
        str(tmp_path / "o.zarr"),
        "--pixel-nm",
        "100",
        "--block",
        "1,100,116",
        "--instances",
    ]
    args = parser.parse_args(argv)
    assert wants_chunked(args)
    assert not wants_chunked(
        parser.parse_args(["segment", "a.tif", "--model", "m", "--out", "b.tif"])
    )
    assert run_chunked(args, registry=get_registry()) == 0
    line = capsys.readouterr().out
    assert "12 blocks of 1x100x116" in line and "objects" in line
    run_chunked(args, registry=get_registry())
    assert "already complete" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args([*argv[:-3], "--block", "0,5,5"])
    bad = parser.parse_args(
        ["segment", str(path), "--model", "m", "--out", "x.tif", "--workers", "2"]
    )
    with pytest.raises(SubcellError, match="name the output .zarr"):
        run_chunked(bad, registry=get_registry())
