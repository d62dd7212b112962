"""``subcell segment`` and ``subcell models``: outputs, messages, exit codes."""

from __future__ import annotations

import importlib.util
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import subcell.cli as cli
from subcell import models

# The tiny predictable model is defined once, with the pipeline tests.
_spec = importlib.util.spec_from_file_location(
    "_segment_pipeline_tests", Path(__file__).parent / "pipeline" / "test_segment.py"
)
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
tiny_model, disc, noisy, iou, radius = (
    _helpers.tiny_model,
    _helpers.disc,
    _helpers.noisy,
    _helpers.iou,
    _helpers.radius,
)


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    """Make sure the commands are wired, whether or not the CLI lists them yet."""
    wanted = tuple(dict.fromkeys((*cli._COMMAND_MODULES, "segment", "models")))
    monkeypatch.setattr(cli, "_COMMAND_MODULES", wanted)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("models") / "tiny")


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def grey_png(path, image):
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
    return path


def test_segment_png_with_half_pixel_size(model_dir, tmp_path, capsys):
    truth = disc(shape=(96, 100), radius=20)
    image = grey_png(tmp_path / "img.png", noisy(truth))
    out = tmp_path / "mask.tif"
    status, stdout, err = run(
        capsys, "segment", image, "--model", model_dir, "--out", out, "--pixel-nm", 50
    )
    assert status == 0, err
    assert "warning" not in err  # --pixel-nm given: nothing assumed
    assert stdout.startswith(f"{out}: 1 disc (model tiny-disc, 96x100 px")
    mask = tifffile.imread(out)
    assert mask.shape == truth.shape and mask.dtype == np.uint8
    assert abs(radius(mask > 0) - 20) <= 1
    side = json.loads(Path(f"{out}.provenance.json").read_text())
    assert side["method"]["name"] == "tiny-disc" and side["method"]["card"]["pixel_nm"] == 100
    assert side["method"]["path"] == str(model_dir.resolve())
    assert side["pixel_nm"]["used_nm"][1:] == [50, 50] and side["pixel_nm"]["scale"][1:] == [
        0.5,
        0.5,
    ]
    assert side["inputs"]["image"] == str(image.resolve())


def test_png_without_pixel_size_assumes_the_models(model_dir, tmp_path, capsys):
    image = grey_png(tmp_path / "img.png", noisy(disc()))
    status, _, err = run(
        capsys, "segment", image, "--model", model_dir, "--out", tmp_path / "m.npy"
    )
    assert status == 0
    assert (
        "subcell: warning: the image states no pixel size; assuming the model's, 100 nm (model 'tiny-disc';"
        in err
    )
    assert iou(np.load(tmp_path / "m.npy") > 0, disc()) >= 0.9


def test_rgb_png_with_identical_channels_is_one_channel(model_dir, tmp_path, capsys):
    grey = np.clip(noisy(disc()), 0, 255).astype(np.uint8)
    Image.fromarray(np.repeat(grey[..., None], 3, axis=-1)).save(tmp_path / "rgb.png")
    grey_png(tmp_path / "grey.png", grey)
    for name in ("rgb", "grey"):
        status, _, err = run(
            capsys,
            "segment",
            tmp_path / f"{name}.png",
            "--model",
            model_dir,
            "--out",
            tmp_path / f"{name}-mask.png",
            "--pixel-nm",
            100,
        )
        assert status == 0, err
    rgb_mask = np.asarray(Image.open(tmp_path / "rgb-mask.png"))
    assert np.array_equal(rgb_mask, np.asarray(Image.open(tmp_path / "grey-mask.png")))
    assert iou(rgb_mask > 0, disc()) >= 0.9


def test_rgb_png_with_colours_is_a_channel_error(model_dir, tmp_path, capsys):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[8:20, 8:20, 1] = 100
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    status, _, err = run(
        capsys, "segment", tmp_path / "rgb.png", "--model", model_dir, "--out", tmp_path / "m.tif"
    )
    assert status == 2
    assert err.strip() == (
        "subcell: error: model 'tiny-disc' expects 1 input channel(s); the image has 3; "
        "it is a colour image with differing channels, convert it to grey"
    )
    assert not (tmp_path / "m.tif").exists()


def test_otsu_baseline_instances_and_overlay(tmp_path, capsys):
    truth = disc(centre=(30, 30), radius=12) | disc(centre=(70, 66), radius=15)
    image = tmp_path / "img.npy"
    np.save(image, noisy(truth))
    out, overlay = tmp_path / "inst.tif", tmp_path / "overlay.png"
    status, stdout, _ = run(
        capsys,
        "segment",
        image,
        "--model",
        "otsu",
        "--out",
        out,
        "--instances",
        "--overlay",
        overlay,
    )
    assert status == 0
    assert "2 foreground (segmenter otsu" in stdout
    labels = tifffile.imread(out)
    assert labels.dtype == np.uint32 and sorted(np.unique(labels)) == [0, 1, 2]
    rgb = np.asarray(Image.open(overlay))
    assert rgb.shape == (96, 96, 3) and (rgb == (255, 60, 60)).all(axis=-1).sum() > 100


