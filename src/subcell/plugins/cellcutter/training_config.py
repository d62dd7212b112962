"""Settings of cellcutter training: patches, loss, network, optimiser."""

from __future__ import annotations

import math

import attrs
import numpy as np

__all__ = ["ACTIVATIONS", "CellCutterConfig"]

ACTIVATIONS = {
    "leakyrelu": ("leakyrelu", {"negative_slope": 0.1}),
    "relu": "relu",
    "prelu": "prelu",
}
_gt0 = attrs.validators.gt(0)
_ge0 = attrs.validators.ge(0)


def _positive_ints(instance, attribute, value) -> None:
    if len(value) == 0 or any(v < 1 for v in value):
        raise ValueError(f"{attribute.name} must be non-empty positive integers, got {value}")


def _int_tuple(value) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


def _pair(value) -> tuple[int, int]:
    values = _int_tuple(np.atleast_1d(value))
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise ValueError(f"expected one or two sizes, got {value}")
    return values  # type: ignore[return-value]


@attrs.frozen(kw_only=True)
class CellCutterConfig:
    """Patches, loss, network and optimiser of cellcutter training.

    Attributes
    ----------
    patch_px : int
        Side ``k`` of the square patch around each marker, pixels (paper: 64). Must be a
        multiple of the product of ``strides``.
    position_sigma_px : float
        Standard deviation of the Gaussian-disk position channel, pixels (paper: 15).
    pad_mode : str
        Image padding beyond the border: ``"constant"`` (zero after z-scoring) or
        ``"reflect"``. The mask is always padded as background.
    lambda_ : float
        Weight of the cross-patch overlap term (paper: 3.32).
    beta : float
        Weight of the outside-mask term (paper: 15).
    overlap_log_base : float
        Base of the logarithm in the overlap term; 10 makes ``lambda_ = 3.32`` the paper's
        "balanced" weight (eq. 3).
    learning_rate : float
        Adam learning rate (paper: 0.005), the starting rate of ``lr_schedule``.
    lr_schedule : str
        ``"constant"`` (the paper) or ``"cosine"``: the rate falls along a half cosine from
        ``learning_rate`` at the first epoch to ``learning_rate * final_lr_fraction`` at the
        last, so the last epochs refine instead of hopping between minima. With two
        residual units on image 0 of the 1024 px phantom it scored 0.704 (mean IoU of
        matched cells) against 0.745 at the constant rate, one run each, so the paper's
        constant rate stays the default.
    final_lr_fraction : float
        Rate at the last epoch of the cosine schedule, as a fraction of ``learning_rate``.
    rollback_rise : float
        When positive, an epoch whose loss climbs back above the best epoch's by more than
        this fraction of the fall so far (worst epoch to best) counts as diverged: the
        network, its moving average and the optimiser go back to the state the best epoch
        started from and the learning rate halves (logged). 0 turns the guard off. Deeper
        networks at the paper's rate sometimes climb out of a good minimum mid-training and
        never return.
    epochs : int
        Passes over all windows of the image (fewer if ``stable_window_epochs`` stops early).
    batch_area_px : tuple[int, int]
        ``(height, width)`` of the window whose markers form one batch, pixels (paper: 640).
    augment : bool
        Random dihedral transform per patch during training, undone before the loss.
    test_time_augmentation : bool
        Average the predictions of all eight dihedral transforms (8x the prediction time,
        which is small next to training; raised the mean IoU of matched cells by 0.004-0.008
        on simulated clumped cells).
    channels : tuple[int, ...]
        Feature channels per U-Net level (MONAI ``UNet``). The default (41 k parameters) trains
        a 1024 px image with ~500 cells at ~800 patches/s on one CPU core; four levels
        converged about twice as fast as three; five, or twice the channels, scored lower
        after 300 epochs.
    strides : tuple[int, ...]
        Down-sampling strides between levels; ``len(channels) - 1`` entries.
    num_res_units : int
        Residual units per level (0: plain convolutions, one per level, a receptive field of
        about 31 px). Two widen it past a cell, so cells keep corners far from their marker:
        on a 512 px crop of the 1024 px phantom they raised the mean IoU of matched cells
        from 0.74-0.76 to 0.82-0.83 (300 epochs; 101 k parameters, about twice the training
        time). On whole 1024 px images the same setting trained once to 0.80 and twice
        collapsed (the loss climbed back mid-training; matched IoU 0.06 and 0.15), so it is
        not the default. With ``rollback_rise: 0.25`` it trained on both 1024 px images
        (matched IoU 0.805 against 0.724, 730 s per image), but on a 256 px image with 60
        cells, where an epoch is a few optimiser steps, it found 17-24 cells (matched IoU
        0.25-0.29) where plain convolutions found all 60 (0.71).
    initial_probability : float
        Output bias at initialisation, as a probability: starting every patch low (instead of
        0.5 everywhere, where the overlap term dominates) shortens training severalfold.
    activation : str
        ``"leakyrelu"`` (slope 0.1), ``"relu"`` or ``"prelu"`` (MONAI's default; its backward
        pass is about a quarter slower on CPU).
    predict_batch_patches : int
        Patches per forward pass in :func:`predict_patches`.
    weight_average_decay : float
        Decay per optimiser step of the moving average of the weights that is returned (0:
        the last weights). 0.99 averages over about the last 100 steps.
    stable_window_epochs : int
        When positive, stop before ``epochs`` once the loss is stable over windows of this many
        epochs (:func:`loss_is_stable`); 0 (default) always trains ``epochs``. Off by default
        because the loss can pause on a transient plateau: with 640 px windows a 20-epoch / 1 %
        rule stopped a 1024 px image at epoch 82 with a mean IoU of 0.53.
    stable_rel_tol : float
        Relative improvement between two windows below which the loss counts as stable.
    seed : int
        Seeds the network initialisation, window offsets and augmentation.
    """

    patch_px: int = attrs.field(default=64, converter=int, validator=_gt0)
    position_sigma_px: float = attrs.field(default=15.0, converter=float, validator=_gt0)
    pad_mode: str = attrs.field(
        default="constant", validator=attrs.validators.in_(("constant", "reflect"))
    )
    lambda_: float = attrs.field(default=3.32, converter=float, validator=_ge0)
    beta: float = attrs.field(default=15.0, converter=float, validator=_ge0)
    overlap_log_base: float = attrs.field(default=10.0, converter=float, validator=_gt0)
    learning_rate: float = attrs.field(default=0.005, converter=float, validator=_gt0)
    lr_schedule: str = attrs.field(
        default="constant", validator=attrs.validators.in_(("constant", "cosine"))
    )
    final_lr_fraction: float = attrs.field(
        default=0.05, converter=float, validator=[_ge0, attrs.validators.le(1)]
    )
    rollback_rise: float = attrs.field(default=0.0, converter=float, validator=_ge0)
    epochs: int = attrs.field(default=300, converter=int, validator=_gt0)
    batch_area_px: tuple[int, int] = attrs.field(
        default=(640, 640), converter=_pair, validator=_positive_ints
    )
    augment: bool = attrs.field(default=True, converter=bool)
    test_time_augmentation: bool = attrs.field(default=True, converter=bool)
    channels: tuple[int, ...] = attrs.field(
        default=(8, 16, 32, 64), converter=_int_tuple, validator=_positive_ints
    )
    strides: tuple[int, ...] = attrs.field(
        default=(2, 2, 2), converter=_int_tuple, validator=_positive_ints
    )
    num_res_units: int = attrs.field(default=0, converter=int, validator=_ge0)
    initial_probability: float = attrs.field(
        default=0.1,
        converter=float,
        validator=[attrs.validators.gt(0), attrs.validators.lt(1)],
    )
    activation: str = attrs.field(
        default="leakyrelu", validator=attrs.validators.in_(("leakyrelu", "relu", "prelu"))
    )
    predict_batch_patches: int = attrs.field(default=256, converter=int, validator=_gt0)
    weight_average_decay: float = attrs.field(
        default=0.99, converter=float, validator=[attrs.validators.ge(0), attrs.validators.lt(1)]
    )
    stable_window_epochs: int = attrs.field(default=0, converter=int, validator=_ge0)
    stable_rel_tol: float = attrs.field(default=0.01, converter=float, validator=_ge0)
    seed: int = attrs.field(default=0, converter=int, validator=_ge0)

    def __attrs_post_init__(self) -> None:
        if len(self.strides) != len(self.channels) - 1:
            raise ValueError(
                f"strides needs len(channels) - 1 = {len(self.channels) - 1} entries,"
                f" got {len(self.strides)}"
            )
        if self.overlap_log_base == 1:
            raise ValueError("overlap_log_base must not be 1")
        divisor = math.prod(self.strides)
        if self.patch_px % divisor:
            raise ValueError(
                f"patch_px ({self.patch_px}) must be a multiple of the product of strides"
                f" ({divisor})"
            )
