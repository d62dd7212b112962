"""``subcell cellcutter``: single cells from nucleus markers, trained on the image itself."""

from __future__ import annotations

import contextlib

from subcell.cli._common import add_set, command, registry


def add_commands(commands) -> None:
    """Add the cellcutter command."""
    cut = command(
        commands,
        "cellcutter",
        "segment clumped cells without labels: nucleus markers, graph-cut foreground, and a "
        "network trained on the image itself (Din & Yu 2021)",
        _cmd_cellcutter,
    )
    cut.add_argument("image", metavar="IMAGE", help="whole-cell image (TIFF, PNG or NumPy, 2D)")
    cut.add_argument("--out", required=True, metavar="LABELS.tif", help="cell labels to write")
    markers = cut.add_mutually_exclusive_group()
    markers.add_argument("--nuclei", metavar="NUCLEI", help="nuclear-stain image, same shape")
    markers.add_argument(
        "--synthetic-nuclei",
        metavar="MODEL",
        help="segmentation model (name or folder) predicting nuclei from the cell image",
    )
    cut.add_argument("--mask", metavar="MASK", help="foreground mask (default: graph cut)")
    cut.add_argument("--config", metavar="CONFIG.yaml", help="a `step: cellcutter` config")
    cut.add_argument("--epochs", type=int, metavar="N", help="training epochs")
    cut.add_argument("--seed", type=int, metavar="S", help="seed of the training")
    trained = cut.add_mutually_exclusive_group()
    trained.add_argument("--save-model", metavar="DIR", help="save the trained network")
    trained.add_argument("--model", metavar="DIR", help="apply a saved network, no training")
    cut.add_argument(
        "--baseline",
        action="store_true",
        help="marker-controlled watershed on the same markers and mask instead",
    )
    cut.add_argument("--device", default="cpu", metavar="cpu|cuda", help="torch device")
    cut.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_set(cut)


def _cmd_cellcutter(args) -> int:
    import numpy as np

    from subcell.core.errors import ConfigError, VolumeError
    from subcell.pipeline.cellcutter import run_cellcutter
    from subcell.pipeline.volumes import read_volume

    found = registry()
    config = _method_config(args, found)
    image = read_volume(args.image, registry=found)
    nuclei = read_volume(args.nuclei, registry=found) if args.nuclei else None
    if nuclei is None and args.synthetic_nuclei is None and "nucleus" not in image.channel_names:
        raise ConfigError("give --nuclei NUCLEI or --synthetic-nuclei MODEL to find the cells")
    mask = None
    if args.mask:
        mask_volume = read_volume(args.mask, registry=found)
        mask = np.asarray(mask_volume.data)[0, 0] > 0
        if mask.shape != tuple(image.shape[-2:]):
            raise VolumeError(f"{args.mask}: mask shape {mask.shape} differs from the image's")
    inputs = {
        k: v
        for k, v in (
            ("image", args.image),
            ("nuclei", args.nuclei),
            ("mask", args.mask),
            ("model", args.model),
            ("synthetic_nuclei", args.synthetic_nuclei),
        )
        if v
    }
    with _progress(config, args) as progress:
        result = run_cellcutter(
            image,
            args.out,
            nuclei=nuclei,
            method_config=config,
            mask=mask,
            model=args.model,
            synthetic_nuclei=args.synthetic_nuclei,
            save_model_to=args.save_model,
            overwrite=args.overwrite,
            device=args.device,
            progress=progress,
            inputs=inputs,
            registry=found,
        )
    n_cells = len(np.unique(result.masks.instances)) - 1
    loss = f", final loss {result.history[-1]:.4g}" if result.history else ""
    print(
        f"{args.out}: {n_cells} cells from {len(result.markers)} markers "
        f"({result.seconds:.1f} s{loss})"
    )
    return 0


def _method_config(args, found):
    """The method config: packaged defaults, ``--config``, ``--set``, then the flags."""
    from importlib import resources

    import attrs

    from subcell.core.errors import ConfigError
    from subcell.pipeline.config import load_config

    overrides = list(args.overrides)
    defaults = resources.files("subcell.pipeline") / "defaults" / "cellcutter.yaml"
    with resources.as_file(defaults) as default_path:
        loaded = load_config(args.config or default_path, overrides, registry=found)
    if loaded.step != "cellcutter":
        raise ConfigError(f"{args.config}: a {loaded.step} config; this needs step: cellcutter")
    method = loaded.config.method.config
    if args.baseline and hasattr(method, "network"):
        # The baseline takes cellcutter's own markers and foreground settings.
        baseline = found.config_class("segmenter", "marker_watershed")
        return baseline(
            nucleus_channel=method.nucleus_channel,
            markers=method.markers,
            foreground=method.foreground,
        )
    if hasattr(method, "network") and (args.epochs is not None or args.seed is not None):
        changes = {"epochs": args.epochs, "seed": args.seed}
        changes = {k: v for k, v in changes.items() if v is not None}
        network = attrs.evolve(method.network, **changes)
        method = attrs.evolve(method, network=network)
    return method


def _progress(config, args):
    """A rich bar over the training epochs (nothing to show for the baseline or --model)."""
    epochs = getattr(getattr(config, "network", None), "epochs", None)
    if epochs is None or args.model:
        return contextlib.nullcontext(None)
    return _epoch_bar(epochs)


@contextlib.contextmanager
def _epoch_bar(epochs: int):
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("training"),
        BarColumn(),
        TextColumn("epoch {task.completed}/{task.total} loss {task.fields[loss]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("train", total=epochs, loss="-")
        yield lambda epoch, loss: bar.update(task, completed=epoch, loss=f"{loss:.4g}")
