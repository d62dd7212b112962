"""The microsim side of ``benchmarks/simulate.py``; it runs INSIDE microsim's own venv.

microsim (https://github.com/tlambert03/microsim, BSD-3-Clause) pins ``zarr < 3`` and
``numpy < 2``, so it cannot share subcell's environment: ``simulate.py`` creates a venv for
it (``microsim==0.0.12.post0`` and numba) and runs this script there, reading one JSON
object from the last line of its stdout.

What one image is (the fairest widefield equivalent of a subcell 128×128 epi tile):

- **Truth space**: ``(13, 4·128, 4·128)`` voxels of ``(100, 10.5, 10.5)`` nm: 4×
  oversampled laterally and 1300 nm deep, the slab subcell places its structures in.
- **Structure**: microsim's built-in ``MatsLines``: ``--lines`` random 3D line segments one
  voxel wide (Bresenham, compiled by numba), nearly in-plane, up to ~3 µm long: the closest
  it has to fibre-like mitochondria. It makes no masks and no instances. Its cost is a few
  ms; the number of lines does not change the cost of the rest.
- **Fluorophore / channel**: one fluorophore with a narrow emission line at 510 nm, so the
  single spectral bin microsim uses by default sits at 510 nm; a 488 nm laser; no filters.
- **Optics**: ``Widefield``: one 3D vectorial Gibson–Lanni PSF (microsim's model, emitter at
  the coverslip, shift-invariant), NA 1.4, oil 1.515, specimen index 1.47. microsim takes a
  real square root of ``n_s² − (NA ρ)²``, so with water (1.33) below NA 1.4 its whole PSF
  is NaN; 1.47 is its own default. The PSF is computed once and kept in microsim's
  in-memory cache; the first (calibration) call pays for it.
- **PSF size**: ``Settings.max_psf_radius_aus`` (6 Airy units by default) is meant to
  crop the lateral PSF, but microsim 0.0.12 passes the wavelength in nm where µm is
  expected, so the crop never happens and the PSF spans the whole 512² truth plane. With
  ``--psf-cap`` the unit is converted and the PSF is 6 Airy units (253 voxels) wide,
  which is ~2–3× faster; ``simulate.py`` times both and compares against the faster.
- **Image**: ``optical_image()`` (3D FFT convolution of the whole truth volume, every
  plane: microsim has no single-plane widefield mode), the middle (focal) plane of it,
  then ``digital_image()``: 4×4 truth voxels summed into 42 nm pixels and a CMOS camera
  (Poisson shot noise, dark current, read noise 1.5 e⁻, QE 0.8, offset 100 ADU, 1 ADU/e⁻,
  16 bit: subcell's ``poisson_gaussian`` defaults, except a full well of 65535 e⁻, which
  microsim's ADC needs for 1 ADU/e⁻ at 16 bit). The exposure is set once so that the
  brightest pixel expects ``--peak-photons``.

Each image is a fresh ``Simulation`` with its own random seed and microsim's disk caches
off (else the ground truth of a repeated seed would be read back from disk). After
``--warmup`` untimed images, ``--n`` images are timed; with ``--workers W`` that many
forked processes (each warmed up, then released together) share the ``--n`` images and the
throughput is images / wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

# Before microsim is imported: no PSF or ground-truth files under ~/.cache, no disk reads.
os.environ.setdefault("MICROSIM_CACHE", "0")

TILE_PX = 128
PIXEL_NM = 42.0
OVERSAMPLE = 4
Z_STEP_NM = 100.0
N_Z = 13  # 1300 nm, subcell's default slab


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; importable without microsim (the smoke test calls it)."""
    p = argparse.ArgumentParser(description="Time microsim widefield images (JSON on stdout).")
    p.add_argument("--n", type=int, default=10, help="timed images (default 10)")
    p.add_argument("--warmup", type=int, default=1, help="untimed images first (default 1)")
    p.add_argument("--workers", type=int, default=1, help="processes sharing the n images")
    p.add_argument("--seed", type=int, default=1, help="first image's random seed")
    p.add_argument("--tile-px", type=int, default=TILE_PX, help="output pixels per side")
    p.add_argument("--pixel-nm", type=float, default=PIXEL_NM, help="output pixel size")
    p.add_argument("--oversample", type=int, default=OVERSAMPLE, help="truth voxels per pixel")
    p.add_argument("--z-step-nm", type=float, default=Z_STEP_NM, help="truth z voxel")
    p.add_argument("--n-z", type=int, default=N_Z, help="truth z planes (odd: one is in focus)")
    p.add_argument("--na", type=float, default=1.4)
    p.add_argument("--emission-nm", type=float, default=510.0)
    p.add_argument("--immersion-index", type=float, default=1.515)
    # microsim's PSF takes a real square root of n_s^2 - (NA rho)^2: with n_s below the NA
    # (water, 1.33, at NA 1.4) the whole PSF is NaN, so its default specimen index is used.
    p.add_argument("--sample-index", type=float, default=1.47)
    p.add_argument("--lines", type=int, default=4, help="MatsLines segments per image")
    p.add_argument(
        "--psf-cap",
        action="store_true",
        help="make microsim's 6-Airy-unit lateral PSF cap take effect (see notes)",
    )
    p.add_argument(
        "--peak-photons",
        type=float,
        default=200.0,
        help="expected photons at the brightest pixel (sets the exposure)",
    )
    args = p.parse_args(argv)
    for name in ("n", "workers", "tile_px", "oversample", "n_z", "lines"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        p.error("--warmup must be at least 0")
    if args.n_z % 2 == 0:
        p.error("--n-z must be odd so that one truth plane is the focal plane")
    if args.na >= args.immersion_index:
        p.error(f"--na ({args.na}) must be below --immersion-index ({args.immersion_index})")
    if args.sample_index < args.na:
        p.error(
            f"--sample-index ({args.sample_index}) below --na ({args.na}): microsim's PSF is NaN"
        )
    return args


def _cap_psf() -> None:
    """Make ``Settings.max_psf_radius_aus`` take effect.

    microsim 0.0.12 passes the emission wavelength in nm to ``_pick_nx``, which expects um,
    so the 6-Airy-unit cap is ~1000x too large and the PSF always spans the whole truth
    plane. This wrapper converts the unit, which is what the setting intends.
    """
    from microsim.schema.modality import _simple_psf

    original = _simple_psf._pick_nx
    if getattr(original, "_capped", False):
        return

    def pick_nx(nx, dx, max_au_relative, wavelength_nm, na):
        return original(nx, dx, max_au_relative, wavelength_nm * 1e-3, na)

    pick_nx._capped = True
    _simple_psf._pick_nx = pick_nx


def _parts(args: argparse.Namespace) -> dict:
    """The seed-independent pieces of every Simulation (built once, like a config)."""
    import numpy as np
    from microsim import schema as ms

    if args.psf_cap:
        _cap_psf()

    w = np.arange(400.0, 651.0)
    emission = np.exp(-0.5 * ((w - args.emission_nm) / 2.0) ** 2)
    excitation = np.exp(-0.5 * ((w - 488.0) / 10.0) ** 2)
    fluor = ms.Fluorophore(
        name="em510",
        excitation_spectrum=ms.Spectrum(wavelength=w, intensity=excitation),
        emission_spectrum=ms.Spectrum(wavelength=w, intensity=emission),
        extinction_coefficient=80_000,
        quantum_yield=0.8,
    )
    channel = ms.OpticalConfig(name="wf510", lights=[ms.LightSource.laser(488, power=1.0)])
    camera = ms.CameraCMOS(
        qe=0.8, read_noise=1.5, offset=100, bit_depth=16, full_well=65535, gain=1.0
    )
    um = 1e-3
    dxy = args.pixel_nm / args.oversample * um
    n = args.tile_px * args.oversample
    return {
        "fluor": fluor,
        "channel": channel,
        "camera": camera,
        "lens": ms.ObjectiveLens(
            numerical_aperture=args.na,
            immersion_medium_ri=args.immersion_index,
            immersion_medium_ri_spec=args.immersion_index,
            specimen_ri=args.sample_index,
        ),
        "truth": {"shape": (args.n_z, n, n), "scale": (args.z_step_nm * um, dxy, dxy)},
        "output": {
            "shape": (1, args.tile_px, args.tile_px),
            "scale": (args.z_step_nm * um, args.pixel_nm * um, args.pixel_nm * um),
        },
    }


def simulation(args: argparse.Namespace, parts: dict, seed: int, exposure_ms: float):
    """One microsim ``Simulation``: MatsLines in a fine truth space, widefield, CMOS."""
    from microsim import schema as ms

    n_xy = args.tile_px * args.oversample
    return ms.Simulation(
        truth_space=ms.ShapeScaleSpace(**parts["truth"]),
        output_space=ms.ShapeScaleSpace(**parts["output"]),
        sample=ms.Sample(
            labels=[
                ms.FluorophoreDistribution(
                    # numlines = int(n_x * density): exactly args.lines segments
                    distribution=ms.MatsLines(density=(args.lines + 0.5) / n_xy),
                    fluorophore=parts["fluor"],
                )
            ]
        ),
        modality=ms.Widefield(),
        objective_lens=parts["lens"],
        channels=[parts["channel"]],
        detector=parts["camera"],
        exposure_ms=exposure_ms,
        settings=ms.Settings(
            np_backend="numpy", random_seed=seed, cache=False, float_dtype="float32"
        ),
    )


def render(args, parts, seed: int, exposure_ms: float):
    """One image: (digital uint16 (Y, X), optical photons/s at focus (Y, X), stage seconds)."""
    import numpy as np

    t0 = time.perf_counter()
    sim = simulation(args, parts, seed, exposure_ms)
    t1 = time.perf_counter()
    sim.ground_truth()
    t2 = time.perf_counter()
    optical = sim.optical_image()  # (C, Z, Y, X) photons/s on the truth grid
    plane = optical.isel(z=[args.n_z // 2])
    t3 = time.perf_counter()
    digital = sim.digital_image(plane)  # 4x4 binning + camera
    t4 = time.perf_counter()
    stages = {"build": t1 - t0, "truth": t2 - t1, "optical": t3 - t2, "digital": t4 - t3}
    return np.asarray(digital)[0, 0], np.asarray(plane)[0, 0], stages


def _calibrate(args, parts) -> float:
    """Exposure (ms) that gives about ``peak_photons`` at the brightest output pixel."""
    import numpy as np

    _, plane, _ = render(args, parts, args.seed + 200_000, 100.0)
    k = args.oversample
    binned = plane.reshape(args.tile_px, k, args.tile_px, k).sum(axis=(1, 3))
    peak = float(np.max(binned))  # photons/s
    return 1000.0 * args.peak_photons / peak if peak > 0 else 100.0


def _worker(args, parts, exposure_ms, seeds, barrier, queue) -> None:
    for s in range(args.warmup):
        render(args, parts, args.seed + 100_000 + s, exposure_ms)
    barrier.wait()
    times, stages = [], []
    for seed in seeds:
        t0 = time.perf_counter()
        _, _, st = render(args, parts, seed, exposure_ms)
        times.append(time.perf_counter() - t0)
        stages.append(st)
    queue.put((times, stages, time.perf_counter()))


def run(args: argparse.Namespace) -> dict:
    """Time ``args.n`` images on ``args.workers`` processes; a JSON-ready summary."""
    import multiprocessing as mp

    import microsim
    import numpy as np

    parts = _parts(args)
    t0 = time.perf_counter()
    exposure_ms = _calibrate(args, parts)  # the first call: PSF, numba, imports
    first_s = time.perf_counter() - t0
    seeds = [args.seed + i for i in range(args.n)]
    if args.workers == 1:
        for s in range(args.warmup):
            render(args, parts, args.seed + 100_000 + s, exposure_ms)
        times, stages = [], []
        start = time.perf_counter()
        for seed in seeds:
            t = time.perf_counter()
            _, _, st = render(args, parts, seed, exposure_ms)
            times.append(time.perf_counter() - t)
            stages.append(st)
        wall = time.perf_counter() - start
    else:
        ctx = mp.get_context("fork")  # the children inherit the warm PSF cache
        barrier, queue = ctx.Barrier(args.workers + 1), ctx.Queue()
        procs = [
            ctx.Process(
                target=_worker,
                args=(args, parts, exposure_ms, seeds[w :: args.workers], barrier, queue),
            )
            for w in range(args.workers)
        ]
        for proc in procs:
            proc.start()
        barrier.wait()
        start = time.perf_counter()
        results = [queue.get() for _ in procs]
        for proc in procs:
            proc.join()
        wall = max(end for _, _, end in results) - start
        times = [t for r in results for t in r[0]]
        stages = [s for r in results for s in r[1]]
    image, _, _ = render(args, parts, args.seed, exposure_ms)
    return {
        "microsim_version": microsim.__version__,
        "numpy_version": np.__version__,
        "numba": _has_numba(),
        "n": args.n,
        "workers": args.workers,
        "first_call_s": first_s,
        "exposure_ms": exposure_ms,
        "per_image_s": times,
        "median_s": statistics.median(times),
        "wall_s": wall,
        "images_per_s": args.n / wall,
        "stage_median_s": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
        "truth_shape": list(parts["truth"]["shape"]),
        "truth_voxel_nm": [v * 1e3 for v in parts["truth"]["scale"]],
        "output_shape": list(image.shape),
        "output_dtype": str(image.dtype),
        "output_mean_adu": float(image.mean()),
        "output_max_adu": float(image.max()),
    }


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(json.dumps(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
