"""OME-Zarr 0.5 write and read: subcell against ome-zarr-py, in one run on the same data.

Both libraries write the same uint16 CZYX volume (smoothed noise, Gaussian blobs and shot
noise from a fixed seed) as OME-Zarr 0.5 on zarr v3, from numpy and from dask, with 1 and 3
resolution levels, with the same chunk shape per level and zarr's default codecs (checked
from the written metadata, not assumed). Reading is: open the image and compute the whole
level-0 array into memory. Each figure is the median of 3 writes or 5 reads, the two libraries
interleaved (and their order alternated) so that drift hits both alike.

Then checks, each printed PASS/FAIL: identical chunk and codec settings; level 0 of every
output equals the source; the downsampled levels of the two libraries agree to 1 grey
level; subcell reads ome-zarr-py's output and ome-zarr-py's ``Reader`` reads subcell's.

Run with ``python benchmarks/run.py [--quick]`` or ``python benchmarks/omezarr_io.py``.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import ome_zarr
import zarr
from ome_zarr.format import FormatV05
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr.scale import Methods
from ome_zarr.writer import write_image
from scipy import ndimage

import subcell
from subcell.core.model import Volume
from subcell.core.omezarr import read_ome_zarr, write_ome_zarr

SHAPE = (1, 64, 1024, 1024)  # C, Z, Y, X: 128 MiB of uint16
SHAPE_QUICK = (1, 16, 512, 512)  # 8 MiB
CHUNKS = (1, 16, 256, 256)  # zarr chunk = dask chunk, both libraries, capped per level
VOXEL_NM = (200.0, 65.0, 65.0)  # z, y, x
LEVELS = (1, 3)
REPEATS = 3  # writes
READ_REPEATS = 5  # reads are short, so noisier
CORES = 2
SEED = 20240601
OUT = Path(__file__).resolve().parent / "out"
LIBS = ("subcell", "ome-zarr-py")


# --------------------------------------------------------------------------- data


def make_volume(shape: tuple[int, int, int, int], seed: int = SEED) -> np.ndarray:
    """Microscopy-like uint16 CZYX: smooth background, blobs, shot and read noise."""
    rng = np.random.default_rng(seed)
    c, nz, ny, nx = shape
    out = np.empty(shape, dtype=np.uint16)
    for ch in range(c):
        # Low-frequency "tissue" background: smoothed noise on a coarse grid, upsampled.
        coarse = rng.standard_normal((max(nz // 4, 2), ny // 8, nx // 8), dtype=np.float32)
        coarse = ndimage.gaussian_filter(coarse, (1.0, 2.0, 2.0))
        factors = [n / s for n, s in zip((nz, ny, nx), coarse.shape, strict=True)]
        bg = ndimage.zoom(coarse, factors, order=1, grid_mode=True, mode="nearest")
        bg = bg[:nz, :ny, :nx]
        bg -= bg.min()
        bg *= 300.0 / max(float(bg.max()), 1e-6)
        img = bg + 100.0  # camera offset
        # Blobs (vesicles, puncta): anisotropic Gaussians, 1 per ~170k voxels.
        n_blobs = max(16, nz * ny * nx // 170_000)
        centres = rng.random((n_blobs, 3)) * (nz, ny, nx)
        amps = rng.uniform(300.0, 3000.0, n_blobs)
        sigmas = rng.uniform(1.5, 5.0, n_blobs)
        for (z, y, x), a, s in zip(centres, amps, sigmas, strict=True):
            r = int(3 * s) + 1
            lo = (max(int(z) - r // 2, 0), max(int(y) - r, 0), max(int(x) - r, 0))
            hi = (min(int(z) + r // 2 + 1, nz), min(int(y) + r + 1, ny), min(int(x) + r + 1, nx))
            zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            d2 = (2.0 * (zz - z)) ** 2 + (yy - y) ** 2 + (xx - x) ** 2
            img[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] += (
                a * np.exp(-d2 / (2 * s * s))
            ).astype(np.float32)
        # Shot noise (Gaussian approximation of Poisson) plus read noise.
        noise = rng.standard_normal((nz, ny, nx), dtype=np.float32)
        img += noise * np.sqrt(img + 4.0)
        np.clip(img, 0, 65535, out=img)
        out[ch] = np.rint(img)
    return out


def level_shapes(shape, n_levels):
    """Shapes of levels 0..n-1: Y and X halved per level (both libraries agree)."""
    c, z, y, x = shape
    return [(c, z, y // 2**k, x // 2**k) for k in range(n_levels)]


def level_chunks(shape):
    return tuple(min(c, s) for c, s in zip(CHUNKS, shape, strict=True))


# --------------------------------------------------------------------------- the two libraries


def write_subcell(data, path: Path, n_levels: int) -> None:
    write_ome_zarr(Volume(data, VOXEL_NM), path, chunks=CHUNKS, n_levels=n_levels)


def write_peer(data, path: Path, n_levels: int) -> None:
    """ome-zarr-py 0.18: parse_url + write_image, OME-Zarr 0.5, 2x2 local-mean pyramid."""
    fmt = FormatV05()
    store = parse_url(str(path), mode="w", fmt=fmt).store
    root = zarr.open_group(store=store, mode="a", zarr_format=3)
    write_image(
        data,
        root,
        scale_factors=[2**k for k in range(1, n_levels)],
        method=Methods.LOCAL_MEAN,
        fmt=fmt,
        axes=["c", "z", "y", "x"],
        scale={"c": 1.0, "z": VOXEL_NM[0], "y": VOXEL_NM[1], "x": VOXEL_NM[2]},
        axes_units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
        storage_options=[{"chunks": level_chunks(s)} for s in level_shapes(data.shape, n_levels)],
    )


def read_subcell(path: Path) -> np.ndarray:
    return np.asarray(read_ome_zarr(path, level=0).data.compute())


def read_peer(path: Path) -> np.ndarray:
    node = next(iter(Reader(parse_url(str(path)))()))
    return np.asarray(node.data[0].compute())


WRITERS: dict[str, Callable] = {"subcell": write_subcell, "ome-zarr-py": write_peer}
READERS: dict[str, Callable] = {"subcell": read_subcell, "ome-zarr-py": read_peer}


# --------------------------------------------------------------------------- helpers


def _limit_cores(n: int) -> int:
    """Pin this process (and the threads it starts later) to ``n`` CPUs; dask to as many."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cpus and len(cpus) > n:
        os.sched_setaffinity(0, cpus[:n])
        cpus = cpus[:n]
    used = len(cpus) or n
    dask.config.set(scheduler="threads", num_workers=used)
    return used


