"""Self-supervised training of the cellcutter network on the image itself, and patch prediction.

A MONAI U-Net maps each marker's patch (image channels + Gaussian-disk position channel) to the
probability that a pixel belongs to the marker's cell. It is trained with
:class:`~subcell.plugins.cellcutter.loss.CellCutterLoss` on batches of the patches of one
window (:func:`~subcell.plugins.cellcutter.patches.area_batches`), each patch under a random
one of the eight dihedral transforms that is undone on the output before the loss. One epoch
is one pass over all windows of a randomly shifted tiling; Adam, at a constant or cosine
learning rate, optionally rolled back to its best epoch when the loss diverges.
The network returned is an exponential moving average of the trained weights (see
``CellCutterConfig.weight_average_decay``): with a constant learning rate the last step alone
can cost several points of IoU.

The network outputs logits; :func:`predict_patches` applies the sigmoid.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable

import numpy as np
import torch

from subcell.core.dihedral import (
    N_DIHEDRAL,
    apply_dihedral,
    apply_dihedral_batch,
    undo_dihedral,
    undo_dihedral_batch,
)
from subcell.core.errors import VolumeError
from subcell.plugins.cellcutter.loss import CellCutterLoss
from subcell.plugins.cellcutter.patches import (
    area_batches,
    extract_mask_patches,
    extract_patches,
    zscore_channels,
)
from subcell.plugins.cellcutter.training_config import ACTIVATIONS, CellCutterConfig

_log = logging.getLogger(__name__)

__all__ = [
    "CellCutterConfig",
    "build_network",
    "epoch_learning_rate",
    "loss_is_stable",
    "predict_patches",
    "train_cellcutter",
]


def build_network(config: CellCutterConfig, in_channels: int) -> torch.nn.Module:
    """The MONAI U-Net of ``config`` with ``in_channels`` inputs and one logit output.

    Parameters
    ----------
    config
        Network hyperparameters (``channels``, ``strides``, ``num_res_units``).
    in_channels
        Image channels + 1 (the position channel).

    Returns
    -------
    torch.nn.Module
        Maps ``(N, in_channels, k, k)`` to ``(N, 1, k, k)`` logits, with the output bias set
        from ``initial_probability``. Its initial weights come from torch's global generator;
        :func:`train_cellcutter` seeds it.
    """
    from monai.networks.nets import UNet

    network = UNet(
        spatial_dims=2,
        in_channels=int(in_channels),
        out_channels=1,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
        act=ACTIVATIONS[config.activation],
    )
    # The last convolution (registered last in MONAI's U-Net) adds straight to the logits.
    last = [m for m in network.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)][-1]
    with torch.no_grad():
        last.bias.fill_(math.log(config.initial_probability / (1 - config.initial_probability)))
    return network


def train_cellcutter(
    image: np.ndarray,
    markers_yx: np.ndarray,
    mask: np.ndarray,
    config: CellCutterConfig | None = None,
    *,
    progress: Callable[[int, float], None] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, list[float]]:
    """Train a cellcutter network on one image (no labels: markers and mask only).

    Parameters
    ----------
    image
        ``(C, Y, X)`` image (z-scored here per channel).
    markers_yx
        ``(N, 2)`` marker positions (y, x) in pixels, one per cell, inside the image.
    mask
        ``(Y, X)`` bool foreground mask.
    config
        Training settings; None uses the defaults.
    progress
        Called after each epoch with ``(epoch, loss)`` (epoch counted from 1).
    device
        Torch device to train on. Same seed on CPU -> identical weights.

    Returns
    -------
    network : torch.nn.Module
        The trained U-Net (logit output; the moving average of its weights) on CPU, in eval
        mode.
    history : list[float]
        Per-epoch loss: the patch-weighted mean of the batch losses (sum over pixels, mean
        over patches), so comparable across images with different cell counts.

    Raises
    ------
    VolumeError
        If there are no markers, a marker lies outside the image, or the mask shape differs
        from the image's.
    """
    config = config or CellCutterConfig()
    data = _check_inputs(image, markers_yx, mask)
    markers = np.asarray(markers_yx, dtype=np.float64).reshape(-1, 2)
    k = config.patch_px
    patches, origins = extract_patches(
        data, markers, k, sigma_px=config.position_sigma_px, pad_mode=config.pad_mode
    )
    inputs = torch.from_numpy(patches).to(device)
    mask_patches = extract_mask_patches(np.asarray(mask, dtype=bool), origins, k)
    mask_patches = torch.from_numpy(mask_patches).to(device)
    rng = np.random.default_rng(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = build_network(config, data.shape[0] + 1).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    loss_fn = CellCutterLoss(config.lambda_, config.beta, log_base=config.overlap_log_base)
    history: list[float] = []
    averaged = copy.deepcopy(network)
    guard = _DivergenceGuard(config.rollback_rise, (network, averaged, optimizer))
    steps = 0
    network.train()
    for epoch in range(1, config.epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = epoch_learning_rate(config, epoch) * guard.lr_scale
        guard.before_epoch()
        total = 0.0
        for index in area_batches(markers, data.shape[1:], config.batch_area_px, rng):
            codes = (
                rng.integers(0, N_DIHEDRAL, index.size)
                if config.augment
                else np.zeros(index.size, np.int64)
            )
            loss = _batch_loss(network, loss_fn, inputs, mask_patches, origins, index, codes, k)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            _update_average(averaged, network, config.weight_average_decay, steps)
            steps += 1
            total += float(loss.detach()) * index.size
        history.append(total / markers.shape[0])
        guard.after_epoch(epoch, history[-1])
        if progress is not None:
            progress(epoch, history[-1])
        if config.stable_window_epochs and loss_is_stable(
            history, config.stable_window_epochs, config.stable_rel_tol
        ):
            break
    return averaged.cpu().eval(), history


def epoch_learning_rate(config: CellCutterConfig, epoch: int) -> float:
    """Adam's learning rate during ``epoch`` (counted from 1) under ``config.lr_schedule``.

    Parameters
    ----------
    config
        ``learning_rate``, ``lr_schedule``, ``final_lr_fraction`` and ``epochs``.
    epoch
        Epoch number, 1 to ``config.epochs``.

    Returns
    -------
    float
        ``learning_rate`` (constant), or the half cosine from it at epoch 1 down to
        ``learning_rate * final_lr_fraction`` at the last epoch.
    """
    if config.lr_schedule == "constant" or config.epochs == 1:
        return config.learning_rate
    progress = (epoch - 1) / (config.epochs - 1)
    final = config.final_lr_fraction
    return config.learning_rate * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))


class _DivergenceGuard:
    """Rolls training back to its best epoch, at half the rate, when the loss climbs away.

    ``rise`` is ``CellCutterConfig.rollback_rise`` (0: never). ``stateful`` holds the
    objects with a ``state_dict`` to snapshot and restore (networks, optimiser). Call
    :meth:`before_epoch` and :meth:`after_epoch` around each epoch.
    """

    def __init__(self, rise: float, stateful: tuple) -> None:
        self.rise = rise
        self.stateful = stateful
        self.lr_scale = 1.0
        self.best_loss = math.inf
        self.worst_loss = -math.inf
        self.best_epoch = 0
        self.snapshot: list[dict] | None = None
        self._start: list[dict] | None = None

    def before_epoch(self) -> None:
        # An epoch's loss is measured along its steps, so the weights it vouches for are
        # those it started from: the ones after its last step may already have diverged.
        if self.rise > 0:
            self._start = [copy.deepcopy(obj.state_dict()) for obj in self.stateful]

    def after_epoch(self, epoch: int, loss: float) -> None:
        if self.rise <= 0:
            return
        self.worst_loss = max(self.worst_loss, loss)
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.snapshot = loss, epoch, self._start
            return
        # The rise is measured against the fall so far: the loss's own value is no scale (it
        # crosses 0 early in training), and epochs differ by the tiling and augmentation.
        if loss > self.best_loss + self.rise * (self.worst_loss - self.best_loss):
            for obj, state in zip(self.stateful, self.snapshot, strict=True):
                obj.load_state_dict(copy.deepcopy(state))
            self.lr_scale *= 0.5
            _log.info(
                "cellcutter: loss %.4g at epoch %d rose from %.4g (epoch %d); back to the"
                " weights epoch %d started from, at %.3g x the learning rate",
                loss, epoch, self.best_loss, self.best_epoch, self.best_epoch, self.lr_scale,
            )  # fmt: skip


@torch.no_grad()
def _update_average(averaged, network, decay: float, step: int) -> None:
    """Exponential moving average of the weights, with a short memory while few steps exist."""
    # (1 + t) / (10 + t): a short-run average is not dominated by the initial weights.
    weight = min(decay, (1.0 + step) / (10.0 + step))
    for mean, current in zip(averaged.parameters(), network.parameters(), strict=True):
        mean.mul_(weight).add_(current, alpha=1.0 - weight)
    for mean, current in zip(averaged.buffers(), network.buffers(), strict=True):
        mean.copy_(current)


def loss_is_stable(history: list[float], window: int, rel_tol: float) -> bool:
    """Whether training has reached a stable loss.

    Stable: the mean loss of the last ``window`` epochs is no more than ``rel_tol`` (relative
    to its magnitude) below the mean of the ``window`` epochs before them.

    Parameters
    ----------
    history
        Per-epoch losses.
    window
        Epochs per averaging window.
    rel_tol
        Relative improvement below which the loss counts as stable.

    Returns
    -------
    bool
        False while fewer than ``2 * window`` epochs exist.
    """
    if window < 1 or len(history) < 2 * window:
        return False
    last = float(np.mean(history[-window:]))
    before = float(np.mean(history[-2 * window : -window]))
    return before - last <= rel_tol * max(abs(last), abs(before), 1e-12)


def _batch_loss(network, loss_fn, inputs, mask_patches, origins, index, codes, k):
    """Loss of one window's patches, augmentation applied to inputs and undone on outputs."""
    select = torch.as_tensor(index, device=inputs.device)
    logits = network(apply_dihedral_batch(inputs.index_select(0, select), codes))
    logits = undo_dihedral_batch(logits, codes)
    batch_origins = origins[index]
    corner = batch_origins.min(axis=0)
    canvas = tuple(int(v) for v in batch_origins.max(axis=0) - corner + k)
    relative = torch.as_tensor(batch_origins - corner, device=inputs.device)
    return loss_fn(
        torch.sigmoid(logits), relative, canvas, mask_patches.index_select(0, select), logits=logits
    )


