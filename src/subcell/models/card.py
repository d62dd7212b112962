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
    Foreground class names, in the order of a simulated dataset's mask channels.
channel_names, in_channels
    Input channels the model expects.
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
    return card


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
        "spatial_dims": card["network"]["config"].get("spatial_dims"),
        "test_miou": test.get("miou"),
        "test_f1": test.get("f1"),
    }
