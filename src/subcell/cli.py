"""The ``subcell`` command line: a thin layer over the Python API.

User errors (bad path, bad config, bad input) exit with status 2 and one line on stderr;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence

import attrs

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

    plugins = _command(commands, "plugins", "list registered plugins", _cmd_plugins)
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.add_argument("--kind", help="only plugins of this kind")
    plugins.add_argument(
        "--params", action="store_true", help="also list each plugin's parameters and units"
    )

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

    simulate = _command(
        commands, "simulate", "simulate a training dataset into a zarr group", _cmd_simulate
    )
    simulate.add_argument("file", metavar="CONFIG", help="a simulate config (YAML)")
    simulate.add_argument("--out", required=True, metavar="DATA.zarr", help="output zarr group")
    simulate.add_argument(
        "--n", type=int, metavar="N", help="number of images (default: the config's n_tiles)"
    )
    simulate.add_argument("--seed", type=int, metavar="S", help="root seed (default: config's)")
    simulate.add_argument(
        "--workers", type=int, default=1, metavar="W", help="worker processes (default: 1)"
    )
    simulate.add_argument(
        "--overwrite", action="store_true", help="replace what is at --out instead of resuming"
    )
    simulate.add_argument(
        "--montage", action="store_true", help="assemble each image from 2 x 2 tiles"
    )
    _add_set(simulate)

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
    from subcell.core.configdoc import parameters

    registry = _registry()
    registrations = registry.all(args.kind)
    rows = [r.as_dict() for r in registrations]
    if args.params:
        for row, registration in zip(rows, registrations, strict=True):
            row["parameters"] = [attrs.asdict(p) for p in parameters(registration.config_cls)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"subcell plugins ({len(rows)})")
    for column in ("kind", "name", "package", "version", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(row[c] for c in ("kind", "name", "package", "version", "description")))
    console.print(table)
    for row in rows if args.params else ():
        params = Table(title=f"{row['kind']} {row['name']}", title_justify="left")
        for column in ("parameter", "default", "meaning"):
            params.add_column(column, overflow="fold")
        for p in row["parameters"]:
            params.add_row(p["name"], p["default"], p["doc"])
        console.print(params)
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


def _cmd_simulate(args) -> int:
    from subcell.core.errors import ConfigError
    from subcell.pipeline.config import load_config
    from subcell.pipeline.dataset import write_dataset

    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    # Flags go last so they win over --set; they are part of the resolved config, which
    # is what a rerun must match to resume.
    overrides = list(args.overrides)
    overrides += [f"n_tiles={args.n}"] if args.n is not None else []
    overrides += [f"seed={args.seed}"] if args.seed is not None else []
    overrides += ["montage=true"] if args.montage else []
    registry = _registry()
    loaded = load_config(args.file, overrides, registry=registry)
    if loaded.step != "simulate":
        raise ConfigError(f"{args.file}: a {loaded.step} config; simulate needs step: simulate")
    result = write_dataset(
        loaded.config, args.out, workers=args.workers, overwrite=args.overwrite, registry=registry
    )
    if result.status == "complete":
        print(f"{result.path}: already complete ({result.n_images} images, same config)")
    else:
        resumed = " (resumed)" if result.status == "resumed" else ""
        rate = result.n_simulated / result.seconds if result.seconds > 0 else 0.0
        print(
            f"{result.path}: {result.n_images} images{resumed}; simulated {result.n_simulated} "
            f"in {result.seconds:.1f} s ({rate:.1f} images/s)"
        )
    return 0


def _cmd_demo(args) -> int:
    from subcell.pipeline.demo import run_demo

    _registry()
    run_demo(args.out, overrides=args.overrides)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
