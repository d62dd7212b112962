"""subcell train: learning, model cards, determinism, resume, transfer learning, refusals."""

import json
import shutil

import numpy as np
import pytest

from subcell import models
from subcell.cli import main
from subcell.core.errors import ConfigError, SubcellError
from subcell.pipeline.config import load_config
from subcell.pipeline.dataset import open_dataset, write_dataset
from subcell.pipeline.training import loop, train

SIMULATE = """\
step: simulate
seed: 3
tile_px: [64, 64]
n_tiles: 20
snr: null
background_photons: [10, 10]
structures:
  - structure: {plugin: beads, count: [3, 6], diameter_nm: 400, margin_nm: 400,
                min_separation_nm: 600}
    labelling: {plugin: volume, density_per_um3: 20000, photons_per_emitter: 30}
microscope: {plugin: epi, pixel_nm: 80, psf_radius_nm: 1500}
ground_truth: {plugin: geometry_projection}
"""

TRAIN = """\
step: train
name: beads-test
description: tiny network for tests
network: {plugin: unet, spatial_dims: 2, channels: [8, 16, 32], strides: [2, 2],
          num_res_units: 1}
epochs: 6
batch_size: 4
patch_px: [64, 64]
learning_rate: 0.01
early_stopping_patience: 0
samples_per_epoch: 48
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train-data")
    (folder / "sim.yaml").write_text(SIMULATE)
    config = load_config(folder / "sim.yaml").config
    return write_dataset(config, folder / "beads.zarr").path


@pytest.fixture
def train_config(tmp_path):
    def make(*overrides):
        path = tmp_path / "train.yaml"
        path.write_text(TRAIN)
        return load_config(path, list(overrides)).config

    return make


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    (folder / "train.yaml").write_text(TRAIN)
    config = load_config(folder / "train.yaml").config
    return train(config, dataset, folder / "model", progress=False)


def test_training_learns_beads_and_writes_a_loadable_model(trained):
    card = trained.card
    assert trained.status == "trained"
    # Bright beads on a flat background: a small U-Net must segment them well in 6 epochs.
    assert card["metrics"]["test"]["miou"] >= 0.8
    assert card["training"]["best_val_miou"] >= 0.8
    assert card["classes"] == ["bead"]
    assert card["pixel_nm"] == 80.0 and card["in_channels"] == 1
    assert card["network"]["config"]["out_channels"] == 1
    assert card["data"]["split_sizes"] == {"train": 12, "val": 4, "test": 4}
    assert card["training"]["complete"] is True
    assert not (trained.path / "checkpoint").exists()
    loaded = models.load(trained.path)
    assert loaded.network.training is False
    assert loaded.card == card


def test_fresh_sigmoid_network_starts_at_the_bead_prior(trained, dataset):
    prior = trained.card["training"]["output_prior"]
    data = open_dataset(dataset)
    train_masks = np.stack([np.asarray(data.masks[i]) for i in data.split("train")])
    assert prior["fractions"][0] == pytest.approx(train_masks.mean(), rel=1e-6)
    np.testing.assert_allclose(prior["mean_logit_after"], prior["target_logits"], atol=1e-3)


def test_a_network_without_a_settable_output_bias_trains_from_p_half(
    dataset, train_config, tmp_path, monkeypatch
):
    def refuse(*args):
        raise ValueError("no output convolution found")

    monkeypatch.setattr(loop, "set_output_prior", refuse)
    with pytest.warns(UserWarning, match="prior_output_bias skipped: no output convolution"):
        result = train(train_config("epochs=1"), dataset, tmp_path / "m", progress=False)
    assert result.card["training"]["output_prior"] == {"skipped": "no output convolution found"}


def test_threshold_is_the_best_on_validation(trained):
    card = trained.card
    scores = card["training"]["threshold_calibration_val_miou"]
    assert len(scores) == 16 and min(map(float, scores)) == 0.2
    assert scores[f"{card['threshold']:.2f}"] == max(scores.values())


def test_loss_decreases_over_epochs(trained):
    losses = [r["loss"] for r in trained.card["training"]["history"]]
    assert losses[-1] < 0.85 * losses[0]


def test_same_seed_gives_identical_weights(dataset, train_config, tmp_path):
    config = train_config("epochs=2", "samples_per_epoch=16")
    first = train(config, dataset, tmp_path / "a", progress=False)
    second = train(config, dataset, tmp_path / "b", progress=False)
    weights = models.WEIGHTS_FILE
    assert (first.path / weights).read_bytes() == (second.path / weights).read_bytes()
    assert first.card["metrics"]["test"] == second.card["metrics"]["test"]


def test_rerun_of_a_finished_model_does_nothing(dataset, train_config, tmp_path):
    config = train_config("epochs=1", "samples_per_epoch=8")
    train(config, dataset, tmp_path / "m", progress=False)
    again = train(config, dataset, tmp_path / "m", progress=False)
    assert again.status == "complete"


def test_interrupted_run_resumes_to_the_same_model(dataset, train_config, tmp_path, monkeypatch):
    config = train_config("epochs=3", "samples_per_epoch=8")
    whole = train(config, dataset, tmp_path / "whole", progress=False)

    real_write = loop.checkpoint.write
    calls = []

    def write_then_stop(*args, **kwargs):
        real_write(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop.checkpoint, "write", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(config, dataset, tmp_path / "cut", progress=False)
    monkeypatch.setattr(loop.checkpoint, "write", real_write)
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert len(state["history"]) == 2
    resumed = train(config, dataset, tmp_path / "cut", progress=False)
    assert resumed.status == "resumed"
    assert [r["loss"] for r in resumed.card["training"]["history"]] == [
        r["loss"] for r in whole.card["training"]["history"]
    ]
    weights = models.WEIGHTS_FILE
    assert (tmp_path / "cut" / weights).read_bytes() == (whole.path / weights).read_bytes()


def test_a_different_config_does_not_clobber_a_model(dataset, train_config, tmp_path):
    quick = ("epochs=1", "samples_per_epoch=8")
    train(train_config(*quick), dataset, tmp_path / "m", progress=False)
    with pytest.raises(SubcellError, match="different model; use --overwrite"):
        train(train_config(*quick, "seed=5"), dataset, tmp_path / "m", progress=False)
    replaced = train(
        train_config(*quick, "seed=5"), dataset, tmp_path / "m", overwrite=True, progress=False
    )
    assert replaced.card["training"]["config"]["seed"] == 5


def test_transfer_learning_with_a_frozen_encoder(trained, dataset, train_config, tmp_path):
    config = train_config(
        "epochs=1", "samples_per_epoch=16", "freeze_encoder=true", "learning_rate=0.05"
    )
    tuned = train(config, dataset, tmp_path / "tuned", init_from=str(trained.path), progress=False)
    assert tuned.card["training"]["init_from"]["name"] == "beads-test"
    assert tuned.card["training"]["frozen_parameters"] > 0
    base = models.load(trained.path).network.state_dict()
    after = models.load(tuned.path).network.state_dict()
    encoder_first = "model.0.conv.unit0.conv.weight"
    assert encoder_first in base
    assert np.array_equal(base[encoder_first].numpy(), after[encoder_first].numpy())
    changed = [k for k in base if not np.array_equal(base[k].numpy(), after[k].numpy())]
    assert changed, "the decoder must still learn"
    # Starting from a trained model keeps the quality after one epoch.
    assert tuned.card["metrics"]["test"]["miou"] >= 0.75


def test_a_fine_tune_is_identified_by_its_base_weights_not_their_path(
    trained, dataset, train_config, tmp_path
):
    config = train_config("epochs=1", "samples_per_epoch=8")
    data = loop.training_view(open_dataset(dataset), config)
    moved = shutil.copytree(trained.path, tmp_path / "elsewhere" / "base")
    identity = loop.run_identity(config, data, str(trained.path))
    assert loop.run_identity(config, data, str(moved)) == identity
    assert identity != loop.run_identity(config, data, None)

    tuned = train(config, dataset, tmp_path / "tuned", init_from=str(moved), progress=False)
    sha = models.weights_sha256(moved)
    assert tuned.card["training"]["init_from"]["weights_sha256"] == sha
    again = train(config, dataset, tmp_path / "tuned", init_from=str(trained.path), progress=False)
    assert again.status == "complete"
    # A retrained base under the same path makes the fine-tune a different run: it is
    # neither skipped as done nor silently replaced.
    train(config, dataset, moved, overwrite=True, progress=False)
    assert models.weights_sha256(moved) != sha
    with pytest.raises(SubcellError, match="different model; use --overwrite"):
        train(config, dataset, tmp_path / "tuned", init_from=str(moved), progress=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("patch_px=[62, 62]",), "multiples of 4"),
        (("patch_px=[64, 64, 64]",), "3 sizes for a 2D network"),
        (("loss.class_weights=[1, 2, 3]",), "3 values for 1 foreground class"),
        (("freeze_encoder=true",), "freeze_encoder needs --init-from"),
    ],
)
def test_bad_training_configs_are_refused(dataset, train_config, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train(train_config(*overrides), dataset, tmp_path / "m", progress=False)


def test_cli_train_and_errors(dataset, tmp_path, capsys):
    (tmp_path / "train.yaml").write_text(TRAIN)
    code = main(
        [
            "train",
            str(tmp_path / "train.yaml"),
            "--data",
            str(dataset),
            "--out",
            str(tmp_path / "m"),
            "--epochs",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert "test mIoU" in capsys.readouterr().out
    code = main(
        [
            "train",
            str(tmp_path / "train.yaml"),
            "--data",
            str(tmp_path / "nope.zarr"),
            "--out",
            str(tmp_path / "m2"),
        ]
    )
    assert code == 2
    assert "not a subcell simulated dataset" in capsys.readouterr().err


def test_3d_network_with_softmax_head(tmp_path):
    (tmp_path / "sim.yaml").write_text(
        SIMULATE.replace("tile_px: [64, 64]", "tile_px: [32, 32]")
        .replace("n_tiles: 20", "n_tiles: 10")
        .replace("psf_radius_nm: 1500}", "psf_radius_nm: 1500, n_z: 8, z_step_nm: 200}")
        .replace("count: [3, 6]", "count: [1, 2]")
    )
    data = write_dataset(load_config(tmp_path / "sim.yaml").config, tmp_path / "d.zarr").path
    (tmp_path / "train.yaml").write_text(
        "step: train\nname: stack\nhead: softmax\nepochs: 1\nbatch_size: 2\n"
        "patch_px: [8, 32, 32]\nnetwork: {plugin: unet, spatial_dims: 3, channels: [4, 8],"
        " strides: [2], num_res_units: 0}\n"
    )
    result = train(
        load_config(tmp_path / "train.yaml").config, data, tmp_path / "m", progress=False
    )
    card = result.card
    assert card["network"]["config"]["out_channels"] == 2  # background + bead
    assert card["patch_px"] == [8, 128, 128]
    assert len(card["voxel_nm"]) == 3 and card["voxel_nm"][0] == 200.0
    confusion = np.array(card["metrics"]["test"]["confusion"]["matrix"])
    assert confusion.sum() == 2 * 8 * 32 * 32  # two test stacks, every voxel scored


@pytest.mark.gpu
def test_cuda_mixed_precision_training_matches_cpu_quality(dataset, train_config, tmp_path):
    config = train_config("epochs=3")
    gpu = train(config, dataset, tmp_path / "gpu", device="cuda", progress=False)
    cpu = train(config, dataset, tmp_path / "cpu", device="cpu", progress=False)
    assert gpu.card["training"]["device"].startswith("cuda")
    assert abs(gpu.card["metrics"]["test"]["miou"] - cpu.card["metrics"]["test"]["miou"]) < 0.1
    loaded = models.load(gpu.path)  # saved weights load on CPU
    assert next(loaded.network.parameters()).device.type == "cpu"
