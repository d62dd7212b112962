"""The output of a chunked segmentation: an OME-Zarr 0.5 group written block by block.

Layout (``T`` only when the input has more than one time point)::

    OUT.zarr/                  multiscales: the class probabilities are the image
      probabilities            float16 ([T,] K, Z, Y, X)
      labels/                  labels: ["mask"] or ["mask", "instances"]
        mask/0                 uint8 ([T,] K, Z, Y, X), one binary channel per class
        instances/0            uint32 ([T,] Z, Y, X), 0 = background (``instances=True``)
      _progress/state          uint8 (n_blocks,): 0 to do, 1 predicted, 2 instances final
      _progress/counts         uint32 (n_blocks, K): objects of each class in each block
      _stitch/table            uint32: provisional instance id -> final id

Every array is sharded (zarr v3) with one shard per block core, so each block's task is the
only writer of its shards: zarr-python loses data when two writers share a shard. A block's
``_progress`` entries (its own zarr chunks) are written after its shards, so a block marked
done is on disk; a rerun redoes every block not marked. Attributes are written by the driver
only: ``subcell.complete`` becomes true when the last block and the stitching are done, so
an interrupted output is never marked complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import zarr

from subcell.core.errors import VolumeError
from subcell.core.omezarr import OME_VERSION
from subcell.pipeline.chunked.blocks import Block, BlockPlan

__all__ = [
    "PREDICTED",
    "RELABELLED",
    "ChunkedOutput",
    "create_output",
    "open_output",
    "prepare_output",
    "read_result",
    "read_table",
    "write_table",
]

#: ``_progress/state`` values: not done, predicted (masks final), instances final.
TODO, PREDICTED, RELABELLED = 0, 1, 2
_MAX_CHUNK = {"z": 16, "yx": 256}
_TABLE_CHUNK = 2**20


class ChunkedOutput:
    """The arrays of a chunked-segmentation output group, opened for writing.

    Parameters
    ----------
    path
        The output group.
    mode
        ``"r+"`` to write blocks, ``"r"`` to read.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "r+"):
        self.path = Path(path)
        self.root = zarr.open_group(str(self.path), mode=mode)
        self.probabilities = self.root["probabilities"]
        self.mask = self.root["labels/mask/0"]
        self.instances = (
            self.root["labels/instances/0"] if "instances" in self.root["labels"] else None
        )
        self.state = self.root["_progress/state"]
        self.counts = self.root["_progress/counts"]
        self.has_time = self.mask.ndim == 5

    @property
    def attrs(self) -> dict:
        return dict(self.root.attrs).get("subcell", {})

    def _select(self, block: Block, classes: bool) -> tuple:
        t, *zyx = block.core
        lead = (t,) if self.has_time else ()
        return (*lead, slice(None), *zyx) if classes else (*lead, *zyx)

    def write_prediction(self, block: Block, probabilities: np.ndarray, mask: np.ndarray) -> None:
        """Store a block's probabilities and masks (K, Z, Y, X): exactly its own shards."""
        lead = (None,) if self.has_time else ()
        self.probabilities[self._select(block, True)] = probabilities.astype(np.float16)[lead]
        self.mask[self._select(block, True)] = mask[lead]

    def write_instances(self, block: Block, labels: np.ndarray) -> None:
        """Store a block's instance labels (Z, Y, X)."""
        lead = (None,) if self.has_time else ()
        self.instances[self._select(block, False)] = labels.astype(np.uint32)[lead]

    def read_mask(self, block: Block) -> np.ndarray:
        """A block's stored masks (K, Z, Y, X)."""
        data = self.mask[self._select(block, True)]
        return data[0] if self.has_time else data

    def read_window(self, name: str, t: int, zyx: tuple[slice, ...]) -> np.ndarray:
        """Masks (K, ...) or instances (...) of time point ``t`` over ``zyx``."""
        array = self.mask if name == "mask" else self.instances
        classes = (slice(None),) if name == "mask" else ()
        lead = (t,) if self.has_time else ()
        return array[(*lead, *classes, *zyx)]

    def mark(self, block: Block, state: int, counts: np.ndarray | None = None) -> None:
        """Record a block's progress (its counts first: the state is the commit)."""
        if counts is not None:
            self.counts[block.number] = np.asarray(counts, dtype=np.uint32)
        self.state[block.number] = state

    def states(self) -> np.ndarray:
        """Every block's progress (``TODO``, ``PREDICTED``, ``RELABELLED``)."""
        return np.asarray(self.state[:])

    def set_attrs(self, **values) -> None:
        """Update ``attributes["subcell"]`` (the driver only)."""
        meta = self.attrs
        meta.update(values)
        self.root.attrs["subcell"] = meta


