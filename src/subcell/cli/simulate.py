"""``subcell simulate``: a training dataset from physics, into a zarr group.

Accepts a ``step: simulate`` config (structures, labelling, optics...) or a ``step:
phantom`` config (whole scenes drawn by a phantom plugin; ``docs/phantoms.md``).
"""

from __future__ import annotations

from subcell.cli._common import add_set, command, registry

# The config steps this command runs: both write the same dataset layout.
_STEPS = ("simulate", "phantom")


def add_commands(commands) -> None:
    """Add the simulate command."""
    simulate = command(
        commands, "simulate", "simulate a training dataset into a zarr group", _cmd_simulate
    )
    simulate.add_argument(
        "file", metavar="CONFIG", help="a simulate or phantom config (YAML, step: simulate|phantom)"
    )
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
        "--montage",
        action="store_true",
        help="assemble each image from 2 x 2 tiles (simulate configs only)",
    )
    add_set(simulate)


def _step_of(path, overrides) -> str | None:
    """The ``step`` a config file (with its bases and ``--set``) names; None if unreadable
    here (:func:`~subcell.pipeline.config.load_config` then says why)."""
    from pathlib import Path

    from subcell.core.config import apply_overrides, load_layers

    if not Path(path).is_file():
        return None
    data, origins = load_layers(path)
    return apply_overrides(data, overrides, origins).get("step")


def _cmd_simulate(args) -> int:
    from subcell.core.errors import ConfigError
    from subcell.pipeline.config import load_config
    from subcell.pipeline.dataset import write_dataset
    from subcell.pipeline.schemas import STEP_SCHEMAS

    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n must be at least 1, got {args.n}")
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    # Flags go last so they win over --set; they are part of the resolved config, which
    # is what a rerun must match to resume.
    overrides = list(args.overrides)
    overrides += [f"n_tiles={args.n}"] if args.n is not None else []
    overrides += [f"seed={args.seed}"] if args.seed is not None else []
    step = _step_of(args.file, args.overrides)
    if isinstance(step, str) and step in STEP_SCHEMAS and step not in _STEPS:
        # Checked before the flags are applied: they are keys only these steps have.
        raise ConfigError(
            f"{args.file}: a {step} config; simulate needs step: simulate or step: phantom"
        )
    found = registry()
    loaded = load_config(args.file, overrides, registry=found)
    if args.montage:
        if loaded.step != "simulate":
            raise ConfigError(
                f"--montage: {args.file} is a phantom config; phantom images have no montage"
            )
        loaded = load_config(args.file, [*overrides, "montage=true"], registry=found)
    result = write_dataset(
        loaded.config, args.out, workers=args.workers, overwrite=args.overwrite, registry=found
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
