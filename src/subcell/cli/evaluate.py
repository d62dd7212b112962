"""``subcell evaluate``: score a segmentation against ground truth."""

from __future__ import annotations

import json

from subcell.cli._common import command, registry


def add_commands(commands) -> None:
    """Add the evaluate command."""
    evaluate = command(
        commands,
        "evaluate",
        "score a segmentation against ground truth (IoU, F1, Manders' overlap, AP, PQ)",
        _cmd_evaluate,
    )
    evaluate.add_argument(
        "prediction",
        metavar="PRED",
        help="predicted labels: image file, OME-Zarr, prediction zarr group or dataset",
    )
    evaluate.add_argument("truth", metavar="GT", help="ground truth, same kinds as PRED")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument(
        "--split", choices=("train", "val", "test"), help="score only this split of a dataset"
    )
    evaluate.add_argument(
        "--instances",
        action="store_true",
        help="read single-channel integer images as instance labels (AP, PQ)",
    )
    evaluate.add_argument("--out", metavar="METRICS.json", help="also write the metrics here")


def _cmd_evaluate(args) -> int:
    from subcell.pipeline.evaluate import evaluate, write_metrics

    metrics = evaluate(
        args.prediction,
        args.truth,
        split=args.split,
        instances=args.instances,
        registry=registry(),
    )
    if args.out:
        write_metrics(metrics, args.out)
    if args.json:
        print(json.dumps(metrics, indent=2, allow_nan=False))
    else:
        _print_table(metrics)
    return 0


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _print_table(metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    split = f", {metrics['split']} split" if metrics.get("split") else ""
    table = Table(
        title=f"{metrics['prediction']} vs {metrics['truth']} ({metrics['n_images']} images{split})"
    )
    table.add_column("class", no_wrap=True)
    keys = ("iou", "f1", "precision", "recall", "moc", "pixel_accuracy")
    for column in ("IoU", "F1", "precision", "recall", "MOC", "accuracy", "true px", "pred. px"):
        table.add_column(column, justify="right")
    for name, row in metrics["per_class"].items():
        scores = (row.get(k) for k in keys)
        table.add_row(name, *map(_fmt, scores), str(row["n_true_px"]), str(row["n_predicted_px"]))
    table.add_section()
    table.add_row(
        "mean (fg)",
        _fmt(metrics["miou_foreground"]),
        *(_fmt(metrics[k]) for k in ("f1", "precision", "recall", "moc")),
        "",
        "",
        "",
    )
    console.print(table)
    if metrics.get("multilabel"):
        console.print(
            f"classes overlap: each scored as its own binary mask. mIoU "
            f"{_fmt(metrics['miou'])} (per-image mean {_fmt(metrics['miou_per_image_mean'])})"
            f"   pixel accuracy: mean {_fmt(metrics['pixel_accuracy'])}, lowest "
            f"{_fmt(metrics['pixel_accuracy_min'])}"
        )
    else:
        console.print(
            f"mIoU {_fmt(metrics['miou'])} (background included; per-image mean "
            f"{_fmt(metrics['miou_per_image_mean'])})   pixel accuracy "
            f"{_fmt(metrics['pixel_accuracy'])}"
        )
    found = metrics.get("instances")
    if found:
        console.print(
            f"instances: AP@0.5 {_fmt(found['ap'].get('0.50'))}   mAP@0.5:0.95 "
            f"{_fmt(found['map'])}   PQ {_fmt(found['pq'])} (SQ {_fmt(found['sq'])}, "
            f"RQ {_fmt(found['rq'])})"
        )
        console.print(f"objects: {found['n_true']} true, {found['n_predicted']} predicted")
