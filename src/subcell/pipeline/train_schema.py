"""Config schema of the ``train`` step (``step: train``)."""

from __future__ import annotations

from typing import Literal

import attrs

from subcell.core.structuring import spec_type
from subcell.core.validators import fraction, percentile_pair

NetworkSpec = spec_type("network")

_positive = attrs.validators.gt(0)
_non_negative = attrs.validators.ge(0)


def _positive_ints(instance, attribute, value):
    if not value or any(int(v) < 1 for v in value):
        raise ValueError(f"'{attribute.name}' must be positive integers, got {list(value)}")


def _optional_positive_ints(instance, attribute, value):
    if value:
        _positive_ints(instance, attribute, value)


@attrs.frozen(kw_only=True)
class LossConfig:
    """Dice plus cross-entropy or focal loss.

    Attributes
    ----------
    kind
        ``dice_focal`` (Dice + focal, as the founding paper) or ``dice_ce`` (Dice + cross-entropy).
    dice_weight, other_weight
        Weights of the Dice term and of the focal/cross-entropy term.
    focal_gamma
        Focusing parameter of the focal loss.
    class_weights
        One weight per foreground class (sigmoid head) or per class including background
        (softmax head) for the focal/cross-entropy term; empty: all 1.
    """

    kind: Literal["dice_focal", "dice_ce"] = "dice_focal"
    dice_weight: float = attrs.field(default=1.0, converter=float, validator=_non_negative)
    other_weight: float = attrs.field(default=1.0, converter=float, validator=_non_negative)
    focal_gamma: float = attrs.field(default=2.0, converter=float, validator=_non_negative)
    class_weights: tuple[float, ...] = ()


@attrs.frozen(kw_only=True)
class AugmentConfig:
    """Random augmentation of training patches (MONAI transforms).

    Attributes
    ----------
    flip
        Random flips along each spatial axis (probability 0.5 each).
    rotate90
        Random 90° rotations in the image plane.
    intensity_scale
        Multiply intensities by ``1 + u``, ``u`` uniform in ``±intensity_scale`` (0: off).
    noise_sd
        Standard deviation of added Gaussian noise, in normalised units (0: off).
    """

    flip: bool = True
    rotate90: bool = True
    intensity_scale: float = attrs.field(default=0.1, converter=float, validator=_non_negative)
    noise_sd: float = attrs.field(default=0.02, converter=float, validator=_non_negative)


def _distinct_names(instance, attribute, value):
    names = [str(v) for v in value]
    if any(not name for name in names) or len(set(names)) != len(names):
        raise ValueError(f"'{attribute.name}' must be distinct, non-empty names, got {names}")


def _str_tuple(value) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@attrs.frozen(kw_only=True)
class InputConfig:
    """What the network sees: a transform of some of the dataset's channels.

    The image's channels are percentile-normalised one by one (``normalization_percentiles``)
    and then transformed (:mod:`subcell.core.network_input`); the model card records the
    transform and inference applies it the same way.

    Attributes
    ----------
    transform
        ``channels``: the selected channels as they are; ``intensity_ratio``: two channels
        (denominator, numerator; Nile Red: yellow, red) give intensity (their mean) and the
        safe ratio numerator / denominator; ``intensity``: their mean only (the ablation
        without the ratio).
    channels
        Dataset channel names the transform takes, in order; empty: all of them.
    ratio_eps
        Regulariser of the safe ratio ``(max(b,0) + eps) / (max(a,0) + eps)``, as a fraction
        of the normalised bright level (the ``high`` percentile maps to 1): finite where
        the denominator is 0, and 1 (no spectral shift) where both channels are dark.
    """

    transform: Literal["channels", "intensity_ratio", "intensity"] = "channels"
    channels: tuple[str, ...] = attrs.field(
        default=(), converter=_str_tuple, validator=_distinct_names
    )
    ratio_eps: float = attrs.field(default=0.05, converter=float, validator=_positive)

    def __attrs_post_init__(self):
        if self.transform == "intensity_ratio" and self.channels and len(self.channels) != 2:
            raise ValueError(
                f"transform 'intensity_ratio' takes exactly 2 channels (denominator, "
                f"numerator), got {list(self.channels)}"
            )


