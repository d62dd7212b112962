"""Dataset images from simulated tiles: one tile, or a 2 × 2 montage of four.

A dataset image ``i`` is tile ``i`` of the run, or, with ``montage``, tiles ``4i, 4i + 1,
4i + 2, 4i + 3`` placed top-left, top-right, bottom-left, bottom-right. Every tile keeps its
own seed, so an image has the same bytes whatever else is simulated alongside it. A
phantom run (:class:`~subcell.pipeline.schemas.PhantomConfig`) has one image per index and
no montage (:mod:`subcell.pipeline.phantom`).

Montage assembly: images, noise-free images and semantic masks are placed side by side
(pixel ``(y, x)`` of tile ``j`` goes to ``(y + row_j × Y, x + col_j × X)``); in the instance
image, tile ``j``'s ids are offset by the number of instances of tiles ``0 .. j − 1`` (a
tile's instance count is its highest geometry or emitter id), so ids stay unique and
instance ``k`` of tile ``j`` is ``k + offset_j`` in every frame.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import zarr

from subcell.core.errors import SubcellError
from subcell.pipeline.phantom import PhantomField, simulate_phantom
from subcell.pipeline.schemas import PhantomConfig, SimulateConfig
from subcell.pipeline.simulate import SimulatedField, simulate_field
from subcell.registry import Registry

try:
    from zarr.core.sync import sync as _zarr_sync
except ImportError:  # pragma: no cover - zarr moved its sync helper
    _zarr_sync = None

__all__ = [
    "DATA_ARRAYS",
    "MONTAGE_GRID",
    "DatasetImage",
    "assemble_montage",
    "dataset_image",
    "open_arrays",
    "tile_indices",
    "write_image",
]

#: The per-image arrays of a dataset (attributes of :class:`DatasetImage`).
DATA_ARRAYS = ("images", "clean", "masks", "instances", "tile_stats")
#: Tile positions of a montage, (row, column) for tiles 0..3.
MONTAGE_GRID = ((0, 0), (0, 1), (1, 0), (1, 1))


@attrs.frozen(eq=False)
class DatasetImage:
    """The arrays of one dataset image, with a T axis first when the run has frames.

    Attributes
    ----------
    images
        Detector counts, float32, (C, Z, Y, X) or (T, C, Z, Y, X).
    clean
        Noise-free expected photons, float32, same shape.
    masks
        One binary channel per class, uint8, (K, Z, Y, X) or (T, K, Z, Y, X).
    instances
        Instance ids, uint32, (Z, Y, X) or (T, Z, Y, X).
    tile_stats
        Photon budget of each tile, float64, (P, 4) in :attr:`TileStats.columns` order
        (P = 4 for a montage, else 1).
    class_names, channel_names, voxel_nm
        What the axes mean.
    """

    images: np.ndarray
    clean: np.ndarray
    masks: np.ndarray
    instances: np.ndarray
    tile_stats: np.ndarray
    class_names: tuple[str, ...]
    channel_names: tuple[str, ...]
    voxel_nm: tuple[float, float, float]


def tile_indices(config: SimulateConfig, image: int) -> list[int]:
    """The run's tile indices that make dataset image ``image``."""
    return [4 * image + j for j in range(4)] if config.montage else [image]


def dataset_image(
    config: SimulateConfig | PhantomConfig,
    image: int,
    registry: Registry | None = None,
    class_names: tuple[str, ...] | None = None,
) -> DatasetImage:
    """Simulate dataset image ``image`` (one tile or a montage of four, or one phantom scene).

    Parameters
    ----------
    config
        The run's config: a simulate or a phantom run.
    image
        Index of the dataset image.
    registry
        Where plugins are looked up; the process-wide registry if None.
    class_names
        The dataset's classes: mask channels are put in this order (a class a tile lacks is
        empty). None: the first tile's classes.

    Raises
    ------
    SubcellError
        If a tile has a class outside ``class_names``.
    """
    if isinstance(config, PhantomConfig):
        arrays = _phantom_arrays(simulate_phantom(config, image, registry))
        names = tuple(class_names) if class_names is not None else arrays.class_names
        unknown = [n for n in arrays.class_names if n not in names]
        if unknown:
            raise SubcellError(
                f"image {image}: phantom {config.phantom.plugin!r} drew classes {unknown} that "
                f"image 0 did not ({', '.join(names)}); a phantom must name every class in "
                f"every scene (an empty mask is fine)"
            )
        return _reorder_classes((arrays, 0), names, image)[0]
    tiles = [_arrays(simulate_field(config, i, registry)) for i in tile_indices(config, image)]
    names = tuple(class_names) if class_names is not None else tiles[0][0].class_names
    indices = tile_indices(config, image)
    tiles = [_reorder_classes(t, names, i) for t, i in zip(tiles, indices, strict=True)]
    return tiles[0][0] if len(tiles) == 1 else assemble_montage(tiles)


