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
        help="label image or binary mask (TIFF, PNG, NumPy, zarr; 2D or 3D)",
    )
    analyze.add_argument(
        "--plugin", metavar="NAME", help="analytics plugin: mitochondria, vesicles, region_props"
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
        "--image", metavar="IMAGE", help="intensity image of the same shape (vesicle intensity)"
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
    summary = analysis.summary
    counts = summary.get("counts")
    detail = " (" + ", ".join(f"{n} {k}" for k, n in counts.items()) + ")" if counts else ""
    cells = summary.get("cells")
    in_cells = f" in {cells['n_cells']} cells" if cells else ""
    print(
        f"{args.out}: {summary['n_objects']} objects{detail}{in_cells} "
        f"({args.plugin}, {summary['seconds']:.2f} s)"
    )
    return 0