@attrs.frozen(kw_only=True)
class TrainConfig:
    """Train a segmentation network on a simulated dataset.

    Attributes
    ----------
    step
        Always ``train``.
    name, description
        The model's name and one-line description (written to its card).
    network
        A ``networks`` plugin, ``{plugin: unet, config: {...}}``; its input and output
        channel counts are set from the data and ``head``.
    head
        ``sigmoid`` (one probability per class) or ``softmax`` (one class per pixel).
    classes
        The dataset classes this network learns, in this order (e.g. a group of the Nile
        Red networks); empty: all. The model card lists only these.
    input
        Which channels the network sees and how they are transformed
        (:class:`InputConfig`; default: all channels as they are).
    loss
        The loss (:class:`LossConfig`).
    augment
        Augmentation (:class:`AugmentConfig`).
    epochs
        Maximum number of passes over the training split.
    batch_size
        Patches per optimisation step.
    patch_px
        Spatial size of training patches (random crops), and of the inference window.
    window_px
        Sliding-window size the model card asks for at inference, one size per spatial axis;
        empty: ``patch_px`` with the in-plane sizes times four (more context than a patch,
        and whole images of that size in one pass, as validation sees them).
    samples_per_epoch
        Patches drawn per epoch (0: one per training image).
    val_max_images
        Validate on the first this many images of the validation split each epoch (0: all);
        validation segments whole images, which costs more than a training step.
    learning_rate
        Adam's learning rate.
    weight_decay
        Adam's L2 penalty.
    plateau_factor, plateau_patience
        Reduce the learning rate by this factor when validation mIoU has not improved for
        this many epochs.
    early_stopping_patience
        Stop when validation mIoU has not improved for this many epochs (0: never).
    freeze_encoder
        With ``--init-from``: keep the encoder's weights fixed (transfer learning).
    prior_output_bias
        Sigmoid head, fresh network: before training, set the output bias so the network
        predicts each class's foreground fraction in the training masks (the log-odds;
        Lin et al. 2017) instead of p = 0.5. For sparse classes (vesicles) this decides
        whether the background is ever pushed down; off reproduces models trained before
        the option existed.
    normalization_percentiles
        Each input channel is mapped so these percentiles go to 0 and 1.
    threshold
        Probability above which a pixel is foreground (sigmoid head).
    calibrate_threshold
        After training, replace ``threshold`` by the candidate (0.20, 0.25, ... 0.95) with
        the best validation mIoU (sigmoid head); the card records every candidate's score.
    amp
        Mixed precision on a CUDA device (ignored on CPU).
    seed
        Seeds weights, patch order and augmentation: same seed, same model.
    weights_dtype
        Precision of the saved weights: ``float16`` halves the file (bundled models).
    """

    step: Literal["train"] = "train"
    name: str = "model"
    description: str = ""
    network: NetworkSpec
    head: Literal["sigmoid", "softmax"] = "sigmoid"
    classes: tuple[str, ...] = attrs.field(
        default=(), converter=_str_tuple, validator=_distinct_names
    )
    input: InputConfig = attrs.Factory(InputConfig)
    loss: LossConfig = attrs.Factory(LossConfig)
    augment: AugmentConfig = attrs.Factory(AugmentConfig)
    epochs: int = attrs.field(default=20, converter=int, validator=_positive)
    batch_size: int = attrs.field(default=8, converter=int, validator=_positive)
    patch_px: tuple[int, ...] = attrs.field(default=(256, 256), validator=_positive_ints)
    window_px: tuple[int, ...] = attrs.field(default=(), validator=_optional_positive_ints)
    samples_per_epoch: int = attrs.field(default=0, converter=int, validator=_non_negative)
    val_max_images: int = attrs.field(default=0, converter=int, validator=_non_negative)
    learning_rate: float = attrs.field(default=1e-3, converter=float, validator=_positive)
    weight_decay: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    plateau_factor: float = attrs.field(default=0.5, converter=float, validator=fraction)
    plateau_patience: int = attrs.field(default=3, converter=int, validator=_non_negative)
    early_stopping_patience: int = attrs.field(default=8, converter=int, validator=_non_negative)
    freeze_encoder: bool = False
    prior_output_bias: bool = True
    normalization_percentiles: tuple[float, float] = attrs.field(
        default=(1.0, 99.8), validator=percentile_pair
    )
    threshold: float = attrs.field(default=0.5, converter=float, validator=fraction)
    calibrate_threshold: bool = True
    amp: bool = True
    seed: int = attrs.field(default=0, converter=int, validator=_non_negative)
    weights_dtype: Literal["float32", "float16"] = "float32"

    @property
    def inference_window_px(self) -> tuple[int, ...]:
        """``window_px``, or the default derived from ``patch_px``."""
        if self.window_px:
            return tuple(int(v) for v in self.window_px)
        patch = [int(v) for v in self.patch_px]
        return tuple(patch[:-2] + [4 * v for v in patch[-2:]])
