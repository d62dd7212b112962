"""Running dataset images in a pool of worker processes, on one thread each.

Workers are spawned (never forked from a process that holds thread pools), get the config
as plain data and structure it against their own registry, and write each image's chunks
themselves: one process per chunk, so nothing is lost to concurrent writes. Plugins that
the caller's registry got through ``build_registry(extra=...)`` (no entry point finds them)
are sent along by reference and added to each worker's registry.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from subcell.core.errors import PluginError
from subcell.core.registration import Registration
from subcell.core.structuring import structure, unstructure
from subcell.pipeline.schemas import PhantomConfig, SimulateConfig
from subcell.pipeline.tiles import dataset_image, open_arrays, write_image
from subcell.registry import Registry, get_registry

__all__ = ["progress_bar", "run_in_pool", "single_threaded"]

_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Registration.package of plugins given to build_registry(extra=...).
_EXTRA_PACKAGE = "(registered)"


def run_in_pool(
    config: SimulateConfig | PhantomConfig,
    out: Path,
    indices: list[int],
    class_names: tuple[str, ...],
    workers: int,
    advance: Callable[[], None],
    *,
    registry: Registry | None = None,
) -> None:
    """Simulate and write dataset images ``indices`` with ``workers`` processes.

    Parameters
    ----------
    config
        The run's config (simulate or phantom).
    out
        The dataset group, already laid out.
    indices
        Images to make.
    class_names
        The dataset's classes (mask channel order).
    workers
        Processes.
    advance
        Called once per image written.
    registry
        The caller's registry: its plugins from ``build_registry(extra=...)`` are sent to
        the workers (each worker builds the process-wide registry for the rest).

    Raises
    ------
    PluginError
        If such a plugin cannot be sent (its factory or config class is not a module-level
        object), or a worker cannot import it.
    """
    shipped = _extra_registrations(registry)
    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    with _single_threaded_children():
        pool = ProcessPoolExecutor(
            min(workers, len(indices)),
            mp_context=context,
            initializer=_init_worker,
            initargs=(type(config), unstructure(config), str(out), class_names, shipped),
        )
        try:
            futures = [pool.submit(_worker_image, index) for index in indices]
            for future in as_completed(futures):
                try:
                    future.result()
                except BrokenProcessPool as exc:
                    if not shipped:
                        raise
                    raise PluginError(
                        f"a worker process failed to start; plugins registered in this "
                        f"process ({_names(shipped)}) must be importable by module name in "
                        f"worker processes, or use workers=1"
                    ) from exc
                advance()
        finally:
            # On an error or Ctrl-C: drop queued images; the running ones finish cleanly.
            pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run this process's numerical libraries (BLAS, OpenMP, torch) on one thread.

    Why: a BLAS product split over several threads sums in another order, which changes
    the last bits of the noise-free image; one thread everywhere keeps an image's bytes
    independent of ``--workers``. Wrap :func:`~subcell.pipeline.simulate.simulate_field`
    in it to get exactly the bytes a dataset holds.
    """
    restore = _limit_threads()
    try:
        yield
    finally:
        restore()


def _limit_threads() -> Callable[[], None]:
    """Limit the thread pools loaded so far to one thread; returns the undo.

    threadpoolctl reaches the BLAS and OpenMP libraries already loaded (libraries loaded
    later are limited only through the environment, see ``_single_threaded_children``).
    """
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        limits = None
    else:
        limits = threadpool_limits(limits=1)

    def restore() -> None:
        if limits is not None:
            limits.restore_original_limits()
        if torch is not None:
            torch.set_num_threads(torch_threads)

    return restore


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """One BLAS/OpenMP/torch thread per worker process (the workers are the parallelism)."""
    saved = {name: os.environ.get(name) for name in _THREAD_ENV}
    os.environ.update({name: "1" for name in _THREAD_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _extra_registrations(registry: Registry | None) -> tuple[Registration, ...]:
    """The registry's plugins that a worker's own registry would not find, checked to be
    picklable (by reference: module-level classes and functions)."""
    if registry is None:
        return ()
    extra = tuple(r for r in registry.all() if r.package == _EXTRA_PACKAGE)
    try:
        pickle.dumps(extra)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same to the user
        raise PluginError(
            f"plugins registered in this process ({_names(extra)}) cannot be sent to worker "
            f"processes ({type(exc).__name__}: {exc}); define their factory and config "
            f"class at module level, or use workers=1"
        ) from exc
    return extra


def _names(registrations) -> str:
    return ", ".join(f"{r.kind} {r.name!r}" for r in registrations)


_WORKER: dict[str, Any] = {}


def _init_worker(
    schema: type,
    data: dict,
    out: str,
    class_names: tuple[str, ...],
    shipped: tuple[Registration, ...] = (),
) -> None:
    registry = get_registry()  # imports the plugins and the libraries they load
    for registration in shipped:
        if registration.name not in registry.names(registration.kind):
            registry.add(registration)
    _limit_threads()  # for this worker's life
    _WORKER.update(
        config=structure(data, schema, registry.config_class),
        registry=registry,
        arrays=open_arrays(Path(out)),
        class_names=class_names,
    )


def _worker_image(index: int) -> int:
    w = _WORKER
    image = dataset_image(w["config"], index, w["registry"], w["class_names"])
    write_image(w["arrays"], index, image)
    return index


class _RateColumn(ProgressColumn):
    """Images per second of this run (resumed images not counted)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:
            speed = (task.completed - task.fields["resumed"]) / task.elapsed
        return Text("" if speed is None else f"{speed:.1f} images/s")


@contextmanager
def progress_bar(total: int, completed: int, enabled: bool | None, label: str = "simulate"):
    """A rich progress bar on stderr (images, images/s, ETA); yields the advance callable.
    ``enabled`` None: only when stderr is a terminal."""
    console = Console(stderr=True)
    bar = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (console.is_terminal if enabled is None else enabled),
    )
    with bar:
        task = bar.add_task(label, total=total, completed=completed, resumed=completed)
        yield lambda: bar.advance(task)
