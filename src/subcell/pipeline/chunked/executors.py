"""Where blocks run: threads in this process, or a dask.distributed cluster.

Both give results as tasks finish, and on an error stop handing out work (running tasks
finish, queued ones are dropped) before the error is raised, so what is written is always
whole blocks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

__all__ = ["DistributedExecutor", "ThreadExecutor", "make_executor"]


class ThreadExecutor:
    """Blocks on ``threads`` threads of this process (one by default: torch already uses
    every core for one block, and a second would only compete with it)."""

    kind = "threads"

    def __init__(self, threads: int = 1):
        self.threads = max(1, int(threads))
        self.workers = 1

    def run(self, fn: Callable, job: Any, items: Iterable, *extra) -> Iterator[Any]:
        items = list(items)
        if not items:
            return
        pool = ThreadPoolExecutor(self.threads)
        try:
            futures = [pool.submit(fn, job, item, *extra) for item in items]
            for future in as_completed(futures):
                yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass


class DistributedExecutor:
    """Blocks as tasks of a dask.distributed cluster: a local one with ``workers`` processes
    (one thread each), or an existing one at ``address``.

    Each worker process keeps its own model (loaded on its first block), so a model is
    loaded once per worker. A cluster's workers must see the input and output paths. With
    ``gpu``, tasks ask for one ``GPU`` resource when the workers declare such resources
    (``dask worker --resources GPU=1``, as the SLURM set-up in the docs does), so blocks only
    go to GPU workers, one at a time each.
    """

    kind = "distributed"

    def __init__(self, workers: int | None = None, address: str | None = None, gpu: bool = False):
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if address is None:
            self.cluster = LocalCluster(
                n_workers=int(workers),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        else:
            self.client = Client(address)
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        self.workers = max(1, len(info))
        declared = any("GPU" in (w.get("resources") or {}) for w in info.values())
        self.resources = {"GPU": 1} if gpu and declared else None

    def run(self, fn: Callable, job: Any, items: Iterable, *extra) -> Iterator[Any]:
        from dask.distributed import as_completed as dask_completed

        items = list(items)
        if not items:
            return
        shared = self.client.scatter([job, *extra], broadcast=True, hash=False)
        futures = [
            self.client.submit(
                fn, *shared[:1], item, *shared[1:], pure=False, resources=self.resources
            )
            for item in items
        ]
        try:
            for future in dask_completed(futures):
                yield future.result()
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(
    workers: int = 0, scheduler: str | None = None, threads: int = 1, gpu: bool = False
):
    """Threads in this process (``workers`` 0, no scheduler), a local cluster of ``workers``
    processes, or the cluster at ``scheduler``."""
    if scheduler:
        return DistributedExecutor(address=scheduler, gpu=gpu)
    if workers and workers > 0:
        return DistributedExecutor(workers=workers, gpu=gpu)
    return ThreadExecutor(threads)


def threads_per_worker(workers: int) -> int:
    """Torch threads for each of ``workers`` local worker processes: the cores shared out."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))
