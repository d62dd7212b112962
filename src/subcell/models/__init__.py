"""Trained models: load a bundled model or a model directory, save one, list the bundled ones.

A model directory holds ``model.safetensors`` and ``card.json`` (:mod:`subcell.models.card`).
Weights are only ever read with safetensors, which stores tensors and nothing else, so a
model file cannot run code. The network is rebuilt from the card through the ``networks``
plugins, so any registered network (built-in or third-party) can be saved and loaded.

Examples
--------
>>> from subcell import models
>>> model = models.load("mitochondria-epi")          # doctest: +SKIP
>>> model.card["pixel_nm"], model.network.training    # doctest: +SKIP
(42.0, False)
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from subcell.core.errors import ConfigError, SubcellError
from subcell.core.structuring import structure
from subcell.models.card import CARD_FORMAT, ModelError, check_card, output_channels, summary

if TYPE_CHECKING:
    import torch

    from subcell.registry import Registry

__all__ = [
    "CARD_FORMAT",
    "CARD_FILE",
    "WEIGHTS_FILE",
    "LoadedModel",
    "ModelError",
    "build_network",
    "bundled",
    "bundled_names",
    "load",
    "output_channels",
    "read_card",
    "resolve",
    "save",
    "summary",
    "weights_sha256",
]

CARD_FILE = "card.json"
WEIGHTS_FILE = "model.safetensors"


@attrs.frozen(eq=False)
class LoadedModel:
    """A model ready for inference.

    Attributes
    ----------
    network
        The ``torch.nn.Module``, in eval mode, float32, on the requested device.
    card
        The model card (a dict; see :mod:`subcell.models.card`).
    path
        The model directory.
    """

    network: Any
    card: dict
    path: Path

    @property
    def name(self) -> str:
        return str(self.card["name"])


def _bundled_root() -> Path:
    with resources.as_file(resources.files("subcell.models") / "bundled") as root:
        return Path(root)


def bundled_names() -> list[str]:
    """Names of the models shipped with subcell."""
    root = _bundled_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD_FILE).is_file())


def bundled() -> list[dict]:
    """Cards of the bundled models, in name order."""
    return [read_card(_bundled_root() / name) for name in bundled_names()]


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The model directory for a bundled model name or a path.

    Raises
    ------
    ModelError
        Neither a bundled name nor a directory holding a model; the message lists the
        bundled names.
    """
    text = str(name_or_path)
    if text in bundled_names():
        return _bundled_root() / text
    path = Path(name_or_path)
    if path.is_file() and path.suffix in (".pt", ".pth", ".ckpt", ".pkl"):
        raise ModelError(
            f"{path}: pickled PyTorch files are not loaded (they can run code); "
            f"give a subcell model directory (card.json + model.safetensors)"
        )
    if path.is_dir():
        if not (path / CARD_FILE).is_file():
            raise ModelError(f"{path}: not a model directory (no {CARD_FILE})")
        return path
    names = ", ".join(bundled_names()) or "none installed"
    raise ModelError(f"{text}: no such model directory or bundled model (bundled: {names})")


def read_card(directory: str | os.PathLike) -> dict:
    """Read and validate ``card.json`` of a model directory."""
    path = Path(directory) / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: unreadable model card ({exc})") from None
    return check_card(card, str(path))


def weights_sha256(name_or_path: str | os.PathLike) -> str:
    """SHA-256 of a model's weights file: what identifies the weights, wherever they lie.

    Parameters
    ----------
    name_or_path
        A bundled model name or a model directory.
    """
    digest = hashlib.sha256()
    with (resolve(name_or_path) / WEIGHTS_FILE).open("rb") as handle:
        for chunk in iter(lambda: handle.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_network(card: dict, registry: Registry | None = None) -> torch.nn.Module:
    """Build the (untrained) network a card describes through its ``networks`` plugin."""
    from subcell.registry import get_registry

    registry = registry or get_registry()
    plugin = card["network"]["plugin"]
    try:
        config_cls = registry.config_class("network", plugin)
        config = structure(
            card["network"]["config"],
            config_cls,
            registry.config_class,
            source=f"model {card.get('name')!r} network",
        )
    except (ConfigError, SubcellError) as exc:
        raise ModelError(f"model {card.get('name')!r}: {exc}") from None
    return registry.create("network", plugin, config)


def load(
    name_or_path: str | os.PathLike,
    *,
    device: str = "cpu",
    registry: Registry | None = None,
) -> LoadedModel:
    """Load a bundled model by name, or a model directory, for inference.

    Parameters
    ----------
    name_or_path
        A bundled model name (``subcell models``) or a directory written by :func:`save`.
    device
        ``"cpu"``, ``"cuda"`` or any torch device string.
    registry
        Where network plugins are looked up; the process-wide registry if None.

    Returns
    -------
    LoadedModel
        ``.network`` (eval mode) and ``.card``.

    Raises
    ------
    ModelError
        Unknown name, missing or corrupt files, weights that do not fit the network.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = resolve(name_or_path)
    card = read_card(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{weights}: no such file")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{weights}: not a readable safetensors file ({exc})") from None
    network = build_network(card, registry)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(
            f"{weights}: weights do not fit network {card['network']['plugin']!r} ({first})"
        ) from None
    network = network.to(torch.device(device)).eval()
    return LoadedModel(network=network, card=card, path=directory)


def save(
    directory: str | os.PathLike,
    network: torch.nn.Module,
    card: dict,
    *,
    weights_dtype: str = "float32",
) -> Path:
    """Write a model directory: weights as safetensors and the card as JSON.

    Parameters
    ----------
    directory
        The model directory to write.
    network
        The trained network.
    card
        The model card; validated before anything is written.
    weights_dtype
        ``"float32"`` or ``"float16"`` (half the size; bundled models use it).

    Returns
    -------
    Path
        ``directory``.
    """
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    check_card(card, str(directory / CARD_FILE))
    dtype = {"float32": torch.float32, "float16": torch.float16}[weights_dtype]
    state = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu())
        .contiguous()
        .clone()
        for k, v in network.state_dict().items()
    }
    # Each file is written beside its final name and renamed, so an interrupted save never
    # leaves half a file; other files in the directory (checkpoints, logs) are kept.
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / (WEIGHTS_FILE + ".partial")
    save_file(state, str(partial), metadata={"format": CARD_FORMAT})
    _readable(partial)
    os.replace(partial, directory / WEIGHTS_FILE)
    partial = directory / (CARD_FILE + ".partial")
    partial.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(partial, directory / CARD_FILE)
    return directory


def _readable(path: Path) -> None:
    """Give a file the permissions of any new file (safetensors creates it owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
