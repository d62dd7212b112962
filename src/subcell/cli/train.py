"""``subcell train``: a segmentation network from a simulated dataset."""

from __future__ import annotations

from subcell.cli._common import add_set, command, registry


def add_commands(commands) -> None:
    """Add the train command."""
    train = command(
        commands, "train", "train a segmentation network on a simulated dataset", _cmd_train
    )
    train.add_argument("file", metavar="CONFIG", help="a train config (YAML)")
    train.add_argument("--data", required=True, metavar="DATA.zarr", help="simulated dataset")
    train.add_argument("--out", required=True, metavar="MODEL_DIR", help="model directory")
    train.add_argument(
        "--init-from", metavar="MODEL", help="start from this model's weights (transfer learning)"
    )
    train.add_argument("--epochs", type=int, metavar="N", help="maximum epochs (default: config)")
    train.add_argument(
        "--device", default="auto", help="auto (CUDA when present), cpu or cuda (default: auto)"
    )
    train.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")
    add_set(train)


def _cmd_train(args) -> int:
    from subcell.core.errors import ConfigError
    from subcell.pipeline.config import load_config
    from subcell.pipeline.training import train

    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {args.epochs}")
    found = registry()
    loaded = load_config(args.file, args.overrides, registry=found)
    if loaded.step != "train":
        raise ConfigError(f"{args.file}: a {loaded.step} config; train needs step: train")
    result = train(
        loaded.config,
        args.data,
        args.out,
        init_from=args.init_from,
        epochs=args.epochs,
        device=args.device,
        overwrite=args.overwrite,
        registry=found,
    )
    card = result.card
    if result.status == "complete":
        print(f"{result.path}: already trained with this config and data")
    test = card["metrics"].get("test", {})
    training = card["training"]
    print(
        f"{result.path}: {card['name']} best epoch {training['best_epoch']}/"
        f"{training['epochs_run']}, test mIoU {test.get('miou', float('nan')):.4f}, "
        f"F1 {test.get('f1', float('nan')):.4f}, {training['images_per_s']:.1f} patches/s"
    )
    return 0
