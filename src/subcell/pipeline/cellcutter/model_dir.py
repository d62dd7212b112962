"""A trained cellcutter network on disk: ``model.safetensors`` plus ``card.json``.

A cellcutter model is trained on one image without labels; saving it lets the same
network segment new images acquired the same way (the paper's Figs. S4-S5) without
training again. The card holds the method config (so the network can be rebuilt exactly),
the input channels, the pixel size and the training history. Loading never unpickles:
weights are read with safetensors, and the card is JSON checked against its format.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import attrs
import torch
from safetensors.torch import load_file, save_file

from subcell.core.errors import ConfigError, SubcellError
from subcell.core.structuring import structure, unstructure

CARD_FORMAT = "subcell-cellcutter/1"
_WEIGHTS = "model.safetensors"
_CARD = "card.json"


@attrs.frozen(eq=False)
class CellCutterModel:
    """A loaded cellcutter network with its card.

    Attributes
    ----------
    network
        The U-Net (logit output), in eval mode on CPU.
    card
        The card: ``method`` (the segmenter's config as plain data), ``channel_names``,
        ``pixel_nm``, ``training`` (history, seconds, image), ``provenance``.
    path
        The model folder.
    """

    network: torch.nn.Module
    card: dict
    path: Path


def save_model(
    out: str | os.PathLike,
    network: torch.nn.Module,
    method_config,
    *,
    channel_names: tuple[str, ...],
    pixel_nm: tuple[float, float],
    training: dict,
    provenance: dict,
    overwrite: bool = False,
) -> Path:
    """Write a model folder atomically (a partial folder is never left under ``out``).

    Raises
    ------
    ConfigError
        ``out`` exists and ``overwrite`` is false.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: exists; use --overwrite to replace it, or another path")
    card = {
        "format": CARD_FORMAT,
        "method": unstructure(method_config),
        "channel_names": list(channel_names),
        "pixel_nm": [float(v) for v in pixel_nm],
        "training": training,
        "provenance": provenance,
    }
    tmp = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    save_file(state, tmp / _WEIGHTS)
    (tmp / _CARD).write_text(json.dumps(card, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def load_model(path: str | os.PathLike, registry) -> CellCutterModel:
    """Read a model folder written by :func:`save_model`.

    Parameters
    ----------
    path
        The folder.
    registry
        Where the ``cellcutter`` segmenter (and so its config class) is looked up.

    Raises
    ------
    SubcellError
        Not a folder, no card or weights, a foreign card, or weights that do not fit.
    """
    path = Path(path)
    if not (path / _CARD).is_file() or not (path / _WEIGHTS).is_file():
        raise SubcellError(f"{path}: not a cellcutter model folder (needs {_CARD} and {_WEIGHTS})")
    try:
        card = json.loads((path / _CARD).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SubcellError(f"{path / _CARD}: unreadable card ({exc})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise SubcellError(f"{path}: not a cellcutter model (card format is not {CARD_FORMAT!r})")
    config = structure(
        card["method"],
        registry.config_class("segmenter", "cellcutter"),
        registry.config_class,
        source=str(path / _CARD),
    )
    segmenter = registry.create("segmenter", "cellcutter", config)
    network = segmenter.build_network(len(card["channel_names"]))
    try:
        network.load_state_dict(load_file(path / _WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - safetensors and torch raise several kinds
        raise SubcellError(f"{path / _WEIGHTS}: weights do not fit the network ({exc})") from None
    return CellCutterModel(network.eval(), card, path)
