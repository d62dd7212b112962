"""The training loop: epochs, validation, checkpoints, early stopping, the final card."""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np

from subcell.core.errors import ConfigError, SubcellError
from subcell.core.provenance import config_hash
from subcell.core.structuring import unstructure
from subcell.models import CARD_FILE, read_card, save, weights_sha256
from subcell.pipeline.dataset import open_dataset
from subcell.pipeline.train_schema import InputConfig
from subcell.pipeline.training import checkpoint
from subcell.pipeline.training.data import SampleSet, augmenter, batches, training_view
from subcell.pipeline.training.evaluation import calibrate_threshold, score_split
from subcell.pipeline.training.prior import foreground_fractions, set_output_prior
from subcell.pipeline.training.setup import (
    build,
    choose_device,
    freeze_encoder,
    initialise_from,
    input_multiple,
    loss_function,
    model_card,
    network_config,
)

if TYPE_CHECKING:
    from subcell.pipeline.train_schema import TrainConfig
    from subcell.registry import Registry

__all__ = ["TrainResult", "train"]


@attrs.frozen
class TrainResult:
    """What a training run produced: the model directory, its card and how it ended."""

    path: Path
    card: dict
    status: str  # "trained", "resumed" or "complete" (already trained, nothing done)


def train(
    config: TrainConfig,
    data: str | Path,
    out: str | Path,
    *,
    init_from: str | None = None,
    epochs: int | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    registry: Registry | None = None,
) -> TrainResult:
    """Train the network of ``config`` on dataset ``data`` into model directory ``out``.

    Parameters
    ----------
    config
        The structured train config.
    data
        A simulated dataset (``subcell simulate``) with train/val/test splits.
    out
        The model directory: ``model.safetensors``, ``card.json`` and, while training,
        ``checkpoint/``.
    init_from
        A model name or directory whose weights start the training (transfer learning).
    epochs
        Overrides ``config.epochs``.
    device
        ``auto``, ``cpu`` or ``cuda``.
    overwrite
        Start afresh even if ``out`` holds a different or unfinished run.
    progress
        Show a rich progress bar on stderr.
    registry
        Where plugins are looked up; the process-wide registry if None.

    Returns
    -------
    TrainResult
    """
    import torch

    from subcell.registry import get_registry

    registry = registry or get_registry()
    if epochs is not None:
        config = attrs.evolve(config, epochs=epochs)
    out = Path(out)
    dataset = training_view(open_dataset(data), config)
    torch_device = choose_device(device)
    net_config = network_config(config, dataset)
    plugin = config.network.plugin
    multiple = input_multiple(plugin, net_config)
    _check_patch(config, net_config.spatial_dims, multiple)
    run_id = run_identity(config, dataset, init_from)
    state = _previous_run(out, run_id, overwrite)
    if state == "complete":
        return TrainResult(out, read_card(out), "complete")

    network = build(plugin, net_config, config.seed, registry)
    training: dict = {"config": unstructure(config), "run_id": run_id, "device": str(torch_device)}
    if init_from is not None:
        training["init_from"] = initialise_from(network, init_from, plugin, net_config, registry)
    if config.freeze_encoder:
        if init_from is None:
            raise ConfigError("freeze_encoder needs --init-from: a random encoder stays random")
        training["frozen_parameters"] = freeze_encoder(network, plugin)
    network = network.to(torch_device)
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=config.plateau_factor, patience=config.plateau_patience
    )
    history: list[dict] = []
    if state is not None:
        checkpoint.restore(out, network, optimizer, scheduler, torch_device)
        history = state["history"]
    spatial = net_config.spatial_dims
    train_set = SampleSet(dataset, "train", spatial, config.normalization_percentiles)
    val_set = SampleSet(
        dataset, "val", spatial, config.normalization_percentiles, config.val_max_images
    )
    fresh = state is None and init_from is None
    if fresh and config.prior_output_bias and config.head == "sigmoid":
        training["output_prior"] = _set_prior(network, train_set, config, torch_device)
    loss_fn = loss_function(config, len(dataset.class_names), torch_device)
    card_of = _card_factory(config, dataset, net_config, multiple, training)
    runner = _EpochRunner(config, network, optimizer, loss_fn, torch_device, train_set)
    started = time.perf_counter()
    with _progress(progress) as bar:
        for epoch in range(len(history), config.epochs):
            record = runner.run(epoch, bar)
            scores = score_split(
                network, val_set, config, dataset.class_names, torch_device, multiple
            )
            record.update(val_miou=scores["miou"], val_f1=scores["f1"])
            record["lr"] = optimizer.param_groups[0]["lr"]
            scheduler.step(scores["miou"])
            history.append(record)
            best = max(history, key=lambda r: r["val_miou"])
            if best is record:
                save(
                    out,
                    network,
                    card_of(history, {"val": scores}, complete=False),
                    weights_dtype=config.weights_dtype,
                )
            bar.console.log(_epoch_line(record, config.epochs, best))
            checkpoint.write(
                out, network, optimizer, scheduler, {"run_id": run_id, "history": history}
            )
            if _should_stop(history, config.early_stopping_patience):
                bar.console.log(
                    f"early stop: no better val mIoU for {config.early_stopping_patience} epochs"
                )
                break
    return _finish(out, dataset, config, card_of, history, registry, torch_device, started, state)


