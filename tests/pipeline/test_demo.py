"""The demo pipeline runs end to end with the bundled model and reports real numbers."""

import json

import numpy as np
import tifffile
import zarr

from subcell.cli import main
from subcell.core.omezarr import read_ome_zarr


def test_demo_writes_masks_overlays_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "mitochondria-epi" in report and "mIoU" in report
    for name in (
        "overview.png",
        "objects.csv",
        "simulate.yaml",
        "mito.ome.zarr",
        "mitochondria-epi-mask.tif",
        "mitochondria-epi-overlay.png",
        "otsu-mask.tif",
        "otsu-overlay.png",
    ):
        assert (out / name).exists(), name
    volume = read_ome_zarr(out / "mito.ome.zarr")
    assert volume.voxel_nm[1:] == (42.0, 42.0)
    assert volume.shape[-2:] == (256, 256)
    attributes = zarr.open_group(out / "mito.ome.zarr", mode="r").attrs.asdict()
    provenance = attributes["subcell"]["provenance"]
    assert provenance["seed"] == 2026
    assert {p["name"] for p in provenance["plugins"]} >= {"mitochondria", "surface", "epi"}
    mask = tifffile.imread(out / "mitochondria-epi-mask.tif")
    assert mask.shape[-2:] == (256, 256) and set(np.unique(mask)) <= {0, 1}


def test_demo_model_beats_otsu_and_is_reproducible(tmp_path):
    from subcell.pipeline.demo import run_demo

    first = run_demo(tmp_path / "a")
    second = run_demo(tmp_path / "b")
    model, otsu = first["scores"]["mitochondria-epi"], first["scores"]["otsu"]
    # The bundled model segments the simulated mitochondria well and better than Otsu,
    # whose threshold of a noisy widefield image is ragged and blurred.
    assert model["miou"] >= 0.85
    assert model["miou"] > otsu["miou"] + 0.05
    assert model["f1"] > otsu["f1"]
    assert json.dumps({k: v for k, v in first.items() if k != "timings_s"}) == json.dumps(
        {k: v for k, v in second.items() if k != "timings_s"}
    )
    for name in ("mitochondria-epi-mask.tif", "otsu-mask.tif", "overview.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
