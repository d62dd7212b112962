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


def test_demo_is_a_pipeline_run_by_the_run_engine(tmp_path):
    from subcell.pipeline.demo import run_demo
    from subcell.pipeline.demo.run import demo_overrides
    from subcell.pipeline.run import load_pipeline, make_plan, read_record

    out = tmp_path / "demo"
    summary = run_demo(out)
    pipeline = load_pipeline(out / "demo.yaml")
    kinds = {name: step.kind for name, step in pipeline.steps.items()}
    assert kinds == {
        "simulate": "simulate",
        "model": "segment",
        "otsu": "segment",
        "score-model": "evaluate",
        "score-otsu": "evaluate",
        "measure": "analyze",
        "report": "demo_report",
    }
    assert pipeline.out == out / "steps"
    for name in kinds:
        assert read_record(out / "steps" / name)["complete"], name
    assert set(summary["timings_s"]) == set(kinds)
    # The report's numbers are the evaluate steps' own.
    metrics = json.loads((out / "steps" / "score-model" / "metrics.json").read_text())
    assert summary["scores"]["mitochondria-epi"]["miou"] == metrics["miou"]
    assert summary["scores"]["mitochondria-epi"]["ap50"] == metrics["instances"]["ap"]["0.50"]
    # Run again: everything is reused; one changed parameter reruns what depends on it.
    assert make_plan(pipeline).to_run == []
    sets = demo_overrides(["microscope.na=1.2", "otsu.segmenter.smooth_sigma_px=1"], kinds)
    assert sets == ["simulate.microscope.na=1.2", "otsu.segmenter.smooth_sigma_px=1"]
    assert make_plan(load_pipeline(out / "demo.yaml", sets[1:])).to_run == [
        "otsu",
        "score-otsu",
        "report",
    ]


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
