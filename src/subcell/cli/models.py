"""``subcell models``: the bundled models and what they expect."""

from __future__ import annotations

import json

from subcell.cli._common import command


def add_commands(commands) -> None:
    """Add the models command."""
    models = command(commands, "models", "list the bundled models", _cmd_models)
    models.add_argument("--json", action="store_true", help="machine-readable output")


def _cmd_models(args) -> int:
    from subcell.models import bundled, summary

    rows = [summary(card) for card in bundled()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("no bundled models are installed")
        return 0
    table = Table(title=f"subcell models ({len(rows)})")
    columns = ("name", "classes", "pixel nm", "network", "dims", "test mIoU", "description")
    for column in columns:
        # Short columns never wrap; the description takes what width is left.
        wide = column == "description"
        table.add_column(column, overflow="fold", no_wrap=not wide, ratio=1 if wide else None)
    for row in rows:
        miou = row["test_miou"]
        table.add_row(
            row["name"],
            ", ".join(row["classes"]),
            f"{row['pixel_nm']:g}",
            row["network"],
            f"{row['spatial_dims']}D" if row["spatial_dims"] else "",
            "" if miou is None else f"{miou:.3f}",
            row["description"],
        )
    console.print(table)
    return 0
