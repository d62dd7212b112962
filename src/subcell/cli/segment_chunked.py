"""The chunked path of ``subcell segment``: volumes larger than memory, into OME-Zarr.

``subcell segment`` takes this path when ``--out`` ends in ``.zarr`` or any of ``--block``,
``--workers``, ``--scheduler`` is given. :func:`add_chunked_options` adds the options to the
segment command's parser, :func:`wants_chunked` says whether parsed arguments ask for this
path, and :func:`run_chunked` runs it.
"""

from __future__ import annotations

import argparse

__all__ = ["add_chunked_options", "parse_block", "run_chunked", "wants_chunked"]


def parse_block(text: str) -> tuple[int, int, int]:
    """``"Z,Y,X"`` (or ``"Y,X"``, one plane deep) as three positive ints, for argparse."""
    try:
        sizes = tuple(int(v) for v in str(text).replace("x", ",").split(","))
    except ValueError:
        sizes = ()
    if len(sizes) == 2:
        sizes = (1, *sizes)
    if len(sizes) != 3 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"--block must be Z,Y,X (or Y,X) positive voxel counts, got {text!r}"
        )
    return sizes


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"--workers must be a whole number >= 0, got {text!r}")
    return value


def add_chunked_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--block``, ``--workers``, ``--scheduler``, ``--overwrite`` and ``--axes``."""
    group = parser.add_argument_group(
        "chunked (larger than memory)",
        "taken when --out ends in .zarr, or with --block, --workers or --scheduler: the input "
        "(zarr, OME-Zarr, TIFF, .npy) is read lazily and segmented block by block into an "
        "OME-Zarr group (probabilities, labels/mask, with --instances labels/instances); "
        "rerunning the same command resumes an interrupted run",
    )
    group.add_argument(
        "--block",
        type=parse_block,
        metavar="Z,Y,X",
        help="block core size in voxels (default: a few million voxels on the window grid)",
    )
    group.add_argument(
        "--workers",
        type=_non_negative,
        default=0,
        metavar="N",
        help="run on a local dask.distributed cluster of N worker processes (default: this "
        "process)",
    )
    group.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on an existing dask.distributed cluster, e.g. tcp://10.0.0.5:8786",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output of a different job (never a non-zarr path)",
    )
    group.add_argument(
        "--axes",
        default="",
        metavar="ZYX",
        help="axis letters of the input (T, C, Z, Y, X), overriding the file's",
    )


def wants_chunked(args: argparse.Namespace) -> bool:
    """Whether parsed ``subcell segment`` arguments ask for the chunked path."""
    return (
        str(args.out).lower().rstrip("/").endswith(".zarr")
        or getattr(args, "block", None) is not None
        or bool(getattr(args, "workers", 0))
        or bool(getattr(args, "scheduler", None))
    )


def run_chunked(args: argparse.Namespace, registry=None) -> int:
    """Run the chunked segmentation the arguments describe; print one summary line."""
    from subcell.cli._common import registry as cli_registry
    from subcell.core.errors import SubcellError
    from subcell.pipeline.chunked import segment_chunked

    if not str(args.out).lower().rstrip("/").endswith(".zarr"):
        raise SubcellError(
            f"{args.out}: the chunked path (--block, --workers, --scheduler) writes an "
            f"OME-Zarr group; name the output .zarr"
        )
    if getattr(args, "overlay", None):
        raise SubcellError("--overlay is for images that fit in memory; not with a .zarr output")
    if args.pixel_nm is not None and not args.pixel_nm > 0:
        raise SubcellError(f"--pixel-nm must be a positive number of nm, got {args.pixel_nm}")
    result = segment_chunked(
        args.image,
        args.model,
        args.out,
        block=args.block,
        instances=args.instances,
        workers=args.workers,
        scheduler=args.scheduler,
        device=args.device,
        pixel_nm=args.pixel_nm,
        axes=args.axes,
        overwrite=args.overwrite,
        registry=registry if registry is not None else cli_registry(),
        tta=getattr(args, "tta", False),
    )
    print(summary(result))
    return 0


def summary(result) -> str:
    """One line: blocks, grid size, objects, time."""
    shape = "x".join(str(s) for s in result.plan.shape if s > 1) or "1"
    objects = "" if result.n_instances is None else f", {result.n_instances} objects"
    if result.status == "already complete":
        return f"{result.path}: already complete ({result.n_blocks} blocks{objects}); nothing to do"
    resumed = result.n_blocks - result.blocks_run
    note = f", {resumed} resumed" if resumed else ""
    rate = result.voxels / max(result.seconds, 1e-9) / 1e6
    return (
        f"{result.path}: {result.n_blocks} blocks{note} of {'x'.join(map(str, result.plan.block))}"
        f" over {shape} voxels{objects} ({', '.join(result.class_names)}; "
        f"{result.seconds:.1f} s, {rate:.2f} Mvoxel/s)"
    )
