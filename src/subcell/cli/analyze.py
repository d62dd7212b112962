"""``subcell analyze``: per-object tables, summaries and plots of a label image; comparisons."""

from __future__ import annotations

from subcell.cli._common import add_set, command, registry


def add_commands(commands) -> None:
    """Add the analyze command."""
    analyze = command(
        commands,
        "analyze",
        "measure the objects of a label image (mitochondria, vesicles, ...) or compare "
        "analyses by condition (--compare)",
        _cmd_analyze,
    )
    analyze.add_argument(
        "labels",
        nargs="?",
        metavar="LABELS",
        help="label image or binary mask (TIFF, PNG, NumPy, zarr; 2D or 3D), or a prediction "
        "group or dataset (.zarr): every image into DIR/<index>",
    )
    analyze.add_argument(
        "--plugin",
        metavar="NAME",
        help="analytics plugin: mitochondria, vesicles, region_props, compartments (multi-class)",
    )
    analyze.add_argument(
        "--pixel-nm",
        type=float,
        metavar="P",
        help="in-plane pixel size in nm (required unless the file states it)",
    )
    analyze.add_argument(
        "--z-nm", type=float, metavar="Z", help="z step in nm of 3D labels (default: the file's)"
    )
    analyze.add_argument(
        "--cells", metavar="CELLS", help="cell labels of the same shape: per-cell summaries"
    )
    analyze.add_argument(
        "--image",
        metavar="IMAGE",
        help="intensity image of the same shape (vesicle intensity); with a prediction group, "
        "the dataset it segmented",
    )
    analyze.add_argument(
        "--condition", metavar="NAME", help="experimental condition, kept for --compare"
    )
    analyze.add_argument(
        "--binary",
        action="store_true",
        help="treat every non-zero value as foreground and label connected components",
    )
    analyze.add_argument(
        "--compare",
        nargs="+",
        metavar="DIR",
        help="compare these analyze outputs by condition instead of analysing LABELS",
    )
    analyze.add_argument("--no-plots", action="store_true", help="write tables and JSON only")
    analyze.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_set(analyze)


def _cmd_analyze(args) -> int:
    from subcell.core.errors import SubcellError

    plots = not args.no_plots
    if args.compare:
        if args.labels is not None or args.plugin is not None:
            raise SubcellError("--compare takes analysis folders only, no LABELS or --plugin")
        from subcell.pipeline.analyze_compare import compare

        result = compare(args.compare, args.out, plots=plots)
        parts = ", ".join(
            f"{name}: {c['n_images']} images, {c['n_objects']} objects"
            for name, c in result["conditions"].items()
        )
        print(f"{args.out}: compared {parts}")
        return 0
    if args.labels is None or args.plugin is None:
        raise SubcellError("analyze needs LABELS and --plugin (or --compare DIR ...)")
    from subcell.pipeline.analyze_group import label_group

    if label_group(args.labels) is not None:
        return _analyze_group(args, plots)
    from subcell.pipeline.analyze import analyze_file

    analysis = analyze_file(
        args.labels,
        args.out,
        plugin=args.plugin,
        pixel_nm=args.pixel_nm,
        z_nm=args.z_nm,
        cells=args.cells,
        image=args.image,
        condition=args.condition,
        binary=args.binary,
        overrides=args.overrides,
        plots=plots,
        registry=registry(),
    )
    print(f"{args.out}: {_describe(analysis.summary)} ({args.plugin}, "
          f"{analysis.summary['seconds']:.2f} s)")  # fmt: skip
    return 0


def _analyze_group(args, plots: bool) -> int:
    """Every image of a prediction group or dataset, into ``OUT/<index>``."""
    from subcell.core.errors import SubcellError
    from subcell.pipeline.analyze_group import analyze_group

    if args.cells is not None:
        raise SubcellError(f"{args.labels}: --cells goes with one label image, not a group")
    analyses = analyze_group(
        args.labels,
        args.out,
        plugin=args.plugin,
        pixel_nm=args.pixel_nm,
        z_nm=args.z_nm,
        image=args.image,
        condition=args.condition,
        overrides=args.overrides,
        plots=plots,
        registry=registry(),
    )
    seconds = sum(a.summary["seconds"] for a in analyses.values())
    first = next(iter(analyses), "0")
    print(
        f"{args.out}: {len(analyses)} images in {args.out}/{first}, ... "
        f"({args.plugin}, {seconds:.2f} s)"
    )
    return 0


def _describe(summary: dict) -> str:
    """``12 objects (3 dot, ...) in 2 cells``, or ``3 rows, 3 classes`` for multi-class."""
    if "class_names" in summary:
        return f"{summary['n_objects']} rows, {summary['n_classes']} classes"
    counts = summary.get("counts")
    detail = " (" + ", ".join(f"{n} {k}" for k, n in counts.items()) + ")" if counts else ""
    cells = summary.get("cells")
    in_cells = f" in {cells['n_cells']} cells" if cells else ""
    return f"{summary['n_objects']} objects{detail}{in_cells}"
