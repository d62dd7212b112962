"""The model card: what a trained model is, what input it expects and how well it did.

A model directory holds ``model.safetensors`` (the weights) and ``card.json`` (this card).
The card is plain JSON so any tool can read it; :func:`check_card` validates the keys the
library relies on and says which one is wrong.

Keys
----
format
    ``"subcell-model/1"``.
name, description
    Short name and one-line description.
network
    ``{"plugin": NAME, "config": {...}}``: the ``networks`` plugin and its full config
    (``spatial_dims``, ``in_channels``, ``out_channels`` included).
head
    ``"sigmoid"``: one output channel per class, each a probability of its own (multi-label);
    ``"softmax"``: channel 0 is background, channel ``k`` class ``k`` (one class per pixel).
classes
    Foreground class names, in the order of the network's outputs: a simulated dataset's
    mask channels, or the subset the training config selected (``classes``).
channel_names, in_channels
    Input channels the model expects: the image's channels (all of them, in order).
input
    Optional: what the network computes from those channels after normalisation,
    ``{"transform": "channels" | "intensity_ratio" | "intensity", "channels": [indices],
    "channel_names": [names], "ratio_eps": eps, "network_channels": [names]}``
    (:mod:`subcell.core.network_input`); absent: all channels as they are. The network's
    own input channel count is ``network.config.in_channels``.
voxel_nm, pixel_nm
    The voxel size (z, y, x) the model was trained at, and its in-plane pixel size.
normalization
    ``{"method": "percentile", "low_percentile": p, "high_percentile": q}``: each input
    channel is mapped so that its ``p``-th percentile is 0 and its ``q``-th is 1.
patch_px
    Spatial size of the sliding window used at inference.
input_multiple_px
    Every spatial size of the network's input must be a multiple of this.
threshold
    Probability above which a pixel is foreground (sigmoid head).
training, data, metrics
    How the model was trained, on which dataset (path, provenance, simulation config) and its
    scores on the test split (``subcell evaluate`` keys).
"""

from __future__ import annotations

from typing import Any

from subcell.core.errors import SubcellError
from subcell.core.network_input import TRANSFORMS

CARD_FORMAT = "subcell-model/1"
HEADS = ("sigmoid", "softmax")
NORMALIZATION_METHODS = ("percentile",)

#: The card keys the library reads, and the JSON types they must have.
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "name": str,
    "network": dict,
    "head": str,
    "classes": list,
    "in_channels": int,
    "voxel_nm": list,
    "pixel_nm": (int, float),
    "normalization": dict,
    "patch_px": list,
    "input_multiple_px": int,
    "threshold": (int, float),
}


class ModelError(SubcellError):
    """A model directory that cannot be used: missing, corrupt or foreign files."""


def check_card(card: Any, source: str) -> dict:
    """Validate the keys of a model card the library relies on.

    Parameters
    ----------
    card
        The parsed ``card.json``.
    source
        Where it came from, for messages.

    Returns
    -------
    dict
        ``card``, unchanged.

    Raises
    ------
    ModelError
        Naming the first missing or mistyped key.
    """
    if not isinstance(card, dict):
        raise ModelError(f"{source}: a model card must be a JSON object")
    if card.get("format") != CARD_FORMAT:
        raise ModelError(
            f"{source}: not a subcell model card (format {card.get('format')!r}, "
            f"expected {CARD_FORMAT!r})"
        )
    for key, kind in _REQUIRED.items():
        if key not in card:
            raise ModelError(f"{source}: model card lacks {key!r}")
        if not isinstance(card[key], kind) or isinstance(card[key], bool):
            raise ModelError(f"{source}: model card key {key!r} has the wrong type")
    if card["head"] not in HEADS:
        raise ModelError(f"{source}: head must be one of {', '.join(HEADS)}, got {card['head']!r}")
    network = card["network"]
    if not isinstance(network.get("plugin"), str) or not isinstance(network.get("config"), dict):
        raise ModelError(f"{source}: network must be {{'plugin': NAME, 'config': {{...}}}}")
    method = card["normalization"].get("method")
    if method not in NORMALIZATION_METHODS:
        raise ModelError(f"{source}: unknown normalization method {method!r}")
    if not card["classes"]:
        raise ModelError(f"{source}: model card lists no classes")
    if "input" in card:
        _check_input(card["input"], card["in_channels"], source)
    return card


def _check_input(spec: Any, in_channels: int, source: str) -> None:
    if not isinstance(spec, dict) or spec.get("transform", "channels") not in TRANSFORMS:
        raise ModelError(
            f"{source}: input must be {{'transform': one of {', '.join(TRANSFORMS)}, ...}}"
        )
    channels = spec.get("channels", list(range(in_channels)))
    if (
        not isinstance(channels, list)
        or not channels
        or any(isinstance(c, bool) or not isinstance(c, int) for c in channels)
        or any(not 0 <= c < in_channels for c in channels)
    ):
        raise ModelError(
            f"{source}: input channels must be indices of the {in_channels} input channel(s)"
        )
    if spec.get("transform") == "intensity_ratio" and len(channels) != 2:
        raise ModelError(f"{source}: input transform 'intensity_ratio' takes 2 channels")
    eps = spec.get("ratio_eps", 1.0)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ModelError(f"{source}: input ratio_eps must be a positive number")


def output_channels(head: str, n_classes: int) -> int:
    """Network output channels for ``n_classes`` foreground classes under ``head``."""
    return n_classes if head == "sigmoid" else n_classes + 1


def summary(card: dict) -> dict:
    """The fields ``subcell models --json`` lists for one model."""
    test = (card.get("metrics") or {}).get("test") or {}
    return {
        "name": card["name"],
        "classes": list(card["classes"]),
        "pixel_nm": float(card["pixel_nm"]),
        "description": card.get("description", ""),
        "network": card["network"]["plugin"],
        "in_channels": card["in_channels"],
        "input": (card.get("input") or {}).get("transform", "channels"),
        "spatial_dims": card["network"]["config"].get("spatial_dims"),
        "test_miou": test.get("miou"),
        "test_f1": test.get("f1"),
    }