def test_all_zero_image_gives_an_empty_mask(model_dir, tmp_path, capsys):
    np.save(tmp_path / "zero.npy", np.zeros((32, 32), np.float32))
    status, stdout, err = run(
        capsys,
        "segment",
        tmp_path / "zero.npy",
        "--model",
        model_dir,
        "--out",
        tmp_path / "m.npy",
        "--pixel-nm",
        100,
    )
    assert status == 0
    assert "subcell: warning: the image is constant (0): nothing to segment" in err
    assert "0 disc" in stdout
    mask = np.load(tmp_path / "m.npy")
    assert mask.shape == (32, 32) and mask.sum() == 0


def _payload_dir(tmp_path, model_dir, marker):
    """A model directory with a valid card and a pickle that would create ``marker``."""
    bad = tmp_path / "pickled"
    bad.mkdir()
    (bad / "card.json").write_text((model_dir / "card.json").read_text())
    (bad / "model.pt").write_bytes(pickle.dumps(_helpers._Payload(marker)))
    return bad


def test_corrupt_or_foreign_weights_exit_2_with_one_line(model_dir, tmp_path, capsys):
    image = grey_png(tmp_path / "img.png", noisy(disc()))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "card.json").write_text((model_dir / "card.json").read_text())
    (broken / "model.safetensors").write_bytes(np.random.default_rng(1).bytes(4096))
    marker = tmp_path / "code-ran"
    pickled = _payload_dir(tmp_path, model_dir, marker)
    cases = {
        broken: "model.safetensors: not a readable safetensors file",
        pickled / "model.pt": "pickled PyTorch files are not loaded (they can run code)",
        pickled: "model.safetensors: no such file",
        "no-such-model": "no such model directory, bundled model or segmenter",
    }
    for model, message in cases.items():
        status, _, err = run(
            capsys, "segment", image, "--model", model, "--out", tmp_path / "m.tif"
        )
        assert status == 2
        assert len(err.strip().splitlines()) == 1 and err.startswith("subcell: error: ")
        assert message in err
    assert not marker.exists() and not (tmp_path / "m.tif").exists()


def test_bad_output_and_pixel_size_fail_before_segmenting(model_dir, tmp_path, capsys):
    image = grey_png(tmp_path / "img.png", noisy(disc()))
    status, _, err = run(capsys, "segment", image, "--model", "otsu", "--out", tmp_path / "m.jpg")
    assert status == 2 and "use one of .tif, .tiff, .npy, .png" in err
    status, _, err = run(
        capsys, "segment", image, "--model", "otsu", "--out", tmp_path / "m.tif", "--pixel-nm", 0
    )
    assert status == 2 and "--pixel-nm must be a positive number" in err


def test_outputs_are_byte_identical_on_rerun(model_dir, tmp_path, capsys):
    truth = disc(centre=(30, 30), radius=12) | disc(centre=(70, 66), radius=15)
    image = tmp_path / "img.tif"
    tifffile.imwrite(image, noisy(truth), imagej=True, resolution=(10, 10), metadata={"unit": "um"})
    outputs = ("m.tif", "m.npy", "m.png", "i.tif", "i.png", "o.png")
    runs = []
    for attempt in range(2):
        folder = tmp_path / f"run{attempt}"
        for name in outputs[:5]:
            extra = ["--instances"] if name.startswith("i") else []
            extra += ["--overlay", folder / "o.png"] if name == "m.tif" else []
            status, _, err = run(
                capsys, "segment", image, "--model", model_dir, "--out", folder / name, *extra
            )
            assert status == 0, err
        runs.append([(folder / name).read_bytes() for name in outputs])
    assert runs[0] == runs[1]
    assert sorted(np.unique(tifffile.imread(tmp_path / "run0" / "i.tif"))) == [0, 1, 2]


def test_models_lists_bundled_models(monkeypatch, model_dir, capsys):
    card = json.loads((model_dir / "card.json").read_text())
    card["metrics"] = {"test": {"miou": 0.93, "f1": 0.95}}
    status, out, _ = run(capsys, "models", "--json")
    assert status == 0 and json.loads(out) == [models.summary(c) for c in models.bundled()]
    monkeypatch.setattr(models, "bundled", lambda: [card])
    status, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)
    assert status == 0 and len(rows) == 1
    assert {k: rows[0][k] for k in ("name", "classes", "pixel_nm", "description", "test_miou")} == {
        "name": "tiny-disc",
        "classes": ["disc"],
        "pixel_nm": 100.0,
        "description": "bright discs, for tests",
        "test_miou": 0.93,
    }
    status, out, _ = run(capsys, "models")
    assert status == 0 and "tiny-disc" in out and "0.930" in out


