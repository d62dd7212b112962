"""Simulated training datasets: a zarr v3 group written image by image, resumable.

Layout (``N`` images; ``T`` frames only when ``n_frames > 1``; chunks of one image)::

    images      float32 (N, [T,] C, Z, Y, X)  detector counts
    clean       float32 (N, [T,] C, Z, Y, X)  noise-free image, expected photons
    masks       uint8   (N, [T,] K, Z, Y, X)  one binary channel per class
    instances   uint32  (N, [T,] Z, Y, X)     instance ids, 0 = background
    tile_stats  float64 (N, P, 4)             photon budget per tile (P = 4 with montage)
    split       uint8   (N,)                  0 train, 1 val, 2 test
    done        uint8   (N,)                  1 once image i is written

Guarantees: image ``i`` depends only on the resolved config (seed included) and ``i``, so
the arrays are byte-identical whatever the number of workers and however often a run was
interrupted and resumed. Each image's chunks are written by one process, then its ``done``
flag; ``attrs["complete"]`` becomes true only after every flag is set. See
``docs/simulate.md``. A phantom run (:class:`~subcell.pipeline.schemas.PhantomConfig`,
``docs/phantoms.md``) writes the same layout with one frame and no montage; its attributes
add ``phantom`` (plugin name and acquisition).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Literal

import attrs
import numpy as np
import zarr

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.provenance import config_hash
from subcell.pipeline.dataset_read import (
    FORMAT,
    FORMAT_VERSION,
    SPLIT_NAMES,
    Dataset,
    dataset_attrs,
    open_dataset,
)
from subcell.pipeline.phantom import phantom_attrs, phantom_provenance
from subcell.pipeline.photon_budget import SNR_DEFINITION
from subcell.pipeline.schemas import PhantomConfig, SimulateConfig
from subcell.pipeline.simulate import TileStats, simulation_provenance
from subcell.pipeline.tiles import (
    DATA_ARRAYS,
    DatasetImage,
    dataset_image,
    open_arrays,
    write_image,
)
from subcell.pipeline.workers import progress_bar, run_in_pool, single_threaded
from subcell.registry import Registry, get_registry

__all__ = [
    "FORMAT",
    "SPLIT_NAMES",
    "Dataset",
    "DatasetResult",
    "open_dataset",
    "single_threaded",
    "split_indices",
    "write_dataset",
]

# Spawn key of the split draw: one element long, so it never equals a tile's (i, stage, part).
_SPLIT_KEY = (0,)


@attrs.frozen
class DatasetResult:
    """What :func:`write_dataset` did.

    Attributes
    ----------
    path
        The dataset group.
    status
        ``"written"`` (new), ``"resumed"`` (finished an interrupted run) or ``"complete"``
        (it was already complete: nothing done).
    n_images
        Images in the dataset.
    n_simulated
        Images simulated by this call.
    seconds
        Wall time of this call.
    """

    path: Path
    status: Literal["written", "resumed", "complete"]
    n_images: int
    n_simulated: int
    seconds: float


def split_indices(n: int, fractions: tuple[float, float, float], seed: int) -> dict[str, list]:
    """A random train/val/test split of ``n`` images, fixed by ``seed``.

    The images are shuffled with ``SeedSequence(seed, spawn_key=(0,))``; the first
    ``round(n × train)`` go to train, the next ``round(n × val)`` to val, the rest to test.
    Each list is sorted.
    """
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_SPLIT_KEY)).permutation(n)
    n_train = round(n * fractions[0])
    n_val = min(round(n * fractions[1]), n - n_train)
    cuts = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])
    parts = zip(SPLIT_NAMES, cuts, strict=True)
    return {name: sorted(int(i) for i in part) for name, part in parts}


def write_dataset(
    config: SimulateConfig | PhantomConfig,
    out: str | Path,
    *,
    workers: int = 1,
    overwrite: bool = False,
    registry: Registry | None = None,
    progress: bool | None = None,
) -> DatasetResult:
    """Simulate ``config.n_tiles`` images into a zarr v3 group, or finish an interrupted run.

    Parameters
    ----------
    config
        The resolved simulate or phantom config (seed and ``n_tiles`` included).
    out
        The group's path (``DATA.zarr``).
    workers
        Processes simulating in parallel (1: in this process). Worker processes are
        spawned, so a script calling this needs the ``if __name__ == "__main__":`` guard;
        they look plugins up in their own process-wide registry, plus those ``registry``
        got through ``build_registry(extra=...)`` (sent by reference: their config class
        and factory must be importable there).
    overwrite
        Replace whatever is at ``out``: a file, a zarr store or an empty folder.
    registry
        Where plugins are looked up in this process; the process-wide registry if None.
    progress
        Show a progress bar on stderr; None: only when stderr is a terminal.

    Returns
    -------
    DatasetResult

    Raises
    ------
    ConfigError
        ``workers < 1``; ``out`` holds something else, or a dataset of another config,
        and ``overwrite`` is false.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    start = time.perf_counter()
    registry = registry or get_registry()
    out = Path(out)
    digest = config_hash(config)
    state = _prepare(out, digest, overwrite)
    if state == "complete":
        return DatasetResult(out, "complete", config.n_tiles, 0, time.perf_counter() - start)
    simulated = 0
    if state == "new":
        with single_threaded():
            first = dataset_image(config, 0, registry)
        _create(out, config, registry, digest, first)
        write_image(open_arrays(out), 0, first)
        simulated = 1
    group = zarr.open_group(out, mode="r+")
    remaining = [int(i) for i in np.flatnonzero(group["done"][:] == 0)]
    class_names = tuple(group.attrs["class_names"])
    with progress_bar(config.n_tiles, config.n_tiles - len(remaining), progress) as advance:
        _run(config, out, remaining, class_names, workers, registry, advance)
    simulated += len(remaining)
    _finish(out)
    status = "written" if state == "new" else "resumed"
    return DatasetResult(out, status, config.n_tiles, simulated, time.perf_counter() - start)


