"""Training speed: patches (= images) per second of a training epoch, subcell against raw torch.

The bundled-model train config (``configs/train/mitochondria-epi.yaml``: a residual U-Net,
batch 16, 128 x 128 patches, Dice + focal loss, Adam, MONAI flips / 90° rotations /
intensity scaling / noise) is trained with ``subcell.pipeline.training.train`` for two
epochs of ``--patches`` patches (``samples_per_epoch``) on a small simulated SimEpi1Mito-like
dataset (``configs/sim/epi1-mito.yaml``, ``--n-images``, 256 x 256 images; or ``--data``).
Each patch is one random crop of one image read from the zarr store, normalised and augmented,
so patches/s is also training images/s. The first epoch is cold (lazy imports, allocator
warm-up); the second is the number to quote. Validation and the final test scoring are
outside the epoch time and reported separately as the whole run's wall time.

The peer reference ("raw torch step") runs the same network, loss, optimiser (and, on CUDA,
mixed precision) on one fixed in-memory batch of real normalised crops: forward, loss,
backward, Adam step, nothing else. ``ours / raw`` is then the share of the ideal throughput
that our data path (zarr reads, percentile normalisation, cropping, augmentation, batching)
leaves, for the same arithmetic.

Runs on CPU, and on CUDA when torch sees a GPU (``--device`` picks one). Results go to
``benchmarks/out/train_speed.json``.

    .venv/bin/python benchmarks/train_speed.py [--patches 128] [--device cpu|cuda|all]
    .venv/bin/python benchmarks/run.py train_speed [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import attrs
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
SIM_CONFIG = ROOT / "configs" / "sim" / "epi1-mito.yaml"
TRAIN_CONFIG = ROOT / "configs" / "train" / "mitochondria-epi.yaml"
BUNDLED_CARD = ROOT / "src" / "subcell" / "models" / "bundled" / "mitochondria-epi" / "card.json"
N_IMAGES, N_IMAGES_QUICK = 20, 10
PATCHES_CPU, PATCHES_CUDA, PATCHES_QUICK = 128, 1024, 32
RAW_WARMUP = 2


def simulate_dataset(out: Path, n_images: int, workers: int = 2) -> Path:
    """``subcell simulate configs/sim/epi1-mito.yaml --out OUT --n N`` (reused if present)."""
    from subcell.pipeline.config import load_config
    from subcell.pipeline.dataset import write_dataset

    loaded = load_config(SIM_CONFIG, [f"n_tiles={int(n_images)}"])
    return write_dataset(loaded.config, out, workers=workers, progress=False).path


def train_config(patches: int):
    """The bundled model's train config with ``samples_per_epoch = patches``."""
    from subcell.pipeline.config import load_config

    config = load_config(TRAIN_CONFIG).config
    return attrs.evolve(config, samples_per_epoch=int(patches), early_stopping_patience=0)


def time_subcell(config, data: Path, device: str) -> dict:
    """Two epochs of ``train``; the per-epoch patches/s from its history, and the wall time."""
    from subcell.pipeline.training import train

    with tempfile.TemporaryDirectory(dir=OUT) as folder:
        start = time.perf_counter()
        result = train(
            config, data, Path(folder) / "model", epochs=2, device=device, progress=False
        )
        wall = time.perf_counter() - start
    history = result.card["training"]["history"]
    return {
        "epochs": [{"patches_per_s": h["images_per_s"], "seconds": h["seconds"]} for h in history],
        "patches_per_s": history[-1]["images_per_s"],
        "run_seconds": wall,
        "patches_per_epoch": int(config.samples_per_epoch),
    }


