"""Pieces the training loop is built from: the network, transfer learning, loss, device, card."""

from __future__ import annotations

import datetime
import warnings
from typing import TYPE_CHECKING, Any

import attrs

from subcell import __version__
from subcell.core.errors import ConfigError, SubcellError
from subcell.core.structuring import unstructure
from subcell.models import CARD_FORMAT, load, output_channels, weights_sha256
from subcell.pipeline.training.data import TrainingData, input_spec

if TYPE_CHECKING:
    import torch

    from subcell.pipeline.dataset import Dataset
    from subcell.pipeline.train_schema import TrainConfig
    from subcell.registry import Registry

__all__ = [
    "build",
    "choose_device",
    "freeze_encoder",
    "initialise_from",
    "input_multiple",
    "loss_function",
    "model_card",
]


def choose_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without it is a clear error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SubcellError("--device cuda: no CUDA device is available; use --device cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise SubcellError(f"--device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def network_config(config: TrainConfig, dataset: Dataset) -> Any:
    """The network's config with channel counts from the data and the head.

    ``dataset`` is the training view (:func:`~subcell.pipeline.training.data.training_view`)
    when the config selects classes or transforms the input: the network then has one
    input channel per transformed channel and one output per selected class.
    """
    fields = attrs.fields_dict(type(config.network.config))
    missing = [f for f in ("in_channels", "out_channels", "spatial_dims") if f not in fields]
    if missing:
        raise ConfigError(f"network {config.network.plugin!r} config lacks {', '.join(missing)}")
    if isinstance(dataset, TrainingData):
        in_channels = len(dataset.input["network_channels"])
    elif config.classes or config.input != type(config.input)():
        # Without the view the loop would train on every class and raw channel while the
        # config says otherwise: refuse rather than train the wrong network.
        raise ConfigError(
            "classes/input need the training view of the dataset "
            "(subcell.pipeline.training.data.training_view)"
        )
    else:
        in_channels = int(dataset.images.shape[1])
    return attrs.evolve(
        config.network.config,
        in_channels=in_channels,
        out_channels=output_channels(config.head, len(dataset.class_names)),
    )


def input_multiple(plugin: str, net_config: Any) -> int:
    """What every spatial input size must be a multiple of (32 for unknown networks)."""
    from subcell.plugins.networks import required_divisor

    try:
        return required_divisor(net_config)
    except TypeError:
        return 32


def build(plugin: str, net_config: Any, seed: int, registry: Registry) -> torch.nn.Module:
    """The network with weights drawn from ``seed`` (torch's global RNG is left untouched)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return registry.create("network", plugin, net_config)


def initialise_from(network, source: str, plugin: str, net_config: Any, registry) -> dict:
    """Copy weights from a trained model (transfer learning); returns its provenance.

    Every tensor whose name and shape match is copied; a different number of classes
    leaves only the output layer new. A different architecture is an error.
    """
    base = load(source, registry=registry)
    base_net = base.card["network"]
    ours = unstructure(net_config)
    theirs = dict(base_net["config"])
    comparable = ("in_channels", "out_channels")
    if base_net["plugin"] != plugin or {k: v for k, v in theirs.items() if k not in comparable} != {
        k: v for k, v in ours.items() if k not in comparable
    }:
        raise ConfigError(
            f"--init-from {source}: its network ({base_net['plugin']}) differs from this "
            f"config's ({plugin}); transfer learning needs the same architecture"
        )
    if theirs.get("in_channels") != ours.get("in_channels"):
        raise ConfigError(
            f"--init-from {source}: it takes {theirs.get('in_channels')} input channel(s), "
            f"the data has {ours.get('in_channels')}"
        )
    target = network.state_dict()
    copied = {
        k: v
        for k, v in base.network.state_dict().items()
        if k in target and v.shape == target[k].shape
    }
    if len(copied) < len(target):
        warnings.warn(
            f"--init-from {source}: {len(target) - len(copied)} of {len(target)} tensors "
            f"(the output layer: different classes) start from random weights",
            stacklevel=2,
        )
    network.load_state_dict({**target, **copied})
    return {
        "model": str(source),
        "name": base.card["name"],
        "pixel_nm": base.card["pixel_nm"],
        "data": (base.card.get("data") or {}).get("path"),
        "weights_sha256": weights_sha256(source),
    }


def freeze_encoder(network, plugin: str) -> int:
    """Stop gradients through the encoder; returns the number of frozen parameters."""
    modules = _encoder_modules(network, plugin)
    frozen = 0
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


def _encoder_modules(network, plugin: str) -> list:
    if plugin == "flexible_unet":
        return [network.encoder]
    if plugin == "basic_unet":
        return [network.conv_0, network.down_1, network.down_2, network.down_3, network.down_4]
    if plugin == "unet":
        # MONAI's UNet nests (down, SkipConnection(next level), up) per level.
        found, level = [], network.model
        while hasattr(level, "__getitem__") and len(level) == 3:
            found.append(level[0])
            level = level[1].submodule
        found.append(level)  # the bottom block
        return found
    raise ConfigError(f"freeze_encoder supports unet, basic_unet and flexible_unet, not {plugin!r}")


def loss_function(config: TrainConfig, n_classes: int, device) -> torch.nn.Module:
    """Dice + focal or Dice + cross-entropy for the head, with class weights."""
    import torch
    from monai.losses import DiceCELoss, DiceFocalLoss

    sigmoid = config.head == "sigmoid"
    expected = n_classes if sigmoid else n_classes + 1
    weights = config.loss.class_weights
    if weights and len(weights) != expected:
        what = "foreground class" if sigmoid else "class including background"
        raise ConfigError(f"loss.class_weights: {len(weights)} values for {expected} {what}(es)")
    weight = torch.tensor(weights, dtype=torch.float32, device=device) if weights else None
    common = {
        "sigmoid": sigmoid,
        "softmax": not sigmoid,
        "to_onehot_y": not sigmoid,
        "lambda_dice": config.loss.dice_weight,
        "batch": True,  # Dice over the batch: patches without objects do not blow up
    }
    if config.loss.kind == "dice_focal":
        return DiceFocalLoss(
            gamma=config.loss.focal_gamma,
            weight=weight,
            lambda_focal=config.loss.other_weight,
            **common,
        )
    if sigmoid and n_classes > 1:
        # MONAI's DiceCELoss takes a softmax cross-entropy over channels whenever there is
        # more than one: wrong for independent (multi-label) sigmoid classes.
        return _DiceBCELoss(weight, config.loss.dice_weight, config.loss.other_weight)
    return DiceCELoss(weight=weight, lambda_ce=config.loss.other_weight, **common)


class _DiceBCELoss:
    """Dice + binary cross-entropy per channel; ``weight`` weighs each class's positives."""

    def __init__(self, weight, dice_weight: float, bce_weight: float) -> None:
        from monai.losses import DiceLoss

        self.dice = DiceLoss(sigmoid=True, batch=True, weight=weight)
        self.pos_weight = weight
        self.dice_weight, self.bce_weight = dice_weight, bce_weight

    def __call__(self, logits, target):
        from torch.nn.functional import binary_cross_entropy_with_logits

        pos_weight = None
        if self.pos_weight is not None:  # one weight per channel, broadcast over space
            pos_weight = self.pos_weight.view(-1, *([1] * (logits.ndim - 2)))
        bce = binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
        return self.dice_weight * self.dice(logits, target) + self.bce_weight * bce


def model_card(
    config: TrainConfig,
    dataset: Dataset,
    net_config: Any,
    multiple: int,
    training: dict,
    metrics: dict,
) -> dict:
    """The model card (see :mod:`subcell.models.card`) of a trained model."""
    voxel = [float(v) for v in dataset.voxel_nm]
    provenance = dataset.attrs.get("provenance") or {}
    if isinstance(dataset, TrainingData):
        spec, source_classes = dataset.input, dataset.source_class_names
    else:
        spec, source_classes = input_spec(config, dataset.channel_names), dataset.class_names
    return {
        "format": CARD_FORMAT,
        "name": config.name,
        "description": config.description,
        "network": {"plugin": config.network.plugin, "config": unstructure(net_config)},
        "head": config.head,
        "classes": list(dataset.class_names),
        "in_channels": int(dataset.images.shape[1]),
        "channel_names": list(dataset.channel_names),
        "input": dict(spec),
        "voxel_nm": voxel,
        "pixel_nm": voxel[-1],
        "normalization": {
            "method": "percentile",
            "low_percentile": float(config.normalization_percentiles[0]),
            "high_percentile": float(config.normalization_percentiles[1]),
        },
        "patch_px": list(config.inference_window_px),
        "input_multiple_px": int(multiple),
        "threshold": float(config.threshold),
        "training": training,
        "data": {
            "path": str(dataset.path),
            "n_images": len(dataset),
            "class_names": list(source_classes),
            "split_sizes": {s: len(dataset.split(s)) for s in ("train", "val", "test")},
            "provenance": provenance,
        },
        "metrics": metrics,
        "subcell_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
