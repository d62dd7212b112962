"""``subcell analyze``: outputs, messages and exit codes on drawn label images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi
from skimage.draw import line

import subcell.cli as cli
from subcell.core.model import Volume
from subcell.pipeline.analyze import analyze_labels
from subcell.pipeline.volumes import write_volume

PIXEL = 42.0


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    """Wire the analyze command whether or not the CLI lists it yet."""
    wanted = tuple(dict.fromkeys((*cli._COMMAND_MODULES, "analyze")))
    monkeypatch.setattr(cli, "_COMMAND_MODULES", wanted)


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _tube(shape, segments, radius):
    image = np.zeros(shape, dtype=bool)
    for r0, c0, r1, c1 in segments:
        rr, cc = line(r0, c0, r1, c1)
        image[rr, cc] = True
    return ndi.distance_transform_edt(~image) <= radius


def _mask(dots=1, rods=1, networks=1) -> np.ndarray:
    """A binary mask (uint8 0/1) with the asked numbers of dots, rods and Y networks."""
    shape = (90, 60 * max(dots, rods, networks))
    mask = np.zeros(shape, dtype=bool)
    for i in range(dots):
        mask |= _tube(shape, [(10, 20 + 60 * i, 10, 20 + 60 * i)], 3.5)
    for i in range(rods):
        mask |= _tube(shape, [(30, 5 + 60 * i, 30, 50 + 60 * i)], 3)
    for i in range(networks):
        x = 30 + 60 * i
        mask |= _tube(shape, [(65, x, 45, x), (65, x, 85, x - 20), (65, x, 85, x + 20)], 2)
    return mask.astype(np.uint8)


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_mitochondria_outputs_for_a_binary_mask(tmp_path, capsys):
    labels = tmp_path / "mask.npy"
    np.save(labels, _mask(dots=2, rods=1, networks=1))
    out = tmp_path / "out"
    status, stdout, err = run(
        capsys, "analyze", labels, "--plugin", "mitochondria", "--pixel-nm", PIXEL,
        "--condition", "control", "--out", out,
    )  # fmt: skip
    assert status == 0, err
    assert stdout.startswith(f"{out}: 4 objects (2 dot, 1 rod, 1 network)")
    rows = _rows(out / "objects.csv")
    required = {"label", "class", "centroid_y", "centroid_x", "area_nm2", "skeleton_length_nm",
                "n_junctions", "n_endpoints", "mean_width_nm"}  # fmt: skip
    assert required <= set(rows[0])
    assert sorted(r["class"] for r in rows) == ["dot", "dot", "network", "rod"]
    network = next(r for r in rows if r["class"] == "network")
    assert (int(network["n_junctions"]), int(network["n_endpoints"])) == (1, 3)
    import pyarrow.parquet as pq

    table = pq.read_table(out / "objects.parquet").to_pydict()
    assert table["class"] == [r["class"] for r in rows]
    np.testing.assert_allclose(table["area_nm2"], [float(r["area_nm2"]) for r in rows])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["condition"] == "control" and summary["plugin"] == "mitochondria"
    assert summary["counts"] == {"dot": 2, "rod": 1, "network": 1}
    assert summary["voxel_nm"][1:] == [PIXEL, PIXEL]
    assert summary["mina"]["networks"] == 1 and summary["mina"]["individuals"] == 3
    assert summary["provenance"]["step"] == "analyze"
    assert summary["provenance"]["inputs"]["labels"] == str(labels.resolve())
    branches = _rows(out / "branches.csv")
    assert len(branches) == 1 + 3  # the rod's, the network's
    for name in ("class_frequencies.png", "sizes_violin.png", "overlay.png"):
        assert Image.open(out / name).size[0] > 50
    overlay = np.asarray(Image.open(out / "overlay.png"))
    assert overlay.shape == (90, 120, 3) and (overlay == 255).all(axis=-1).any()  # skeleton


def test_3d_labels_a_tiff_stating_its_pixel_size_and_set(tmp_path, capsys):
    volume = np.zeros((12, 40, 60), dtype=np.uint16)
    volume[4:8, 10:16, 5:55] = 3  # one rod of 50 voxels
    volume[4:8, 28:31, 10:13] = 5  # one dot
    path = write_volume(
        Volume(volume[None], (120.0, 40.0, 40.0)), tmp_path / "l.tif", writer="tiff"
    )
    status, stdout, err = run(
        capsys, "analyze", path, "--plugin", "mitochondria", "--out", tmp_path / "o"
    )
    assert status == 0, err
    rows = _rows(tmp_path / "o" / "objects.csv")
    assert [r["label"] for r in rows] == ["3", "5"]
    assert {"centroid_z", "volume_nm3"} <= set(rows[0])
    assert float(rows[0]["volume_nm3"]) == pytest.approx(4 * 6 * 50 * 120 * 40 * 40)
    assert [r["class"] for r in rows] == ["rod", "dot"]
    status, _, err = run(capsys, "analyze", path, "--plugin", "mitochondria", "--out",
                         tmp_path / "o2", "--set", "rule=length", "--set", "dot_max_length_nm=5000",
                         "--no-plots")  # fmt: skip
    assert status == 0, err
    assert [r["class"] for r in _rows(tmp_path / "o2" / "objects.csv")] == ["dot", "dot"]
    assert not (tmp_path / "o2" / "overlay.png").exists()


def test_vesicles_with_image_and_cells(tmp_path, capsys):
    yy, xx = np.mgrid[:60, :80]
    labels = np.zeros((60, 80), dtype=np.uint16)
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 <= 3**2] = 1  # 126 nm: small
    labels[(yy - 30) ** 2 + (xx - 60) ** 2 <= 8**2] = 2  # 336 nm: large
    cells = np.zeros_like(labels)
    cells[:, :40] = 1
    cells[:, 40:] = 2
    image = np.where(labels > 0, 10.0, 1.0).astype(np.float32)
    for name, data in (("v.npy", labels), ("c.npy", cells), ("i.npy", image)):
        np.save(tmp_path / name, data)
    status, stdout, err = run(
        capsys, "analyze", tmp_path / "v.npy", "--plugin", "vesicles", "--pixel-nm", PIXEL,
        "--cells", tmp_path / "c.npy", "--image", tmp_path / "i.npy", "--out", tmp_path / "o",
    )  # fmt: skip
    assert status == 0, err
    assert "2 objects (1 small, 1 large) in 2 cells" in stdout
    rows = _rows(tmp_path / "o" / "objects.csv")
    assert [r["class"] for r in rows] == ["small", "large"] and [r["cell"] for r in rows] == [
        "1",
        "2",
    ]
    assert float(rows[1]["mean_intensity_c0"]) == 10.0
    assert abs(float(rows[1]["fitted_radius_nm"]) / (8 * PIXEL) - 1) < 0.05
    cells_rows = _rows(tmp_path / "o" / "cells.csv")
    assert [(r["cell"], r["n_small"], r["n_large"]) for r in cells_rows] == [
        ("1", "1", "0"),
        ("2", "0", "1"),
    ]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["cells"]["n_cells"] == 2 and summary["size_column"] == "fitted_radius_nm"


@pytest.mark.parametrize(
    ("data", "extra", "message"),
    [
        (np.full((8, 8), 0.5, dtype=np.float32), (), "labels must be integers"),
        (np.array([[0, -1], [2, 3]], dtype=np.int16), (), "labels must be >= 0"),
        (np.ones((8, 8), dtype=np.uint8), ("--pixel-nm", None), "states no pixel size"),
        (np.ones((3, 8, 8), dtype=np.uint8), ("--z-nm", None), "give --z-nm"),
        (np.ones((8, 8), dtype=np.uint8), ("--cells", "cells"), "differ in shape"),
        (np.ones((8, 8), dtype=np.uint8), ("--plugin", "mitochondira"), "did you mean"),
        (np.ones((8, 8), dtype=np.uint8), ("--pixel-nm", "-3"), "--pixel-nm must be a positive"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, data, extra, message):
    np.save(tmp_path / "l.npy", data)
    np.save(tmp_path / "cells.npy", np.ones((9, 9), dtype=np.uint8))
    args = {"--plugin": "mitochondria", "--pixel-nm": "40", "--z-nm": "100"}
    if extra:
        flag, value = extra
        if value is None:
            args.pop(flag)
        else:
            args[flag] = str(tmp_path / "cells.npy") if value == "cells" else value
    argv = ["analyze", tmp_path / "l.npy", "--out", tmp_path / "o"]
    for flag, value in args.items():
        argv += [flag, value]
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert err.startswith("subcell: error:") and message in err and err.count("\n") == 1


def test_empty_mask_gives_headers_only(tmp_path, capsys):
    np.save(tmp_path / "l.npy", np.zeros((16, 16), dtype=np.uint8))
    status, stdout, err = run(capsys, "analyze", tmp_path / "l.npy", "--plugin", "mitochondria",
                              "--pixel-nm", 40, "--out", tmp_path / "o")  # fmt: skip
    assert status == 0, err
    text = (tmp_path / "o" / "objects.csv").read_text().splitlines()
    assert len(text) == 1 and text[0].startswith("label,class,centroid_y,centroid_x,area_px")
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["n_objects"] == 0


def test_compare_two_conditions(tmp_path, capsys):
    dirs = []
    for condition, networks, dots in (("control", 2, 1), ("control", 2, 1), ("hypoxia", 0, 3),
                                      ("hypoxia", 0, 2)):  # fmt: skip
        path = tmp_path / f"{condition}{len(dirs)}.npy"
        np.save(path, _mask(dots=dots, rods=1, networks=networks))
        out = tmp_path / f"run{len(dirs)}"
        status, _, err = run(capsys, "analyze", path, "--plugin", "mitochondria", "--pixel-nm",
                             PIXEL, "--condition", condition, "--out", out, "--no-plots")  # fmt: skip
        assert status == 0, err
        dirs.append(out)
    status, stdout, err = run(capsys, "analyze", "--compare", *dirs, "--out", tmp_path / "cmp")
    assert status == 0, err
    assert "control: 2 images, 8 objects" in stdout and "hypoxia: 2 images, 7 objects" in stdout
    result = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    control, hypoxia = result["conditions"]["control"], result["conditions"]["hypoxia"]
    assert control["fraction_mean"]["network"] == pytest.approx(0.5)
    assert hypoxia["fraction_mean"]["network"] == 0.0
    assert hypoxia["fraction_mean"]["dot"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert control["mina"]["networks"] == 2.0
    assert 0 < result["tests"]["fractions"]["dot"]["control vs hypoxia"] <= 1
    for name in ("compare_fractions.png", "compare_sizes.png"):
        assert Image.open(tmp_path / "cmp" / name).size[0] > 100
    status, _, err = run(capsys, "analyze", "--compare", tmp_path, "--out", tmp_path / "c2")
    assert status == 2 and "no summary.json" in err


def test_python_api_with_region_props_and_a_generic_summary():
    labels = np.zeros((1, 20, 20), dtype=np.int64)
    labels[0, 2:6, 2:6] = 1
    labels[0, 10:18, 10:18] = 4
    analysis = analyze_labels(labels, (100.0, 10.0, 10.0), "region_props")
    assert analysis.summary["n_objects"] == 2 and analysis.branches is None
    np.testing.assert_allclose(analysis.objects.columns["area_nm2"], [1600.0, 6400.0])
    assert analysis.summary["means"]["area_nm2"] == pytest.approx(4000.0)
