"""Model directories: save/load round trips, card validation, refusals, bundled models."""

import json

import numpy as np
import pytest
import torch

from subcell import models
from subcell.models.card import ModelError, check_card
from subcell.plugins.networks import UNetConfig
from subcell.registry import get_registry


def _network(out_channels=1, channels=(4, 8)):
    config = UNetConfig(
        spatial_dims=2,
        in_channels=1,
        out_channels=out_channels,
        channels=channels,
        strides=(2,) * (len(channels) - 1),
    )
    torch.manual_seed(0)
    return get_registry().create("network", "unet", config), config


def _card(config):
    from subcell.core.structuring import unstructure

    return {
        "format": models.CARD_FORMAT,
        "name": "unit",
        "description": "test model",
        "network": {"plugin": "unet", "config": unstructure(config)},
        "head": "sigmoid",
        "classes": ["thing"],
        "in_channels": 1,
        "voxel_nm": [200.0, 50.0, 50.0],
        "pixel_nm": 50.0,
        "normalization": {"method": "percentile", "low_percentile": 1, "high_percentile": 99},
        "patch_px": [64, 64],
        "input_multiple_px": 2,
        "threshold": 0.5,
    }


def test_save_and_load_round_trip(tmp_path):
    network, config = _network()
    models.save(tmp_path / "m", network, _card(config))
    loaded = models.load(tmp_path / "m")
    assert loaded.network.training is False
    assert loaded.card["name"] == "unit"
    for key, value in network.state_dict().items():
        assert torch.equal(value, loaded.network.state_dict()[key]), key


def test_float16_weights_halve_the_file_and_stay_close(tmp_path):
    network, config = _network(channels=(16, 32, 64))
    models.save(tmp_path / "full", network, _card(config))
    models.save(tmp_path / "half", network, _card(config), weights_dtype="float16")
    full = (tmp_path / "full" / models.WEIGHTS_FILE).stat().st_size
    half = (tmp_path / "half" / models.WEIGHTS_FILE).stat().st_size
    assert half < 0.6 * full
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        a = models.load(tmp_path / "full").network(x)
        b = models.load(tmp_path / "half").network(x)
    assert torch.allclose(a, b, atol=1e-2)


def test_save_keeps_other_files_and_leaves_no_partials(tmp_path):
    network, config = _network()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "notes.txt").write_text("keep me")
    models.save(tmp_path / "m", network, _card(config))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "card.json",
        "model.safetensors",
        "notes.txt",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "other/1"}, "not a subcell model card"),
        ({"head": "tanh"}, "head must be one of sigmoid, softmax"),
        ({"classes": []}, "lists no classes"),
        ({"pixel_nm": "fifty"}, "'pixel_nm' has the wrong type"),
        ({"normalization": {"method": "zscore"}}, "unknown normalization method"),
    ],
)
def test_card_problems_are_named(change, message):
    _, config = _network()
    with pytest.raises(ModelError, match=message):
        check_card({**_card(config), **change}, "card.json")


def test_missing_key_is_named():
    _, config = _network()
    card = _card(config)
    del card["threshold"]
    with pytest.raises(ModelError, match="lacks 'threshold'"):
        check_card(card, "card.json")


def test_corrupt_foreign_and_mismatched_weights_are_refused(tmp_path):
    network, config = _network()
    models.save(tmp_path / "m", network, _card(config))
    weights = tmp_path / "m" / models.WEIGHTS_FILE
    good = weights.read_bytes()
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        models.load(tmp_path / "m")
    weights.write_bytes(good)
    other, other_config = _network(out_channels=3)
    models.save(tmp_path / "other", other, _card(other_config))
    (tmp_path / "m" / models.WEIGHTS_FILE).write_bytes(
        (tmp_path / "other" / models.WEIGHTS_FILE).read_bytes()
    )
    with pytest.raises(ModelError, match="weights do not fit network 'unet'"):
        models.load(tmp_path / "m")
    pickled = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(1)}, pickled)
    with pytest.raises(ModelError, match="pickled PyTorch files are not loaded"):
        models.load(pickled)
    with pytest.raises(ModelError, match="no such model directory or bundled model"):
        models.load("no-such-model")
    (tmp_path / "m" / models.CARD_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="unreadable model card"):
        models.load(tmp_path / "m")


def test_unknown_network_plugin_in_card(tmp_path):
    network, config = _network()
    card = _card(config)
    models.save(tmp_path / "m", network, card)
    card["network"]["plugin"] = "vit9000"
    (tmp_path / "m" / models.CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="vit9000"):
        models.load(tmp_path / "m")


@pytest.mark.parametrize("name", models.bundled_names())
def test_bundled_models_are_small_complete_and_scored(name):
    model = models.load(name)
    card = model.card
    size_mb = (model.path / models.WEIGHTS_FILE).stat().st_size / 1e6
    assert size_mb <= 20
    assert card["training"]["complete"] is True
    test = card["metrics"]["test"]
    assert 0 <= test["miou"] <= 1 and 0 <= test["f1"] <= 1
    assert card["classes"] and card["pixel_nm"] > 0
    # a 2D or 3D input of twice the network's size multiple along each axis
    spatial = [2 * card["input_multiple_px"]] * len(card["patch_px"])
    x = torch.zeros(1, card["in_channels"], *spatial)
    with torch.no_grad():
        assert np.isfinite(model.network(x).numpy()).all()


def test_expected_models_are_bundled():
    assert set(models.bundled_names()) >= {"mitochondria-epi", "vesicles-epi"}
