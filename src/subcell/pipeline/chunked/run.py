"""The driver of a chunked segmentation: plan, predict block by block, stitch, finish.

:func:`segment_chunked` opens the input lazily, resolves the model, cuts the volume into
blocks (:mod:`.blocks`), computes the normalisation percentiles once, lays out (or resumes)
the output (:mod:`.store`), runs every block not yet done (:mod:`.infer`) on threads or a
dask.distributed cluster (:mod:`.executors`), stitches the instances (:mod:`.stitch`) and
only then marks the output complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np

from subcell.core.errors import SubcellError, VolumeError
from subcell.core.provenance import record
from subcell.models import weights_sha256
from subcell.models.predict import tta_views
from subcell.pipeline.chunked import infer, stitch
from subcell.pipeline.chunked.blocks import BlockPlan, plan_blocks
from subcell.pipeline.chunked.executors import make_executor, threads_per_worker
from subcell.pipeline.chunked.progress import progress_bar
from subcell.pipeline.chunked.source import open_source, source_spec, tczyx_data
from subcell.pipeline.chunked.store import (
    PREDICTED,
    RELABELLED,
    ChunkedOutput,
    create_output,
    prepare_output,
    read_table,
    write_table,
)
from subcell.pipeline.segment import resolve_method
from subcell.pipeline.segment_steps import PixelSizes, check_channels, pixel_sizes

if TYPE_CHECKING:
    from subcell.registry import Registry

__all__ = ["ChunkedResult", "segment_chunked"]


@attrs.frozen(eq=False)
class ChunkedResult:
    """What a chunked segmentation did.

    Attributes
    ----------
    path
        The output group.
    status
        ``"complete"`` (this run finished it) or ``"already complete"`` (nothing to do).
    n_blocks
        Blocks in the plan.
    blocks_run
        Blocks predicted by this run (fewer than ``n_blocks`` when it resumed).
    voxels
        Voxels of the input's (T, Z, Y, X) grid.
    seconds
        Wall time of this run.
    class_names
        The model's classes (the mask channels).
    n_instances
        Objects in ``instances``; None without instances.
    pixels
        The pixel sizes in use.
    plan
        The block grid.
    """

    path: Path
    status: str
    n_blocks: int
    blocks_run: int
    voxels: int
    seconds: float
    class_names: tuple[str, ...]
    n_instances: int | None
    pixels: PixelSizes
    plan: BlockPlan


def _job_identity(spec, shape, dtype, model, plan, pixels, instances, tta) -> dict:
    """What makes two runs the same job (a rerun of it resumes instead of refusing)."""
    job = {
        "input": {"path": spec.path, "reader": spec.reader, "axes": spec.axes},
        "shape": list(shape),
        "dtype": str(dtype),
        "model": {
            "name": model.name,
            "path": str(Path(model.path).resolve()),
            "weights_sha256": weights_sha256(model.path),
        },
        "block_zyx": list(plan.block),
        "used_nm": list(pixels.used_nm),
        "scale": list(pixels.scale),
        "instances": bool(instances),
        "normalization": model.card["normalization"],
    }
    if tta:
        # Only when on, so outputs written before the option existed keep their identity.
        job["tta"] = True
    text = json.dumps(job, sort_keys=True, default=str)
    return job | {"job_sha256": hashlib.sha256(text.encode()).hexdigest()}


def _check_options(pixel_nm, workers, scheduler, threads) -> None:
    if pixel_nm is not None and not pixel_nm > 0:
        raise SubcellError(f"pixel_nm must be a positive number of nm, got {pixel_nm}")
    if workers < 0:
        raise SubcellError(f"workers must be >= 0, got {workers}")
    if workers and scheduler:
        raise SubcellError("give either workers (a local cluster) or scheduler, not both")
    if threads < 1:
        raise SubcellError(f"threads must be >= 1, got {threads}")


def _provenance(image, method, settings: dict, plan: BlockPlan, pixels, registry) -> dict:
    from subcell.registry import get_registry

    registry = registry or get_registry()
    used = [registry.get("network", method.model.card["network"]["plugin"])]
    provenance = record(settings, plugins=used, inputs={"image": str(image)}, step="segment")
    provenance["method"] = method.describe()
    provenance["pixel_nm"] = pixels.as_dict()
    provenance["plan"] = plan.as_dict()
    return provenance


def segment_chunked(
    image: str | os.PathLike,
    method: str | os.PathLike,
    out: str | os.PathLike,
    *,
    block: tuple[int, int, int] | None = None,
    instances: bool = False,
    workers: int = 0,
    scheduler: str | None = None,
    threads: int = 1,
    device: str | None = None,
    pixel_nm: float | None = None,
    axes: str = "",
    overwrite: bool = False,
    progress: bool | None = None,
    registry: Registry | None = None,
    tta: bool = False,
) -> ChunkedResult:
    """Segment a volume of any size block by block into an OME-Zarr group.

    Parameters
    ----------
    image
        zarr array, OME-Zarr image, TIFF (memory-mapped) or ``.npy``; axes CZYX or TCZYX
        after reading (a plain zarr array without axis names is read as YX, ZYX, CZYX or
        TCZYX by its dimensionality, with a warning).
    method
        A model directory or bundled model name (segmenter plugins run in memory only).
    out
        The output group (``.zarr``), laid out as :mod:`~subcell.pipeline.chunked.store`
        says.
    block
        Core size (Z, Y, X) in input voxels; a default of a few million voxels if None.
    instances
        Also write stitched instance labels (uint32), one id per object across blocks.
    workers
        0: run in this process (``threads`` threads); N: a local dask.distributed cluster of
        N worker processes.
    scheduler
        Address of an existing dask.distributed scheduler to run on instead.
    threads
        Threads in this process when neither ``workers`` nor ``scheduler`` is given.
    device
        Torch device of the model (``cpu`` default, ``cuda``); one GPU per worker.
    pixel_nm
        The image's in-plane pixel size in nm, overriding its metadata.
    axes
        Axis letters of the input, overriding the file's (e.g. ``"ZYX"``).
    overwrite
        Replace an existing output of a different job (a zarr hierarchy only). Without it,
        an output of the same job is resumed and anything else is refused.
    progress
        Show a progress bar on stderr; None: when stderr is a terminal.
    registry
        Plugin registry; the process-wide one if None.
    tta
        Test-time augmentation: each block's probabilities averaged over the flips and
        90-degree turns the model was trained with (up to 8 times the work).

    Returns
    -------
    ChunkedResult

    Raises
    ------
    VolumeError
        Unreadable input, wrong channel count, a block smaller than the halo, an output that
        exists and is not this job's.
    SubcellError
        Bad options, or a method that is not a model.
    """
    start = time.perf_counter()
    _check_options(pixel_nm, workers, scheduler, threads)
    setup = _set_up(image, method, block, instances, device, pixel_nm, axes, registry, tta)
    out = Path(out)
    _check_not_input(out, Path(setup.spec.path))
    state = prepare_output(out, setup.identity["job_sha256"], overwrite=overwrite)
    if state == "complete":
        n_instances = ChunkedOutput(out, mode="r").attrs.get("n_instances")
        return setup.result(out, "already complete", 0, time.perf_counter() - start, n_instances)
    output, ranges = _open_output(out, state, setup, method, instances, device, pixel_nm, registry)
    _warn_constant(ranges)
    gpu = str(device or "").startswith("cuda")
    executor = make_executor(workers, scheduler, threads, gpu=gpu)
    job = infer.BlockJob(
        source=setup.spec,
        model_path=str(setup.model.path),
        device=device or "cpu",
        out=str(out),
        plan=setup.plan,
        ranges=ranges,
        scale=tuple(setup.pixels.scale),
        instances=instances,
        token=setup.identity["job_sha256"],
        shape=tuple(int(n) for n in setup.data.shape),
        torch_threads=threads_per_worker(workers) if workers else None,
        tta=tta,
    )
    if executor.kind == "threads":
        # This process already holds the model and the opened input: reuse them.
        infer.cached(("model", job.model_path, job.device), lambda: setup.model)
        infer.cached(("source", job.token), lambda: setup.data)
    try:
        blocks_run = _predict(executor, job, output, progress)
        n_instances = _stitch(executor, job, output, progress) if instances else None
    finally:
        executor.close()
    seconds = time.perf_counter() - start
    output.set_attrs(complete=True, n_instances=n_instances, seconds_last_run=round(seconds, 3))
    return setup.result(out, "complete", blocks_run, seconds, n_instances)


def _check_not_input(out: Path, image: Path) -> None:
    """Refuse an output that is, holds or sits inside the input (--overwrite would delete it)."""
    out = out.resolve()
    if out == image or image in out.parents or out in image.parents:
        raise VolumeError(f"{out}: the output would overlap the input {image}; choose another path")


def _warn_constant(ranges: np.ndarray) -> None:
    """Warn as the in-memory path does about constant (time points') channels."""
    flat = ranges[..., 1] - ranges[..., 0] <= infer.FLAT
    if flat.all():
        warnings.warn("the image is constant: nothing to segment, the mask is empty", stacklevel=3)
    elif flat.any():
        where = ", ".join(
            f"channel {c}" + (f" of time point {t}" if ranges.shape[0] > 1 else "")
            for t, c in zip(*np.nonzero(flat), strict=True)
        )
        warnings.warn(f"constant input ({where}): it is read as zeros", stacklevel=3)


@attrs.frozen(eq=False)
class _Setup:
    """The input, model, pixel sizes, block plan and job identity of a run."""

    spec: object
    data: object
    method: object
    pixels: PixelSizes
    plan: BlockPlan
    identity: dict

    @property
    def model(self):
        return self.method.model

    def result(self, out, status, blocks_run, seconds, n_instances) -> ChunkedResult:
        return ChunkedResult(
            path=out,
            status=status,
            n_blocks=len(self.plan),
            blocks_run=blocks_run,
            voxels=int(np.prod(self.plan.shape)),
            seconds=seconds,
            class_names=tuple(self.model.card["classes"]),
            n_instances=n_instances,
            pixels=self.pixels,
            plan=self.plan,
        )


def _set_up(image, method, block, instances, device, pixel_nm, axes, registry, tta) -> _Setup:
    """Open the input lazily, resolve the model, check channels, plan the blocks."""
    spec = source_spec(image, axes=axes, registry=registry)
    volume = open_source(spec, registry=registry)
    data = tczyx_data(spec, volume)
    resolved = resolve_method(method, device=device, registry=registry)
    if resolved.model is None:
        raise SubcellError(
            f"{method}: the chunked path segments with models; segmenter plugins run in "
            f"memory (give --out with .tif, .npy or .png)"
        )
    card = resolved.model.card
    check_channels(card, int(data.shape[1]))
    if tta:
        tta_views(card)  # refuses a model trained without flips or turns before any work
    pixels = pixel_sizes(volume.voxel_nm, pixel_nm=pixel_nm, card=card)
    shape_tzyx = (int(data.shape[0]), *(int(s) for s in data.shape[2:]))
    plan = plan_blocks(shape_tzyx, card, pixels.scale, block)
    identity = _job_identity(
        spec, data.shape, data.dtype, resolved.model, plan, pixels, instances, tta
    )
    return _Setup(spec, data, resolved, pixels, plan, identity)


def _open_output(out, state, setup: _Setup, method, instances, device, pixel_nm, registry):
    """A new output (percentiles computed now) or the one being resumed (its percentiles)."""
    if state == "resume":
        output = ChunkedOutput(out)
        return output, np.asarray(output.attrs["normalization_ranges"], dtype=np.float64)
    ranges = infer.percentile_ranges(setup.data, setup.model.card["normalization"])
    settings = {
        "method": str(method),
        "block": list(setup.plan.block),
        "instances": instances,
        "pixel_nm": pixel_nm,
        "device": device,
        "tta": bool(setup.identity.get("tta")),
    }
    provenance = _provenance(
        setup.spec.path, setup.method, settings, setup.plan, setup.pixels, registry
    )
    attributes = {
        "chunked": setup.identity,
        "normalization_ranges": ranges.tolist(),
        "voxel_nm": list(setup.pixels.used_nm),
        "provenance": provenance,
    }
    classes = tuple(setup.model.card["classes"])
    output = create_output(
        out, setup.plan, classes, setup.pixels.used_nm, instances=instances, attrs=attributes
    )
    return output, ranges


def _predict(executor, job: infer.BlockJob, output: ChunkedOutput, progress) -> int:
    todo = [int(n) for n in np.flatnonzero(output.states() < PREDICTED)]
    n_blocks = len(job.plan)
    with progress_bar("segment", n_blocks, n_blocks - len(todo), progress) as advance:
        for result in executor.run(infer.run_block, job, todo):
            advance(result["voxels"])
    return len(todo)


def _stitch(executor, job: infer.BlockJob, output: ChunkedOutput, progress) -> int:
    plan = job.plan
    counts = np.asarray(output.counts[:], dtype=np.int64)
    offsets = stitch.offsets_of(counts)
    if not output.attrs.get("stitched"):
        pairs = [np.zeros((0, 2), dtype=np.int64)]
        with progress_bar("match", len(plan), 0, progress) as advance:
            for found in executor.run(pairs_task, job, range(len(plan)), offsets):
                pairs.append(found)
                advance(0)
        table = stitch.relabel_table(np.concatenate(pairs), counts)
        write_table(output, table)
        output.set_attrs(stitched=True, n_instances=int(table.max(initial=0)))
    todo = [int(n) for n in np.flatnonzero(output.states() < RELABELLED)]
    with progress_bar("relabel", len(plan), len(plan) - len(todo), progress) as advance:
        for voxels in executor.run(relabel_task, job, todo, offsets):
            advance(voxels)
    return int(output.attrs["n_instances"])


def pairs_task(job: infer.BlockJob, number: int, offsets: np.ndarray) -> np.ndarray:
    """Matched provisional ids across block ``number``'s following faces (a worker task)."""
    return stitch.face_pairs(infer.output(job), job.plan, number, offsets)


def relabel_task(job: infer.BlockJob, number: int, offsets: np.ndarray) -> int:
    """Write block ``number``'s final instance labels (a worker task)."""
    output = infer.output(job)
    table = infer.cached(("table", job.token), lambda: read_table(output))
    return stitch.relabel_block(output, job.plan, number, table, offsets)
