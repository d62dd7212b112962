"""cellcutter on simulated clumped cells: accuracy against the watershed baseline, and speed.

Data: ``configs/cellcutter/clumped-epi-1024.yaml`` (the ``clumped_cells`` phantom imaged
through the ``epi`` microscope, one dye at a time: a whole-cell stain with brighter
membranes and a nuclear stain, SNR 4-10; 1024 x 1024 px, ~850 cells), simulated here into
``benchmarks/out/cellcutter``.
Every method gets the same markers (difference of Gaussians on the nucleus channel) and
the same foreground (graph cut of the paper's MRF), as the issue asks:

- ``cellcutter``: the network trained on each image itself (no labels), then integrated by
  the paper's rule; ``cellcutter_fill``: the same network with ``fill_mask`` (pixels of the
  foreground mask that every patch doubts go to the likeliest patch);
- ``marker_watershed``: marker-controlled watershed of the whole-cell image in the mask.

Scores per image against the phantom's cell instances (``subcell.core.metrics``):
mean IoU of matched cells (one-to-one assignment among overlapping cells, the paper's
mIoU), AP at IoU 0.5, and the mean over true cells of their best IoU (a missed cell
counts 0). Marker false-negative and false-positive rates against the nucleus centroids
at the paper's pairing distance (15 µm).

Speed: the training of the first image, timed per epoch; the loss is stable from the first
epoch after which its 10-epoch running mean stays within 2 % of its final value.

    .venv/bin/python benchmarks/cellcutter.py [--quick] [--images N] [--epochs N]

Results: ``benchmarks/out/cellcutter.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import attrs
import numpy as np

from subcell.core.metrics import instance_scores
from subcell.core.model import Volume
from subcell.pipeline.cellcutter import run_cellcutter
from subcell.pipeline.config import load_config
from subcell.pipeline.dataset import open_dataset, write_dataset
from subcell.plugins.cellcutter.markers import pair_markers
from subcell.plugins.cellcutter.phantom import nucleus_centroids_px
from subcell.registry import get_registry

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
DATA = OUT / "cellcutter"
CONFIGS = ROOT / "configs" / "cellcutter"
PAIRING_UM = 15.0  # the paper's pairing distance for synthetic markers
GOAL_MIOU = 0.82
GOAL_TRAIN_S = 600.0
# Integration rules scored on the same trained network: the paper's (background where every
# patch says < 0.5) and ``fill_mask`` (the foreground mask's pixels to the likeliest patch).
RULES = {"cellcutter": False, "cellcutter_fill": True}


def simulate(name: str, n: int | None = None):
    """The dataset of ``configs/cellcutter/<name>.yaml`` (reused when already complete).

    ``n`` images more than the config's ``n_tiles`` simulate a larger dataset (its own
    folder); fewer reuse the config's dataset, of which the caller takes the first ``n``.
    """
    config = load_config(CONFIGS / f"{name}.yaml").config
    path = DATA / f"{name}.zarr"
    if n is not None and n > config.n_tiles:
        config = load_config(CONFIGS / f"{name}.yaml", [f"n_tiles={n}"]).config
        path = DATA / f"{name}-n{n}.zarr"
    write_dataset(config, path, workers=min(2, os.cpu_count() or 1))
    return open_dataset(path)


def method_config(epochs: int | None):
    """The shipped method config (``configs/cellcutter/method.yaml``)."""
    method = load_config(CONFIGS / "method.yaml").config.method.config
    if epochs is not None:
        method = attrs.evolve(method, network=attrs.evolve(method.network, epochs=epochs))
    return method


def best_iou_per_cell(predicted: np.ndarray, true: np.ndarray) -> float:
    """Mean over true cells of the best IoU with any predicted cell (a miss counts 0)."""
    ids = np.unique(true)
    ids = ids[ids > 0]
    pairs = np.stack([true.ravel(), predicted.ravel()])
    pairs = pairs[:, (pairs[0] > 0) & (pairs[1] > 0)]
    keys, inter = np.unique(pairs, axis=1, return_counts=True)
    area_t = np.bincount(true.ravel())
    area_p = np.bincount(predicted.ravel())
    iou = inter / (area_t[keys[0]] + area_p[keys[1]] - inter)
    best = np.zeros(int(true.max()) + 1)
    np.maximum.at(best, keys[0], iou)
    return float(best[ids].mean())


def score(predicted: np.ndarray, true: np.ndarray) -> dict:
    scores = instance_scores(true[None], predicted[None])
    return {
        "matched_miou": scores["mean_matched_iou"],
        "ap50": scores["ap"]["0.50"],
        "best_iou_per_cell": best_iou_per_cell(predicted, true),
        "n_true": scores["n_true"],
        "n_predicted": scores["n_predicted"],
    }


def run_image(dataset, index: int, method, registry) -> dict:
    image = np.asarray(dataset.images[index], dtype=np.float32)[:, :1]
    true = np.asarray(dataset.instances[index])[0].astype(np.int64)
    volume = Volume(image, dataset.voxel_nm, channel_names=dataset.channel_names)
    watershed_config = registry.config_class("segmenter", "marker_watershed")(
        markers=method.markers, foreground=method.foreground
    )
    start = time.perf_counter()
    baseline = run_cellcutter(volume, method_config=watershed_config, registry=registry)
    baseline_s = time.perf_counter() - start
    _, centroids = nucleus_centroids_px(_image_masks(dataset, index))
    pairing = pair_markers(baseline.markers, centroids, PAIRING_UM * 1000 / dataset.voxel_nm[2])
    times: list[float] = []
    start = time.perf_counter()
    trainer = registry.create("segmenter", "cellcutter", method)
    network, history = trainer.fit(
        volume,
        markers=baseline.markers,
        mask=baseline.mask,
        progress=lambda epoch, loss: times.append(time.perf_counter() - start),
    )
    train_s = time.perf_counter() - start
    stable = stable_epoch(history)
    row = {
        "image": index,
        "markers": len(baseline.markers),
        "marker_fn_rate": pairing.false_negative_rate,
        "marker_fp_rate": pairing.false_positive_rate,
        "mask_iou": float(((true > 0) & baseline.mask).sum() / ((true > 0) | baseline.mask).sum()),
        "watershed": score(baseline.masks.instances[0].astype(np.int64), true)
        | {"seconds": baseline_s},
        "cells_true": int(len(np.unique(true)) - 1),
        "epochs": len(history),
        "stable_epoch": stable,
        "seconds_to_stable": None if stable is None else times[stable - 1],
        "history": history,
    }
    # One training, both integration rules: the paper's threshold, and fill_mask.
    for name, fill in RULES.items():
        rule = registry.create("segmenter", "cellcutter", attrs.evolve(method, fill_mask=fill))
        rule_start = time.perf_counter()
        labels = rule.apply(network, volume, baseline.markers, baseline.mask).instances[0]
        seconds = train_s + time.perf_counter() - rule_start
        row[name] = score(labels.astype(np.int64), true) | {
            "seconds": seconds,
            "final_loss": history[-1],
        }
    print(
        f"  image {index}: {row['markers']} markers, mask IoU {row['mask_iou']:.3f}; "
        f"matched mIoU cellcutter {row['cellcutter']['matched_miou']:.3f} "
        f"(fill_mask {row['cellcutter_fill']['matched_miou']:.3f}; {train_s:.0f} s), "
        f"watershed {row['watershed']['matched_miou']:.3f}",
        flush=True,
    )
    return row


def _image_masks(dataset, index: int):
    from subcell.core.model import Masks

    semantic = np.asarray(dataset.masks[index])
    instances = np.asarray(dataset.instances[index])
    return Masks(semantic, dataset.class_names, dataset.voxel_nm, instances)


def stable_epoch(history: list[float], window: int = 10, tolerance: float = 0.02) -> int | None:
    """First epoch from which the ``window``-epoch running mean of the loss stays within
    ``tolerance`` (relative) of its final value, or None when the history is too short.

    "Stays" matters: a loss that pauses on a plateau, or climbs back and falls again, has not
    settled until it no longer leaves the band around where it ends.
    """
    h = np.asarray(history, dtype=float)
    if h.size < window:
        return None
    running = np.convolve(h, np.ones(window) / window, mode="valid")
    outside = np.abs(running - running[-1]) > tolerance * max(abs(running[-1]), 1e-12)
    first_inside = int(np.flatnonzero(outside)[-1]) + 1 if outside.any() else 0
    return first_inside + window


def main(quick: bool, n_images: int | None, epochs: int | None) -> int:
    import torch

    torch_threads = torch.get_num_threads()
    registry = get_registry()
    method = method_config(epochs)
    n = n_images or (1 if quick else 2)
    dataset = simulate("clumped-epi-1024", n)
    print(f"cellcutter vs marker_watershed on {n} simulated 1024 x 1024 images:", flush=True)
    rows = [run_image(dataset, i, method, registry) for i in range(n)]
    summary = {}
    for name in (*RULES, "watershed"):
        summary[name] = {
            key: float(np.mean([r[name][key] for r in rows]))
            for key in ("matched_miou", "ap50", "best_iou_per_cell", "seconds")
        }
    summary["marker_fn_rate"] = float(np.mean([r["marker_fn_rate"] for r in rows]))
    summary["marker_fp_rate"] = float(np.mean([r["marker_fp_rate"] for r in rows]))
    speed = {k: rows[0][k] for k in ("cells_true", "markers", "epochs", "stable_epoch")}
    speed |= {"seconds_to_stable": rows[0]["seconds_to_stable"], "torch_threads": torch_threads}
    ours, theirs = summary["cellcutter"]["matched_miou"], summary["watershed"]["matched_miou"]
    checks = {
        f"cellcutter matched mIoU >= {GOAL_MIOU}": ours >= GOAL_MIOU,
        "cellcutter above watershed": ours > theirs,
    }
    stable_s = speed["seconds_to_stable"]
    checks[f"1024 x 1024 stable loss <= {GOAL_TRAIN_S:.0f} s"] = (
        stable_s is not None and stable_s <= GOAL_TRAIN_S
    )
    for name in (*RULES, "watershed"):
        s = summary[name]
        print(
            f"{name:>15}: matched mIoU {s['matched_miou']:.3f}, AP50 {s['ap50']:.3f}, "
            f"best IoU per cell {s['best_iou_per_cell']:.3f}, {s['seconds']:.1f} s/image"
        )
    print(
        f"markers: FN {summary['marker_fn_rate']:.3f}, FP {summary['marker_fp_rate']:.3f} "
        f"(pairing {PAIRING_UM} µm)"
    )
    print(
        f"1024 x 1024 training: {speed['markers']} markers, stable loss at epoch "
        f"{speed['stable_epoch']} of {speed['epochs']} after {stable_s} s "
        f"({torch_threads} torch threads)"
    )
    for check, ok in checks.items():
        print(f"  [{'ok' if ok else 'MISSED'}] {check}")
    OUT.mkdir(exist_ok=True)
    result = {
        "images": rows,
        "summary": summary,
        "speed": speed,
        "checks": checks,
        "cpu_count": os.cpu_count(),
        "quick": quick,
    }
    (OUT / "cellcutter.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--images", type=int)
    parser.add_argument("--epochs", type=int)
    options = parser.parse_args()
    sys.exit(main(options.quick, options.images, options.epochs))
