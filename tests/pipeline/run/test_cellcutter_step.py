"""The cellcutter step on a simulated clumped-cell dataset (a phantom config through the
simulate step): the prediction group's layout, scoring it against the dataset, the baseline
on the same markers, ``images: N``, and refusals. The trained method runs in the slow
end-to-end test of configs/pipelines/tiny/cellcutter.yaml (test_examples.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from subcell.core.errors import ConfigError, VolumeError
from subcell.pipeline.config import load_config
from subcell.pipeline.dataset import open_dataset
from subcell.pipeline.evaluate import evaluate
from subcell.pipeline.run import load_pipeline, run_pipeline
from subcell.pipeline.run.steps_cellcutter import baseline_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "cellcutter"

PIPELINE = f"""\
description: the watershed baseline of the cellcutter step on two clumped-cell images
steps:
  sim:
    step: simulate
    config: {CONFIGS / "clumped-epi.yaml"}
    set: {{n_tiles: 2, tile_px: [128, 128]}}
  cells:
    step: cellcutter
    config: {CONFIGS / "method.yaml"}
    baseline: true
    data: ${{steps.sim.out}}
  first:
    step: cellcutter
    config: {CONFIGS / "method.yaml"}
    baseline: true
    images: 1
    data: ${{steps.sim.out}}
  score:
    step: evaluate
    prediction: ${{steps.cells.out}}
    truth: ${{steps.sim.out}}
    instances: true
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, registry):
    folder = tmp_path_factory.mktemp("cellcutter")
    path = folder / "p.yaml"
    path.write_text(PIPELINE)
    pipeline = load_pipeline(path, registry=registry)
    run_pipeline(pipeline, registry=registry)
    return pipeline


def test_the_cells_are_written_in_the_datasets_mask_layout(run):
    data = open_dataset(run.folder("sim") / "data.zarr")
    assert data.channel_names == ("cell", "nucleus") and data.class_names == ("cell", "nucleus")
    group = zarr.open_group(str(run.folder("cells") / "prediction.zarr"), mode="r")
    assert group["mask"].shape == (2, 2, 1, 128, 128)
    assert group["instances"].shape == (2, 1, 128, 128)
    assert group.attrs["class_names"] == ["cell", "nucleus"]
    assert group.attrs["images"] == [0, 1] and group.attrs["method"] == "marker_watershed"
    masks, instances = group["mask"][:], group["instances"][:]
    # cellcutter predicts cells: the cell channel is their union, the nucleus one is empty.
    np.testing.assert_array_equal(masks[:, 0], instances > 0)
    assert not masks[:, 1].any()
    for row in range(2):
        found = len(np.unique(instances[row])) - 1
        assert found == group.attrs["cells"][row]
        # One cell grows from each marker; a marker on a tiny foreground bit may give none.
        assert 0.8 * group.attrs["markers"][row] <= found <= group.attrs["markers"][row]
        assert found >= 4


def test_the_evaluate_step_scores_the_cells_against_the_dataset(run):
    metrics = json.loads((run.folder("score") / "metrics.json").read_text())
    data = open_dataset(run.folder("sim") / "data.zarr")
    true_cells = sum(len(np.unique(data.instances[i])) - 1 for i in range(2))
    assert metrics["instances"]["n_true"] == true_cells
    # The watershed on the graph-cut foreground separates most touching cells.
    assert metrics["instances"]["ap"]["0.50"] >= 0.35
    assert metrics["instances"]["pq"] >= 0.4
    assert metrics["iou"]["cell"] >= 0.5
    # subcell evaluate --instances reads the same group the same way.
    again = evaluate(
        run.folder("cells") / "prediction.zarr", run.folder("sim") / "data.zarr", instances=True
    )
    assert again["instances"]["pq"] == pytest.approx(metrics["instances"]["pq"])


def test_images_n_segments_the_first_n_alike(run):
    first = zarr.open_group(str(run.folder("first") / "prediction.zarr"), mode="r")
    every = zarr.open_group(str(run.folder("cells") / "prediction.zarr"), mode="r")
    assert first["instances"].shape[0] == 1 and first.attrs["images"] == [0]
    np.testing.assert_array_equal(first["instances"][0], every["instances"][0])


def test_baseline_uses_the_markers_and_foreground_of_the_cellcutter_config(registry):
    method = load_config(CONFIGS / "method.yaml", registry=registry).config.method.config
    watershed = baseline_config(method, registry)
    assert type(watershed).__name__ == "MarkerWatershedConfig"
    assert watershed.markers == method.markers and watershed.foreground == method.foreground
    assert watershed.markers.nucleus_diameter_px == (8.0, 26.0)
    assert baseline_config(watershed, registry) is watershed


def test_a_dataset_without_nuclei_is_refused(write, registry, tmp_path):
    path = write(
        f"""\
        steps:
          sim:
            step: simulate
            config: {CONFIGS / "clumped-epi.yaml"}
            set: {{n_tiles: 1, tile_px: [48, 48], phantom.dyes: [cell], phantom.classes: [cell]}}
          cells:
            step: cellcutter
            baseline: true
            data: ${{steps.sim.out}}
        """
    )
    pipeline = load_pipeline(path, out=tmp_path / "out", registry=registry)
    with pytest.raises(VolumeError, match="no 'nucleus' channel \\(channels: cell\\)"):
        run_pipeline(pipeline, registry=registry)


def test_settings_and_the_config_kind_are_checked_before_running(write, registry, tmp_path):
    path = write(
        f"""\
        steps:
          sim: {{step: simulate, config: {CONFIGS / "method.yaml"}}}
        """
    )
    with pytest.raises(ConfigError, match="takes a simulate config .* or a phantom config"):
        load_pipeline(path, registry=registry)
    path = write(
        f"""\
        steps:
          cells:
            step: cellcutter
            config: {CONFIGS / "clumped-epi.yaml"}
            data: {tmp_path}
        """
    )
    with pytest.raises(ConfigError, match="a phantom config; step cellcutter takes a cellcutter"):
        load_pipeline(path, registry=registry)
    path = write(
        f"""\
        steps:
          cells: {{step: cellcutter, images: -1, data: {tmp_path}}}
        """
    )
    with pytest.raises(ConfigError, match="steps.cells: images"):
        load_pipeline(path, registry=registry)
