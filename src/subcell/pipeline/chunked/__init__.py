"""Segmenting volumes larger than memory: blocks with halos, resumable, on threads or dask.

:func:`segment_chunked` is the entry point; :mod:`.blocks` (grid and halos), :mod:`.infer`
(one block), :mod:`.stitch` (instances across blocks), :mod:`.store` (the OME-Zarr output),
:mod:`.executors` (threads or dask.distributed) and :mod:`.source` (lazy input) do the work.
"""

from subcell.pipeline.chunked.run import ChunkedResult, segment_chunked
from subcell.pipeline.chunked.store import read_result

__all__ = ["ChunkedResult", "read_result", "segment_chunked"]
