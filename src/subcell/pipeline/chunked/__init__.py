"""Segmenting volumes larger than memory: blocks with halos, resumable, on threads or dask.

:func:`segment_chunked` is the entry point. :mod:`.blocks` (grid and halos), :mod:`.source`
(lazy input), :mod:`.infer` (one block), :mod:`.rescale` (blocks resampled to the model's
pixel size in whole-image coordinates), :mod:`.stitch` (instances across blocks),
:mod:`.store` (the OME-Zarr output), :mod:`.executors` (threads or dask.distributed) and
:mod:`.progress` do the work.
"""

from subcell.pipeline.chunked.run import ChunkedResult, segment_chunked
from subcell.pipeline.chunked.store import read_result

__all__ = ["ChunkedResult", "read_result", "segment_chunked"]
