"""The output bias starts at the class prior (subcell.pipeline.training.prior)."""

import numpy as np
import pytest
import torch
from monai.networks.nets import AttentionUnet, BasicUNet, FlexibleUNet, UNet

from subcell.pipeline.config import load_config
from subcell.pipeline.training import loop
from subcell.pipeline.training.prior import foreground_fractions, set_output_prior

NETWORKS = {
    "unet-plain": lambda k: UNet(2, 1, k, channels=(4, 8, 16), strides=(2, 2)),
    "unet-residual": lambda k: UNet(2, 1, k, channels=(4, 8, 16), strides=(2, 2), num_res_units=2),
    "basic-unet": lambda k: BasicUNet(2, 1, k, features=(4, 4, 8, 8, 16, 4)),
    "attention-unet": lambda k: AttentionUnet(2, 1, k, channels=(4, 8, 16), strides=(2, 2)),
    "flexible-unet": lambda k: FlexibleUNet(1, k, "resnet10", pretrained=False, spatial_dims=2),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_mean_logit_becomes_the_log_odds_of_each_fraction(name):
    torch.manual_seed(0)
    fractions = np.array([0.003, 0.2])
    network = NETWORKS[name](2)
    example = torch.rand(3, 1, 32, 32)
    report = set_output_prior(network, example, fractions)
    network.eval()  # as measured: AttentionUnet's batch norm differs in training mode
    with torch.no_grad():
        logits = network(example).mean(dim=(0, 2, 3)).numpy()
    expected = np.log(fractions / (1 - fractions))  # -5.806, -1.386
    np.testing.assert_allclose(logits, expected, atol=1e-3)
    np.testing.assert_allclose(report["mean_logit_after"], expected, atol=1e-3)
    assert report["layer"]
    # A fresh sigmoid network starts near p = 0.5: the report shows how far it moved.
    assert np.all(np.abs(np.asarray(report["mean_logit_before"]) - expected) > 0.5)


def test_training_mode_is_restored():
    network = NETWORKS["unet-plain"](1).train()
    set_output_prior(network, torch.rand(2, 1, 32, 32), np.array([0.1]))
    assert network.training


def test_empty_class_gets_a_finite_bias():
    network = NETWORKS["unet-plain"](1)
    report = set_output_prior(network, torch.rand(2, 1, 32, 32), np.array([0.0]))
    assert report["fractions"] == [1e-4]
    assert np.isfinite(report["target_logits"]).all()


def test_network_without_an_output_bias_is_refused():
    network = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding=1), torch.nn.InstanceNorm2d(1))
    with pytest.raises(ValueError, match="no output convolution"):
        set_output_prior(network, torch.rand(2, 1, 16, 16), np.array([0.1]))


def test_foreground_fractions_average_over_the_chosen_images():
    masks = np.zeros((5, 2, 4, 4), np.uint8)
    masks[1, 0, :2] = 1  # half of image 1, class 0
    masks[3, 1, 0, 0] = 1  # 1/16 of image 3, class 1
    masks[4, 0] = 1  # not among the training images
    np.testing.assert_allclose(foreground_fractions(masks, [0, 1, 3]), [0.5 / 3, 1 / 48])
    # At most max_images, evenly spaced: images 0 and 3.
    np.testing.assert_allclose(foreground_fractions(masks, [0, 1, 3], max_images=2), [0, 1 / 32])
    with pytest.raises(ValueError, match="no training images"):
        foreground_fractions(masks, [])


TRAIN = """\
step: train
name: prior-test
network: {plugin: unet, spatial_dims: 2, channels: [8, 16], strides: [2]}
"""


def test_the_option_enters_the_run_identity_only_when_on(tmp_path):
    (tmp_path / "train.yaml").write_text(TRAIN)

    class _Data:
        attrs = {"provenance": {"config_sha256": "abc"}}

    def config(*overrides):
        return load_config(tmp_path / "train.yaml", list(overrides)).config

    off = loop.run_identity(config("prior_output_bias=false"), _Data(), None)
    assert loop.run_identity(config(), _Data(), None) != off
    # A run made before the option existed (no key at all) keeps its identity: off.
    plain = loop.unstructure(config())
    del plain["prior_output_bias"]
    for key in ("classes", "input"):  # older options at their defaults leave it too
        del plain[key]
    before = {"config": plain, "data": "abc", "init_from": None}
    assert loop.config_hash(before) == off
