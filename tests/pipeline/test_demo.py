"""The demo pipeline runs end to end and reports real numbers."""

import json

import numpy as np
import zarr

from subcell.cli import main
from subcell.core.omezarr import read_ome_zarr


def test_demo_writes_report_and_scores_segmentation(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "mean IoU" in report
    for name in ("overview.png", "objects.csv", "simulate.yaml", "beads.ome.zarr"):
        assert (out / name).exists(), name
    volume = read_ome_zarr(out / "beads.ome.zarr")
    assert volume.voxel_nm[1:] == (42.0, 42.0)
    attributes = zarr.open_group(out / "beads.ome.zarr", mode="r").attrs.asdict()
    provenance = attributes["subcell"]["provenance"]
    assert provenance["seed"] == 2026
    assert {p["name"] for p in provenance["plugins"]} >= {"beads", "volume", "epi"}
    rows = (out / "objects.csv").read_text().splitlines()
    n_objects = len(rows) - 1
    # Otsu on a widefield bead image: every bead is found, and its blob is the PSF-blurred
    # spot, so foreground IoU against the 100 nm bead discs is low but background is high.
    assert 12 <= n_objects <= 16
    assert np.asarray(volume.data).std() > 0


def test_demo_is_reproducible(tmp_path):
    from subcell.pipeline.demo import run_demo

    first = run_demo(tmp_path / "a")
    second = run_demo(tmp_path / "b")
    # Every bead is found; the blobs are the PSF-blurred spots (about 190 nm wide) around
    # 100 nm beads, so foreground IoU is low while background IoU stays high.
    assert first["objects_found"] == first["beads_simulated"]
    assert first["iou_background"] > 0.95
    assert 0.05 < first["iou_foreground"] < 0.4
    assert json.dumps({k: v for k, v in first.items() if k != "timings_s"}) == json.dumps(
        {k: v for k, v in second.items() if k != "timings_s"}
    )
