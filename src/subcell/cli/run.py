"""``subcell run``: a pipeline of steps from one YAML file; ``--trace`` follows provenance."""

from __future__ import annotations

import argparse

from subcell.cli._common import command, registry


def add_commands(commands) -> None:
    """Add the run command."""
    run = command(
        commands,
        "run",
        "run a pipeline (simulate, train, segment, evaluate, analyze, ... steps from one "
        "YAML file), reusing every step whose config and inputs have not changed",
        _cmd_run,
    )
    run.add_argument("pipeline", nargs="?", metavar="PIPELINE.yaml", help="the pipeline file")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="STEP.KEY=VALUE",
        help="override a step's setting, input or config value, e.g. --set train.epochs=2 "
        "(repeatable)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print what would run or be reused, and why"
    )
    run.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="STEP",
        help="rerun this step (and what depends on it) even if up to date (repeatable)",
    )
    run.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="steps run at once when they do not depend on each other (default: 1)",
    )
    run.add_argument("--out", metavar="DIR", help="output folder instead of the file's out:")
    run.add_argument(
        "--trace",
        metavar="PATH",
        help="instead of running: show what PATH (an output of a run) was made from",
    )
    run.add_argument("--json", action="store_true", help="with --trace: print the records as JSON")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--workers must be a whole number >= 1, got {text!r}")
    return value


def _cmd_run(args) -> int:
    from rich.console import Console

    from subcell.core.errors import ConfigError

    console = Console()
    if args.trace is not None:
        if args.pipeline is not None:
            raise ConfigError("--trace takes an output path, not a pipeline file")
        return _trace(args, console)
    if args.pipeline is None:
        raise ConfigError("run needs a PIPELINE.yaml (or --trace PATH)")
    from subcell.pipeline.run import execute, load_pipeline, make_plan

    found = getattr(args, "registry", None) or registry()
    pipeline = load_pipeline(args.pipeline, args.overrides, out=args.out, registry=found)
    plan = make_plan(pipeline, args.force)
    if args.dry_run:
        console.print(plan.table(title=f"{pipeline.path.name} (dry run): {pipeline.out}"))
        return 0
    result = execute(plan, workers=args.workers, registry=found)
    console.print(plan.table(seconds=result.seconds))
    ran = len(result.seconds)
    console.print(f"{ran} step{'s' * (ran != 1)} run, {len(plan.steps) - ran} reused")
    return 0


def _trace(args, console) -> int:
    import json

    from subcell.pipeline.run import trace, trace_tree

    node = trace(args.trace)
    if args.json:

        def plain(n):
            return {
                **{k: v for k, v in n.record.items() if k != "inputs"},
                "folder": str(n.folder),
                "inputs": {
                    link.input: {
                        "path": link.path,
                        "sha256": link.sha256,
                        "status": link.status,
                        "source": None if link.source is None else plain(link.source),
                    }
                    for link in n.inputs
                },
            }

        print(json.dumps(plain(node), indent=2, default=str))
    else:
        console.print(trace_tree(node))
    return 0
