"""Test-time augmentation: which views a model gets, and that each is mapped back."""

from pathlib import Path

import numpy as np
import pytest
import torch

from subcell.core.dihedral import apply_dihedral
from subcell.models import LoadedModel, ModelError
from subcell.models.predict import predict_probabilities, tta_views


class _ShiftRight(torch.nn.Module):
    """Logits = the input moved one pixel to the right (+x): an answer with a direction.

    With ``softmax``, a background channel of zero logits comes first, so the class's
    probability is the same sigmoid as with one channel.
    """

    def __init__(self, head="sigmoid"):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the network a device
        self.head = head

    def forward(self, x):
        out = torch.zeros_like(x)
        out[..., 1:] = x[..., :-1]
        return torch.cat([torch.zeros_like(out), out], dim=1) if self.head == "softmax" else out


def _card(augment=None, spatial_dims=2, head="sigmoid"):
    card = {
        "name": "shift-right",
        "network": {"config": {"spatial_dims": spatial_dims}},
        "head": head,
        "classes": ["c"],
        "in_channels": 1,
        "patch_px": [1, 64, 64] if spatial_dims == 2 else [4, 64, 64],
        "input_multiple_px": 1,
    }
    if augment is not None:
        card["training"] = {"config": {"augment": augment}}
    return card


def _model(card):
    return LoadedModel(_ShiftRight(card["head"]).eval(), card, Path("."))


@pytest.mark.parametrize(
    ("augment", "views"),
    [
        (None, "all"),
        ({"flip": True, "rotate90": True}, "all"),
        ({"flip": True, "rotate90": False}, "flips"),
        ({"flip": False, "rotate90": True}, "turns"),
    ],
)
def test_views_are_the_group_the_training_augmentation_showed(augment, views):
    """Each code is checked against numpy's own flips and turns of an asymmetric array."""
    image = np.arange(36).reshape(6, 6)
    moves = {
        "flips": [image, image[:, ::-1], image[::-1], image[::-1, ::-1]],
        "turns": [np.rot90(image, k) for k in range(4)],
    }
    moves["all"] = moves["flips"] + [m.T for m in moves["flips"]]
    seen = [apply_dihedral(image, code) for code in tta_views(_card(augment))]
    assert len(seen) == len(moves[views])
    for expected in moves[views]:
        assert sum(np.array_equal(view, expected) for view in seen) == 1


def test_a_model_trained_without_flips_or_turns_is_refused():
    with pytest.raises(ModelError, match="without flips or 90-degree rotations"):
        tta_views(_card({"flip": False, "rotate90": False}))


def _logit(probability):
    return np.log(probability / (1 - probability))


@pytest.mark.parametrize("head", ["sigmoid", "softmax"])
def test_tta_averages_the_views_mapped_back(head):
    """A network that moves the image right, seen through the 8 views and mapped back, moves
    it by one pixel in each of the 4 directions twice: the mean of the 4 neighbours."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (1, 1, 40, 48)).astype(np.float32)
    model = _model(_card(head=head))
    plain = predict_probabilities(model, logits)
    averaged = predict_probabilities(model, logits, tta=True)
    image = logits[0, 0].astype(np.float64)
    sigmoid = 1 / (1 + np.exp(-image))
    inner = (slice(2, -2), slice(2, -2))
    assert np.allclose(_logit(plain[0, 0][inner]), np.roll(image, 1, axis=1)[inner], atol=1e-4)
    neighbours = sum(np.roll(sigmoid, s, axis=a) for s in (1, -1) for a in (0, 1)) / 4
    assert np.allclose(averaged[0, 0][inner], neighbours[inner], atol=1e-5)
    assert not np.allclose(averaged[0, 0][inner], plain[0, 0][inner], atol=1e-2)


def test_tta_of_a_3d_model_turns_only_in_plane():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (1, 4, 32, 32)).astype(np.float32)
    averaged = predict_probabilities(_model(_card(spatial_dims=3)), logits, tta=True)
    sigmoid = 1 / (1 + np.exp(-logits[0].astype(np.float64)))
    neighbours = sum(np.roll(sigmoid, s, axis=a) for s in (1, -1) for a in (1, 2)) / 4
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert averaged.shape == (1, 4, 32, 32)
    assert np.allclose(averaged[0][inner], neighbours[inner], atol=1e-5)


@pytest.mark.gpu
def test_tta_on_cuda_gives_the_cpu_answer():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (1, 2, 40, 48)).astype(np.float32)
    cpu = predict_probabilities(_model(_card()), logits, tta=True)
    gpu_model = _model(_card())
    gpu_model.network.to("cuda")
    gpu = predict_probabilities(gpu_model, logits, tta=True)
    assert np.allclose(gpu, cpu, atol=1e-5)
