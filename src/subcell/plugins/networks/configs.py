"""Config classes of the MONAI networks, with the checks that need no torch.

Every config has ``spatial_dims``, ``in_channels`` and ``out_channels`` (the training step
fills the channel counts from the data) plus the network's own hyperparameters.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = [
    "BASIC_DEPTH",
    "FLEXIBLE_BACKBONES",
    "FLEXIBLE_DEPTH",
    "AttentionUNetConfig",
    "BasicUNetConfig",
    "FlexibleUNetConfig",
    "NetworkConfig",
    "UNetConfig",
]

#: The FlexibleUNet encoders MONAI registers (``monai.networks.nets.flexible_unet``).
FLEXIBLE_BACKBONES = (
    *(f"efficientnet-b{i}" for i in range(9)),
    "efficientnet-l2",
    "resnet10",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet200",
)

#: Stride-2 stages of every FlexibleUNet encoder above (EfficientNet and ResNet alike).
FLEXIBLE_DEPTH = 5
#: Down-sampling levels of MONAI's BasicUNet (fixed by its architecture).
BASIC_DEPTH = 4

_UPSAMPLE = ("deconv", "pixelshuffle", "nontrainable")


def _int_tuple(value) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


def _positive_ints(instance, attribute, value):
    if len(value) == 0 or any(v < 1 for v in value):
        raise ValueError(
            f"{attribute.name} must be a non-empty tuple of positive integers, got {value}"
        )


def _dims_field():
    return attrs.field(default=2, validator=attrs.validators.in_((2, 3)))


def _channels_field(default: int):
    return attrs.field(default=default, converter=int, validator=attrs.validators.ge(1))


def _dropout_field():
    return attrs.field(
        default=0.0, converter=float, validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)]
    )


def _odd_kernel(instance, attribute, value):
    if value < 1 or value % 2 == 0:
        raise ValueError(
            f"{attribute.name} must be a positive odd integer (keeps sizes), got {value}"
        )


def _check_levels(config) -> None:
    """Raise unless ``strides`` has one entry per down-sampling (``len(channels) - 1``)."""
    if len(config.channels) < 2:
        raise ValueError(f"channels needs at least two levels, got {config.channels}")
    if len(config.strides) != len(config.channels) - 1:
        raise ValueError(
            f"strides must have len(channels) - 1 = {len(config.channels) - 1} entries "
            f"(one per down-sampling), got {len(config.strides)}: {config.strides}"
        )


@attrs.frozen(kw_only=True)
class UNetConfig:
    """MONAI ``UNet``: residual encoder-decoder with strided convolutions.

    Input size: every spatial size must be a multiple of ``prod(strides)`` (16 with the
    default four stride-2 levels), else the skip connections do not line up.

    Attributes
    ----------
    spatial_dims
        2 for images (N, C, Y, X), 3 for volumes (N, C, Z, Y, X).
    in_channels, out_channels
        Input image channels and output classes; the training step sets them from the data.
    channels
        Feature channels per level, from the top level down.
    strides
        Down-sampling factor between consecutive levels; ``len(channels) - 1`` entries.
    kernel_size
        Convolution kernel size (odd).
    num_res_units
        Residual units per level (0: plain convolutions).
    norm
        Normalisation layer: ``"instance"`` or ``"batch"``.
    dropout
        Dropout probability in every block, in [0, 1).
    """

    spatial_dims: Literal[2, 3] = _dims_field()
    in_channels: int = _channels_field(1)
    out_channels: int = _channels_field(1)
    channels: tuple[int, ...] = attrs.field(
        default=(16, 32, 64, 128, 256), converter=_int_tuple, validator=_positive_ints
    )
    strides: tuple[int, ...] = attrs.field(
        default=(2, 2, 2, 2), converter=_int_tuple, validator=_positive_ints
    )
    kernel_size: int = attrs.field(default=3, converter=int, validator=_odd_kernel)
    num_res_units: int = attrs.field(default=2, converter=int, validator=attrs.validators.ge(0))
    norm: Literal["instance", "batch"] = attrs.field(
        default="instance", validator=attrs.validators.in_(("instance", "batch"))
    )
    dropout: float = _dropout_field()

    def __attrs_post_init__(self):
        _check_levels(self)


@attrs.frozen(kw_only=True)
class BasicUNetConfig:
    """MONAI ``BasicUNet``: the classic four-level U-Net (two convolutions per block).

    Input size: spatial sizes should be multiples of ``2**4 = 16``. BasicUNet pads odd
    feature maps itself, so other sizes run, but the padded border is treated differently
    from the interior; ``check_input_shape`` therefore asks for multiples of 16.

    Attributes
    ----------
    spatial_dims
        2 for images, 3 for volumes.
    in_channels, out_channels
        Input image channels and output classes; the training step sets them from the data.
    features
        Six feature counts: the five encoder levels, then the last decoder block.
    upsample
        ``"deconv"`` (transposed convolution), ``"pixelshuffle"`` or ``"nontrainable"``
        (interpolation followed by a convolution).
    dropout
        Dropout probability in every block, in [0, 1).
    """

    spatial_dims: Literal[2, 3] = _dims_field()
    in_channels: int = _channels_field(1)
    out_channels: int = _channels_field(1)
    features: tuple[int, int, int, int, int, int] = attrs.field(
        default=(32, 32, 64, 128, 256, 32), converter=_int_tuple, validator=_positive_ints
    )
    upsample: Literal["deconv", "pixelshuffle", "nontrainable"] = attrs.field(
        default="deconv", validator=attrs.validators.in_(_UPSAMPLE)
    )
    dropout: float = _dropout_field()

    @features.validator
    def _six(self, attribute, value):
        if len(value) != 6:
            raise ValueError(
                f"features must have 6 entries (5 encoder levels + last decoder "
                f"block), got {len(value)}: {value}"
            )


@attrs.frozen(kw_only=True)
class AttentionUNetConfig:
    """MONAI ``AttentionUnet``: a U-Net whose skip connections pass through attention gates.

    Input size: every spatial size must be a multiple of ``prod(strides)`` (16 with the
    default four stride-2 levels), else the attention gates do not line up.

    Attributes
    ----------
    spatial_dims
        2 for images, 3 for volumes.
    in_channels, out_channels
        Input image channels and output classes; the training step sets them from the data.
    channels
        Feature channels per level, from the top level down.
    strides
        Down-sampling factor between consecutive levels; ``len(channels) - 1`` entries.
    kernel_size, up_kernel_size
        Convolution kernel sizes (odd) of the encoder and decoder blocks.
    dropout
        Dropout probability in every block, in [0, 1).
    """

    spatial_dims: Literal[2, 3] = _dims_field()
    in_channels: int = _channels_field(1)
    out_channels: int = _channels_field(1)
    channels: tuple[int, ...] = attrs.field(
        default=(16, 32, 64, 128, 256), converter=_int_tuple, validator=_positive_ints
    )
    strides: tuple[int, ...] = attrs.field(
        default=(2, 2, 2, 2), converter=_int_tuple, validator=_positive_ints
    )
    kernel_size: int = attrs.field(default=3, converter=int, validator=_odd_kernel)
    up_kernel_size: int = attrs.field(default=3, converter=int, validator=_odd_kernel)
    dropout: float = _dropout_field()

    def __attrs_post_init__(self):
        _check_levels(self)


def _no_pretrained(instance, attribute, value):
    if value:
        raise ValueError(
            "pretrained must be false: subcell never downloads weights; train from scratch "
            "or load your own weights"
        )


@attrs.frozen(kw_only=True)
class FlexibleUNetConfig:
    """MONAI ``FlexibleUNet``: a U-Net decoder on a classification backbone (EfficientNet-B3
    by default, as in Sekh et al. 2021), always randomly initialised.

    Input size: spatial sizes should be multiples of ``2**5 = 32`` (five stride-2 encoder
    stages). FlexibleUNet pads odd feature maps itself, so other sizes run, but the padded
    border is treated differently; ``check_input_shape`` asks for multiples of 32.

    Both 2D and 3D work for every backbone when built from scratch (MONAI's downloadable
    weights cover only 2D EfficientNet and 3D ResNet, but ``pretrained`` is never allowed).

    Attributes
    ----------
    spatial_dims
        2 for images, 3 for volumes.
    in_channels, out_channels
        Input image channels and output classes; the training step sets them from the data.
    backbone
        A MONAI FlexibleUNet encoder: ``efficientnet-b0`` ... ``efficientnet-b8``,
        ``efficientnet-l2``, ``resnet10`` ... ``resnet200``.
    decoder_channels
        Five decoder feature counts, from the deepest level up.
    upsample
        ``"nontrainable"`` (interpolation), ``"deconv"`` or ``"pixelshuffle"``.
    dropout
        Dropout probability in the decoder, in [0, 1).
    pretrained
        Must stay ``False``; present only so that asking for it gives a clear error.
    """

    spatial_dims: Literal[2, 3] = _dims_field()
    in_channels: int = _channels_field(1)
    out_channels: int = _channels_field(1)
    backbone: str = attrs.field(
        default="efficientnet-b3", validator=attrs.validators.in_(FLEXIBLE_BACKBONES)
    )
    decoder_channels: tuple[int, int, int, int, int] = attrs.field(
        default=(256, 128, 64, 32, 16), converter=_int_tuple, validator=_positive_ints
    )
    upsample: Literal["deconv", "pixelshuffle", "nontrainable"] = attrs.field(
        default="nontrainable", validator=attrs.validators.in_(_UPSAMPLE)
    )
    dropout: float = _dropout_field()
    pretrained: bool = attrs.field(default=False, validator=_no_pretrained)

    @decoder_channels.validator
    def _five(self, attribute, value):
        if len(value) != FLEXIBLE_DEPTH:
            raise ValueError(
                f"decoder_channels must have {FLEXIBLE_DEPTH} entries (one per "
                f"encoder stage), got {len(value)}: {value}"
            )


NetworkConfig = UNetConfig | BasicUNetConfig | AttentionUNetConfig | FlexibleUNetConfig
