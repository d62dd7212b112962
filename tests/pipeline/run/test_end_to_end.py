"""A tiny real pipeline: simulate -> train (1 epoch, tiny U-Net) -> segment -> evaluate,
with an Otsu branch and a report; reuse, reruns, provenance trace and the CLI handler."""

import argparse
import json

import numpy as np
import pytest
import zarr

from subcell.pipeline.dataset import open_dataset
from subcell.pipeline.run import load_pipeline, make_plan, read_record, run_pipeline, trace

TINY = """\
description: tiny beads pipeline
steps:
  sim:
    step: simulate
    config:
      seed: 3
      tile_px: [64, 64]
      n_tiles: 10
      snr: null
      background_photons: [10, 10]
      structures:
        - structure: {plugin: beads, count: [3, 6], diameter_nm: 400, margin_nm: 400,
                      min_separation_nm: 600}
          labelling: {plugin: volume, density_per_um3: 20000, photons_per_emitter: 30}
      microscope: {plugin: epi, pixel_nm: 80, psf_radius_nm: 1500}
      ground_truth: {plugin: geometry_projection}
  train:
    step: train
    config:
      name: tiny-beads
      network: {plugin: unet, spatial_dims: 2, channels: [8, 16], strides: [2],
                num_res_units: 0}
      epochs: 1
      batch_size: 4
      patch_px: [64, 64]
      samples_per_epoch: 8
      val_max_images: 2
      early_stopping_patience: 0
    data: ${steps.sim.out}
    device: cpu
  seg:
    step: segment
    images: ${steps.sim.out}
    model: ${steps.train.out}
    split: test
    tta: true
  otsu:
    step: segment
    config: {segmenter: {plugin: otsu, class_name: bead}}
    images: ${steps.sim.out}
    split: test
    instances: true
  ev:
    step: evaluate
    prediction: ${steps.seg.out}
    truth: ${steps.sim.out}
    split: test
  ev-otsu:
    step: evaluate
    prediction: ${steps.otsu.out}
    truth: ${steps.sim.out}
    split: test
  report:
    step: report
    title: tiny
    metrics:
      ours: ${steps.ev.out}
      otsu: ${steps.ev-otsu.out}
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("tiny")
    path = folder / "tiny.yaml"
    path.write_text(TINY)
    result = run_pipeline(load_pipeline(path, registry=registry), registry=registry)
    return path, folder / "runs" / "tiny", result


def test_the_tiny_pipeline_runs_every_step_into_its_folder(tiny):
    _, out, result = tiny
    assert set(result.seconds) == {"sim", "train", "seg", "otsu", "ev", "ev-otsu", "report"}
    data = open_dataset(out / "sim" / "data.zarr")
    assert len(data) == 10 and data.class_names == ("bead",)
    card = json.loads((out / "train" / "model" / "card.json").read_text())
    assert card["name"] == "tiny-beads" and card["training"]["epochs_run"] == 1
    test = data.split("test")
    prediction = zarr.open_group(str(out / "otsu" / "prediction.zarr"), mode="r")
    assert prediction["mask"].shape == (len(test), 1, 1, 64, 64)
    assert prediction["instances"].shape == (len(test), 1, 64, 64)
    assert prediction.attrs["images"] == test
    ours_group = zarr.open_group(str(out / "seg" / "prediction.zarr"), mode="r")
    assert ours_group.attrs["tta"] is True and prediction.attrs["tta"] is False
    ours = json.loads((out / "ev" / "metrics.json").read_text())
    otsu = json.loads((out / "ev-otsu" / "metrics.json").read_text())
    assert ours["n_images"] == otsu["n_images"] == len(test)
    # Bright beads on a flat background: Otsu finds them; one epoch of a tiny net is weaker.
    assert otsu["miou"] >= 0.8
    assert 0.0 <= ours["miou"] <= 1.0
    scores = json.loads((out / "report" / "scores.json").read_text())
    assert scores["otsu"]["miou"] == pytest.approx(otsu["miou"])
    assert scores["ours"]["f1"] == pytest.approx(ours["f1"])
    report = (out / "report" / "report.md").read_text()
    assert "| otsu | " in report and "![mIoU](scores.png)" in report
    assert (out / "report" / "scores.png").stat().st_size > 1000
    assert "step `ev` from `seg`, `sim`, `train`" in report


def test_a_rerun_reuses_everything_and_one_change_reruns_its_branch(tiny, registry):
    path, _, _ = tiny
    again = run_pipeline(load_pipeline(path, registry=registry), registry=registry)
    assert again.seconds == {}
    overrides = ["otsu.segmenter.smooth_sigma_px=1"]
    plan = make_plan(load_pipeline(path, overrides, registry=registry))
    assert plan.to_run == ["otsu", "ev-otsu", "report"]
    assert plan["otsu"].reason == "config changed" and plan["report"].reason == "input changed"


def test_trace_leads_from_a_segmentation_to_the_simulation_config(tiny):
    _, out, _ = tiny
    node = trace(out / "seg" / "prediction.zarr")
    assert (node.name, node.step) == ("seg", "segment")
    assert {link.input: link.status for link in node.inputs} == {"images": "same", "model": "same"}
    (train,) = node.find("train")
    (sim,) = node.find("simulate")
    assert [link.source.name for link in train.inputs] == ["sim"]
    dataset = open_dataset(out / "sim" / "data.zarr")
    # The simulate step records the hash that the dataset itself carries.
    assert sim.command_config_sha256 == dataset.attrs["provenance"]["config_sha256"]
    assert sim.outputs["data"] == read_record(out / "sim")["outputs"]["data"]["sha256"]
    card = json.loads((out / "train" / "model" / "card.json").read_text())
    assert card["data"]["provenance"]["config_sha256"] == sim.command_config_sha256


def _cli(argv, registry):
    from subcell.cli import run as run_cli

    parser = argparse.ArgumentParser()
    run_cli.add_commands(parser.add_subparsers())
    args = parser.parse_args(["run", *argv])
    args.registry = registry
    return args.handler(args)


def test_cli_dry_run_and_trace(tiny, registry, capsys):
    path, out, _ = tiny
    assert _cli([str(path), "--dry-run", "--set", "ev.split=val"], registry) == 0
    text = capsys.readouterr().out
    assert "dry run" in text and "config changed" in text and "up to date" in text
    assert _cli(["--trace", str(out / "ev" / "metrics.json"), "--json"], registry) == 0
    chain = json.loads(capsys.readouterr().out)
    assert chain["name"] == "ev"
    sim = chain["inputs"]["truth"]["source"]
    assert sim["step"] == "simulate" and sim["complete"] is True
    assert _cli(["--trace", str(out / "seg")], registry) == 0
    assert "seg" in capsys.readouterr().out


def test_segment_and_analyze_a_folder_of_images(tiny, registry, write, tmp_path):
    _, out, _ = tiny
    images = tmp_path / "images"
    images.mkdir()
    data = open_dataset(out / "sim" / "data.zarr")
    for i in (0, 1):
        np.save(images / f"cell{i}.npy", np.asarray(data.images[i, 0, 0]))
    (images / "notes.json").write_text("{}")
    path = write(
        """\
        steps:
          seg:
            step: segment
            images: images
            config: {segmenter: {plugin: otsu, class_name: bead}}
            pixel_nm: 80
            overlays: true
          measure:
            step: analyze
            labels: ${steps.seg.out}
            pixel_nm: 80
        """
    )
    result = run_pipeline(load_pipeline(path, registry=registry), registry=registry)
    assert set(result.seconds) == {"seg", "measure"}
    seg = tmp_path / "runs" / "p" / "seg"
    assert sorted(p.name for p in (seg / "masks").glob("*.tif")) == ["cell0.tif", "cell1.tif"]
    assert sorted(p.name for p in (seg / "overlays").iterdir()) == ["cell0.png", "cell1.png"]
    for name in ("cell0", "cell1"):
        summary = json.loads(
            (tmp_path / "runs/p/measure/analysis" / name / "summary.json").read_text()
        )
        assert summary["n_objects"] >= 1
    # The images are a literal input: touching one makes the segmentation stale.
    np.save(images / "cell1.npy", np.asarray(data.images[2, 0, 0]))
    plan = make_plan(load_pipeline(path, registry=registry))
    assert plan["seg"].reason == "input changed" and plan["measure"].reason == "input changed"


@pytest.mark.slow
def test_the_tiny_pipeline_on_two_workers_gives_the_same_outputs(tiny, registry, tmp_path):
    path, out, _ = tiny
    pipeline = load_pipeline(path, out=tmp_path, registry=registry)
    result = run_pipeline(pipeline, workers=2, registry=registry)
    assert set(result.seconds) == set(pipeline.steps)
    for name in ("images", "masks", "instances"):
        first = open_dataset(out / "sim" / "data.zarr")
        second = open_dataset(tmp_path / "sim" / "data.zarr")
        assert np.array_equal(getattr(first, name)[:], getattr(second, name)[:]), name
    weights = "model/model.safetensors"
    assert (out / "train" / weights).read_bytes() == (tmp_path / "train" / weights).read_bytes()
    for name in ("ev", "ev-otsu"):
        a = json.loads((out / name / "metrics.json").read_text())
        b = json.loads((tmp_path / name / "metrics.json").read_text())
        assert a["confusion"] == b["confusion"] and a["miou"] == b["miou"], name
    assert (out / "report" / "scores.json").read_text() == (
        tmp_path / "report" / "scores.json"
    ).read_text()
