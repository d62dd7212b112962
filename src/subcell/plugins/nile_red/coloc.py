"""Colocalization ground truth for real Nile Red data (Zhanghao et al., Methods).

For organelles marked with a green probe, the paper builds the ground-truth mask from the
green colocalization channel in three steps:

1. linear unmixing, ``ChG − r·ChY`` (``r = 0.2``), removes Nile Red's weak bleed-through
   into the green channel (:func:`unmix`);
2. lipid-droplet pixels, where Nile Red is too bright to unmix, are set to zero with the
   LD network's mask (:func:`zero_lipid_droplets`);
3. a 2D foreground network (FG-net) separates in-focus foreground from background
   (:func:`train_fg_net`, :func:`apply_fg_net`).

:func:`colocalization_truth` chains them. :func:`simulate_green` makes green marker
images from masks (Gaussian blur + Poisson noise) to test and smoke-train the FG-net; it is
a test fixture, not a physical model (the paper trained its FG-net on 40 annotated images).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from subcell.core.errors import VolumeError

__all__ = [
    "FGNet",
    "FGNetConfig",
    "apply_fg_net",
    "colocalization_truth",
    "load_fg_net",
    "save_fg_net",
    "simulate_green",
    "train_fg_net",
    "unmix",
    "zero_lipid_droplets",
]

_FLAT = 1e-12


def unmix(green: np.ndarray, yellow: np.ndarray, r: float = 0.2) -> np.ndarray:
    """Linear unmixing ``max(green − r · yellow, 0)`` as float32.

    Parameters
    ----------
    green, yellow
        The colocalization (green) channel and Nile Red's yellow channel, same shape.
    r
        Bleed-through of the yellow signal into the green channel (0.2 in the paper).
    """
    green = np.asarray(green, dtype=np.float64)
    yellow = np.asarray(yellow, dtype=np.float64)
    if green.shape != yellow.shape:
        raise VolumeError(f"green {green.shape} and yellow {yellow.shape} differ in shape")
    if not r >= 0:
        raise ValueError(f"r must be at least 0, got {r}")
    return np.maximum(green - r * yellow, 0.0).astype(np.float32)


def zero_lipid_droplets(image: np.ndarray, ld_mask: np.ndarray) -> np.ndarray:
    """A copy of ``image`` with the pixels of the lipid-droplet mask set to 0."""
    image = np.asarray(image)
    ld_mask = np.asarray(ld_mask)
    if image.shape != ld_mask.shape:
        raise VolumeError(f"image {image.shape} and LD mask {ld_mask.shape} differ in shape")
    out = image.copy()
    out[ld_mask.astype(bool)] = 0
    return out


def simulate_green(
    mask: np.ndarray,
    rng: np.random.Generator,
    *,
    photons: float = 30.0,
    background: float = 3.0,
    sigma_px: float = 1.5,
    out_of_focus: np.ndarray | None = None,
    defocus_sigma_px: float = 4.0,
) -> np.ndarray:
    """A green marker image of ``mask`` (test fixture): Gaussian blur, Poisson noise.

    Parameters
    ----------
    mask
        Binary mask (Y, X) or (Z, Y, X) of the marked organelle.
    rng
        Source of the Poisson noise.
    photons
        Expected photons per pixel inside a large object.
    background
        Expected background photons per pixel.
    sigma_px
        Standard deviation of the Gaussian PSF approximation, in pixels (in-plane only).
    out_of_focus
        Optional mask of marked objects out of the focal plane: blurred by
        ``defocus_sigma_px`` into haze that is *not* foreground (what the FG-net must
        reject, and a global threshold does not).
    defocus_sigma_px
        Blur of the out-of-focus objects, in pixels.
    """
    from scipy.ndimage import gaussian_filter

    def blurred(array, width):
        sigma = (0.0,) * (array.ndim - 2) + (width, width)
        return gaussian_filter(np.asarray(array, dtype=np.float64), sigma)

    expected = photons * blurred(mask, sigma_px) + background
    if out_of_focus is not None:
        expected += photons * blurred(out_of_focus, defocus_sigma_px)
    return rng.poisson(expected).astype(np.float32)


def _normalise(image: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    low, high = np.percentile(image, percentiles)
    if high - low <= _FLAT:
        return np.zeros(image.shape, np.float32)
    return ((image - low) / (high - low)).astype(np.float32)


@attrs.frozen(kw_only=True)
class FGNetConfig:
    """The FG-net: a small 2D MONAI U-Net (one input channel, one sigmoid output).

    Attributes
    ----------
    channels
        Feature channels per level.
    strides
        Down-sampling between levels (``len(channels) - 1`` entries); image sizes are
        padded to a multiple of their product.
    epochs
        Passes over the training images.
    batch_size
        Patches per Adam step.
    patch_px
        Side of the random square training crops, a multiple of ``prod(strides)``.
    learning_rate
        Adam's learning rate.
    percentiles
        Each image is mapped so these percentiles go to 0 and 1.
    threshold
        Probability above which a pixel is foreground.
    """

    channels: tuple[int, ...] = attrs.field(default=(8, 16, 32), converter=tuple)
    strides: tuple[int, ...] = attrs.field(default=(2, 2), converter=tuple)
    epochs: int = attrs.field(default=20, converter=int, validator=attrs.validators.gt(0))
    batch_size: int = attrs.field(default=8, converter=int, validator=attrs.validators.gt(0))
    patch_px: int = attrs.field(default=64, converter=int, validator=attrs.validators.gt(0))
    learning_rate: float = attrs.field(
        default=1e-2, converter=float, validator=attrs.validators.gt(0)
    )
    percentiles: tuple[float, float] = attrs.field(default=(1.0, 99.8), converter=tuple)
    threshold: float = attrs.field(default=0.5, converter=float)

    def __attrs_post_init__(self):
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError(
                f"strides needs len(channels) - 1 = {len(self.channels) - 1} entries, "
                f"got {list(self.strides)}"
            )
        if self.patch_px % self.multiple:
            raise ValueError(f"patch_px must be a multiple of {self.multiple}, got {self.patch_px}")
        if not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise ValueError(f"percentiles must be 0 <= low < high <= 100, got {self.percentiles}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    @property
    def multiple(self) -> int:
        return int(np.prod(self.strides))


@attrs.frozen(eq=False)
class FGNet:
    """A trained FG-net: the torch module (eval mode, CPU) and its config."""

    network: Any
    config: FGNetConfig


def _build(config: FGNetConfig, seed: int):
    import torch
    from monai.networks.nets import UNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=1,
            channels=tuple(int(c) for c in config.channels),
            strides=tuple(int(s) for s in config.strides),
            num_res_units=1,
        )


def _pad(image: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    sizes = (size, size) if np.isscalar(size) else tuple(size)
    pad = [(0, max(s - n, 0)) for s, n in zip(sizes, image.shape[-2:], strict=True)]
    return np.pad(image, [(0, 0)] * (image.ndim - 2) + pad) if any(p[1] for p in pad) else image


def _patch(image, mask, size: int, rng: np.random.Generator):
    image, mask = _pad(image, size), _pad(mask, size)
    y = int(rng.integers(0, image.shape[0] - size + 1))
    x = int(rng.integers(0, image.shape[1] - size + 1))
    image, mask = image[y : y + size, x : x + size], mask[y : y + size, x : x + size]
    k = int(rng.integers(0, 4))
    flip = bool(rng.integers(0, 2))
    image, mask = np.rot90(image, k), np.rot90(mask, k)
    if flip:
        image, mask = image[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def _check_pairs(images, masks) -> tuple[list, list]:
    images = [np.asarray(i, dtype=np.float32) for i in images]
    masks = [np.asarray(m).astype(np.float32) for m in masks]
    if not images or len(images) != len(masks):
        raise ValueError(f"{len(images)} images for {len(masks)} masks")
    for image, mask in zip(images, masks, strict=True):
        if image.ndim != 2 or image.shape != mask.shape:
            raise VolumeError(f"FG-net takes 2D image/mask pairs of one shape, got {image.shape}")
    return images, masks


def train_fg_net(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    *,
    rng: np.random.Generator,
    config: FGNetConfig | None = None,
) -> FGNet:
    """Train an FG-net on 2D colocalization images and their foreground masks.

    Parameters
    ----------
    images
        2D images (Y, X), raw (normalised here, per image).
    masks
        Binary foreground masks of the same shapes.
    rng
        Seeds the weights, patch positions and augmentation: same seed, same network.
    config
        Architecture and training settings; defaults if None.

    Returns
    -------
    FGNet
    """
    import torch
    from monai.losses import DiceCELoss

    config = config or FGNetConfig()
    images, masks = _check_pairs(images, masks)
    normalised = [_normalise(i, config.percentiles) for i in images]
    network = _build(config, int(rng.integers(0, 2**31)))
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    loss_fn = DiceCELoss(sigmoid=True, batch=True)
    network.train()
    for _ in range(config.epochs):
        order = rng.permutation(len(images))
        for start in range(0, len(order), config.batch_size):
            pairs = [
                _patch(normalised[i], masks[i], config.patch_px, rng)
                for i in order[start : start + config.batch_size]
            ]
            x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
            y = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
            loss = loss_fn(network(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return FGNet(network.eval(), config)


def apply_fg_net(fg_net: FGNet, image: np.ndarray, *, threshold: float | None = None):
    """Foreground mask (uint8) of a 2D image (Y, X), or of each plane of a stack (Z, Y, X).

    Each plane is normalised as in training, padded to the network's multiple, predicted
    whole and thresholded (``threshold``, or the config's).
    """
    import torch

    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise VolumeError(f"FG-net takes (Y, X) or (Z, Y, X) images, got shape {image.shape}")
    planes = image[None] if image.ndim == 2 else image
    config = fg_net.config
    cut = config.threshold if threshold is None else float(threshold)
    height, width = planes.shape[-2:]
    size = [-(-s // config.multiple) * config.multiple for s in (height, width)]
    batch = np.stack([_pad(_normalise(p, config.percentiles), size) for p in planes])
    with torch.inference_mode():
        logits = fg_net.network(torch.from_numpy(batch[:, None]))
        probs = torch.sigmoid(logits)[:, 0, :height, :width].numpy()
    out = (probs >= cut).astype(np.uint8)
    return out[0] if image.ndim == 2 else out


def colocalization_truth(
    green: np.ndarray,
    yellow: np.ndarray,
    ld_mask: np.ndarray | None,
    fg_net: FGNet,
    *,
    r: float = 0.2,
) -> np.ndarray:
    """Ground-truth mask (uint8) of a green-marked organelle, plane by plane.

    ``apply_fg_net(zero_lipid_droplets(unmix(green, yellow, r), ld_mask))``; ``ld_mask``
    None skips the LD step. Zeroing says the droplet pixels are no marker signal, so they
    are background in the result whatever the FG-net makes of the dark hole (its edges
    can look like structure).
    """
    image = unmix(green, yellow, r)
    if ld_mask is None:
        return apply_fg_net(fg_net, image)
    mask = apply_fg_net(fg_net, zero_lipid_droplets(image, ld_mask))
    return zero_lipid_droplets(mask, ld_mask)


_WEIGHTS, _CONFIG = "fg_net.safetensors", "fg_net.json"


def save_fg_net(fg_net: FGNet, directory: str | os.PathLike) -> Path:
    """Write the FG-net's weights (safetensors) and config (JSON) into ``directory``."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in fg_net.network.state_dict().items()}
    save_file(state, str(directory / _WEIGHTS))
    (directory / _CONFIG).write_text(json.dumps(attrs.asdict(fg_net.config), indent=1) + "\n")
    return directory


def load_fg_net(directory: str | os.PathLike) -> FGNet:
    """Read an FG-net written by :func:`save_fg_net` (weights only ever via safetensors)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    try:
        config = FGNetConfig(**json.loads((directory / _CONFIG).read_text()))
        state = load_file(str(directory / _WEIGHTS))
    except (OSError, ValueError, TypeError) as exc:
        raise VolumeError(f"{directory}: not an FG-net directory ({exc})") from None
    network = _build(config, 0)
    network.load_state_dict(state)
    return FGNet(network.eval(), config)
