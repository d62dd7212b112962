"""Simulator speed: 128×128 epi mitochondria training pairs per second, subcell vs microsim.

One subcell *pair* is what ``subcell.pipeline.simulate.simulate_field`` returns for one
tile of ``benchmarks/configs/sim-epi-mito-128.yaml``: the noisy detector image, the clean
(noise-free) image, the semantic masks and the instance labels. microsim
(https://github.com/tlambert03/microsim) makes the closest thing it can, a widefield
digital image of the same size, with no masks or instances; it pins ``zarr < 3`` and
``numpy < 2``, so it runs in its own venv (``benchmarks/out/.venv-microsim``, created on
first use) through ``benchmarks/_microsim_peer.py``, whose docstring says exactly what it
computes. Both sides run in the same invocation, on the same cores.

subcell runs as 1 process with ``torch.set_num_threads(2)`` and as ``--workers`` processes
of 1 thread each; microsim as 1 and ``--workers`` processes (its FFTs are single-threaded),
with its PSF as shipped and with its 6-Airy-unit PSF cap made to work. Every process warms
up untimed, then all are released together; throughput is pairs (images) / wall time, the
per-pair time is the median. A profiling pass times subcell's stages and a CUDA pass runs
whenever torch sees a GPU. Goals: ≥ 100 pairs/s on 2 CPU cores (the founding paper's public
code: ~0.07/s) and ≥ 20× microsim, best configuration against best configuration.

    .venv/bin/python benchmarks/simulate.py [--n N] [--workers W] [--skip-peer] [--quick]
    .venv/bin/python benchmarks/run.py simulate [--quick]

Results also go to ``benchmarks/out/simulate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import numpy as np
import torch

import subcell
from subcell.pipeline.config import load_config
from subcell.pipeline.simulate import simulate_field
from subcell.registry import get_registry

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CONFIG = HERE / "configs" / "sim-epi-mito-128.yaml"
PEER_SCRIPT = HERE / "_microsim_peer.py"
PEER_VENV = OUT / ".venv-microsim"
#: The microsim release this benchmark was written and checked against, and numba, with
#: which microsim compiles its line drawing when it is installed.
PEER_REQUIREMENTS = ("microsim==0.0.12.post0", "numba>=0.60")
CORES = 2
STRUCTURE = "mitochondria"
#: Replaces the structure while the mitochondria plugin is not registered: the beads example.
FALLBACK = (
    "structures.0={structure: {plugin: beads, diameter_nm: 100, count: [10, 20]},"
    " labelling: {plugin: volume, density_per_um3: 50000, photons_per_emitter: 40}}"
)
GOAL_PAIRS_PER_S = 100.0
GOAL_RATIO = 20.0
SEED_CODE_PAIRS_PER_S = 0.07
WARMUP = 5  # untimed pairs per process, so that caches are warm
WARMUP_INDEX = 1_000_000  # tile indices of warm-up pairs, apart from the timed ones
N_PAIRS, N_PEER = 200, 8
N_PAIRS_QUICK, N_PEER_QUICK = 12, 2
PROFILE_MAX = 50  # pairs in the profiling pass, at most
BUDGET_S = 60.0  # seconds per timed run (and profiling pass), at most
STAGES = ("structure", "labelling", "photophysics", "microscope", "noise", "ground_truth")
_ACTIVE = "_active"
_TIMEOUT_S = 900
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------- subcell side


def bench_config(overrides: tuple[str, ...] | list[str] = ()):
    """The benchmark's SimulateConfig (with ``--set``-style ``overrides``) and the name of
    its structure: beads while the mitochondria plugin is not registered."""
    structure = STRUCTURE if STRUCTURE in get_registry().names("structure") else "beads"
    extra = () if structure == STRUCTURE else (FALLBACK,)
    config = load_config(CONFIG, (*extra, *overrides)).config
    return config, config.structures[0].structure.plugin


def check_pair(field, tile_px) -> list[str]:
    """What is wrong with one simulated pair (empty when it is sane)."""
    image, masks = np.asarray(field.image.data), field.masks
    problems = []
    if image.shape[-2:] != tuple(tile_px) or image.shape[-3] != 1:
        problems.append(f"image shape {image.shape}")
    if not (np.isfinite(image).all() and np.isfinite(field.clean).all()):
        problems.append("non-finite pixels")
    elif field.clean.min() < 0:
        problems.append("negative clean photons")
    for name, array in (("semantic", masks.semantic), ("instances", masks.instances)):
        if array.shape[-2:] != tuple(tile_px):
            problems.append(f"{name} mask shape {array.shape}")
    return problems


def _worker(spec: dict) -> None:
    """One timing process (``simulate.py --worker JSON``): warm up, say ``ready`` on stdout,
    wait for a line on stdin, simulate its pairs, print a JSON summary as its last line."""
    torch.set_num_threads(spec["threads"])
    config, _ = bench_config(spec["overrides"])
    config = microscope_on(config, spec["device"]) or config
    for i in range(spec["warmup"]):
        simulate_field(config, WARMUP_INDEX + i)
    print("ready", flush=True)
    sys.stdin.readline()
    times, problems = [], []
    deadline = time.monotonic() + spec["budget_s"]
    for index in range(*spec["indices"]):
        if times and time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        field = simulate_field(config, index)
        times.append(time.perf_counter() - t0)
        problems += [f"pair {index}: {p}" for p in check_pair(field, config.tile_px)]
    # time.monotonic is one system-wide clock on Linux: ends compare across processes
    print(json.dumps({"times": times, "end": time.monotonic(), "problems": problems[:5]}))


def _failed(proc, log) -> RuntimeError:
    proc.kill()
    proc.wait()
    log.seek(0)
    return RuntimeError(f"a subcell worker failed:\n{log.read()[-3000:]}")


def time_pairs(
    overrides: tuple[str, ...] | list[str],
    n: int,
    workers: int,
    threads: int,
    warmup: int = WARMUP,
    budget_s: float = BUDGET_S,
    device: str = "cpu",
) -> dict:
    """Time ``n`` pairs of :func:`bench_config` (``overrides``) shared by ``workers`` fresh
    processes of ``threads`` torch threads each, the microscope on ``device`` where it has
    that key.

    Every process simulates ``warmup`` untimed pairs, then all start together and each
    stops early once ``budget_s`` have passed (a slow simulator still ends in minutes):
    ``n`` in the result is the number of pairs made, ``pairs_per_s`` that over the wall
    time until the last process ends. The processes are new interpreters, never forks of
    this one, whose torch thread pools may be running.
    """
    bench_config(overrides)  # a bad override fails here, in one line, not in every worker
    env = {**os.environ, **dict.fromkeys(_THREAD_VARS, str(threads))}
    procs = []
    for w in range(workers):
        spec = {
            "overrides": list(overrides),
            "indices": [w, n, workers],
            "threads": threads,
            "warmup": warmup,
            "budget_s": budget_s,
            "device": device,
        }
        log = tempfile.TemporaryFile("w+")  # stderr: a pipe could fill up and block
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": log}
        procs.append((subprocess.Popen(cmd, text=True, env=env, **pipes), log))
    try:
        for proc, log in procs:
            while (line := proc.stdout.readline()) and line.strip() != "ready":
                pass
            if not line:
                raise _failed(proc, log)
        start = time.monotonic()
        for proc, _ in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc, log in procs:
            out, _ = proc.communicate(timeout=_TIMEOUT_S)
            if proc.returncode != 0 or not out.strip():
                raise _failed(proc, log)
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    times = [t for r in results for t in r["times"]]
    wall = max(r["end"] for r in results) - start
    return {
        "n": len(times),
        "n_asked": n,
        "workers": workers,
        "threads": threads,
        "warmup_per_process": warmup,
        "median_s": statistics.median(times),
        "wall_s": wall,
        "pairs_per_s": len(times) / wall,
        "problems": [p for r in results for p in r["problems"]],
    }


class _Timed:
    """A plugin object whose method calls add their seconds to ``sink[kind]``. A call made
    inside another timed call (a ground-truth rule asking the microscope for its PSF)
    counts for the outer one only."""

    def __init__(self, obj, kind: str, sink: dict):
        self._obj, self._kind, self._sink = obj, kind, sink

    def __getattr__(self, name):
        attr = getattr(self._obj, name)
        if not callable(attr):
            return attr

        def timed(*args, **kwargs):
            if self._sink.get(_ACTIVE):
                return attr(*args, **kwargs)
            self._sink[_ACTIVE] = True
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self._sink[_ACTIVE] = False
                self._sink[self._kind] = self._sink.get(self._kind, 0.0) + dt

        return timed


class _TimingRegistry:
    """The process registry, with every plugin it creates wrapped in :class:`_Timed`."""

    def __init__(self, registry, sink: dict):
        self._registry, self._sink = registry, sink

    def create(self, kind, name, config=None):
        return _Timed(self._registry.create(kind, name, config), kind, self._sink)

    def __getattr__(self, name):
        return getattr(self._registry, name)


def profile_stages(
    config, n: int, threads: int = CORES, warmup: int = WARMUP, budget_s: float = BUDGET_S
) -> dict:
    """Median seconds per pair of each stage, of the rest of ``simulate_field`` (``other``)
    and in total, over ``n`` pairs (fewer if ``budget_s`` runs out) in this process after
    ``warmup`` pairs; ``first_pair`` is the process's first (cold) pair, ``n`` the count."""
    torch.set_num_threads(threads)
    registry = get_registry()
    t0 = time.perf_counter()
    simulate_field(config, WARMUP_INDEX)
    first = time.perf_counter() - t0
    for i in range(1, warmup):
        simulate_field(config, WARMUP_INDEX + i)
    rows = []
    deadline = time.perf_counter() + budget_s
    for index in range(n):
        if rows and time.perf_counter() > deadline:
            break
        sink: dict = {}
        t0 = time.perf_counter()
        simulate_field(config, index, registry=_TimingRegistry(registry, sink))
        total = time.perf_counter() - t0
        row = {k: sink.get(k, 0.0) for k in STAGES}
        row["other"] = total - sum(row.values())
        row["total"] = total
        rows.append(row)
    out = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    out["first_pair"] = first
    out["n"] = len(rows)
    return out