def _prepare(out: Path, digest: str, overwrite: bool) -> str:
    """``"new"``, ``"resume"`` or ``"complete"``; clears ``out`` when it must start over."""
    if not out.exists():
        return "new"
    existing = dataset_attrs(out)
    if existing is not None and not overwrite:
        if existing.get("config_sha256") != digest:
            raise ConfigError(
                f"{out}: holds a dataset made with a different config, seed or --n; "
                f"use --overwrite to replace it, or another path"
            )
        if not existing.get("layout_ready"):
            _remove(out)  # stopped while creating the arrays: nothing finished yet
            return "new"
        return "complete" if existing.get("complete") else "resume"
    if not overwrite:
        raise ConfigError(
            f"{out}: exists and is not a subcell dataset; use --overwrite to replace it, "
            f"or another path"
        )
    _remove(out)
    return "new"


def _remove(out: Path) -> None:
    if out.is_dir() and not out.is_symlink():
        if any(out.iterdir()) and not (out / "zarr.json").is_file():
            raise ConfigError(
                f"{out}: is a folder with files but not a zarr store; refusing to delete it"
            )
        shutil.rmtree(out)
    else:
        out.unlink()


def _axes(video: bool) -> dict[str, str]:
    t = "T" if video else ""
    return {
        "images": f"N{t}CZYX",
        "clean": f"N{t}CZYX",
        "masks": f"N{t}KZYX",
        "instances": f"N{t}ZYX",
        "tile_stats": "NPS",
        "split": "N",
        "done": "N",
    }