def _arrays(path: Path) -> list[zarr.Array]:
    """The image's level arrays in order, read with plain zarr (no OME reader)."""
    group = zarr.open_group(str(path), mode="r")
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    return [group[d["path"]] for d in datasets]


def _settings(array: zarr.Array) -> dict:
    meta = array.metadata.to_dict()
    return {k: meta.get(k) for k in ("chunk_grid", "codecs", "data_type", "fill_value")}


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


_WARNINGS: set[str] = set()  # what the libraries warned about while timed, printed once


def _timed(fn, *args) -> float:
    gc.collect()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(*args)
    dt = time.perf_counter() - t0
    for w in caught:
        _WARNINGS.add(f"{w.category.__name__}: {str(w.message).strip()[:160]}")
    return dt


class Checks:
    def __init__(self) -> None:
        self.rows: list[tuple[bool, str, str]] = []

    def add(self, ok: bool, what: str, detail: str = "") -> bool:
        self.rows.append((bool(ok), what, detail))
        return bool(ok)

    def run(self, what: str, fn) -> None:
        """``fn`` returns (ok, detail); an exception is a FAIL that names it."""
        try:
            ok, detail = fn()
        except Exception as exc:  # report exactly what failed, never hide it
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        self.add(ok, what, detail)

    @property
    def ok(self) -> bool:
        return all(ok for ok, _, _ in self.rows)


# --------------------------------------------------------------------------- benchmark