def fixed_batch(config, data: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch of real training crops (normalised image, target), no augmentation."""
    from subcell.pipeline.dataset import open_dataset
    from subcell.pipeline.training.data import SampleSet, random_crop, target_of

    samples = SampleSet(open_dataset(data), "train", 2, config.normalization_percentiles)
    rng = np.random.default_rng(0)
    images, targets = [], []
    for n in range(config.batch_size):
        image, masks = samples.read(n % len(samples))
        image, target = random_crop((image, target_of(masks, config.head)), config.patch_px, rng)
        images.append(image)
        targets.append(target)
    return np.stack(images), np.stack(targets)


def time_raw(config, data: Path, device: str, steps: int) -> dict:
    """``steps`` bare optimisation steps of the same network, loss and optimiser."""
    import torch

    from subcell.pipeline.dataset import open_dataset
    from subcell.pipeline.training.setup import build, loss_function, network_config
    from subcell.registry import get_registry

    dataset = open_dataset(data)
    dev = torch.device(device)
    net_config = network_config(config, dataset)
    network = build(config.network.plugin, net_config, config.seed, get_registry()).to(dev)
    network.train()
    loss_fn = loss_function(config, len(dataset.class_names), dev)
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    amp = bool(config.amp and dev.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    images, targets = (torch.from_numpy(a).to(dev) for a in fixed_batch(config, data))

    def step():
        with torch.autocast(dev.type, enabled=amp):
            loss = loss_fn(network(images), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(RAW_WARMUP):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    patches = steps * len(images)
    return {"patches_per_s": patches / seconds, "seconds": seconds, "steps": steps}


def measure(config, data: Path, device: str) -> dict:
    """subcell's epoch and the raw torch step on one device, and their ratio."""
    ours = time_subcell(config, data, device)
    steps = max(1, config.samples_per_epoch // config.batch_size)
    raw = time_raw(config, data, device, steps)
    return {
        "device": device,
        "subcell": ours,
        "raw_torch": raw,
        "ratio": ours["patches_per_s"] / raw["patches_per_s"],
    }


def _devices(choice: str) -> list[str]:
    import torch

    cuda = torch.cuda.is_available()
    if choice == "all":
        return ["cpu", "cuda"] if cuda else ["cpu"]
    if choice == "cuda" and not cuda:
        raise SystemExit("--device cuda: torch sees no CUDA device")
    return [choice]


def report(results: list[dict], config) -> None:
    """Print the table: per device, subcell's cold and warm epoch, raw torch, the ratio."""
    print(
        f"network {config.network.plugin} {list(config.network.config.channels)}, batch "
        f"{config.batch_size}, patches {'x'.join(map(str, config.patch_px))}, loss "
        f"{config.loss.kind}; one patch = one crop of one 256 x 256 image (images/s = patches/s)"
    )
    print(
        f"  {'device':<6} {'patches/epoch':>13} {'epoch 1 /s':>11} {'epoch 2 /s':>11} "
        f"{'raw torch /s':>13} {'ours/raw':>9} {'run s':>7}"
    )
    for r in results:
        ours, raw = r["subcell"], r["raw_torch"]
        cold, warm = (e["patches_per_s"] for e in ours["epochs"])
        print(
            f"  {r['device']:<6} {ours['patches_per_epoch']:>13d} {cold:>11.2f} {warm:>11.2f} "
            f"{raw['patches_per_s']:>13.2f} {r['ratio']:>9.2f} {ours['run_seconds']:>7.1f}"
        )
    if BUNDLED_CARD.is_file():
        card = json.loads(BUNDLED_CARD.read_text())
        training = card.get("training") or {}
        if "images_per_s" in training:
            print(
                f"  the bundled mitochondria-epi card records {training['images_per_s']:.2f} "
                f"patches/s over {training.get('epochs_run')} epochs on {training.get('device')}"
            )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a simulated mitochondria dataset (default: simulate)")
    parser.add_argument("--n-images", type=int, help=f"images to simulate ({N_IMAGES})")
    parser.add_argument(
        "--patches",
        type=int,
        help=f"patches per epoch (default {PATCHES_CPU} on CPU, {PATCHES_CUDA} on CUDA)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--keep-data", action="store_true", help="keep the simulated dataset")
    parser.add_argument("--quick", action="store_true", help="a short smoke test")
    return parser


def main(argv: list[str] | None = None, quick: bool = False) -> int:
    """Run, print, save ``benchmarks/out/train_speed.json``; 1 if a rate is not positive."""
    args = _parser().parse_args([] if argv is None else argv)
    quick = quick or args.quick
    OUT.mkdir(parents=True, exist_ok=True)
    n_images = args.n_images or (N_IMAGES_QUICK if quick else N_IMAGES)
    data, simulated = args.data, None
    if data is None:
        simulated = data = OUT / f"train_speed-epi1-mito-n{n_images}.zarr"
        print(f"simulating {n_images} images of {SIM_CONFIG.name} ...", flush=True)
        simulate_dataset(data, n_images)
    load_before = os.getloadavg()[0]
    results = []
    try:
        for device in _devices(args.device):
            default = PATCHES_CUDA if device == "cuda" else PATCHES_CPU
            patches = args.patches or (PATCHES_QUICK if quick else default)
            config = train_config(patches)
            print(f"  {device}: 2 epochs of {patches} patches + {patches // 16} raw steps ...")
            results.append(measure(config, Path(data), device))
    finally:
        if simulated is not None and not args.keep_data:
            shutil.rmtree(simulated, ignore_errors=True)
    report(results, train_config(1))
    load = [load_before, os.getloadavg()[0]]
    if max(load) > (os.cpu_count() or 1):
        print(
            f"note: load average {max(load):.1f} > {os.cpu_count()} cores: other work shared them"
        )
    summary = {"benchmark": "train_speed", "results": results, "load_average": load}
    (OUT / "train_speed.json").write_text(json.dumps(summary, indent=1))
    rates = [r["subcell"]["patches_per_s"] for r in results]
    rates += [r["raw_torch"]["patches_per_s"] for r in results]
    return 0 if results and all(rate > 0 for rate in rates) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
