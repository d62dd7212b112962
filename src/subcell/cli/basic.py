"""``subcell plugins``, ``subcell config validate|show`` and ``subcell demo``."""

from __future__ import annotations

import json
import sys

import attrs

from subcell.cli._common import EXIT_USER_ERROR, add_set, command, registry


def add_commands(commands) -> None:
    """Add the plugin listing, config and demo commands."""
    plugins = command(commands, "plugins", "list registered plugins", _cmd_plugins)
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
        sub = command(config_commands, name, helptext, handler)
        sub.add_argument("file", metavar="FILE")
        add_set(sub)

    demo = command(commands, "demo", "run the demo pipeline on embedded defaults", _cmd_demo)
    demo.add_argument("--out", default="subcell-demo", help="output folder (default: %(default)s)")
    add_set(demo)


def _cmd_plugins(args) -> int:
    from subcell.core.configdoc import parameters

    found = registry()
    registrations = found.all(args.kind)
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

    return load_config(args.file, args.overrides, registry=registry())


def _cmd_validate(args) -> int:
    if _is_pipeline(args.file):
        from subcell.pipeline.run import load_pipeline

        pipeline = load_pipeline(args.file, args.overrides, registry=registry())
        print(f"{args.file}: valid pipeline of {len(pipeline.steps)} steps")
        return 0
    loaded = _load(args)
    print(f"{args.file}: valid {loaded.step} config")
    return 0


def _is_pipeline(path) -> bool:
    """A pipeline file (``subcell run``) has ``steps:`` and no ``step:`` at the top."""
    import yaml

    from subcell.core.config import load_yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = load_yaml(handle)
    except (OSError, yaml.YAMLError):
        return False  # load_config reports the problem with its own message
    return isinstance(data, dict) and "steps" in data and "step" not in data


def _cmd_show(args) -> int:
    from subcell.core.structuring import to_yaml

    sys.stdout.write(to_yaml(_load(args).config))
    return 0


def _cmd_demo(args) -> int:
    from subcell.pipeline.demo import run_demo

    registry()
    run_demo(args.out, overrides=args.overrides)
    return 0