def _write_benchmarks(source, work: Path, checks: Checks, repeats: int):
    """Time every writer on every case; check each first output, keep the 3-level ones."""
    times: dict[tuple[str, str, int], list[float]] = {}
    kept: dict[tuple[str, str, int], Path] = {}
    pyramids: dict[tuple[str, str], list[np.ndarray]] = {}
    settings: dict[tuple[str, int, str], dict] = {}
    inputs = {
        "numpy": lambda: source,
        "dask": lambda: da.from_array(source, chunks=CHUNKS),
    }
    for kind, make_input in inputs.items():
        for n_levels in LEVELS:
            for rep in range(repeats):
                order = LIBS if rep % 2 == 0 else LIBS[::-1]
                for lib in order:
                    data = make_input()
                    path = work / f"{lib}-{kind}-{n_levels}-{rep}.ome.zarr"
                    dt = _timed(WRITERS[lib], data, path, n_levels)
                    times.setdefault((lib, kind, n_levels), []).append(dt)
                    if rep == 0:
                        _check_output(path, lib, kind, n_levels, source, checks, settings)
                        if n_levels == max(LEVELS):
                            pyramids[(lib, kind)] = [a[...] for a in _arrays(path)[1:]]
                    if rep == 0 and kind == "numpy" and n_levels == max(LEVELS):
                        kept[(lib, kind, n_levels)] = path
                    else:
                        shutil.rmtree(path)
    # The same chunk grid, codecs, data type and fill value on every level, both libraries.
    for n_levels in LEVELS:
        for kind in inputs:
            a = settings.get(("subcell", n_levels, kind))
            b = settings.get(("ome-zarr-py", n_levels, kind))
            checks.add(
                a is not None and a == b,
                f"same chunks/codecs/dtype/fill per level ({kind}, {n_levels} level(s))",
                "" if a == b else f"subcell {a} != ome-zarr-py {b}",
            )
    # Downsampled levels: each library's own rule, exactly, from its own previous level
    # (subcell rounds the 2x2 mean, ome-zarr-py's local_mean truncates it), and how far apart.
    for kind in inputs:
        got = {lib: pyramids.get((lib, kind)) for lib in LIBS}
        if any(v is None for v in got.values()):
            checks.add(False, f"levels 1-{max(LEVELS) - 1} ({kind})", "an output is missing")
            continue
        for lib, rule in (("subcell", np.round), ("ome-zarr-py", np.floor)):
            checks.run(
                f"{lib} levels 1-{max(LEVELS) - 1} = {rule.__name__}(2x2 mean of the level"
                f" above) ({kind})",
                lambda lib=lib, rule=rule, got=got: _check_pyramid(source, got[lib], rule),
            )
        diffs = [_max_diff(a, b) for a, b in zip(got["subcell"], got["ome-zarr-py"], strict=True)]
        frac = [
            float((a != b).mean()) if a.shape == b.shape else 1.0
            for a, b in zip(got["subcell"], got["ome-zarr-py"], strict=True)
        ]
        checks.add(
            all(0 <= d <= k for k, d in enumerate(diffs, start=1)),
            f"levels 1-{max(LEVELS) - 1} of the two agree within k grey levels at level k ({kind})",
            f"max |diff| {diffs}, fraction of voxels differing {[f'{f:.2f}' for f in frac]}",
        )
    return times, kept


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    if a.shape != b.shape:
        return -1
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max())


