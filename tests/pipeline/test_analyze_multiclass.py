"""Multi-class inputs reach a ``multiclass`` analytics plugin (``compartments``) with their
classes: prediction groups through ``subcell analyze`` and the pipeline ``analyze`` step,
multi-channel TIFF masks, OME-Zarr labels and ``subcell segment`` class-index maps."""

from __future__ import annotations

import csv
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import subcell.cli as cli
from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Volume
from subcell.pipeline.analyze import analyze_file, is_multiclass
from subcell.pipeline.segment_dataset import prediction_group
from subcell.registry import build_registry

VOXEL = (200.0, 100.0, 100.0)
CLASSES = ("cell", "mito", "drop")
SHAPE = (4, 20, 20)
#: µm³ per voxel: 200 x 100 x 100 nm³.
UM3 = 2e-3


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    """Wire the analyze command whether or not the CLI lists it yet."""
    wanted = tuple(dict.fromkeys((*cli._COMMAND_MODULES, "analyze")))
    monkeypatch.setattr(cli, "_COMMAND_MODULES", wanted)


def _scene(second_mito: bool = True, drops: bool = True) -> np.ndarray:
    """(3, Z, Y, X) masks: a cell box holding two mitochondria; one drop touches the first
    mitochondrion inside the cell, the other lies outside it, 2 voxels diagonally off."""
    semantic = np.zeros((3, *SHAPE), dtype=np.uint8)
    semantic[0, :, 0:16, 0:16] = 1
    semantic[1, :, 2:5, 2:5] = 1
    if second_mito:
        semantic[1, :, 10:13, 2:5] = 1
    if drops:
        semantic[2, :, 2:5, 5:8] = 1  # face to face with mitochondrion 1
        semantic[2, :, 17:19, 17:19] = 1  # gap to the cell: 223.6 nm (1 and 2 voxels)
    return semantic


def _group(path: Path) -> Path:
    """A prediction group of dataset images 3 and 7 (the second: one mito, no drops)."""
    first = Masks(_scene(), CLASSES, VOXEL)
    group = prediction_group(
        path, (2,), first, source=path.parent / "data.zarr", split="all", images=[3, 7],
        instances=False,
    )  # fmt: skip
    group["mask"][0] = _scene()
    group["mask"][1] = _scene(second_mito=False, drops=False)
    group.attrs["complete"] = True
    return path