def _divisor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` not above ``limit``."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def _chunking(block: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(shard, inner chunk) for a block core: inner chunks of at most 16 x 256 x 256 that
    divide the shard; no sharding when the best divisor is too small to help."""
    bz, by, bx = block
    inner = (
        _divisor(bz, _MAX_CHUNK["z"]),
        _divisor(by, _MAX_CHUNK["yx"]),
        _divisor(bx, _MAX_CHUNK["yx"]),
    )
    if min(inner[1:]) < 32 and inner[1:] != (by, bx):
        inner = (inner[0], by, bx)
    return block, inner


def _multiscales(name: str, axes: str, voxel_nm, path: str) -> dict:
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    axes_meta = [
        {"name": a, "type": kinds[a]} | ({"unit": "nanometer"} if kinds[a] == "space" else {})
        for a in axes
    ]
    size = {"t": 1.0, "c": 1.0, "z": voxel_nm[0], "y": voxel_nm[1], "x": voxel_nm[2]}
    scale = [float(size[a]) for a in axes]
    return {
        "name": name,
        "axes": axes_meta,
        "datasets": [
            {"path": path, "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        ],
    }


def create_output(
    path: str | os.PathLike,
    plan: BlockPlan,
    class_names: tuple[str, ...],
    voxel_nm: tuple[float, float, float],
    *,
    instances: bool,
    attrs: dict,
) -> ChunkedOutput:
    """Lay out an empty output group for ``plan`` (no block written, not complete)."""
    path = Path(path)
    n_t = plan.shape[0]
    has_time = n_t > 1
    k = len(class_names)
    zyx = tuple(plan.shape[1:])
    shard, inner = _chunking(plan.block)
    lead, lead_chunk = ((n_t,), (1,)) if has_time else ((), ())
    letters = ("t" if has_time else "") + "czyx"
    root = zarr.open_group(str(path), mode="w-", zarr_format=3)

    def array(group, name, shape, shards, chunks, dtype, axes):
        sharded = tuple(shards) != tuple(chunks)
        return group.create_array(
            name,
            shape=shape,
            shards=shards if sharded else None,
            chunks=chunks,
            dtype=dtype,
            fill_value=0,
            dimension_names=list(axes),
        )

    array(
        root,
        "probabilities",
        (*lead, k, *zyx),
        (*lead_chunk, k, *shard),
        (*lead_chunk, 1, *inner),
        np.float16,
        letters,
    )
    labels = root.create_group("labels")
    names = ["mask", "instances"] if instances else ["mask"]
    labels.attrs["ome"] = {"version": OME_VERSION, "labels": names}
    mask = labels.create_group("mask")
    array(
        mask,
        "0",
        (*lead, k, *zyx),
        (*lead_chunk, k, *shard),
        (*lead_chunk, 1, *inner),
        np.uint8,
        letters,
    )
    _label_attrs(mask, "mask", letters, voxel_nm, colours=True)
    mask.attrs["subcell"] = {"class_names": list(class_names)}
    if instances:
        group = labels.create_group("instances")
        axes = letters.replace("c", "")
        array(
            group, "0", (*lead, *zyx), (*lead_chunk, *shard), (*lead_chunk, *inner), np.uint32, axes
        )
        _label_attrs(group, "instances", axes, voxel_nm, colours=False)
    progress = root.create_group("_progress")
    progress.create_array("state", shape=(len(plan),), chunks=(1,), dtype=np.uint8, fill_value=0)
    progress.create_array(
        "counts", shape=(len(plan), k), chunks=(1, k), dtype=np.uint32, fill_value=0
    )
    ome = {
        "version": OME_VERSION,
        "multiscales": [_multiscales("probabilities", letters, voxel_nm, "probabilities")],
    }
    root.attrs.update({"ome": ome, "subcell": dict(attrs) | {"complete": False}})
    return ChunkedOutput(path)


def _label_attrs(group, name: str, axes: str, voxel_nm, *, colours: bool) -> None:
    colors = [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
    if colours:
        colors.append({"label-value": 1, "rgba": [255, 255, 0, 255]})
    group.attrs["ome"] = {
        "version": OME_VERSION,
        "multiscales": [_multiscales(name, axes, voxel_nm, "0")],
        "image-label": {"version": OME_VERSION, "colors": colors, "source": {"image": "../../"}},
    }


def _is_zarr_node(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in ("zarr.json", ".zgroup", ".zarray"))


def prepare_output(path: str | os.PathLike, job_sha256: str, *, overwrite: bool) -> str:
    """What to do with ``path``: ``"create"``, ``"resume"`` or ``"complete"`` (same job, done).

    An output of the same job (same input, model, blocks, options) is resumed, or reported
    complete. Anything else at ``path`` is refused unless ``overwrite`` is set, and even then
    only a zarr hierarchy is removed (a file or another directory never is).

    Raises
    ------
    VolumeError
        ``path`` exists and cannot be resumed or replaced.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return "create"
    if not _is_zarr_node(path):
        raise VolumeError(f"{path}: exists and is not a zarr hierarchy; refusing to replace it")
    meta = {}
    try:
        meta = dict(zarr.open_group(str(path), mode="r").attrs).get("subcell", {})
    except Exception:  # noqa: BLE001 - an array or a broken group: not ours to resume
        meta = {}
    same = meta.get("chunked", {}).get("job_sha256") == job_sha256
    if same and not overwrite:
        return "complete" if meta.get("complete") else "resume"
    if not overwrite:
        what = "a different segmentation job" if meta.get("chunked") else "another zarr hierarchy"
        raise VolumeError(
            f"{path}: already exists and holds {what}; give --overwrite to replace it "
            f"(rerunning the same command resumes an interrupted run)"
        )
    shutil.rmtree(path)
    return "create"


def open_output(path: str | os.PathLike) -> ChunkedOutput:
    """Open an output group for writing blocks."""
    return ChunkedOutput(path)


def read_result(path: str | os.PathLike, *, allow_incomplete: bool = False) -> dict:
    """The arrays of a finished chunked segmentation (zarr arrays, read lazily).

    Returns
    -------
    dict
        ``probabilities``, ``mask``, ``instances`` (None without ``instances``),
        ``class_names``, ``voxel_nm`` and ``attrs`` (``attributes["subcell"]``).

    Raises
    ------
    VolumeError
        Not a chunked-segmentation output, or an incomplete one (``allow_incomplete`` False).
    """
    path = Path(path)
    try:
        out = ChunkedOutput(path, mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises several types
        raise VolumeError(f"{path}: not a chunked segmentation output ({exc})") from exc
    meta = out.attrs
    if not meta.get("complete") and not allow_incomplete:
        done = int((out.states() > 0).sum())
        raise VolumeError(
            f"{path}: incomplete ({done} of {out.state.shape[0]} blocks done); rerun the same "
            f"command to finish it"
        )
    return {
        "probabilities": out.probabilities,
        "mask": out.mask,
        "instances": out.instances,
        "class_names": tuple(dict(out.root["labels/mask"].attrs)["subcell"]["class_names"]),
        "voxel_nm": tuple(meta.get("voxel_nm", (1.0, 1.0, 1.0))),
        "attrs": meta,
    }


def write_table(out: ChunkedOutput, table: np.ndarray) -> None:
    """Store the relabel table (provisional id -> final id) in one go."""
    if "_stitch" in out.root:
        del out.root["_stitch"]
    group = out.root.create_group("_stitch")
    array = group.create_array(
        "table",
        shape=table.shape,
        chunks=(min(_TABLE_CHUNK, max(1, table.size)),),
        dtype=np.uint32,
        fill_value=0,
    )
    array[:] = table


def read_table(out: ChunkedOutput) -> np.ndarray:
    """The stored relabel table."""
    return np.asarray(out.root["_stitch/table"][:])