def test_models_without_bundled_models(monkeypatch, capsys):
    monkeypatch.setattr(models, "bundled", lambda: [])
    assert run(capsys, "models", "--json")[:2] == (0, "[]\n")
    status, out, _ = run(capsys, "models")
    assert status == 0 and "no bundled models" in out


# The small bead dataset of the evaluate tests.
_evaluate_spec = importlib.util.spec_from_file_location(
    "_evaluate_pipeline_tests", Path(__file__).parent / "pipeline" / "test_evaluate.py"
)
_evaluate_tests = importlib.util.module_from_spec(_evaluate_spec)
_evaluate_spec.loader.exec_module(_evaluate_tests)
_DATASET = _evaluate_tests.CONFIG


@pytest.fixture(scope="module")
def dataset_path(tmp_path_factory):
    from subcell.pipeline.config import load_config
    from subcell.pipeline.dataset import write_dataset

    root = tmp_path_factory.mktemp("segment-dataset")
    (root / "sim.yaml").write_text(_DATASET)
    write_dataset(load_config(root / "sim.yaml", []).config, root / "d.zarr")
    return root / "d.zarr"


def test_a_dataset_split_is_segmented_in_the_masks_layout(dataset_path, tmp_path, capsys):
    import zarr

    from subcell.pipeline.dataset import open_dataset
    from subcell.pipeline.evaluate import evaluate

    out = tmp_path / "pred.zarr"
    status, printed, _ = run(
        capsys, "segment", dataset_path, "--model", "otsu", "--out", out, "--split", "test"
    )
    assert status == 0 and "2 images (test)" in printed
    data = open_dataset(dataset_path)
    group = zarr.open_group(str(out), mode="r")
    test = data.split("test")
    assert group["mask"].shape == (len(test), *data.masks.shape[1:])
    assert group.attrs["images"] == test and group.attrs["complete"] is True
    # Otsu on bright beads agrees with their ground truth.
    with pytest.warns(UserWarning, match="class names differ"):
        scores = evaluate(out, dataset_path, split="test")
    assert scores["per_class"]["bead"]["f1"] > 0.6


def test_an_interrupted_dataset_prediction_is_not_scored(dataset_path, tmp_path, capsys):
    import zarr

    from subcell.pipeline.evaluate import evaluate

    out = tmp_path / "pred.zarr"
    assert run(capsys, "segment", dataset_path, "--model", "otsu", "--out", out)[0] == 0
    zarr.open_group(str(out), mode="r+").attrs["complete"] = False
    status, _, err = run(capsys, "evaluate", out, dataset_path)
    assert status != 0 and "incomplete" in err and "Traceback" not in err
    with pytest.raises(Exception, match="incomplete"):
        evaluate(out, dataset_path)


def test_dataset_inputs_refuse_file_outputs_and_split_needs_a_dataset(
    dataset_path, model_dir, tmp_path, capsys
):
    status, _, err = run(
        capsys, "segment", dataset_path, "--model", "otsu", "--out", tmp_path / "m.tif"
    )
    assert status == 2 and "name it .zarr" in err
    image = grey_png(tmp_path / "a.png", disc() * 200.0)
    status, _, err = run(
        capsys,
        "segment",
        image,
        "--model",
        model_dir,
        "--out",
        tmp_path / "m.tif",
        "--split",
        "test",
    )
    assert status == 2 and "--split needs a dataset" in err


def test_tta_is_recorded_and_refused_for_baselines(model_dir, dataset_path, tmp_path, capsys):
    truth = disc(shape=(96, 100), radius=20)
    image = grey_png(tmp_path / "img.png", noisy(truth))
    out = tmp_path / "mask.tif"
    status, _, err = run(
        capsys, "segment", image, "--model", model_dir, "--out", out, "--pixel-nm", 100, "--tta"
    )
    assert status == 0, err
    assert abs(radius(tifffile.imread(out) > 0) - 20) <= 1
    assert json.loads(Path(f"{out}.provenance.json").read_text())["config"]["tta"] is True
    for source, target in ((image, tmp_path / "otsu.tif"), (dataset_path, tmp_path / "p.zarr")):
        status, _, err = run(capsys, "segment", source, "--model", "otsu", "--out", target, "--tta")
        assert status == 2 and "is for learned models" in err and "Traceback" not in err
        assert not target.exists()