@torch.no_grad()
def predict_patches(
    network: torch.nn.Module,
    image: np.ndarray,
    markers_yx: np.ndarray,
    config: CellCutterConfig | None = None,
    *,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Each marker's cell probability over its patch.

    Parameters
    ----------
    network
        A network from :func:`train_cellcutter` (logit output).
    image
        ``(C, Y, X)`` image, raw (z-scored here as in training).
    markers_yx
        ``(N, 2)`` marker positions (y, x) in pixels.
    config
        The training config (patch size, position channel, padding, test-time augmentation).
    device
        Torch device for the forward passes.

    Returns
    -------
    probabilities : numpy.ndarray
        ``(N, k, k)`` float32 in ``[0, 1]``.
    origins : numpy.ndarray
        ``(N, 2)`` int64 top-left image coordinates of the patches (may be negative).
    """
    config = config or CellCutterConfig()
    data = zscore_channels(image)
    markers = np.asarray(markers_yx, dtype=np.float64).reshape(-1, 2)
    k = config.patch_px
    patches, origins = extract_patches(
        data,
        markers,
        k,
        sigma_px=config.position_sigma_px,
        pad_mode=config.pad_mode,
        normalise=False,
    )
    was_training = network.training
    network.eval().to(device)
    codes = range(N_DIHEDRAL) if config.test_time_augmentation else (0,)
    out = np.empty((markers.shape[0], k, k), np.float32)
    step = config.predict_batch_patches
    for start in range(0, markers.shape[0], step):
        chunk = torch.from_numpy(patches[start : start + step]).to(device)
        mean = sum(
            undo_dihedral(torch.sigmoid(network(apply_dihedral(chunk, t))), t) for t in codes
        ) / len(codes)
        out[start : start + step] = mean[:, 0].float().cpu().numpy()
    network.train(was_training)
    return out, origins


def _check_inputs(image: np.ndarray, markers_yx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    data = np.asarray(image)
    if data.ndim != 3:
        raise VolumeError(f"cellcutter: expected a (C, Y, X) image, got shape {data.shape}")
    if np.asarray(markers_yx).size == 0:
        raise VolumeError("cellcutter: no markers (no nuclei found): nothing to segment")
    if np.shape(mask) != data.shape[1:]:
        raise VolumeError(
            f"cellcutter: mask shape {np.shape(mask)} differs from the image's {data.shape[1:]}"
        )
    return data