def microscope_on(config, device: str):
    """``config`` with its microscope on ``device``; None if the microscope config has no
    ``device`` key."""
    optics = config.microscope.config
    if "device" not in attrs.fields_dict(type(optics)):
        return None
    spec = attrs.evolve(config.microscope, config=attrs.evolve(optics, device=device))
    return attrs.evolve(config, microscope=spec)


def time_gpu(config, n: int, warmup: int = WARMUP) -> dict:
    """Pairs/s in this process with the microscope on CUDA; ``skipped`` says why not."""
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    cuda_config = microscope_on(config, "cuda")
    if cuda_config is None:
        return {"skipped": "the microscope config has no 'device' key"}
    for i in range(warmup):
        simulate_field(cuda_config, WARMUP_INDEX + i)
    torch.cuda.synchronize()
    times = []
    start = time.perf_counter()
    for index in range(n):
        t0 = time.perf_counter()
        simulate_field(cuda_config, index)  # returns numpy arrays: synchronised
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - start
    return {
        "device": torch.cuda.get_device_name(0),
        "n": n,
        "median_s": statistics.median(times),
        "wall_s": wall,
        "pairs_per_s": n / wall,
    }


# --------------------------------------------------------------------------- microsim side


def ensure_peer_env(venv: Path = PEER_VENV) -> Path:
    """microsim's venv, created and installed on first use; its python."""
    python = venv / "bin" / "python"
    want = PEER_REQUIREMENTS[0].split("==")[1]
    probe = [str(python), "-c", "import microsim, numba; print(microsim.__version__)"]
    if python.exists():
        got = subprocess.run(probe, capture_output=True, text=True)
        if got.returncode == 0 and got.stdout.strip() == want:
            return python
    print(f"creating microsim's venv in {venv} ({', '.join(PEER_REQUIREMENTS)}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, *PEER_REQUIREMENTS], capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise RuntimeError(f"pip install {' '.join(PEER_REQUIREMENTS)} failed: {tail[0]}")
    return python


def run_peer(python: Path, n: int, workers: int, psf_cap: bool = False, warmup: int = 1) -> dict:
    """Run ``_microsim_peer.py`` in microsim's venv; its JSON summary."""
    cmd = [str(python), str(PEER_SCRIPT), "--n", str(n), "--workers", str(workers)]
    cmd += ["--warmup", str(warmup)] + (["--psf-cap"] if psf_cap else [])
    threads = "1" if workers > 1 else str(CORES)
    env = {**os.environ, **dict.fromkeys(_THREAD_VARS, threads)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"microsim peer failed:\n{done.stderr[-2000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["psf_cap"] = psf_cap
    return row


def _peer_runs(n: int, workers: int, tile_px) -> tuple[dict, list[str]]:
    try:
        python = ensure_peer_env()
        runs = [run_peer(python, n, w, cap) for cap in (False, True) for w in sorted({1, workers})]
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
        return {"skipped": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"}, []
    problems = [
        f"microsim output {r['output_shape']}, max {r['output_max_adu']} ADU (offset 100)"
        for r in runs
        if r["output_shape"] != list(tile_px) or r["output_max_adu"] <= 100
    ]
    first = runs[0]
    return {
        "version": first["microsim_version"],
        "numpy_version": first["numpy_version"],
        "runs": runs,
    }, problems


# --------------------------------------------------------------------------- run and report


def _limit_cores(n: int) -> int:
    """Pin this process and its children to ``n`` CPUs."""
    if not hasattr(os, "sched_getaffinity"):
        return n
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > n:
        os.sched_setaffinity(0, cpus[:n])
    return min(n, len(cpus))


def run(
    n: int,
    peer_n: int,
    workers: int = CORES,
    skip_peer: bool = False,
    overrides: tuple[str, ...] = (),
    warmup: int = WARMUP,
) -> dict:
    """Measure both sides on the CPUs this process may use; a JSON-ready result (printed
    by :func:`report`). :func:`main` first pins the process to ``CORES`` CPUs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else CORES
    load_before = os.getloadavg()[0]
    config, structure = bench_config(overrides)
    # The CPU figures are CPU figures even where a microscope's device "auto" would pick CUDA.
    config = microscope_on(config, "cpu") or config
    runs = [time_pairs(overrides, n, 1, CORES, warmup)]
    if workers > 1:
        runs.append(time_pairs(overrides, n, workers, 1, warmup))
    problems = [p for row in runs for p in row.pop("problems")]
    stages = profile_stages(config, max(2, min(n, PROFILE_MAX)), warmup=max(warmup, 1))
    sub = {"runs": runs, "stages": stages}
    try:
        sub["gpu"] = time_gpu(config, n, warmup)
    except Exception as exc:  # a broken CUDA path is a finding, not a crash
        sub["gpu"] = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
        problems.append(f"CUDA run failed: {type(exc).__name__}: {exc}")
    peer, peer_problems = (
        ({"skipped": "--skip-peer"}, [])
        if skip_peer
        else _peer_runs(peer_n, workers, config.tile_px)
    )
    best = max(r["pairs_per_s"] for r in runs)
    best_peer = max((r["images_per_s"] for r in peer.get("runs", [])), default=None)
    return {
        "cores": cores,
        # 1-minute load averages: above ``cores``, other work shared the CPUs
        "load_average": [load_before, os.getloadavg()[0]],
        "subcell_version": subcell.__version__,
        "torch_version": torch.__version__,
        "structure": structure,
        "config": str(CONFIG.relative_to(HERE.parent)),
        "overrides": list(overrides),
        "tile_px": list(config.tile_px),
        "subcell": sub,
        "microsim": peer,
        "best_pairs_per_s": best,
        "best_microsim_per_s": best_peer,
        "ratio": best / best_peer if best_peer else None,
        "goals": {"pairs_per_s": GOAL_PAIRS_PER_S, "ratio": GOAL_RATIO},
        "problems": problems + peer_problems,
    }


def _row(label: str, n: int, median_s: float, per_s: float) -> str:
    return f"{label:<48}{n:>5}{median_s * 1e3:>11.1f}{per_s:>10.2f}"


def report(result: dict) -> None:
    """Print a :func:`run` result: the runs, subcell's stages, the goals."""
    sub, peer = result["subcell"], result["microsim"]
    ny, nx = result["tile_px"]
    print(
        f"Simulator speed on {result['cores']} CPU core(s): subcell {result['subcell_version']}"
        f" (torch {result['torch_version']}) vs microsim {peer.get('version', '(skipped)')}"
        f" (own venv, numpy {peer.get('numpy_version', '-')})\n"
        f"subcell pair = noisy image + clean image + semantic masks + instance labels,"
        f" {ny}x{nx} px, one plane; structure {result['structure']!r} ({result['config']}"
        + (f" + {result['overrides']}" if result["overrides"] else "")
        + ")"
    )
    if max(result["load_average"]) > result["cores"] + 0.5:
        print(
            f"NOTE: the machine was busy (1-minute load average {result['load_average'][0]:.1f}"
            f" before, {result['load_average'][1]:.1f} after, on {result['cores']} cores):"
            " other work shared the CPUs, so absolute figures are low."
        )
    if result["structure"] != STRUCTURE:
        print(f"NOTE: the {STRUCTURE!r} structure plugin is not registered: timed with beads.")
    if peer.get("runs"):
        r0 = peer["runs"][0]
        print(
            "microsim image = digital image only (no masks, no instances): MatsLines truth"
            f" {r0['truth_shape']} voxels of {[round(v, 2) for v in r0['truth_voxel_nm']]} nm,"
            " widefield 3D FFT convolution, focal plane, 4x4 binning, CMOS camera ->"
            f" {r0['output_shape']} {r0['output_dtype']}"
        )
    head = f"{'run':<48}{'n':>5}{'median ms':>11}{'per s':>10}"
    print(head + "\n" + "-" * len(head))
    for r in sub["runs"]:
        label = f"subcell, {r['workers']} process(es) x {r['threads']} thread(s)"
        print(_row(label, r["n"], r["median_s"], r["pairs_per_s"]))
    gpu = sub["gpu"]
    if "pairs_per_s" in gpu:
        print(
            _row(
                f"subcell, CUDA, {gpu['device']}"[:47],
                gpu["n"],
                gpu["median_s"],
                gpu["pairs_per_s"],
            )
        )
    else:
        print(f"{'subcell, CUDA':<48}skipped: {gpu['skipped']}")
    for r in peer.get("runs", []):
        psf = "6-AU PSF cap working" if r["psf_cap"] else "PSF as shipped"
        label = f"microsim, {r['workers']} process(es), {psf}"
        print(_row(label, r["n"], r["median_s"], r["images_per_s"]))
    if "skipped" in peer:
        print(f"{'microsim':<48}skipped: {peer['skipped']}")
    stages = sub["stages"]
    parts = ", ".join(
        f"{k} {stages[k] * 1e3:.1f} ms ({100 * stages[k] / stages['total']:.0f}%)"
        for k in (*STAGES, "other")
    )
    print(
        f"\nsubcell stages (1 process x {CORES} threads), median per pair of"
        f" {stages['n']}: {parts}; total {stages['total'] * 1e3:.1f} ms;"
        f" first pair of a fresh process {stages['first_pair'] * 1e3:.0f} ms\n"
    )
    best, ratio = result["best_pairs_per_s"], result["ratio"]
    verdict = "PASS" if best >= GOAL_PAIRS_PER_S else "MISS"
    print(
        f"{verdict}  subcell: {best:.1f} pairs/s on {result['cores']} CPU cores, best run"
        f" (goal >= {GOAL_PAIRS_PER_S:.0f}; the public seed code ~{SEED_CODE_PAIRS_PER_S}/s:"
        f" {best / SEED_CODE_PAIRS_PER_S:.0f}x that)"
    )
    if ratio is None:
        print("n/a   subcell / microsim: microsim not measured")
    else:
        verdict = "PASS" if ratio >= GOAL_RATIO else "MISS"
        print(
            f"{verdict}  subcell / microsim, best run of each: {ratio:.1f}x (goal >="
            f" {GOAL_RATIO:.0f}x; microsim best {result['best_microsim_per_s']:.2f} images/s)"
        )
    if "pairs_per_s" in gpu:
        print(f"info  subcell on CUDA: {gpu['pairs_per_s']:.1f} pairs/s")
    for what in result["problems"]:
        print(f"FAIL  {what}")


def main(
    quick: bool = False,
    n: int | None = None,
    workers: int = CORES,
    skip_peer: bool = False,
    peer_n: int | None = None,
) -> int:
    """Run, print, save ``benchmarks/out/simulate.json``; 1 if a pair or image was not sane."""
    n = n or (N_PAIRS_QUICK if quick else N_PAIRS)
    peer_n = peer_n or (N_PEER_QUICK if quick else N_PEER)
    _limit_cores(CORES)
    OUT.mkdir(parents=True, exist_ok=True)
    result = run(n, peer_n, workers=workers, skip_peer=skip_peer)
    report(result)
    (OUT / "simulate.json").write_text(json.dumps(result, indent=2))
    return 1 if result["problems"] else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        sys.exit(_worker(json.loads(sys.argv[2])))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=_positive, help=f"subcell pairs per run (default {N_PAIRS})")
    parser.add_argument(
        "--peer-n", type=_positive, help=f"microsim images per run (default {N_PEER})"
    )
    parser.add_argument("--workers", type=_positive, default=CORES, help="processes (default 2)")
    parser.add_argument("--skip-peer", action="store_true", help="do not run microsim")
    parser.add_argument("--quick", action="store_true", help="a few pairs: a smoke test")
    a = parser.parse_args()
    sys.exit(main(a.quick, a.n, a.workers, a.skip_peer, a.peer_n))
