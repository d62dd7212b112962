"""Inference on one block: read its region, normalise, predict, crop the halo, write.

A block whose image is rescaled to the model's pixel size is resampled in the whole
image's coordinates (:mod:`.rescale`) instead, so its windows fall where the whole image's do.

Normalisation uses percentiles computed once per (time point, channel) over the whole
volume (:func:`percentile_ranges`), never per block: per-block percentiles would give the
same voxel different values in different blocks. Prediction is
:func:`~subcell.pipeline.segment_steps.probabilities_on_grid` (MONAI sliding windows with
Gaussian blending), the same step the in-memory path runs.

Workers keep the model, the opened input and the opened output in a process-wide cache
(:func:`cached`), so a model is loaded once per worker process, not once per block.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np

from subcell.models.predict import class_masks, predict_probabilities
from subcell.pipeline.chunked import rescale
from subcell.pipeline.chunked.blocks import Block, BlockPlan
from subcell.pipeline.chunked.source import SourceSpec, read_region, tczyx_data
from subcell.pipeline.chunked.store import PREDICTED, ChunkedOutput
from subcell.pipeline.segment_steps import probabilities_on_grid

__all__ = [
    "SAMPLE_VOXELS",
    "BlockJob",
    "cached",
    "normalize_block",
    "output",
    "percentile_ranges",
    "predict_block",
    "run_block",
    "worker_device",
]

#: Voxels per (time point, channel) sampled for the normalisation percentiles.
SAMPLE_VOXELS = 2**22
#: Below this spread (after the percentiles) a channel is constant (as in ``normalize``).
FLAT = 1e-12

_CACHE: dict[Any, Any] = {}
_LOCK = threading.Lock()


def cached(key: Any, make: Callable[[], Any]) -> Any:
    """``make()`` once per process for ``key`` (thread-safe); later calls get the same object."""
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = make()
        return _CACHE[key]


def _sample_steps(shape_zyx: tuple[int, int, int], budget: int) -> tuple[int, int]:
    """(z step, y/x step) so that a strided sample holds about ``budget`` voxels and
    reads at most ~4 x ``budget`` voxels' planes."""
    z, y, x = shape_zyx
    if z * y * x <= budget:
        return 1, 1
    planes = max(1, (4 * budget) // (y * x))
    step_z = math.ceil(z / planes)
    picked = -(-z // step_z)
    step_yx = max(1, math.ceil(math.sqrt(picked * y * x / budget)))
    return step_z, step_yx


def percentile_ranges(data, normalization: dict, *, budget: int | None = None) -> np.ndarray:
    """The card's percentiles of each (time point, channel) of a lazy (T, C, Z, Y, X) array.

    Each is taken from a strided sample of at most ``budget`` voxels (:data:`SAMPLE_VOXELS`
    if None; every voxel when the time point fits, which gives exactly the in-memory path's
    numbers).

    Returns
    -------
    numpy.ndarray
        (T, C, 2) float64: the low and high percentiles.
    """
    low_q = float(normalization.get("low_percentile", 1.0))
    high_q = float(normalization.get("high_percentile", 99.8))
    budget = SAMPLE_VOXELS if budget is None else int(budget)
    n_t, n_c = (int(s) for s in data.shape[:2])
    step_z, step_yx = _sample_steps(tuple(int(s) for s in data.shape[2:]), budget)
    out = np.empty((n_t, n_c, 2), dtype=np.float64)
    for t in range(n_t):
        sample = data[t, :, ::step_z, ::step_yx, ::step_yx]
        if hasattr(sample, "compute"):
            sample = sample.compute()
        sample = np.asarray(sample)
        for c in range(n_c):
            channel = np.asarray(sample[c], dtype=np.float64)
            out[t, c] = np.percentile(channel, [low_q, high_q])
    return out


def normalize_block(region: np.ndarray, ranges: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Map each channel of ``region`` (C, ...) so ``ranges[c]`` (low, high) go to 0 and 1.

    The arithmetic is :func:`~subcell.models.predict.normalize`'s (float64, then float32),
    so a block gets the bytes the whole image would. Constant channels become zeros.

    Returns
    -------
    (normalized, flat)
        float32 data, and the indices of constant channels.
    """
    out = np.empty(region.shape, dtype=np.float32)
    flat = []
    for c in range(region.shape[0]):
        low, high = (float(v) for v in ranges[c])
        if high - low <= FLAT:
            flat.append(c)
            out[c] = 0.0
            continue
        for z in range(region.shape[1]):  # plane by plane: a float64 plane at a time
            out[c, z] = (np.asarray(region[c, z], dtype=np.float64) - low) / (high - low)
    return out, flat


@attrs.frozen(eq=False)
class BlockJob:
    """Everything a worker needs to run any block of one segmentation (small, picklable).

    Attributes
    ----------
    source
        The input.
    model_path
        The model directory.
    device
        Torch device the model runs on.
    out
        The output group.
    plan
        The block grid.
    ranges
        (T, C, 2) normalisation percentiles.
    scale
        Input to model voxels per axis (z, y, x).
    instances
        Label instances in each block (for stitching).
    token
        The job's identity (its hash); keys the per-process caches of input and output.
    shape
        The input's (T, C, Z, Y, X) shape.
    torch_threads
        Torch threads per worker process; None leaves torch's default.
    tta
        Test-time augmentation (:func:`~subcell.models.predict.predict_probabilities`).
    """

    source: SourceSpec
    model_path: str
    device: str
    out: str
    plan: BlockPlan
    ranges: np.ndarray
    scale: tuple[float, float, float]
    instances: bool
    token: str
    shape: tuple[int, int, int, int, int]
    torch_threads: int | None = None
    tta: bool = False


def worker_device(device: str) -> str:
    """``device`` for this process: a worker of a local dask cluster on a machine with
    several GPUs takes GPU (worker number mod GPU count), so each worker has its own."""
    if not device.startswith("cuda") or ":" in device:
        return device
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return device  # not in a dask worker
    import torch

    count = torch.cuda.device_count()
    return f"cuda:{name % count}" if isinstance(name, int) and count > 1 else device


def _model(job: BlockJob):
    from subcell import models

    def load():
        if job.torch_threads:
            import torch

            torch.set_num_threads(job.torch_threads)
        return models.load(job.model_path, device=worker_device(job.device))

    return cached(("model", job.model_path, job.device), load)


def _input(job: BlockJob):
    return cached(("source", job.token), lambda: tczyx_data(job.source, shape=job.shape))


def output(job: BlockJob) -> ChunkedOutput:
    """The job's output group, opened once per process."""
    return cached(("output", job.out, job.token), lambda: ChunkedOutput(job.out))


def predict_block(model, job: BlockJob, block: Block) -> np.ndarray:
    """Class probabilities (K, Z, Y, X) float32 of a block's core."""
    region = read_region(_input(job), block.region, job.source.path)
    normalized, flat = normalize_block(region, job.ranges[block.core[0].start])
    n_classes = len(model.card["classes"])
    if len(flat) == normalized.shape[0]:
        # A constant image holds nothing: the in-memory path returns an empty mask too.
        shape = tuple(s.stop - s.start for s in block.core[1:])
        return np.zeros((n_classes, *shape), dtype=np.float32)
    if job.scale == (1.0, 1.0, 1.0):
        probs = probabilities_on_grid(model, normalized, job.scale, tta=job.tta)
        return np.ascontiguousarray(probs[(slice(None), *block.inner[1:])])
    # Rescaled: resample in the whole image's coordinates, so the windows fall where the
    # whole image's do (probabilities_on_grid would resample the block on its own).
    windows = job.plan.windows
    on_model = rescale.to_model_grid(normalized, block, windows)
    probs = predict_probabilities(model, on_model, tta=job.tta)
    return rescale.to_input_grid(probs, block, windows)


def run_block(job: BlockJob, number: int) -> dict:
    """Predict block ``number``, write its probabilities, masks (and provisional instance
    labels), then mark it done.

    Returns
    -------
    dict
        ``number``, ``voxels``, ``counts`` (objects per class in the block, with
        ``job.instances``) and ``seconds``.
    """
    from subcell.pipeline.chunked.stitch import label_block

    start = time.perf_counter()
    block = job.plan[number]
    model = _model(job)
    probs = predict_block(model, job, block)
    mask = class_masks(probs, model.card["head"], float(model.card["threshold"]))
    out = output(job)
    out.write_prediction(block, probs, mask)
    counts = None
    if job.instances:
        labels, counts = label_block(mask)
        out.write_instances(block, labels)
    out.mark(block, PREDICTED, counts)
    return {
        "number": number,
        "voxels": block.voxels,
        "counts": None if counts is None else [int(c) for c in counts],
        "seconds": time.perf_counter() - start,
    }