def _check_pyramid(source: np.ndarray, levels: list[np.ndarray], rule) -> tuple[bool, str]:
    above, bad = source, []
    for k, level in enumerate(levels, start=1):
        c, z, y, x = above.shape
        blocks = above[..., : y // 2 * 2, : x // 2 * 2].reshape(c, z, y // 2, 2, x // 2, 2)
        want = rule(blocks.mean(axis=(3, 5), dtype=np.float64)).astype(source.dtype)
        if want.shape != level.shape or not np.array_equal(want, level):
            bad.append(f"level {k}: max |diff| {_max_diff(want, level)}")
        above = level
    return not bad, "; ".join(bad) or "bit for bit"


def _check_output(path, lib, kind, n_levels, source, checks: Checks, settings) -> None:
    def level0():
        arrays = _arrays(path)
        shapes = [tuple(a.shape) for a in arrays]
        want = level_shapes(source.shape, n_levels)
        if shapes != want:
            return False, f"level shapes {shapes}, expected {want}"
        return np.array_equal(arrays[0][...], source), "level 0 == source, bit for bit"

    checks.run(f"{lib} output identical to source ({kind}, {n_levels} level(s))", level0)
    try:
        settings[(lib, n_levels, kind)] = [_settings(a) for a in _arrays(path)]
    except Exception:  # reported by the 'same settings' check as missing
        pass


def _read_benchmarks(kept, repeats: int):
    """Each reader on each library's file: open + full level 0 into memory."""
    times: dict[tuple[str, str], list[float]] = {}
    files = {lib: kept[(lib, "numpy", max(LEVELS))] for lib in LIBS}
    for rep in range(repeats):
        order = LIBS if rep % 2 == 0 else LIBS[::-1]
        for writer in LIBS:
            for reader in order:
                times.setdefault((reader, writer), []).append(
                    _timed(READERS[reader], files[writer])
                )
    return times


def _cross_checks(kept, source, checks: Checks) -> None:
    n = max(LEVELS)
    sub, peer = kept[("subcell", "numpy", n)], kept[("ome-zarr-py", "numpy", n)]
    shapes = level_shapes(source.shape, n)

    def subcell_reads_peer():
        problems = []
        for k in range(n):
            vol = read_ome_zarr(peer, level=k)
            want_voxel = (VOXEL_NM[0], VOXEL_NM[1] * 2**k, VOXEL_NM[2] * 2**k)
            if vol.axes != "CZYX" or vol.shape != shapes[k]:
                problems.append(f"level {k}: axes {vol.axes} shape {vol.shape}")
            if not np.allclose(vol.voxel_nm, want_voxel):
                problems.append(f"level {k}: voxel_nm {vol.voxel_nm}, expected {want_voxel}")
            if k == 0 and not np.array_equal(np.asarray(vol.data), source):
                problems.append("level 0 pixels differ from the source")
        return not problems, "; ".join(problems) or (
            f"{n} levels, axes CZYX, voxel_nm {VOXEL_NM} (x2 per level in y, x), pixels equal"
        )

    def peer_reads_subcell():
        nodes = list(Reader(parse_url(str(sub)))())
        if not nodes:
            return False, "Reader found no OME-Zarr node"
        node = nodes[0]
        problems = []
        names = [a["name"] if isinstance(a, dict) else a for a in node.metadata.get("axes", [])]
        if names != ["c", "z", "y", "x"]:
            problems.append(f"axes {names}")
        got = [tuple(d.shape) for d in node.data]
        if got != shapes:
            problems.append(f"level shapes {got}, expected {shapes}")
        scales = [t[0]["scale"] for t in node.metadata.get("coordinateTransformations", [])]
        want = [[1.0, VOXEL_NM[0], VOXEL_NM[1] * 2**k, VOXEL_NM[2] * 2**k] for k in range(n)]
        if not (len(scales) == n and np.allclose(scales, want)):
            problems.append(f"scales {scales}, expected {want}")
        if node.data and not np.array_equal(np.asarray(node.data[0]), source):
            problems.append("level 0 pixels differ from the source")
        return not problems, "; ".join(problems) or (
            f"{len(node.data)} levels, axes c,z,y,x, scales and pixels as written, "
            f"channels {node.metadata.get('channel_names')}"
        )

    def peer_classes_read_subcell():
        from ome_zarr.classes import OMEZarrMultiscale

        ms = OMEZarrMultiscale.from_ome_zarr(str(sub))
        got = [tuple(im.data.shape) for im in ms.images]
        return got == shapes, f"level shapes {got}"

    def peer_classes_read_peer():
        from ome_zarr.classes import OMEZarrMultiscale

        ms = OMEZarrMultiscale.from_ome_zarr(str(peer))
        got = [tuple(im.data.shape) for im in ms.images]
        return got == shapes, f"level shapes {got}"

    def models_validate(path):
        def check():
            from ome_zarr_models.v05.image import Image

            image = Image.from_zarr(zarr.open_group(str(path), mode="r"))
            return True, f"{len(image.datasets[0])} datasets"

        return check

    checks.run("subcell read_ome_zarr reads ome-zarr-py's output", subcell_reads_peer)
    checks.run("ome-zarr-py Reader reads subcell's output", peer_reads_subcell)
    checks.run(
        "ome-zarr-py OMEZarrMultiscale.from_ome_zarr reads subcell's output",
        peer_classes_read_subcell,
    )
    checks.run(
        "ome-zarr-py OMEZarrMultiscale.from_ome_zarr reads its own output",
        peer_classes_read_peer,
    )
    checks.run("ome-zarr-models v05 Image validates subcell's output", models_validate(sub))
    checks.run("ome-zarr-models v05 Image validates ome-zarr-py's output", models_validate(peer))


def _warm_up(work: Path) -> None:
    """One small untimed round per library so that lazy imports and caches are not timed."""
    small = make_volume((1, 16, 256, 256), seed=1)
    for lib in LIBS:
        for data in (small, da.from_array(small, chunks=CHUNKS)):
            path = work / f"warm-{lib}.ome.zarr"
            _timed(WRITERS[lib], data, path, max(LEVELS))
            _timed(READERS[lib], path)
            shutil.rmtree(path)


# --------------------------------------------------------------------------- report


def _fmt_row(label, a, b, nbytes):
    ma, mb = statistics.median(a), statistics.median(b)
    return (
        f"{label:<34}{ma:>8.3f} {nbytes / ma / 1e6:>7.0f}   {mb:>8.3f} {nbytes / mb / 1e6:>7.0f}"
        f"   {ma / mb:>6.2f}   {min(a):.3f}-{max(a):.3f} | {min(b):.3f}-{max(b):.3f}"
    )


def main(quick: bool = False) -> int:
    """Run the benchmark; 0 if every check passed, 1 otherwise."""
    cores = _limit_cores(CORES)
    shape = SHAPE_QUICK if quick else SHAPE
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / f"omezarr_io-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    work.mkdir()
    checks = Checks()
    try:
        t0 = time.perf_counter()
        source = make_volume(shape)
        t_data = time.perf_counter() - t0
        _warm_up(work)
        wtimes, kept = _write_benchmarks(source, work, checks, REPEATS)
        if any((lib, "numpy", max(LEVELS)) not in kept for lib in LIBS):
            raise RuntimeError("a 3-level output is missing; cannot run the read benchmark")
        rtimes = _read_benchmarks(kept, READ_REPEATS)
        _cross_checks(kept, source, checks)
        sizes = {lib: _du(kept[(lib, "numpy", max(LEVELS))]) for lib in LIBS}
        codecs = _settings(_arrays(kept[("subcell", "numpy", max(LEVELS))])[0])["codecs"]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    nbytes = source.nbytes
    codec_names = "+".join(
        c["name"] + (f"(level={c['configuration']['level']})" if c["name"] == "zstd" else "")
        for c in codecs
    )
    print(
        f"OME-Zarr 0.5 I/O: subcell {subcell.__version__} vs ome-zarr-py {ome_zarr.__version__}"
        f" (zarr {zarr.__version__}, dask {dask.__version__})\n"
        f"data uint16 CZYX {shape} = {nbytes / 1e6:.1f} MB (made in {t_data:.1f} s),"
        f" chunks {CHUNKS}, codecs {codec_names}, {cores} core(s),"
        f" median of {REPEATS} writes / {READ_REPEATS} reads\n"
        f"3-level output on disk: subcell {sizes['subcell'] / 1e6:.1f} MB,"
        f" ome-zarr-py {sizes['ome-zarr-py'] / 1e6:.1f} MB;"
        " MB/s = level-0 bytes (uncompressed) / time; ratio = subcell time / ome-zarr-py time"
    )
    head = f"{'operation':<34}{'subcell':>8} {'MB/s':>7}   {'ome-zarr':>8} {'MB/s':>7}   ratio"
    print(head + "   range s (subcell | ome-zarr-py)")
    print("-" * (len(head) + 36))
    for kind in ("numpy", "dask"):
        for n_levels in LEVELS:
            label = f"write from {kind}, {n_levels} level{'s' if n_levels > 1 else ''}"
            print(
                _fmt_row(
                    label,
                    wtimes[("subcell", kind, n_levels)],
                    wtimes[("ome-zarr-py", kind, n_levels)],
                    nbytes,
                )
            )
    for writer in LIBS:
        label = f"read level 0, file by {writer}"
        print(_fmt_row(label, rtimes[("subcell", writer)], rtimes[("ome-zarr-py", writer)], nbytes))
    print()
    for ok, what, detail in checks.rows:
        print(f"{'PASS' if ok else 'FAIL'}  {what}" + (f"  [{detail}]" if detail else ""))
    for w in sorted(_WARNINGS):
        print(f"note: a library warned: {w}")
    return 0 if checks.ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"small volume {SHAPE_QUICK}")
    sys.exit(main(quick=parser.parse_args().quick))
