"""The ``subcell`` command line: a thin layer over the Python API.

User errors (bad path, bad config, bad input) exit with status 2 and one line on stderr;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from subcell import __version__
from subcell.core.errors import SubcellError

EXIT_USER_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (the console script exits with it)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.handler(args) or 0
    except SubcellError as exc:
        if args.debug:
            raise
        print(f"subcell: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("subcell: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="subcell",
        description="Physics-based, simulation-supervised segmentation of subcellular structures.",
    )
    parser.add_argument("--version", action="version", version=f"subcell {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    plugins = _command(commands, "plugins", "list registered plugins", _cmd_plugins)
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.add_argument("--kind", help="only plugins of this kind")

    config = commands.add_parser("config", help="validate or show a config")
    config.set_defaults(handler=lambda a: config.print_help() or EXIT_USER_ERROR)
    config_commands = config.add_subparsers(title="config commands", metavar="ACTION")
    for name, helptext, handler in (
        ("validate", "exit 0 if FILE is valid, else exit 2 with the problem", _cmd_validate),
        ("show", "print the resolved config (defaults, bases, --set) as YAML", _cmd_show),
    ):
        sub = _command(config_commands, name, helptext, handler)
        sub.add_argument("file", metavar="FILE")
        _add_set(sub)

    demo = _command(commands, "demo", "run the demo pipeline on embedded defaults", _cmd_demo)
    demo.add_argument("--out", default="subcell-demo", help="output folder (default: %(default)s)")
    _add_set(demo)
    return parser


def _command(commands, name: str, helptext: str, handler: Callable) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=helptext, description=helptext)
    sub.add_argument(
        "--debug", action="store_true", help=argparse.SUPPRESS, default=argparse.SUPPRESS
    )
    sub.set_defaults(handler=handler)
    return sub


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set microscope.na=1.2 (repeatable)",
    )


def _registry():
    from subcell.registry import get_registry

    registry = get_registry()
    for line in registry.warnings:
        print(f"subcell: warning: {line}", file=sys.stderr)
    return registry


def _cmd_plugins(args) -> int:
    registry = _registry()
    rows = [r.as_dict() for r in registry.all(args.kind)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"subcell plugins ({len(rows)})")
    for column in ("kind", "name", "package", "version", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in ("kind", "name", "package", "version", "description")))
    Console().print(table)
    return 0


def _load(args):
    from subcell.pipeline.config import load_config

    return load_config(args.file, args.overrides, registry=_registry())


def _cmd_validate(args) -> int:
    loaded = _load(args)
    print(f"{args.file}: valid {loaded.step} config")
    return 0


def _cmd_show(args) -> int:
    from subcell.core.structuring import to_yaml

    sys.stdout.write(to_yaml(_load(args).config))
    return 0


def _cmd_demo(args) -> int:
    from subcell.pipeline.demo import run_demo

    _registry()
    run_demo(args.out, overrides=args.overrides)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
