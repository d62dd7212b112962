"""Rich progress of a chunked segmentation: blocks done, voxels per second, time left."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["progress_bar"]


@contextmanager
def progress_bar(phase: str, n_blocks: int, done: int, enabled) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr: blocks done, voxels/s, ETA; ``enabled`` None: only on
    a terminal. Yields ``advance(voxels)``."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    bar = Progress(
        TextColumn(f"{phase:8s}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("blocks"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        disable=not (console.is_terminal if enabled is None else enabled),
    )
    started = time.perf_counter()
    state = {"voxels": 0}
    with bar:
        task = bar.add_task(phase, total=n_blocks, completed=done, rate="")

        def advance(voxels: int) -> None:
            state["voxels"] += voxels
            elapsed = max(time.perf_counter() - started, 1e-9)
            rate = f"{state['voxels'] / elapsed / 1e6:.2f} Mvoxel/s" if state["voxels"] else ""
            bar.update(task, advance=1, rate=rate)

        yield advance
