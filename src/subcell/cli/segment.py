"""``subcell segment``: masks of an image with a model or a baseline; in memory, or block by
block into OME-Zarr for volumes larger than memory (:mod:`subcell.cli.segment_chunked`)."""

from __future__ import annotations

from pathlib import Path

from subcell.cli._common import command, registry
from subcell.cli.segment_chunked import add_chunked_options, run_chunked, wants_chunked


def add_commands(commands) -> None:
    """Add the segment command."""
    segment = command(
        commands,
        "segment",
        "segment an image with a model (bundled name or directory) or a classical baseline",
        _cmd_segment,
    )
    segment.add_argument(
        "image",
        metavar="IMAGE",
        help="TIFF, PNG, NumPy or OME-Zarr image (2D or 3D), or a simulated dataset (DATA.zarr)",
    )
    segment.add_argument(
        "--model",
        required=True,
        metavar="NAME|DIR|BASELINE",
        help="model directory, bundled model (subcell models) or segmenter (e.g. otsu)",
    )
    segment.add_argument(
        "--out",
        required=True,
        metavar="OUT",
        help="mask file: .tif, .tiff, .npy or .png; or OUT.zarr (OME-Zarr, chunked path)",
    )
    segment.add_argument(
        "--pixel-nm",
        type=float,
        metavar="P",
        help="the image's pixel size in nm (default: from the file's metadata)",
    )
    segment.add_argument(
        "--instances",
        action="store_true",
        help="write instance labels (uint32) instead of the class-index map",
    )
    segment.add_argument(
        "--split",
        choices=("all", "train", "val", "test"),
        help="with a dataset: segment this split only (default: all); writes OUT.zarr laid "
        "out like the dataset's masks, for subcell evaluate",
    )
    segment.add_argument("--device", metavar="cpu|cuda", help="where a model runs (default: cpu)")
    segment.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation (models): average over the flips and 90-degree turns "
        "the model was trained with; up to 8 times slower, usually a little more accurate",
    )
    segment.add_argument(
        "--overlay", metavar="OVERLAY.png", help="also write the image with class outlines"
    )
    add_chunked_options(segment)


def _cmd_segment(args) -> int:
    from subcell.core.errors import SubcellError
    from subcell.pipeline.segment_dataset import is_dataset
    from subcell.pipeline.segment_io import segment_file

    if is_dataset(Path(args.image)):
        return _segment_dataset(args)
    if args.split:
        raise SubcellError(f"--split needs a dataset input; {args.image} is not one")
    if wants_chunked(args):
        return run_chunked(args, registry())
    if args.pixel_nm is not None and not args.pixel_nm > 0:
        raise SubcellError(f"--pixel-nm must be a positive number of nm, got {args.pixel_nm}")
    result = segment_file(
        args.image,
        args.model,
        args.out,
        pixel_nm=args.pixel_nm,
        instances=args.instances,
        device=args.device,
        overlay=args.overlay,
        registry=registry(),
        tta=args.tta,
    )
    print(_summary(args.out, result))
    return 0


def _segment_dataset(args) -> int:
    """Every image of a dataset's split into a prediction group (OUT.zarr)."""
    import zarr

    from subcell.core.errors import SubcellError
    from subcell.pipeline.segment_dataset import segment_dataset

    if not str(args.out).lower().rstrip("/").endswith(".zarr"):
        raise SubcellError(f"{args.out}: a dataset's predictions are a zarr group; name it .zarr")
    for option in ("overlay", "block", "scheduler"):
        if getattr(args, option, None):
            raise SubcellError(f"--{option} is not for dataset inputs")
    if args.pixel_nm is not None and not args.pixel_nm > 0:
        raise SubcellError(f"--pixel-nm must be a positive number of nm, got {args.pixel_nm}")
    out = segment_dataset(
        args.image,
        args.model,
        args.out,
        split=args.split or "all",
        instances=args.instances,
        pixel_nm=args.pixel_nm,
        device=args.device,
        registry=registry(),
        tta=args.tta,
    )
    mask = zarr.open_group(str(out), mode="r")["mask"]
    print(
        f"{out}: {mask.shape[0]} images ({args.split or 'all'}) x {mask.shape[-4]} classes, "
        f"mask {'x'.join(str(s) for s in mask.shape)}"
    )
    return 0


def _summary(out, result) -> str:
    """One line: objects per class, image size, method and time."""
    from subcell.pipeline.segment_steps import count_objects

    masks = result.masks
    counts = count_objects(masks)
    objects = ", ".join(f"{n} {name}" for name, n in counts.items())
    shape = "x".join(str(s) for s in masks.semantic.shape[1:] if s > 1) or "1"
    return (
        f"{out}: {objects} ({result.method.kind} {result.method.name}, {shape} px, "
        f"{result.seconds:.1f} s)"
    )
