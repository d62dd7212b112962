"""Run the benchmarks: ``main(quick=...)`` of every ``benchmarks/*.py`` module, in name order.

    .venv/bin/python benchmarks/run.py            # full size (``make bench``)
    .venv/bin/python benchmarks/run.py --quick    # small size, a smoke test
    .venv/bin/python benchmarks/run.py omezarr_io # only the named module(s)

The process is pinned to ``--cores`` CPUs (default 2) and thread pools are capped to as many
before any benchmark module is imported. A module's ``main`` returns 0 when its checks pass;
the exit status is 1 if any module returned non-zero or raised.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def discover() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if p.name != "run.py" and not p.name.startswith("_"))


def limit_cores(n: int) -> int:
    """Pin this process to ``n`` CPUs (threads started later inherit it); cap thread pools."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    if not hasattr(os, "sched_getaffinity"):
        return n
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > n:
        os.sched_setaffinity(0, cpus[:n])
    return min(n, len(cpus))


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run subcell's benchmarks.")
    parser.add_argument("names", nargs="*", help="module names (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--cores", type=int, default=2, help="CPUs to run on (default 2)")
    args = parser.parse_args(argv)
    cores = limit_cores(args.cores)
    paths = discover()
    if args.names:
        unknown = set(args.names) - {p.stem for p in paths}
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
        paths = [p for p in paths if p.stem in args.names]
    results = []
    for path in paths:
        print(f"=== {path.stem} ({'quick' if args.quick else 'full'}, {cores} cores)", flush=True)
        t0 = time.perf_counter()
        try:
            module = load(path)
            run = getattr(module, "main", None)
            if run is None:
                print(f"{path.name}: no main(); skipped")
                continue
            if "quick" in inspect.signature(run).parameters:
                rc = run(quick=args.quick)
            else:
                rc = run()
            rc = int(rc or 0)
        except Exception:
            traceback.print_exc()
            rc = 1
        results.append((path.stem, rc, time.perf_counter() - t0))
        print(flush=True)
    for name, rc, seconds in results:
        print(f"{'ok  ' if rc == 0 else 'FAIL'}  {name}  ({seconds:.1f} s)")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
