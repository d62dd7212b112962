"""``evaluate`` and ``subcell evaluate``: every input kind, split selection, pooling, errors."""

import json

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from subcell import cli
from subcell.core.errors import VolumeError
from subcell.core.metrics import class_index_map, confusion_matrix, instance_scores
from subcell.core.model import Masks, Volume
from subcell.core.omezarr import write_ome_zarr
from subcell.pipeline.config import load_config
from subcell.pipeline.dataset import open_dataset, write_dataset
from subcell.pipeline.evaluate import evaluate
from subcell.pipeline.volumes import write_volume

CONFIG = """\
step: simulate
seed: 4
tile_px: [32, 32]
n_tiles: 5
split: [0.4, 0.2, 0.4]
structures:
  - structure: {plugin: beads, count: [2, 4], diameter_nm: 300, margin_nm: 300}
    labelling: {plugin: surface, density_per_um2: 1500, photons_per_emitter: 60}
microscope: {plugin: epi, pixel_nm: 80, psf_radius_nm: 1500}
ground_truth: {plugin: geometry_projection}
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    (root / "sim.yaml").write_text(CONFIG)
    write_dataset(load_config(root / "sim.yaml", []).config, root / "d.zarr")
    return open_dataset(root / "d.zarr")


def _prediction_group(path, masks, instances=None, class_names=None):
    group = zarr.open_group(str(path), mode="w")
    group.create_array("mask", data=np.asarray(masks, np.uint8))
    if instances is not None:
        group.create_array("instances", data=np.asarray(instances, np.uint32))
    if class_names is not None:
        group.attrs["class_names"] = list(class_names)
    return path


def _shifted(masks):
    """Masks moved one pixel right: an imperfect prediction."""
    return np.roll(np.asarray(masks), 1, axis=-1)


def test_dataset_against_itself_is_perfect(dataset):
    r = evaluate(dataset.path, dataset.path)
    assert r["miou"] == 1.0 and r["pixel_accuracy"] == 1.0 and r["n_images"] == 5
    assert list(r["iou"]) == ["background", "bead"]
    assert r["instances"]["map"] == 1.0 and r["instances"]["pq"] == 1.0
    assert r["instances"]["n_true"] == int(sum(len(np.unique(i)) - 1 for i in dataset.instances))


def test_split_selects_the_images_and_pools_them(dataset, tmp_path):
    test = dataset.split("test")
    assert test == [1, 2]
    masks, inst = dataset.masks[:], dataset.instances[:]
    full = _prediction_group(tmp_path / "full.zarr", _shifted(masks), _shifted(inst))
    r = evaluate(full, dataset.path, split="test")
    # Reference: the pooled confusion of the test images, computed here directly.
    cms = [
        confusion_matrix(class_index_map(masks[i]), class_index_map(_shifted(masks[i])), 2)
        for i in test
    ]
    assert r["confusion"]["matrix"] == np.sum(cms, axis=0).tolist()
    assert r["n_images"] == 2 and r["split"] == "test"
    per_image = [np.mean(np.diag(c) / (c.sum(0) + c.sum(1) - np.diag(c))) for c in cms]
    assert r["miou_per_image_mean"] == pytest.approx(np.mean(per_image))
    assert 0.3 < r["miou"] < 0.99
    # A prediction of the test images only gives the same numbers.
    only = _prediction_group(tmp_path / "only.zarr", _shifted(masks[test]), _shifted(inst[test]))
    assert evaluate(only, dataset.path, split="test") == r | {"prediction": str(only)}
    # Instance scores pool the matches of both images.
    one = [instance_scores(inst[i], _shifted(inst[i])) for i in test]
    assert r["instances"]["n_true"] == sum(s["n_true"] for s in one)
    train = evaluate(full, dataset.path, split="train")
    assert train["n_pixels"] == 2 * 32 * 32 and train["confusion"] != r["confusion"]


def test_image_files_as_prediction(dataset, tmp_path):
    truth = class_index_map(dataset.masks[0])  # (1, 32, 32)
    pred = class_index_map(_shifted(dataset.masks[0]))
    only_first = _prediction_group(tmp_path / "t.zarr", dataset.masks[0])
    expected = confusion_matrix(truth, pred, 2).tolist()
    png = tmp_path / "pred.png"
    Image.fromarray((pred[0] * 255).astype(np.uint8)).save(png)  # binary 0/255 is class 1
    npy = tmp_path / "pred.npy"
    np.save(npy, pred[0].astype(np.float32))  # whole-number floats are fine
    tif = tmp_path / "pred.tif"
    tifffile.imwrite(tif, pred[0].astype(np.uint16))
    for path in (png, npy, tif):
        r = evaluate(path, only_first)
        assert r["confusion"]["matrix"] == expected, path
        assert "instances" not in r


def test_multiclass_names_and_ome_zarr(tmp_path):
    truth = np.zeros((2, 1, 6, 6), np.uint8)
    truth[0, 0, :3, :3] = 1
    truth[1, 0, 3:, 3:] = 1
    pred = truth.copy()
    pred[1, 0, 3, 3] = 0
    pred[0, 0, 5, 5] = 1  # overlaps class 2
    volume = Volume(np.zeros((1, 1, 6, 6), np.float32), (100, 50, 50))
    ome = write_ome_zarr(
        volume, tmp_path / "p.ome.zarr", masks=Masks(pred, ("er", "ld"), (1, 1, 1))
    )
    gt = _prediction_group(tmp_path / "gt.zarr", truth, class_names=("er", "ld"))
    # Overlapping truth: each class is its own binary mask (multi-label scores).
    swapped = evaluate(gt, ome)
    assert swapped["multilabel"] is True and list(swapped["iou"]) == ["er", "ld"]
    assert swapped["per_class"]["ld"]["precision"] == pytest.approx(8 / 9)  # (3, 3) extra
    assert swapped["per_class"]["ld"]["recall"] == 1.0
    assert swapped["per_class"]["er"]["recall"] == pytest.approx(9 / 10)  # (5, 5) missed
    assert swapped["per_class"]["ld"]["pixel_accuracy"] == pytest.approx(35 / 36)
    assert swapped["pixel_accuracy_min"] == pytest.approx(35 / 36)
    # Exclusive truth: a prediction's overlap is a class-index map (the lower class wins);
    # a class-index map on one side takes its names from the other.
    npy = tmp_path / "map.npy"
    np.save(npy, class_index_map(pred).astype(np.int16))
    for r in (evaluate(ome, gt), evaluate(npy, gt)):
        assert "multilabel" not in r and list(r["iou"]) == ["background", "er", "ld"]
        # Truth "ld" pixels: (3, 3) predicted background, (5, 5) predicted "er".
        assert r["confusion"]["matrix"] == [[18, 0, 0], [0, 9, 0], [1, 1, 7]]
        assert r["per_class"]["ld"]["recall"] == pytest.approx(7 / 9)
    with pytest.warns(UserWarning, match="class names differ"):
        evaluate(_prediction_group(tmp_path / "o.zarr", pred, class_names=("a", "b")), gt)


def test_tiff_masks_and_instances_written_by_subcell(tmp_path):
    semantic = np.zeros((2, 1, 12, 12), np.uint8)
    semantic[0, 0, 1:5, 1:5] = 1
    semantic[1, 0, 7:11, 6:11] = 1
    instances = (semantic[0, 0] * 4 + semantic[1, 0] * 6).astype(np.uint32)[None]
    volume = Volume(np.zeros((1, 1, 12, 12), np.float32), (100, 50, 50))
    masks = Masks(semantic, ("er", "ld"), (100, 50, 50), instances)
    write_volume(volume, tmp_path / "img.tif", writer="tiff", masks=masks)
    gt = _prediction_group(tmp_path / "gt.zarr", semantic, instances, class_names=("er", "ld"))
    r = evaluate(tmp_path / "img_mask.tif", gt)
    assert list(r["iou"]) == ["background", "er", "ld"] and r["miou"] == 1.0
    # The instances TIFF carries its channel name, so it is read as instance labels.
    r = evaluate(tmp_path / "img_instances.tif", gt)
    assert r["instances"]["map"] == 1.0 and r["instances"]["n_true"] == 2
    bad = _prediction_group(tmp_path / "bad.zarr", semantic * 3)
    with pytest.raises(VolumeError, match="bad.zarr: masks hold values up to 3; expected binary"):
        evaluate(bad, gt)


def test_instances_flag_reads_label_images(tmp_path):
    truth = np.zeros((20, 20), np.uint16)
    truth[2:8, 2:8], truth[10:18, 10:18] = 3, 9
    pred = np.roll(truth, 1, axis=0).astype(np.int32) * 2
    tif_t, npy_p = tmp_path / "t.tif", tmp_path / "p.npy"
    tifffile.imwrite(tif_t, truth)
    np.save(npy_p, pred)
    r = evaluate(npy_p, tif_t, instances=True)
    assert r["instances"] == instance_scores(truth, pred)
    assert list(r["iou"]) == ["background", "class1"]
    assert r["per_class"]["class1"]["n_true_px"] == 100
    # Without --instances the values are class indices (0, 3, 6, 9, 18 here).
    plain = evaluate(npy_p, tif_t)
    assert "instances" not in plain and len(plain["iou"]) == 19
    assert plain["per_class"]["class9"]["n_true_px"] == 64
    with pytest.raises(VolumeError, match="no instance labels"):
        evaluate(
            _prediction_group(tmp_path / "g.zarr", (truth > 0)[None, None]), tif_t, instances=True
        )


def test_bad_inputs_are_one_line_volume_errors(dataset, tmp_path):
    with pytest.raises(VolumeError) as err:
        evaluate(_prediction_group(tmp_path / "s.zarr", np.zeros((5, 1, 1, 32, 31))), dataset.path)
    assert str(err.value) == (
        f"{tmp_path / 's.zarr'}: prediction shape (5, 1, 32, 31) does not match ground truth "
        f"{dataset.path} shape (5, 1, 32, 32)"
    )
    with pytest.raises(VolumeError, match=r"\(3, 1, 32, 32\) does not match .* \(2, 1, 32, 32\)"):
        evaluate(
            _prediction_group(tmp_path / "n.zarr", np.zeros((3, 1, 1, 32, 32))),
            dataset.path,
            split="test",
        )
    with pytest.raises(VolumeError, match="k.zarr: 2 classes but ground truth .* has 1 \\(bead\\)"):
        evaluate(_prediction_group(tmp_path / "k.zarr", np.zeros((5, 2, 1, 32, 32))), dataset.path)
    three = tmp_path / "three.npy"
    np.save(three, np.full((1, 32, 32), 2, np.uint8))
    with pytest.raises(VolumeError, match="three.npy: holds class index 2 but .* has only 1"):
        evaluate(three, _prediction_group(tmp_path / "one.zarr", np.zeros((1, 1, 32, 32))))
    half = tmp_path / "half.npy"
    np.save(half, np.full((32, 32), 0.5, np.float32))
    with pytest.raises(VolumeError, match="half.npy: holds non-integer values such as 0.5"):
        evaluate(half, half)
    with pytest.raises(VolumeError, match="neither .* is a subcell simulated dataset"):
        evaluate(tmp_path / "s.zarr", tmp_path / "s.zarr", split="test")
    with pytest.raises(VolumeError, match="missing.tif: no such file"):
        evaluate(tmp_path / "missing.tif", half)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(VolumeError, match="junk.png"):
        evaluate(junk, half)


@pytest.fixture
def run(monkeypatch, capsys):
    # The lead wires evaluate into the CLI; until then add it here.
    if "evaluate" not in cli._COMMAND_MODULES:
        monkeypatch.setattr(cli, "_COMMAND_MODULES", (*cli._COMMAND_MODULES, "evaluate"))

    def call(*argv):
        status = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return call


def test_cli_json_table_and_out(dataset, tmp_path, run):
    pred = _prediction_group(
        tmp_path / "p.zarr", _shifted(dataset.masks[:]), _shifted(dataset.instances[:])
    )
    status, out, _ = run("evaluate", pred, dataset.path, "--json", "--split", "test")
    assert status == 0
    r = json.loads(out)
    assert r == evaluate(pred, dataset.path, split="test")
    assert {
        "pixel_accuracy",
        "iou",
        "miou",
        "f1",
        "precision",
        "recall",
        "moc",
        "confusion",
    } <= set(r)
    status, out, _ = run("evaluate", pred, dataset.path, "--out", tmp_path / "m.json")
    assert status == 0 and json.loads((tmp_path / "m.json").read_text())["n_images"] == 5
    assert "bead" in out and "mIoU" in out and "AP@0.5" in out and "PQ" in out
    status, _, err = run("evaluate", tmp_path / "nothing.npy", dataset.path)
    assert status == 2 and err.count("\n") == 1 and "nothing.npy: no such file" in err