def _table(folder: Path) -> dict[str, dict]:
    with (folder / "objects.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {r["compartment"]: {k: _number(v) for k, v in r.items()} for r in rows}


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _check_image3(table: dict, reach: bool) -> None:
    """Image 3's table; ``reach``: the contact distance bridges the far drop's gap."""
    assert list(table) == list(CLASSES)
    assert [table[c]["count"] for c in CLASSES] == [1, 2, 2]
    assert table["cell"]["volume_um3"] == pytest.approx(4 * 16 * 16 * UM3)
    assert table["mito"]["mean_object_volume_um3"] == pytest.approx(4 * 9 * UM3)
    assert table["mito"]["contact_cell"] == 1.0  # inside: overlap is contact
    assert table["mito"]["contact_drop"] == 0.5
    assert table["drop"]["contact_mito"] == 0.5
    assert table["drop"]["contact_cell"] == (1.0 if reach else 0.5)
    assert table["cell"]["contact_mito"] == table["cell"]["contact_drop"] == 1.0
    assert table["cell"]["contact_cell"] == 0.0


def test_cli_on_a_prediction_group_writes_one_compartment_table_per_image(tmp_path, capsys):
    pred, out = _group(tmp_path / "pred.zarr"), tmp_path / "out"
    status = cli.main(["analyze", str(pred), "--plugin", "compartments", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert status == 0, err
    assert stdout.startswith(f"{out}: 2 images in {out}/3")
    assert sorted(p.name for p in out.iterdir()) == ["3", "7"]
    _check_image3(_table(out / "3"), reach=False)
    second = _table(out / "7")
    assert [second[c]["count"] for c in CLASSES] == [1, 1, 0]
    assert second["drop"]["contact_cell"] == 0.0 and second["mito"]["contact_cell"] == 1.0
    summary = json.loads((out / "3" / "summary.json").read_text())
    assert summary["class_names"] == list(CLASSES) and summary["n_classes"] == 3
    assert summary["plugin"] == "compartments" and summary["voxel_nm"] == list(VOXEL)
    assert summary["provenance"]["inputs"]["labels"].endswith("pred.zarr[0]")
    assert (out / "3" / "overlay.png").is_file()


def test_cli_set_distance_bridges_the_gap(tmp_path, capsys):
    pred, out = _group(tmp_path / "pred.zarr"), tmp_path / "out"
    argv = ["analyze", str(pred), "--plugin", "compartments", "--set", "distance_nm=250",
            "--no-plots", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    _check_image3(_table(out / "3"), reach=True)
    assert not (out / "3" / "overlay.png").exists()


def test_single_class_plugins_keep_one_class_named_after_them(tmp_path):
    from subcell.pipeline.analyze_group import analyze_group

    assert is_multiclass("compartments") and not is_multiclass("region_props")
    analyses = analyze_group(
        _group(tmp_path / "pred.zarr"), tmp_path / "out", plugin="region_props", plots=False
    )
    objects = analyses["3"].objects.columns
    # Components per class, where classes overlap the first wins: the cell (hiding both
    # mitochondria and the drop inside it) and the drop outside; one class, the plugin's.
    assert len(objects["label"]) == 2 and set(objects["class"]) == {"region_props"}
    assert sorted(objects["volume_nm3"] / 2e6) == [4 * 2 * 2, 4 * 16 * 16]
    assert "class_names" not in analyses["3"].summary


def _registry():
    from subcell.pipeline.run import builtin_steps

    base = build_registry(use_entry_points=False)
    if "analyze" in base.names("step"):
        return base
    return build_registry(use_entry_points=False, extra={"run-steps": builtin_steps})


def test_pipeline_analyze_step_on_a_prediction_group(tmp_path):
    from subcell.pipeline.run import load_pipeline, run_pipeline

    _group(tmp_path / "pred.zarr")
    path = tmp_path / "p.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            steps:
              measure:
                step: analyze
                labels: pred.zarr
                config: {analytics: [{plugin: compartments, distance_nm: 250}]}
                plots: false
            """
        )
    )
    registry = _registry()
    run_pipeline(load_pipeline(path, registry=registry), registry=registry)
    folder = tmp_path / "runs" / "p" / "measure" / "analysis"
    assert sorted(p.name for p in folder.iterdir()) == ["3", "7"]
    _check_image3(_table(folder / "3"), reach=True)
    assert _table(folder / "7")["drop"]["count"] == 0


def _touching_mitos() -> tuple[np.ndarray, np.ndarray]:
    """The scene with the second mitochondrion moved to touch the first, and instance ids
    that keep them apart (their union is one connected component)."""
    semantic = _scene(second_mito=False)
    semantic[1, :, 5:8, 2:5] = 1
    instances = np.zeros(SHAPE, dtype=np.uint32)
    instances[:, 2:5, 2:5], instances[:, 5:8, 2:5] = 1, 2
    instances[semantic[2] > 0] = 3
    instances[:, 17:19, 17:19] = 4
    return semantic, instances


def test_multichannel_tiff_masks_with_their_instances(tmp_path):
    from subcell.plugins.formats.tiff import TiffWriter, TiffWriterConfig

    semantic, instances = _touching_mitos()
    masks = Masks(semantic, CLASSES, VOXEL, instances=instances)
    image = Volume(np.zeros((1, *SHAPE), dtype=np.float32), VOXEL)
    TiffWriter(TiffWriterConfig()).write(image, tmp_path / "cell.tif", masks=masks)
    analysis = analyze_file(
        tmp_path / "cell_mask.tif", tmp_path / "out", plugin="compartments", plots=False
    )
    table = _table(tmp_path / "out")
    assert analysis.summary["class_names"] == list(CLASSES)
    assert table["mito"]["count"] == 2  # two instances, one connected component
    assert analysis.summary["voxel_nm"] == pytest.approx(VOXEL)
    # Without the instances file the two touching mitochondria are one component.
    (tmp_path / "cell_instances.tif").unlink()
    analyze_file(tmp_path / "cell_mask.tif", tmp_path / "out2", plugin="compartments", plots=False)
    assert _table(tmp_path / "out2")["mito"]["count"] == 1


def test_ome_zarr_labels(tmp_path):
    from subcell.core.omezarr import write_ome_zarr

    semantic, instances = _touching_mitos()
    masks = Masks(semantic, CLASSES, VOXEL, instances=instances)
    image = Volume(np.zeros((1, *SHAPE), dtype=np.float32), VOXEL)
    path = write_ome_zarr(image, tmp_path / "cell.ome.zarr", masks=masks)
    analyze_file(path, tmp_path / "out", plugin="compartments", plots=False)
    table = _table(tmp_path / "out")
    assert list(table) == list(CLASSES)
    assert [table[c]["count"] for c in CLASSES] == [1, 2, 2]


def test_segment_class_index_map_and_plain_labels(tmp_path):
    from subcell.pipeline.segment_io import write_segmentation

    semantic = _scene()
    semantic[0][semantic[1:].any(axis=0)] = 0  # a class-index map holds one class a voxel
    path = write_segmentation(Masks(semantic, CLASSES, VOXEL), tmp_path / "mask.tif")
    analyze_file(path, tmp_path / "out", plugin="compartments", plots=False)
    table = _table(tmp_path / "out")
    assert [table[c]["count"] for c in CLASSES] == [1, 2, 2]
    assert table["mito"]["contact_cell"] == 1.0  # touching now, not overlapping
    # A plain label image keeps one class named after the plugin.
    np.save(tmp_path / "labels.npy", (semantic.any(axis=0)).astype(np.uint8))
    plain = analyze_file(
        tmp_path / "labels.npy", tmp_path / "out3", plugin="compartments", pixel_nm=100,
        z_nm=200, plots=False,
    )  # fmt: skip
    assert list(_table(tmp_path / "out3")) == ["compartments"]
    assert "class_names" not in plain.summary


def test_cells_and_bad_channels_are_refused(tmp_path):
    semantic = _scene()
    np.save(tmp_path / "cells.npy", np.ones(SHAPE, dtype=np.uint8))
    np.save(tmp_path / "masks.npy", semantic)
    with pytest.raises(VolumeError, match="--cells"):
        analyze_file(
            tmp_path / "masks.npy", tmp_path / "out", plugin="compartments", pixel_nm=100,
            z_nm=200, cells=tmp_path / "cells.npy",
        )  # fmt: skip
    np.save(tmp_path / "bad.npy", semantic * 3)
    with pytest.raises(VolumeError, match="one binary channel per class"):
        analyze_file(
            tmp_path / "bad.npy", tmp_path / "out", plugin="compartments", pixel_nm=100, z_nm=200
        )


def test_an_incomplete_group_is_refused(tmp_path, capsys):
    pred = _group(tmp_path / "pred.zarr")
    import zarr

    zarr.open_group(str(pred), mode="r+").attrs["complete"] = False
    status = cli.main(["analyze", str(pred), "--plugin", "compartments", "--out", "out"])
    assert status == 2 and "incomplete" in capsys.readouterr().err


def test_contacts_between_two_named_classes_of_a_prediction_group(tmp_path, capsys):
    pred, out = _group(tmp_path / "pred.zarr"), tmp_path / "out"
    argv = ["analyze", str(pred), "--plugin", "contacts", "--set", "class_a=mito",
            "--set", "class_b=drop", "--set", "distance_nm=0", "--no-plots", "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    with (out / "3" / "objects.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # two mitochondria; the first touches a drop face to face, the second touches none
    assert sorted(int(r["n_contacts"]) for r in rows) == [0, 1]
