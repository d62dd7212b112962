"""Inference with a loaded model: normalise, sliding-window prediction, masks from probabilities.

These are the steps every segmentation path shares (an in-memory image here, blocks of a
larger-than-memory volume in the chunked path), so both give the same answer.

A model whose card has an ``input`` transform (e.g. Nile Red's intensity + ratio) takes the
image's normalised channels and computes its network input from them inside
:func:`predict_probabilities` (:func:`network_input`), so the in-memory and chunked paths,
and training (which calls :func:`network_input` on its samples), all apply it alike. The
transform is pointwise, so applying it to a whole image, a block or a window is the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from subcell.core.errors import VolumeError
from subcell.core.metrics import class_index_map
from subcell.core.network_input import DEFAULT_RATIO_EPS, transform_channels

if TYPE_CHECKING:
    import torch

    from subcell.models import LoadedModel

__all__ = [
    "activation",
    "class_index_map",
    "class_masks",
    "network_input",
    "normalize",
    "predict_probabilities",
    "tta_views",
    "window_size",
]

#: Below this spread (after the percentiles) a channel is treated as constant.
_FLAT = 1e-12


def normalize(image: np.ndarray, normalization: dict) -> tuple[np.ndarray, bool]:
    """Map each channel of ``image`` (C, ...) as the model card's normalisation says.

    Parameters
    ----------
    image
        Any real array whose first axis is the channel.
    normalization
        The card's ``normalization``: ``{"method": "percentile", "low_percentile": p,
        "high_percentile": q}`` maps the ``p``-th percentile to 0 and the ``q``-th to 1.

    Returns
    -------
    normalized : numpy.ndarray
        float32, same shape.
    flat : bool
        True when some channel is constant (it maps to zeros); callers warn.
    """
    low_q = float(normalization.get("low_percentile", 1.0))
    high_q = float(normalization.get("high_percentile", 99.8))
    out = np.empty(image.shape, dtype=np.float32)
    flat = False
    for c in range(image.shape[0]):
        channel = np.asarray(image[c], dtype=np.float64)
        low, high = np.percentile(channel, [low_q, high_q])
        if high - low <= _FLAT:
            flat = True
            out[c] = 0.0
            continue
        out[c] = (channel - low) / (high - low)
    return out, flat


def network_input(image: np.ndarray, spec: dict | None) -> np.ndarray:
    """The network's input from a normalised image (C, ...) by a card's ``input`` transform.

    Parameters
    ----------
    image
        Normalised channels, first axis the channel (the model's ``in_channels``).
    spec
        The card's ``input``: ``{"transform": NAME, "channels": [indices],
        "ratio_eps": eps}`` (:mod:`subcell.core.network_input`); None or absent keys: all
        channels as they are.

    Returns
    -------
    numpy.ndarray
        float32 (C', ...), C' the network's input channels.
    """
    if not spec:
        return np.asarray(image, dtype=np.float32)
    channels = spec.get("channels")
    return transform_channels(
        image,
        spec.get("transform", "channels"),
        channels=None if channels is None else [int(c) for c in channels],
        eps=float(spec.get("ratio_eps", DEFAULT_RATIO_EPS)),
    )


def activation(logits: torch.Tensor, head: str) -> torch.Tensor:
    """Per-class probabilities from logits (N, out, ...): (N, K, ...) foreground classes only."""
    import torch

    if head == "sigmoid":
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)[:, 1:]


def window_size(patch_px: tuple[int, ...], shape: tuple[int, ...], divisor: int) -> tuple[int, ...]:
    """The sliding-window size: the card's patch, shrunk to the image rounded up to ``divisor``."""
    return tuple(
        min(int(p), -(-int(s) // divisor) * divisor) for p, s in zip(patch_px, shape, strict=True)
    )


def predict_probabilities(
    model: LoadedModel,
    image: np.ndarray,
    *,
    device: str | None = None,
    overlap: float = 0.25,
    batch_size: int = 4,
    tta: bool = False,
) -> np.ndarray:
    """Class probabilities of a normalised image by Gaussian-blended sliding windows.

    Parameters
    ----------
    model
        A loaded model (:func:`subcell.models.load`).
    image
        Normalised input, (C, Z, Y, X) float32 with ``C`` the model's input channels
        (``in_channels``); the card's ``input`` transform is applied here
        (:func:`network_input`). A 2D model segments each z plane; a 3D model the whole
        stack.
    device
        Where to run; the network's own device if None.
    overlap
        Fraction of window overlap (MONAI ``sliding_window_inference``).
    batch_size
        Windows per forward pass.
    tta
        Test-time augmentation: average the probabilities of the in-plane views the model
        was trained to see (:func:`tta_views`: up to the 8 flips and 90-degree rotations),
        each mapped back to the image. Costs one prediction per view.

    Returns
    -------
    numpy.ndarray
        (K, Z, Y, X) float32 probabilities of the K foreground classes.

    Raises
    ------
    VolumeError
        The image does not have the model's channel count.
    ModelError
        ``tta`` for a model trained without flips or rotations.
    """
    import torch
    from monai.inferers import sliding_window_inference

    card = model.card
    if image.ndim != 4 or image.shape[0] != card["in_channels"]:
        raise VolumeError(
            f"model {card['name']!r} expects {card['in_channels']} channel(s) (C, Z, Y, X); "
            f"got an image of shape {image.shape}"
        )
    image = network_input(image, card.get("input"))
    network = model.network
    run_device = torch.device(device) if device else next(network.parameters()).device
    divisor = int(card.get("input_multiple_px", 32))
    spatial_dims = int(card["network"]["config"]["spatial_dims"])
    batch = torch.from_numpy(np.ascontiguousarray(image))
    if spatial_dims == 2:
        batch = batch.permute(1, 0, 2, 3)  # z planes as the batch: (Z, C, Y, X)
        patch = tuple(card["patch_px"][-2:])
    else:
        batch = batch[None]
        patch = tuple(card["patch_px"][-3:])
    predictor = _tta_predictor(network, tta_views(card), card["head"]) if tta else network
    roi = window_size(patch, tuple(batch.shape[2:]), divisor)
    with torch.inference_mode():
        logits = sliding_window_inference(
            batch,
            roi_size=roi,
            sw_batch_size=batch_size,
            predictor=predictor,
            overlap=overlap,
            mode="gaussian",
            sw_device=run_device,
            device=torch.device("cpu"),
        )
        probs = activation(logits.float(), card["head"])
    if spatial_dims == 2:
        return probs.permute(1, 0, 2, 3).numpy().astype(np.float32, copy=False)
    return probs[0].numpy().astype(np.float32, copy=False)


def tta_views(card: dict) -> tuple[int, ...]:
    """The views of test-time augmentation for a model, as dihedral transform codes.

    Codes are those of :mod:`subcell.core.dihedral` (flips and transposes of y and x). A
    model sees the group its training augmentation showed it (``training.config.augment``):
    the flips of each axis (4 views), the quarter turns (4), or both (all 8). All act in
    the y-x plane, where the optics are symmetric; z is never flipped (a 3D PSF is not
    symmetric in depth off focus). A card without a training record (a model from
    elsewhere) gets all 8 views.

    Raises
    ------
    ModelError
        The model was trained without flips and without rotations: its predictions on
        turned images would be no better than guesses.
    """
    from subcell.core.dihedral import FLIP_CODES, N_DIHEDRAL, TURN_CODES
    from subcell.models import ModelError

    augment = ((card.get("training") or {}).get("config") or {}).get("augment")
    if augment is None:
        augment = {"flip": True, "rotate90": True}
    flips, turns = bool(augment.get("flip")), bool(augment.get("rotate90"))
    if not (flips or turns):
        raise ModelError(
            f"model {card.get('name')!r} was trained without flips or 90-degree rotations; "
            f"test-time augmentation needs a model trained with them"
        )
    if flips and turns:
        return tuple(range(N_DIHEDRAL))
    return FLIP_CODES if flips else TURN_CODES


def _tta_predictor(network, views, head: str):
    """A window predictor that averages ``network``'s probabilities over ``views``.

    Each window is transformed (:func:`subcell.core.dihedral.apply_dihedral`), predicted,
    and mapped back; the mean probabilities return as logits, so the sliding windows blend
    and activate them as they do the plain network's. Augmenting window by window keeps the
    window grid of plain inference, so a block of the chunked path gets exactly the whole
    image's answer.
    """
    import torch

    from subcell.core.dihedral import apply_dihedral, undo_dihedral

    # Probabilities this close to 0 or 1 are clipped before the logit: finite in float32.
    tiny = 1e-7

    def predict(window):
        total = None
        for code in views:
            logits = network(apply_dihedral(window, code)).float()
            if head == "sigmoid":
                probs = torch.sigmoid(logits)
            else:
                probs = torch.softmax(logits, dim=1)
            probs = undo_dihedral(probs, code)
            total = probs if total is None else total.add_(probs)
        mean = (total / len(views)).clamp_(tiny, 1 - tiny)
        return torch.logit(mean) if head == "sigmoid" else torch.log(mean)

    return predict


def class_masks(probabilities: np.ndarray, head: str, threshold: float = 0.5) -> np.ndarray:
    """Binary masks (K, ...) uint8 from class probabilities (K, ...).

    ``sigmoid``: each class where its probability is at least ``threshold`` (classes may
    overlap). ``softmax``: each pixel to the most probable of background and the K classes.
    """
    if head == "sigmoid":
        return (probabilities >= threshold).astype(np.uint8)
    background = 1.0 - probabilities.sum(axis=0, keepdims=True)
    winner = np.argmax(np.concatenate([background, probabilities]), axis=0)
    return np.stack([(winner == k + 1) for k in range(probabilities.shape[0])]).astype(np.uint8)
