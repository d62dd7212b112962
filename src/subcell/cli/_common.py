"""Helpers every command module uses: sub-command creation, ``--set``, the registry."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

EXIT_USER_ERROR = 2


def command(commands, name: str, helptext: str, handler: Callable) -> argparse.ArgumentParser:
    """Add sub-command ``name`` whose ``handler(args)`` returns the exit status."""
    sub = commands.add_parser(name, help=helptext, description=helptext)
    sub.add_argument(
        "--debug", action="store_true", help=argparse.SUPPRESS, default=argparse.SUPPRESS
    )
    sub.set_defaults(handler=handler)
    return sub


def add_set(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--set KEY=VALUE`` option (stored as ``args.overrides``)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set microscope.na=1.2 (repeatable)",
    )


def registry():
    """The process-wide plugin registry; plugin load warnings go to stderr as one line."""
    from subcell.registry import get_registry

    registry = get_registry()
    for line in registry.warnings:
        print(f"subcell: warning: {line}", file=sys.stderr)
    return registry
