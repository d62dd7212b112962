"""Chunked segmentation against whole-image MONAI inference: throughput, memory, scaling.

Every measurement runs in its own Python process, so each peak resident memory (``ru_maxrss``)
is that run's own; imports and the model load happen before the clock starts.

1. **A volume that fits** (uint16 zarr, ``(2, 1536, 1536)`` at the model's 42 nm, synthetic
   tubes with shot noise), the bundled ``mitochondria-epi`` model:

   - *whole image*: read the volume into memory, normalise, MONAI
     ``sliding_window_inference`` over the whole stack (``predict_probabilities``),
     threshold;
   - *chunked*: ``segment_chunked`` into OME-Zarr (reading, normalisation percentiles,
     inference, writing probabilities and masks included), with the default blocks (whole
     planes) and with split planes (``768 x 768`` cores, whose halos make windows near the
     block edges run twice).

   Throughput ratio = whole-image seconds / chunked seconds (goal >= 0.9); the masks must
   agree on >= 99.9 % of voxels.
2. **Scaling with workers**: the same volume in one-plane blocks on threads, and on a local
   dask.distributed cluster of 1 and 2 worker processes (cluster start-up included), on a
   ``(8, 1536, 1536)`` volume.
3. **Volumes larger than a memory budget**: uint16 zarr volumes of ``--large-gb`` GB
   (planes of 2048 x 2048, default 0.25 and 1 GB; ``--large-gb 8`` for the issue's 8 GB,
   which takes over half an hour on 2 CPU cores) segmented with stitched instances by the
   same model. Peak RSS is compared across volume sizes (it must not grow with the
   volume) and against the 1.5 GB goal, and the current RSS is sampled during the run (its
   maximum in the run's first and second halves shows a plateau); the whole-image path is
   measured on the smallest volume.

``python benchmarks/segment_chunked.py [--quick] [--large-gb 0.25 1]``; JSON to
``benchmarks/out/segment_chunked.json``. Scratch data is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
SCRATCH = OUT / "segment_chunked_scratch"
MODEL = "mitochondria-epi"
PIXEL_NM = 42.0
FIT_SHAPE, FIT_SHAPE_QUICK = (2, 1536, 1536), (1, 768, 768)
SPLIT_BLOCK, SPLIT_BLOCK_QUICK = (1, 768, 768), (1, 384, 384)
SCALE_SHAPE = (8, 1536, 1536)
LARGE_PLANE = 2048
LARGE_GB, LARGE_GB_QUICK = (0.25, 1.0), (0.02,)
SEED = 5


# ----------------------------------------------------------------------------- data


def _tubes(shape_yx, rng) -> np.ndarray:
    """Photon image of blurred random-walk tubes on a background (float32)."""
    from scipy import ndimage

    ny, nx = shape_yx
    canvas = np.zeros(shape_yx, np.float32)
    n_tubes = max(4, ny * nx // 20000)
    for _ in range(n_tubes):
        pos = rng.uniform(0, (ny, nx))
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(rng.integers(20, 120)):
            angle += rng.normal(0, 0.25)
            pos = pos + 2.0 * np.array([np.sin(angle), np.cos(angle)])
            y, x = int(pos[0]) % ny, int(pos[1]) % nx
            canvas[y, x] = 1.0
    canvas = ndimage.gaussian_filter(canvas, 3.0)
    return 30.0 + 400.0 * canvas / max(float(canvas.max()), 1e-9)


def write_volume(path: Path, shape, seed: int = SEED, plane_source=None) -> Path:
    """A uint16 (Z, Y, X) zarr written plane by plane (memory: a few planes)."""
    import zarr

    rng = np.random.default_rng(seed)
    base = plane_source if plane_source is not None else _tubes(shape[1:], rng)
    array = zarr.create_array(
        str(path),
        shape=shape,
        dtype=np.uint16,
        chunks=(1, min(512, shape[1]), min(512, shape[2])),
        dimension_names=["z", "y", "x"],
        overwrite=True,
    )
    for z in range(shape[0]):
        plane = np.roll(base, (17 * z, 29 * z), axis=(0, 1))
        array[z] = np.clip(rng.poisson(plane) + 100, 0, 65535).astype(np.uint16)
    return path


# ----------------------------------------------------------------------------- child runs


def _rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: kB


def _child_whole(spec: dict) -> dict:
    import zarr

    from subcell import models
    from subcell.models.predict import class_masks, normalize, predict_probabilities

    model = models.load(spec["model"])
    baseline = _rss_mb()
    start = time.perf_counter()
    image = np.asarray(zarr.open_array(spec["input"], mode="r")[:])[None]
    normalized, _ = normalize(image, model.card["normalization"])
    probs = predict_probabilities(model, normalized)
    mask = class_masks(probs, model.card["head"], float(model.card["threshold"]))
    seconds = time.perf_counter() - start
    if spec.get("save"):
        np.save(spec["save"], mask)
    return {"seconds": seconds, "peak_rss_mb": _rss_mb(), "baseline_rss_mb": baseline}


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _RssSampler:
    """Current RSS every 0.2 s in a thread: shows whether memory plateaus or keeps growing."""

    def __init__(self):
        import threading

        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        start = time.perf_counter()
        while not self._stop.wait(0.2):
            self.samples.append((time.perf_counter() - start, _current_rss_mb()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def halves(self) -> tuple[float, float]:
        if len(self.samples) < 2:
            return (float("nan"), float("nan"))
        end = self.samples[-1][0]
        first = [r for t, r in self.samples if t <= end / 2]
        second = [r for t, r in self.samples if t > end / 2]
        return max(first), max(second)


def _child_chunked(spec: dict) -> dict:
    import warnings

    from subcell import models
    from subcell.pipeline.chunked import segment_chunked

    models.load(spec["model"])  # the imports and a first load, before the clock starts
    baseline = _rss_mb()
    start = time.perf_counter()
    with warnings.catch_warnings(), _RssSampler() as sampler:
        warnings.simplefilter("ignore")
        result = segment_chunked(
            spec["input"],
            spec["model"],
            spec["out"],
            block=tuple(spec["block"]) if spec.get("block") else None,
            workers=spec.get("workers", 0),
            instances=spec.get("instances", False),
            pixel_nm=PIXEL_NM,
            overwrite=True,
            progress=False,
        )
    first, second = sampler.halves()
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": _rss_mb(),
        "baseline_rss_mb": baseline,
        "rss_first_half_mb": first,
        "rss_second_half_mb": second,
        "workers_peak_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN),
        "n_blocks": result.n_blocks,
        "block": list(result.plan.block),
        "halo": list(result.plan.halo),
        "n_instances": result.n_instances,
    }


def _run_child(kind: str, spec: dict) -> dict:
    """Run one measurement in a fresh interpreter; its JSON answer."""
    argv = [sys.executable, __file__, "--child", json.dumps({"kind": kind, **spec})]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- benchmark


def _agreement(reference_npy: Path, out: Path) -> float:
    from subcell.pipeline.chunked import read_result

    mask = read_result(out)["mask"][:]
    return float((np.load(reference_npy) == mask).mean())


def _fit(quick: bool) -> dict:
    shape = FIT_SHAPE_QUICK if quick else FIT_SHAPE
    split = SPLIT_BLOCK_QUICK if quick else SPLIT_BLOCK
    path = write_volume(SCRATCH / "fit.zarr", shape)
    voxels = int(np.prod(shape))
    reference = SCRATCH / "whole_mask.npy"
    whole = _run_child("whole", {"model": MODEL, "input": str(path), "save": str(reference)})
    runs = {"whole_image": whole}
    for name, block in (("chunked_default", None), ("chunked_split", split)):
        out = SCRATCH / f"{name}.zarr"
        spec = {"model": MODEL, "input": str(path), "out": str(out), "block": block}
        runs[name] = _run_child("chunked", spec)
        runs[name]["agreement"] = _agreement(reference, out)
    for run in runs.values():
        run["mvoxel_per_s"] = voxels / run["seconds"] / 1e6
    return {"shape_zyx": list(shape), "model": MODEL, "runs": runs}


def _scaling(quick: bool) -> list[dict]:
    shape = SCALE_SHAPE
    path = write_volume(SCRATCH / "scale.zarr", shape)
    rows = []
    for workers in (0, 1, 2):
        spec = {
            "model": MODEL,
            "input": str(path),
            "out": str(SCRATCH / f"scale{workers}.zarr"),
            "block": [1, shape[1], shape[2]],
            "workers": workers,
        }
        run = _run_child("chunked", spec)
        run["workers"] = workers
        run["mvoxel_per_s"] = int(np.prod(shape)) / run["seconds"] / 1e6
        rows.append(run)
    return rows


def _large(sizes_gb, quick: bool) -> list[dict]:
    model = MODEL
    plane = _tubes((LARGE_PLANE, LARGE_PLANE), np.random.default_rng(SEED))
    rows = []
    for k, size_gb in enumerate(sizes_gb):
        n_z = max(2, round(size_gb * 1e9 / (2 * LARGE_PLANE**2)))
        shape = (n_z, LARGE_PLANE, LARGE_PLANE)
        path = write_volume(SCRATCH / f"large{k}.zarr", shape, plane_source=plane)
        spec = {"model": model, "input": str(path), "out": str(SCRATCH / f"large{k}.out.zarr")}
        run = _run_child("chunked", spec | {"instances": True})
        run |= {"shape_zyx": list(shape), "volume_gb": 2 * int(np.prod(shape)) / 1e9}
        if k == 0 and not quick:
            run["whole_image"] = _run_child("whole", {"model": model, "input": str(path)})
        rows.append(run)
        shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(SCRATCH / f"large{k}.out.zarr", ignore_errors=True)
    return rows


def _report(fit: dict, scaling: list[dict], large: list[dict]) -> tuple[dict, list[str]]:
    runs = fit["runs"]
    whole = runs["whole_image"]
    ratios = {
        f"throughput_{name}_vs_whole": whole["seconds"] / runs[name]["seconds"]
        for name in ("chunked_default", "chunked_split")
    }
    ratios |= {
        f"peak_rss_{name}_vs_whole": runs[name]["peak_rss_mb"] / whole["peak_rss_mb"]
        for name in ("chunked_default", "chunked_split")
    }
    peaks = [row["peak_rss_mb"] for row in large]
    ratios["large_peak_rss_growth"] = peaks[-1] / peaks[0]
    checks = [
        (
            "chunked masks agree with whole-image inference on >= 99.9 % of voxels",
            min(runs[n]["agreement"] for n in ("chunked_default", "chunked_split")) >= 0.999,
        ),
        (
            "peak RSS does not grow with the volume (largest <= 1.25 x smallest)",
            ratios["large_peak_rss_growth"] <= 1.25,
        ),
        ("peak RSS <= 1.5 GB on every large volume", max(peaks) <= 1536),
    ]
    lines = [
        f"fit {tuple(fit['shape_zyx'])} uint16, model {fit['model']}:",
        f"  {'run':18s} {'s':>7s} {'Mvox/s':>7s} {'peak RSS MB':>12s} {'agree':>7s}",
    ]
    for name, run in runs.items():
        agree = f"{run['agreement']:.5f}" if "agreement" in run else ""
        lines.append(
            f"  {name:18s} {run['seconds']:7.1f} {run['mvoxel_per_s']:7.3f} "
            f"{run['peak_rss_mb']:12.0f} {agree:>7s}"
        )
    lines += [f"  {k} = {v:.2f}" for k, v in ratios.items() if k.startswith(("through", "peak"))]
    lines.append("scaling (one-plane blocks; cluster start-up included):")
    for row in scaling:
        where = "threads" if row["workers"] == 0 else f"{row['workers']} worker process(es)"
        lines.append(f"  {where:24s} {row['seconds']:7.1f} s {row['mvoxel_per_s']:7.3f} Mvox/s")
    lines.append(f"large volumes ({MODEL}, instances on):")
    for row in large:
        extra = ""
        if "whole_image" in row:
            extra = f"; whole image: peak {row['whole_image']['peak_rss_mb']:.0f} MB"
        lines.append(
            f"  {row['volume_gb']:6.2f} GB {tuple(row['shape_zyx'])}: peak RSS "
            f"{row['peak_rss_mb']:.0f} MB (after imports {row['baseline_rss_mb']:.0f} MB), "
            f"{row['n_blocks']} blocks, {row['seconds']:.0f} s; RSS max in the first/second "
            f"half of the run {row['rss_first_half_mb']:.0f}/{row['rss_second_half_mb']:.0f} MB"
            f"{extra}"
        )
    lines.append(f"  peak RSS growth largest/smallest = {ratios['large_peak_rss_growth']:.2f}")
    lines += [f"{'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks]
    return {"ratios": ratios, "checks": {t: bool(ok) for t, ok in checks}}, lines


def main(quick: bool = False, large_gb=None) -> int:
    large_gb = tuple(large_gb or (LARGE_GB_QUICK if quick else LARGE_GB))
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    start = time.perf_counter()
    try:
        fit = _fit(quick)
        scaling = [] if quick else _scaling(quick)
        large = _large(large_gb, quick)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    summary, lines = _report(fit, scaling, large)
    print("\n".join(lines))
    result = {
        "fit": fit,
        "scaling": scaling,
        "large": large,
        **summary,
        "cpu_count": os.cpu_count(),
        "quick": quick,
        "seconds": time.perf_counter() - start,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "segment_chunked.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(summary["checks"].values()) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--large-gb", type=float, nargs="+", metavar="GB")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child = json.loads(options.child)
        runner = {"whole": _child_whole, "chunked": _child_chunked}[child.pop("kind")]
        print(json.dumps(runner(child)))
        sys.exit(0)
    sys.exit(main(options.quick, options.large_gb))
