"""``subcell track``: outputs, units from files, events, scores, one-line errors.

``track`` is wired into the CLI by monkeypatching ``_COMMAND_MODULES`` until the lead
adds it there.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import subcell.cli as cli

_spec = importlib.util.spec_from_file_location(
    "_tracking_pipeline_tests", Path(__file__).parent / "pipeline" / "test_tracking.py"
)
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
fission_fusion_video, simulated_video, disk = (
    _helpers.fission_fusion_video,
    _helpers.simulated_video,
    _helpers.disk,
)


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    wanted = tuple(dict.fromkeys((*cli._COMMAND_MODULES, "track")))
    monkeypatch.setattr(cli, "_COMMAND_MODULES", wanted)


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def read_csv(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_tiff_series_gives_tracks_events_summary_and_overlay(tmp_path, capsys):
    video = fission_fusion_video()
    tifffile.imwrite(tmp_path / "rod.tif", video)
    out = tmp_path / "out"
    status, stdout, err = run(
        capsys, "track", tmp_path / "rod.tif", "--pixel-nm", 50, "--frame-s", 0.5,
        "--out", out, "--max-distance-nm", 800,
    )  # fmt: skip
    assert status == 0, err
    assert stdout.startswith(f"{out}: 3 tracks of 19 objects over 8 frames; 1 splits, 1 merges")
    rows = read_csv(out / "tracks.csv")
    needed = {"track_id", "frame", "label", "centroid_y", "centroid_x", "speed_nm_per_s"}
    assert needed <= set(rows[0]) and "centroid_z" not in rows[0]
    # the disc drifts 2 px = 100 nm per 0.5 s frame: 200 nm/s
    disc = [r for r in rows if r["label"] == str(video[1, 40, 22])][0]["track_id"]
    speeds = [float(r["speed_nm_per_s"]) for r in rows if r["track_id"] == disc][1:]
    np.testing.assert_allclose(speeds, 200.0)
    events = read_csv(out / "events.csv")
    assert [(e["frame"], e["kind"]) for e in events] == [("3", "split"), ("6", "merge")]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["voxel_nm"] == [50.0, 50.0] and summary["frame_s"] == 0.5
    assert summary["n_tracks"] == 3 and summary["events"]["split"] == 1
    assert summary["config"]["max_distance_nm"] == 800.0 and summary["scores"] is None
    with Image.open(out / "tracks.png") as png:
        assert png.size[0] > 500 and png.mode in ("RGBA", "RGB")
    summary_rows = read_csv(out / "track_summary.csv")
    assert len(summary_rows) == 3 and "path_length_nm" in summary_rows[0]


def test_npy_with_contacts_and_a_3d_series(tmp_path, capsys):
    a = np.zeros((16, 64, 96), np.uint16)
    b = np.zeros_like(a)
    for t in range(16):
        x = 60 - 3 * t if t <= 8 else 36 + 3 * (t - 8)
        a[t][disk((30, 30), 5, shape=a.shape[1:])] = 4
        b[t][disk((30, x), 3, shape=a.shape[1:])] = 9
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "out"
    status, stdout, err = run(
        capsys, "track", tmp_path / "a.npy", "--pixel-nm", 50, "--frame-s", 1, "--out", out,
        "--contacts", tmp_path / "b.npy", "--contact-nm", 200, "--no-overlay",
    )  # fmt: skip
    assert status == 0, err
    assert "3 contacts" in stdout and not (out / "tracks.png").exists()
    contacts = [e for e in read_csv(out / "events.csv") if e["kind"] == "contact"]
    assert [e["frame"] for e in contacts] == ["7", "8", "9"]
    assert {(e["track_ids"], e["other_track_ids"]) for e in contacts} == {("1", "1")}
    assert float(contacts[1]["distance_nm"]) == 0.0
    assert len(read_csv(out / "contact_tracks.csv")) == 16
    # the same discs as a (T, Z, Y, X) ImageJ hyperstack of 2 planes
    tifffile.imwrite(
        tmp_path / "a3.tif", np.stack([a, a], axis=1), imagej=True, metadata={"axes": "TZYX"}
    )
    status, _, err = run(
        capsys, "track", tmp_path / "a3.tif", "--pixel-nm", 50, "--z-step-nm", 200,
        "--frame-s", 1, "--out", tmp_path / "o3",
    )  # fmt: skip
    assert status == 0, err
    row = read_csv(tmp_path / "o3" / "tracks.csv")[0]
    assert float(row["centroid_z_nm"]) == 200.0 and "volume_nm3" in row


def test_simulated_dataset_takes_units_from_the_file_and_scores(tmp_path, capsys):
    simulated_video(tmp_path, seed=1)
    data = tmp_path / "v.zarr"
    out = tmp_path / "out"
    status, stdout, err = run(
        capsys, "track", data, "--out", out, "--truth", data, "--max-distance-nm", 600,
        "--class", "bead",
    )  # fmt: skip
    assert status == 0, err
    assert "HOTA 1.000, 0 ID switches" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["voxel_nm"] == [60.0, 60.0] and summary["frame_s"] == 0.5
    assert summary["n_tracks"] == 7 and summary["scores"]["idsw"] == 0
    assert summary["input"].endswith("(image 0, class bead)")


def test_empty_frames_and_binary_masks(tmp_path, capsys):
    np.save(tmp_path / "empty.npy", np.zeros((3, 16, 16), np.uint8))
    status, stdout, err = run(
        capsys, "track", tmp_path / "empty.npy", "--pixel-nm", 10, "--frame-s", 1,
        "--out", tmp_path / "e",
    )  # fmt: skip
    assert status == 0, err
    assert "0 tracks of 0 objects over 3 frames" in stdout
    assert read_csv(tmp_path / "e" / "tracks.csv") == []
    mask = np.zeros((4, 32, 32), bool)
    for t in range(4):
        mask[t, 5:9, 4 + t : 8 + t] = True
        mask[t, 20:25, 20:24] = True
    np.save(tmp_path / "mask.npy", mask)
    status, stdout, err = run(
        capsys, "track", tmp_path / "mask.npy", "--pixel-nm", 100, "--frame-s", 1,
        "--out", tmp_path / "m",
    )  # fmt: skip
    assert status == 0, err
    assert stdout.startswith(f"{tmp_path / 'm'}: 2 tracks of 8 objects")


@pytest.mark.parametrize(
    ("array", "extra", "message"),
    [
        (np.ones((3, 8, 8), np.float32), (), "labels must be integers, got float32"),
        (-np.ones((3, 8, 8), np.int16), (), "labels must be non-negative"),
        (np.ones((1, 8, 8), np.uint8), (), "a single frame"),
        (np.ones((8, 8), np.uint8), (), "a single frame"),
        (np.ones((3, 8, 8), np.uint8), ("--frame-s", 1), "no pixel size; give --pixel-nm"),
        (np.ones((3, 8, 8), np.uint8), ("--pixel-nm", 5), "no frame interval; give --frame-s"),
        (np.ones((3, 2, 8, 8), np.uint8), ("--pixel-nm", 5, "--frame-s", 1), "--z-step-nm"),
        (
            np.ones((3, 8, 8), np.uint8),
            ("--pixel-nm", 5, "--frame-s", 1, "--contacts", "{other}"),
            "--contacts needs --contact-nm",
        ),
        (
            np.ones((3, 8, 8), np.uint8),
            ("--pixel-nm", 5, "--frame-s", 1, "--contacts", "{other}", "--contact-nm", 50),
            "differ in shape",
        ),
        (np.ones((3, 8, 8), np.uint8), ("--pixel-nm", -5, "--frame-s", 1), "must be positive"),
        (
            np.ones((3, 8, 8), np.uint8),
            ("--pixel-nm", 5, "--frame-s", 1, "--min-overlap", 0),
            "--min-overlap must be in (0, 1]",
        ),
        (
            np.ones((3, 8, 8), np.uint8),
            ("--pixel-nm", 5, "--frame-s", 1, "--max-gap-frames", -1),
            "max_gap_frames",
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, array, extra, message):
    np.save(tmp_path / "x.npy", array)
    np.save(tmp_path / "other.npy", np.ones((3, 9, 9), np.uint8))
    extra = [str(e).format(other=tmp_path / "other.npy") for e in extra]
    status, _, err = run(capsys, "track", tmp_path / "x.npy", "--out", tmp_path / "o", *extra)
    assert status == 2
    assert err.startswith("subcell: error:") and err.count("\n") == 1, err
    assert message in err


def test_missing_and_unknown_files(tmp_path, capsys):
    status, _, err = run(capsys, "track", tmp_path / "nope.tif", "--out", tmp_path / "o")
    assert status == 2 and "no such file" in err
    (tmp_path / "x.txt").write_text("1")
    status, _, err = run(capsys, "track", tmp_path / "x.txt", "--out", tmp_path / "o")
    assert status == 2 and "expected a .tif" in err