class _EpochRunner:
    """One pass of optimisation steps over freshly drawn, augmented patches."""

    def __init__(self, config, network, optimizer, loss_fn, device, samples: SampleSet):
        import torch

        self.config, self.network, self.optimizer = config, network, optimizer
        self.loss_fn, self.device, self.samples = loss_fn, device, samples
        self.amp = bool(config.amp and device.type == "cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def _order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.config.seed, epoch])
        n = self.config.samples_per_epoch or len(self.samples)
        repeats = -(-n // len(self.samples))
        return np.concatenate([rng.permutation(len(self.samples)) for _ in range(repeats)])[:n]

    def run(self, epoch: int, bar) -> dict:
        import torch

        order = self._order(epoch)
        rng = np.random.default_rng([self.config.seed, epoch, 1])
        transform = augmenter(self.config.augment, self.network_dims, self.config.seed + epoch)
        task = bar.add_task(f"epoch {epoch + 1}/{self.config.epochs}", total=len(order))
        self.network.train()
        losses, seen, started = [], 0, time.perf_counter()
        for images, targets in batches(
            self.samples,
            order,
            batch_size=self.config.batch_size,
            patch=tuple(self.config.patch_px),
            head=self.config.head,
            transform=transform,
            rng=rng,
        ):
            images, targets = images.to(self.device), targets.to(self.device)
            with torch.autocast(self.device.type, enabled=self.amp):
                loss = self.loss_fn(self.network(images), targets)
            if not torch.isfinite(loss):
                raise SubcellError(
                    f"training diverged at epoch {epoch + 1} (loss {loss.item()}); "
                    f"lower learning_rate"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            losses.append(float(loss.detach()))
            seen += len(images)
            bar.advance(task, len(images))
        seconds = time.perf_counter() - started
        bar.remove_task(task)
        return {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "images_per_s": seen / seconds if seconds > 0 else 0.0,
            "seconds": seconds,
        }

    @property
    def network_dims(self) -> int:
        return len(self.config.patch_px)


def _set_prior(network, samples: SampleSet, config: TrainConfig, device) -> dict:
    """Set the output bias to the training masks' foreground log-odds (:mod:`.prior`)."""
    rng = np.random.default_rng([config.seed, 0, 2])
    order = rng.permutation(len(samples))[: config.batch_size]
    example, _ = next(
        batches(
            samples,
            order,
            batch_size=config.batch_size,
            patch=tuple(config.patch_px),
            head=config.head,
            transform=lambda item: item,
            rng=rng,
        )
    )
    indices = sorted({index for index, _ in samples.samples})
    fractions = foreground_fractions(samples.dataset.masks, indices)
    try:
        return set_output_prior(network, example.to(device), fractions)
    except ValueError as error:  # a plugin network whose output has no settable bias
        warnings.warn(f"prior_output_bias skipped: {error}", stacklevel=2)
        return {"skipped": str(error)}


def run_identity(config: TrainConfig, dataset, init_from: str | None) -> str:
    """What defines a run: its config, the data's simulation config and the starting model.

    The data enter by the hash of the config that simulated them and the starting model by
    the hash of its weights (neither by path): the same dataset simulated elsewhere is the
    same run, and a retrained base model under the same name is a new one.
    """
    provenance = dataset.attrs.get("provenance") or {}
    data = provenance.get("config_sha256") or str(Path(dataset.path).resolve())
    plain = unstructure(config)
    # Options added later enter the identity only when set, so runs made before they
    # existed keep their identity (and `make models` still recognises them as done).
    for key, default in _LATER_DEFAULTS.items():
        if plain.get(key) == default:
            del plain[key]
    base = None if init_from is None else {"weights_sha256": weights_sha256(init_from)}
    return config_hash({"config": plain, "data": data, "init_from": base})


# Values that reproduce runs made before the option existed (prior_output_bias: those
# started from p = 0.5).
_LATER_DEFAULTS = {
    "classes": [],
    "input": unstructure(InputConfig()),
    "prior_output_bias": False,
}


def _check_patch(config: TrainConfig, spatial_dims: int, multiple: int) -> None:
    patch = tuple(config.patch_px)
    if len(patch) != spatial_dims:
        raise ConfigError(
            f"patch_px has {len(patch)} sizes for a {spatial_dims}D network: {list(patch)}"
        )
    if any(p % multiple for p in patch):
        raise ConfigError(
            f"patch_px {list(patch)} must be multiples of {multiple} for this network"
        )
    window = config.inference_window_px
    if len(window) != spatial_dims or any(w % multiple for w in window):
        raise ConfigError(
            f"window_px {list(window)} must give {spatial_dims} multiples of {multiple}"
        )


def _previous_run(out: Path, run_id: str, overwrite: bool) -> dict | str | None:
    """``"complete"``, the state to resume, or None (start afresh); refuses to clobber."""
    if overwrite:
        checkpoint.clear(out)
        return None
    state = checkpoint.read_state(out)
    if state is not None:
        if state.get("run_id") != run_id:
            raise SubcellError(
                f"{out}: holds an unfinished run with a different config or data; "
                f"use --overwrite to start afresh"
            )
        return state
    if (out / CARD_FILE).is_file():
        card = read_card(out)
        training = card.get("training") or {}
        if training.get("run_id") == run_id and training.get("complete"):
            return "complete"
        raise SubcellError(f"{out}: holds a different model; use --overwrite to replace it")
    return None


def _should_stop(history: list[dict], patience: int) -> bool:
    if patience <= 0:
        return False
    best_epoch = max(range(len(history)), key=lambda i: history[i]["val_miou"])
    return len(history) - 1 - best_epoch >= patience


def _epoch_line(record: dict, epochs: int, best: dict) -> str:
    return (
        f"epoch {record['epoch']}/{epochs}: loss {record['loss']:.4f}, val mIoU "
        f"{record['val_miou']:.4f} (best {best['val_miou']:.4f} @ {best['epoch']}), "
        f"lr {record['lr']:.2e}, {record['images_per_s']:.1f} patches/s"
    )


def _card_factory(config, dataset, net_config, multiple, training):
    def card_of(history: list[dict], metrics: dict, *, complete: bool) -> dict:
        best = max(history, key=lambda r: r["val_miou"])
        info = {
            **training,
            "epochs_run": len(history),
            "best_epoch": best["epoch"],
            "best_val_miou": best["val_miou"],
            "images_per_s": float(np.mean([r["images_per_s"] for r in history])),
            "history": history,
            "complete": complete,
        }
        return model_card(config, dataset, net_config, multiple, info, metrics)

    return card_of


def _finish(out, dataset, config, card_of, history, registry, device, started, state):
    """Calibrate the threshold on validation, score the best weights on the test split,
    write the final card and drop the checkpoint."""
    from subcell.models import load

    if not history:
        raise SubcellError(f"{out}: no epoch ran (epochs={config.epochs})")
    best = load(out, device=str(device), registry=registry)
    spatial = best.card["network"]["config"]["spatial_dims"]
    multiple = best.card["input_multiple_px"]
    percentiles = config.normalization_percentiles
    threshold, calibration = config.threshold, None
    if config.head == "sigmoid" and config.calibrate_threshold:
        val_set = SampleSet(dataset, "val", spatial, percentiles, config.val_max_images)
        threshold, calibration = calibrate_threshold(
            best.network, val_set, config, dataset.class_names, device, multiple
        )
    test_set = SampleSet(dataset, "test", spatial, percentiles)
    test = score_split(
        best.network, test_set, config, dataset.class_names, device, multiple, threshold
    )
    val = (read_card(out).get("metrics") or {}).get("val", {})
    card = card_of(history, {"val": val, "test": test}, complete=True)
    card["threshold"] = threshold
    if calibration is not None:
        card["training"]["threshold_calibration_val_miou"] = calibration
    card["training"]["seconds"] = time.perf_counter() - started
    save(out, best.network, card, weights_dtype=config.weights_dtype)
    checkpoint.clear(out)
    return TrainResult(out, card, "resumed" if state else "trained")


@contextlib.contextmanager
def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    console = Console(stderr=True, quiet=not enabled, log_path=False)
    with Progress(*columns, console=console, disable=not enabled) as bar:
        yield bar