def _arrays(sim: SimulatedField) -> tuple[DatasetImage, int]:
    """One tile's arrays (frames stacked on a leading T axis when there are several) and
    its instance count."""
    video = sim.image.axes == "TCZYX"
    semantic = np.stack([m.semantic for m in sim.frame_masks]).astype(np.uint8, copy=False)
    instances = np.stack(
        [
            m.instances if m.instances is not None else np.zeros(m.semantic.shape[1:], np.uint32)
            for m in sim.frame_masks
        ]
    ).astype(np.uint32, copy=False)
    n_instances = max(
        sim.geometry.n_instances, int(sim.emitters.instance.max()) if len(sim.emitters) else 0
    )
    return DatasetImage(
        images=np.asarray(sim.image.data, dtype=np.float32),
        clean=np.asarray(sim.clean, dtype=np.float32),
        masks=semantic if video else semantic[0],
        instances=instances if video else instances[0],
        tile_stats=np.array([sim.stats.as_tuple()], dtype=np.float64),
        class_names=tuple(sim.masks.class_names),
        channel_names=tuple(sim.image.channel_names),
        voxel_nm=sim.field.voxel_nm,
    ), n_instances


def _phantom_arrays(sim: PhantomField) -> DatasetImage:
    """One phantom image's arrays (a scene without instance ids has all zeros)."""
    masks = sim.masks
    instances = masks.instances if masks.instances is not None else np.zeros(sim.field.shape)
    return DatasetImage(
        images=np.asarray(sim.image.data, dtype=np.float32),
        clean=np.asarray(sim.clean, dtype=np.float32),
        masks=np.asarray(masks.semantic).astype(np.uint8, copy=False),
        instances=np.asarray(instances).astype(np.uint32, copy=False),
        tile_stats=np.array([sim.stats.as_tuple()], dtype=np.float64),
        class_names=tuple(masks.class_names),
        channel_names=tuple(sim.image.channel_names),
        voxel_nm=sim.field.voxel_nm,
    )


def _reorder_classes(tile, names: tuple[str, ...], index: int) -> tuple[DatasetImage, int]:
    arrays, n_instances = tile
    if arrays.class_names == names:
        return arrays, n_instances
    unknown = [n for n in arrays.class_names if n not in names]
    if unknown:
        raise SubcellError(
            f"tile {index} has classes {unknown} that the dataset's first tile does not "
            f"({', '.join(names)}); give every tile the same structures"
        )
    axis = arrays.masks.ndim - 4  # the K axis
    shape = list(arrays.masks.shape)
    shape[axis] = len(names)
    masks = np.zeros(shape, dtype=np.uint8)
    for k, name in enumerate(arrays.class_names):
        np.moveaxis(masks, axis, 0)[names.index(name)] = np.moveaxis(arrays.masks, axis, 0)[k]
    return attrs.evolve(arrays, masks=masks, class_names=names), n_instances


def assemble_montage(tiles: list[tuple[DatasetImage, int]]) -> DatasetImage:
    """Place four tiles 2 × 2 (module notes); ``tiles`` pairs each tile's arrays with its
    instance count."""
    if len(tiles) != len(MONTAGE_GRID):
        raise ValueError(f"a montage needs {len(MONTAGE_GRID)} tiles, got {len(tiles)}")
    offsets = np.cumsum([0] + [n for _, n in tiles])[:-1]
    parts = [arrays for arrays, _ in tiles]
    instances = [
        np.where(p.instances > 0, p.instances + np.uint32(off), 0).astype(np.uint32)
        for p, off in zip(parts, offsets, strict=True)
    ]

    def grid(arrays: list[np.ndarray]) -> np.ndarray:
        top = np.concatenate(arrays[:2], axis=-1)
        bottom = np.concatenate(arrays[2:], axis=-1)
        return np.concatenate([top, bottom], axis=-2)

    first = parts[0]
    return DatasetImage(
        images=grid([p.images for p in parts]),
        clean=grid([p.clean for p in parts]),
        masks=grid([p.masks for p in parts]),
        instances=grid(instances),
        tile_stats=np.concatenate([p.tile_stats for p in parts]),
        class_names=first.class_names,
        channel_names=first.channel_names,
        voxel_nm=first.voxel_nm,
    )


def open_arrays(out: Path) -> dict[str, Any]:
    """The data arrays and ``done`` of a dataset group, open for writing."""
    return {name: zarr.open_array(out / name, mode="r+") for name in (*DATA_ARRAYS, "done")}


def write_image(arrays: dict[str, Any], index: int, image: DatasetImage) -> None:
    """Write image ``index``'s chunks, then (last, once they are stored) its done flag.

    Raises
    ------
    SubcellError
        If the image's arrays are not shaped like the dataset's (e.g. a phantom that drew
        another number of dyes than for image 0).
    """
    for name in DATA_ARRAYS:
        want, got = tuple(arrays[name].shape[1:]), getattr(image, name).shape
        if got != want:
            raise SubcellError(
                f"image {index}: {name} has shape {got}, but the dataset's are {want} (as "
                f"image 0's); every image of a run needs the same channels and grid"
            )
    if _zarr_sync is None:  # pragma: no cover - older zarr layouts: one chunk at a time
        for name in DATA_ARRAYS:
            arrays[name][index] = getattr(image, name)
    else:
        # One round trip to zarr's event loop for all five chunks (per-call overhead was
        # about a third of the time per 128 x 128 image).
        _zarr_sync(_write_chunks(arrays, index, image))
    arrays["done"][index] = 1


async def _write_chunks(arrays: dict[str, Any], index: int, image: DatasetImage) -> None:
    await asyncio.gather(
        *(arrays[name].async_array.setitem(index, getattr(image, name)) for name in DATA_ARRAYS)
    )