def _create(
    out: Path,
    config: SimulateConfig | PhantomConfig,
    registry: Registry,
    digest: str,
    first: DatasetImage,
) -> None:
    """The group, its attributes and empty arrays shaped like ``first``."""
    n = config.n_tiles
    video = config.n_frames > 1
    axes = _axes(video)
    splits = split_indices(n, config.split, config.seed)
    group = zarr.open_group(out, mode="w")
    # Marked ours (with the config hash) before any array exists, so a run stopped here
    # is recognised and restarted rather than refused.
    group.attrs.update(
        {"format": FORMAT, "config_sha256": digest, "complete": False, "layout_ready": False}
    )
    shapes = {name: getattr(first, name).shape for name in DATA_ARRAYS}
    dtypes = {"images": "float32", "clean": "float32", "masks": "uint8"}
    dtypes |= {"instances": "uint32", "tile_stats": "float64"}
    for name in DATA_ARRAYS:
        group.create_array(
            name,
            shape=(n, *shapes[name]),
            chunks=(1, *shapes[name]),
            dtype=dtypes[name],
            fill_value=math.nan if name == "tile_stats" else 0,
            dimension_names=tuple(axes[name].lower()),
        )
    split = np.zeros(n, dtype=np.uint8)
    for code, name in enumerate(SPLIT_NAMES):
        split[splits[name]] = code
    group.create_array("split", data=split, chunks=(n,), dimension_names=("n",))
    group.create_array("done", shape=(n,), chunks=(1,), dtype="uint8", fill_value=0)
    group.attrs.update(
        {
            "format_version": FORMAT_VERSION,
            "n_images": n,
            "seed": config.seed,
            "provenance": _provenance(config, registry),
            "voxel_nm": list(first.voxel_nm),
            "axes": axes,
            "units": {"images": "detector counts (ADU)", "clean": "expected photons"},
            "class_names": list(first.class_names),
            "channel_names": list(first.channel_names),
            "n_frames": config.n_frames,
            "frame_interval_s": config.motion.frame_interval_s if video else None,
            "montage": _montage_attrs(config),
            "split": splits,
            "split_names": list(SPLIT_NAMES),
            "snr_definition": SNR_DEFINITION,
            "tile_stats_columns": list(TileStats.columns),
            # Only a phantom run has more: a simulate run's attributes stay as they were.
            **(phantom_attrs(config, registry) if isinstance(config, PhantomConfig) else {}),
            "layout_ready": True,
        }
    )


def _provenance(config, registry: Registry) -> dict:
    if isinstance(config, PhantomConfig):
        return phantom_provenance(config, registry)
    return simulation_provenance(config, registry)


def _montage_attrs(config: SimulateConfig) -> dict | None:
    if not config.montage:
        return None
    return {
        "grid": [[0, 1], [2, 3]],
        "tile_px": list(config.tile_px),
        "tiles_of_image_i": "4i + j, j = 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right",
        "instance_ids": "tile j's ids offset by the instance counts of tiles 0..j-1",
    }


def _run(config, out, remaining, class_names, workers, registry, advance) -> None:
    if not remaining:
        return
    if workers > 1 and len(remaining) > 1:
        run_in_pool(config, out, remaining, class_names, workers, advance, registry=registry)
        return
    arrays = open_arrays(out)
    # Entered after image 0, so it also reaches libraries that image loaded lazily.
    with single_threaded():
        for index in remaining:
            write_image(arrays, index, dataset_image(config, index, registry, class_names))
            advance()


def _finish(out: Path) -> None:
    """Copy the per-tile photon budget into the attributes and mark the group complete."""
    group = zarr.open_group(out, mode="r+")
    if not bool(np.all(group["done"][:] == 1)):
        raise VolumeError(f"{out}: some images were not written; rerun to resume")
    stats = group["tile_stats"][:]
    tiles = {
        column: [[None if math.isnan(v) else float(v) for v in row] for row in stats[:, :, c]]
        for c, column in enumerate(TileStats.columns)
    }
    # One update, so "complete" is never written without the per-tile values.
    group.attrs.update({"tiles": tiles, "complete": True})
