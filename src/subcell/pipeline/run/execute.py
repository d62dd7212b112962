"""Run a plan: each step in its own folder, its record written last; in parallel through dask.

A step that runs gets a clean folder, unless it was interrupted with the same config and
inputs: then its folder is kept and the step's own function resumes (``write_dataset`` and
``train`` do). Steps that do not depend on each other run side by side on ``workers``
threads (dask's threaded scheduler); every step is seeded by its config, so the outputs are
the same as one at a time.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import attrs
from rich.console import Console

from subcell.core.errors import PluginError, SubcellError
from subcell.core.provenance import record as provenance_record
from subcell.pipeline.run.context import step_context
from subcell.pipeline.run.pipeline import Pipeline
from subcell.pipeline.run.plan import (
    RUN,
    Plan,
    PlannedStep,
    input_entries,
    make_plan,
    recorded_digest,
)
from subcell.pipeline.run.records import (
    FORMAT,
    RECORD_FILE,
    content_sha256,
    read_record,
    write_record,
)
from subcell.registry import Registry

__all__ = ["RunResult", "execute", "run_pipeline"]


@attrs.frozen(eq=False)
class RunResult:
    """What a run did.

    Attributes
    ----------
    plan
        The plan it followed.
    records
        Step name -> its complete record (reused steps' too).
    seconds
        Wall time of each step that ran.
    """

    plan: Plan
    records: dict[str, dict]
    seconds: dict[str, float]


def run_pipeline(
    pipeline: Pipeline,
    *,
    force: Iterable[str] = (),
    workers: int = 1,
    console: Console | None = None,
    progress: bool | None = None,
    registry: Registry | None = None,
) -> RunResult:
    """Plan and run a pipeline (see :func:`execute`)."""
    return execute(
        make_plan(pipeline, force),
        workers=workers,
        console=console,
        progress=progress,
        registry=registry,
    )


def execute(
    plan: Plan,
    *,
    workers: int = 1,
    console: Console | None = None,
    progress: bool | None = None,
    registry: Registry | None = None,
) -> RunResult:
    """Run the steps a plan says to run; reuse the others.

    Parameters
    ----------
    plan
        From :func:`~subcell.pipeline.run.plan.make_plan`.
    workers
        Steps run at once (1: one after another, in plan order).
    console
        Where step lines go; stderr if None.
    progress
        Let steps draw progress bars; None: when ``workers == 1`` and the console is a
        terminal.
    registry
        The registry steps look plugins up in (see :mod:`.context`).

    Raises
    ------
    SubcellError
        A step failed; its record stays incomplete, and steps already done keep theirs.
    """
    if workers < 1:
        raise SubcellError(f"--workers must be at least 1, got {workers}")
    console = console or Console(stderr=True)
    if progress is None:
        progress = workers == 1 and console.is_terminal
    runner = _Runner(plan, console, progress, registry)
    for step in plan.steps:
        if step.action != RUN:
            runner.records[step.name] = read_record(step.folder)
            console.print(f"[dim]• {step.name} ({step.kind}): reused, {step.reason}[/dim]")
    to_run = [s for s in plan.steps if s.action == RUN]
    if workers == 1 or len(to_run) < 2:
        for step in to_run:
            runner.run(step)
    else:
        _run_dask(runner, to_run, workers)
    return RunResult(plan, dict(runner.records), dict(runner.seconds))


def _run_dask(runner: _Runner, steps: list[PlannedStep], workers: int) -> None:
    import dask

    needs = runner.plan.pipeline.needs
    tasks: dict = {}
    for step in steps:
        upstream = [tasks[n] for n in sorted(needs[step.name]) if n in tasks]
        task = dask.delayed(_task, pure=False)
        tasks[step.name] = task(
            runner, step, *upstream, dask_key_name=f"{step.name}-{uuid.uuid4().hex}"
        )
    dask.compute(*tasks.values(), scheduler="threads", num_workers=workers)


def _task(runner: _Runner, step: PlannedStep, *_upstream) -> None:
    runner.run(step)


class _Runner:
    """Runs single steps; shared by the sequential loop and the dask tasks."""

    def __init__(self, plan: Plan, console: Console, progress: bool, registry) -> None:
        self.plan = plan
        self.console = console
        self.progress = progress
        self.registry = registry
        self.records: dict[str, dict | None] = {}
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def run(self, planned: PlannedStep) -> None:
        pipeline = self.plan.pipeline
        step = pipeline.steps[planned.name]
        with self._lock:
            entries = input_entries(step, pipeline, self.records)
        if entries is None:  # pragma: no cover - the graph order prevents it
            raise SubcellError(f"steps.{planned.name}: an upstream step has no complete record")
        folder = planned.folder
        _prepare(folder, planned, step.config_sha256, entries)
        started = _now()
        base = _base_record(pipeline, step, entries)
        write_record(folder, {**base, "complete": False, "started_utc": started})
        self.console.print(f"[bold]▶ {planned.name}[/bold] ({planned.kind}): {planned.reason}")
        start = time.perf_counter()
        try:
            with step_context(self.registry, self.progress):
                outputs = step.step.run(_paths(entries), folder)
            hashed = _hash_outputs(step, outputs, folder)
        except SubcellError as exc:  # name the step in the one-line message
            self.console.print(f"[red]✗ {planned.name}[/red] ({planned.kind}): failed")
            raise type(exc)(f"step {planned.name!r} ({planned.kind}): {exc}") from exc
        seconds = time.perf_counter() - start
        record = {
            **base,
            "outputs": hashed,
            "started_utc": started,
            "finished_utc": _now(),
            "seconds": round(seconds, 3),
            "complete": True,
        }
        write_record(folder, record)
        with self._lock:
            self.records[planned.name] = record
            self.seconds[planned.name] = seconds
        self.console.print(f"[green]✓ {planned.name}[/green] ({planned.kind}): {seconds:.1f} s")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _prepare(folder: Path, planned: PlannedStep, config_sha256: str, entries: dict) -> None:
    """Empty the folder unless an interrupted run of the same work can resume in it."""
    old = read_record(folder)
    resume = (
        planned.reason == "interrupted"
        and old is not None
        and not old.get("complete")
        and old.get("config_sha256") == config_sha256
        and recorded_digest(old.get("inputs")) == recorded_digest(entries)
    )
    if resume or not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        return
    if old is None and any(folder.iterdir()):  # checked when loading; never clear foreign files
        raise SubcellError(f"{folder}: holds files subcell run did not write; not touching it")
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _base_record(pipeline: Pipeline, step, entries: dict) -> dict:
    versions = provenance_record(plugins=[step.registration], step=step.kind)
    return {
        "format": FORMAT,
        "format_version": 1,
        "name": step.name,
        "step": step.kind,
        "pipeline": str(pipeline.path.resolve()),
        "config": step.config,
        "options": step.options,
        "config_sha256": step.config_sha256,
        "command_config_sha256": step.command_config_sha256,
        "inputs": entries,
        "subcell_version": versions["subcell_version"],
        "plugins": versions["plugins"],
        "python": versions["python"],
        "platform": versions["platform"],
        "libraries": versions["libraries"],
    }


def _paths(entries: dict) -> dict:
    """Input entries as the paths ``Step.run`` receives."""
    paths: dict = {}
    for name, entry in entries.items():
        if "items" in entry:
            paths[name] = {label: Path(e["path"]) for label, e in entry["items"].items()}
        else:
            paths[name] = Path(entry["path"])
    return paths


def _hash_outputs(step, outputs, folder: Path) -> dict:
    """Check what ``run`` returned (every declared output, inside the folder) and hash it."""
    where = f"{step.kind} from {step.registration.package}"
    if not isinstance(outputs, dict) or set(outputs) != set(step.step.outputs):
        got = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
        raise PluginError(
            f"{where}: run() must return its outputs {list(step.step.outputs)} by name, got {got}"
        )
    hashed = {}
    root = folder.resolve()
    for name in step.step.outputs:
        path = Path(outputs[name]).resolve()
        if not path.exists() or not path.is_relative_to(root):
            raise PluginError(f"{where}: output {name!r} {path} is missing or not in {folder}")
        relative = path.relative_to(root).as_posix()
        if relative == RECORD_FILE:
            raise PluginError(f"{where}: output {name!r} may not be the step record")
        hashed[name] = {"path": relative or ".", "sha256": content_sha256(path)}
    return hashed
