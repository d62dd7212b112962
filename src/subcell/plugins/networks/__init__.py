"""MONAI segmentation networks: U-Net, BasicUNet, attention U-Net and FlexibleUNet, 2D or 3D.

Each network is registered under ``register_networks`` with a frozen attrs config and a
factory ``factory(config) -> torch.nn.Module``. The model maps ``(N, in_channels, *spatial)``
to ``(N, out_channels, *spatial)`` logits (no final activation: the loss chooses sigmoid or
softmax). ``in_channels`` and ``out_channels`` are filled in by the training step from the
data; the rest are the network's own hyperparameters.

Every spatial size of the input must be a multiple of :func:`required_divisor` (``2**depth``
for stride-2 levels); :func:`check_input_shape` says so in one line. torch and MONAI are
imported only when a network is built, so loading the plugin stays cheap.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from subcell.core.errors import VolumeError
from subcell.core.hookspecs import hookimpl
from subcell.plugins.networks.configs import (
    BASIC_DEPTH,
    FLEXIBLE_BACKBONES,
    FLEXIBLE_DEPTH,
    AttentionUNetConfig,
    BasicUNetConfig,
    FlexibleUNetConfig,
    NetworkConfig,
    UNetConfig,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "FLEXIBLE_BACKBONES",
    "AttentionUNetConfig",
    "BasicUNetConfig",
    "FlexibleUNetConfig",
    "NetworkConfig",
    "UNetConfig",
    "build_attention_unet",
    "build_basic_unet",
    "build_flexible_unet",
    "build_unet",
    "check_input_shape",
    "parameter_count",
    "register_networks",
    "required_divisor",
]


def required_divisor(config: NetworkConfig) -> int:
    """The number every spatial size of the network's input must be a multiple of.

    Parameters
    ----------
    config
        Any of this module's network configs.

    Returns
    -------
    int
        ``prod(strides)`` for U-Net and attention U-Net, 16 for BasicUNet, 32 for
        FlexibleUNet.
    """
    if isinstance(config, UNetConfig | AttentionUNetConfig):
        return math.prod(config.strides)
    if isinstance(config, BasicUNetConfig):
        return 2**BASIC_DEPTH
    if isinstance(config, FlexibleUNetConfig):
        return 2**FLEXIBLE_DEPTH
    raise TypeError(f"not a network config: {type(config).__name__}")


def check_input_shape(config: NetworkConfig, spatial_shape: tuple[int, ...]) -> None:
    """Raise :class:`VolumeError` unless ``spatial_shape`` suits the network.

    Parameters
    ----------
    config
        The network's config.
    spatial_shape
        The spatial sizes of one input, ``(Y, X)`` in 2D or ``(Z, Y, X)`` in 3D.

    Raises
    ------
    VolumeError
        If the number of sizes differs from ``spatial_dims`` or a size is not a positive
        multiple of :func:`required_divisor`.
    """
    shape = tuple(int(s) for s in spatial_shape)
    if len(shape) != config.spatial_dims:
        raise VolumeError(
            f"a {config.spatial_dims}D network needs {config.spatial_dims} "
            f"spatial sizes, got {shape}"
        )
    divisor = required_divisor(config)
    if any(s < 1 or s % divisor for s in shape):
        raise VolumeError(
            f"input spatial sizes {shape} must be multiples of {divisor} for "
            f"this network; crop or pad the patch"
        )


def parameter_count(module: torch.nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build_unet(config: UNetConfig) -> torch.nn.Module:
    """Build a MONAI ``UNet`` from ``config`` (random initialisation from torch's RNG)."""
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=config.spatial_dims,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        channels=config.channels,
        strides=config.strides,
        kernel_size=config.kernel_size,
        num_res_units=config.num_res_units,
        norm=config.norm.upper(),
        dropout=config.dropout,
    )


def build_basic_unet(config: BasicUNetConfig) -> torch.nn.Module:
    """Build a MONAI ``BasicUNet`` from ``config``."""
    from monai.networks.nets import BasicUNet

    return BasicUNet(
        spatial_dims=config.spatial_dims,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        features=config.features,
        dropout=config.dropout,
        upsample=config.upsample,
    )


def build_attention_unet(config: AttentionUNetConfig) -> torch.nn.Module:
    """Build a MONAI ``AttentionUnet`` from ``config``."""
    from monai.networks.nets import AttentionUnet

    return AttentionUnet(
        spatial_dims=config.spatial_dims,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        channels=config.channels,
        strides=config.strides,
        kernel_size=config.kernel_size,
        up_kernel_size=config.up_kernel_size,
        dropout=config.dropout,
    )


def build_flexible_unet(config: FlexibleUNetConfig) -> torch.nn.Module:
    """Build a MONAI ``FlexibleUNet`` from ``config``, never with pretrained weights."""
    from monai.networks.nets import FlexibleUNet

    return FlexibleUNet(
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        backbone=config.backbone,
        pretrained=False,
        decoder_channels=config.decoder_channels,
        spatial_dims=config.spatial_dims,
        dropout=config.dropout,
        upsample=config.upsample,
    )


@hookimpl
def register_networks(register):
    """Register the MONAI networks."""
    register("unet", UNetConfig, build_unet, "MONAI residual U-Net, 2D or 3D")
    register(
        "basic_unet",
        BasicUNetConfig,
        build_basic_unet,
        "MONAI BasicUNet (classic four-level U-Net), 2D or 3D",
    )
    register(
        "attention_unet",
        AttentionUNetConfig,
        build_attention_unet,
        "MONAI attention U-Net (attention-gated skips), 2D or 3D",
    )
    register(
        "flexible_unet",
        FlexibleUNetConfig,
        build_flexible_unet,
        "MONAI FlexibleUNet (EfficientNet-B3 encoder by default), from scratch, 2D or 3D",
    )
