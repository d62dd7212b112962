"""The ``subcell`` command line: a thin layer over the Python API.

User errors (bad path, bad config, bad input) exit with status 2 and one line on stderr;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from importlib import import_module

from subcell import __version__
from subcell.cli._common import EXIT_USER_ERROR
from subcell.core.errors import SubcellError

#: Modules of this package that add sub-commands, in the order ``--help`` lists them.
_COMMAND_MODULES = (
    "basic",
    "simulate",
    "train",
    "segment",
    "evaluate",
    "models",
    "analyze",
    "track",
    "run",
    "cellcutter",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _show_warning
            return args.handler(args) or 0
    except SubcellError as exc:
        if args.debug:
            raise
        print(f"subcell: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("subcell: interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line, ``subcell: warning: ...`` (``--debug`` shows where from)."""
    print(f"subcell: warning: {message}", file=file or sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="subcell",
        description="Physics-based, simulation-supervised segmentation of subcellular structures.",
    )
    parser.add_argument("--version", action="version", version=f"subcell {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    for module in _COMMAND_MODULES:
        import_module(f"subcell.cli.{module}").add_commands(commands)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
