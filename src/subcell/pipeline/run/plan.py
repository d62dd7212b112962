"""What a run will do: each step run or reused, and why.

A step is reused when its folder holds a complete record with the same config hash and the
same input hashes as now, and its outputs are still there; otherwise it runs, and so does
everything downstream of it. Planning reads records and stats input paths; it writes
nothing (``subcell run --dry-run`` prints the plan and stops).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs

from subcell.core.errors import ConfigError
from subcell.pipeline.run.pipeline import Pipeline
from subcell.pipeline.run.records import read_record, stat_sha256
from subcell.pipeline.run.references import Literal, Reference
from subcell.pipeline.run.resolve import ResolvedStep
from subcell.registry.registry import suggest

__all__ = ["Plan", "PlannedStep", "input_entries", "make_plan", "recorded_digest"]

RUN, REUSE = "run", "reuse"


@attrs.frozen
class PlannedStep:
    """One step of a plan.

    Attributes
    ----------
    name, kind
        The step and its kind.
    action
        ``"run"`` or ``"reuse"``.
    reason
        ``"forced"``, ``"no output"``, ``"interrupted"`` (resumes when the step can),
        ``"config changed"``, ``"input changed"`` or ``"up to date"``.
    folder
        The step's folder.
    """

    name: str
    kind: str
    action: str
    reason: str
    folder: Path


@attrs.frozen(eq=False)
class Plan:
    """The plan of a pipeline run, steps in the order they run."""

    pipeline: Pipeline
    steps: tuple[PlannedStep, ...]

    def __getitem__(self, name: str) -> PlannedStep:
        return next(s for s in self.steps if s.name == name)

    @property
    def to_run(self) -> list[str]:
        """Names of the steps that will run."""
        return [s.name for s in self.steps if s.action == RUN]

    def table(self, seconds: dict[str, float] | None = None, title: str | None = None):
        """The plan as a rich table (with each step's time when ``seconds`` is given)."""
        from rich.table import Table

        table = Table(title=title or f"{self.pipeline.path.name}: {self.pipeline.out}")
        for column in ("step", "kind", "action", "why"):
            table.add_column(column, no_wrap=column != "why")
        if seconds is not None:
            table.add_column("s", justify="right")
        for step in self.steps:
            style = "bold" if step.action == RUN else "dim"
            row = [step.name, step.kind, f"[{style}]{step.action}[/{style}]", step.reason]
            if seconds is not None:
                row.append(f"{seconds[step.name]:.1f}" if step.name in seconds else "")
            table.add_row(*row)
        return table


def make_plan(pipeline: Pipeline, force: Iterable[str] = ()) -> Plan:
    """Decide, step by step, what runs and what is reused.

    Parameters
    ----------
    pipeline
        The validated pipeline.
    force
        Steps to rerun whatever their records say (their downstream reruns too).

    Raises
    ------
    ConfigError
        ``force`` names a step the pipeline does not have.
    """
    names = list(pipeline.steps)
    for name in force:
        if name not in pipeline.steps:
            raise ConfigError(
                f"--force {name}: {pipeline.path} has no step {name!r}{suggest(name, names)}; "
                f"steps: {', '.join(names)}"
            )
    forced = set(force)
    records: dict[str, dict | None] = {}
    planned: dict[str, PlannedStep] = {}
    for name, step in pipeline.steps.items():
        folder = pipeline.folder(name)
        records[name] = record = read_record(folder)
        upstream_runs = any(planned[n].action == RUN for n in pipeline.needs[name])
        reason = _reason(step, record, folder, name in forced, upstream_runs, pipeline, records)
        action = REUSE if reason == "up to date" else RUN
        planned[name] = PlannedStep(name, step.kind, action, reason, folder)
    return Plan(pipeline, tuple(planned.values()))


def _reason(step, record, folder: Path, forced: bool, upstream_runs: bool, pipeline, records):
    if forced:
        return "forced"
    if record is None:
        return "no output"
    if not record.get("complete"):
        return "interrupted"
    if record.get("step") != step.kind or record.get("config_sha256") != step.config_sha256:
        return "config changed"
    if upstream_runs:
        return "input changed"
    entries = input_entries(step, pipeline, records)
    if entries is None or recorded_digest(record.get("inputs")) != recorded_digest(entries):
        return "input changed"
    outputs = record.get("outputs") or {}
    if not outputs or any(not (folder / o.get("path", "")).exists() for o in outputs.values()):
        return "no output"
    return "up to date"


def input_entries(step: ResolvedStep, pipeline: Pipeline, records: dict) -> dict | None:
    """The record entries of a step's inputs now: path and hash of each (by label for a
    ``many`` input). None when an upstream step has no complete record."""
    entries: dict = {}
    for name, value in step.inputs.items():
        if isinstance(value, dict):
            items = {label: _entry(item, step, pipeline, records) for label, item in value.items()}
            if any(v is None for v in items.values()):
                return None
            entries[name] = {"items": items}
        else:
            entries[name] = _entry(value, step, pipeline, records)
            if entries[name] is None:
                return None
    return entries


def _entry(item: Reference | Literal, step: ResolvedStep, pipeline: Pipeline, records: dict):
    if isinstance(item, Literal):
        return {"path": str(item.path), "sha256": stat_sha256(item.path), "hash": "stat"}
    record = records.get(item.step)
    if not record or not record.get("complete"):
        return None
    upstream = pipeline.steps[item.step]
    key = item.output or upstream.step.outputs[0]
    output = (record.get("outputs") or {}).get(key)
    if output is None:
        return None
    folder = pipeline.folder(item.step)
    return {
        "step": item.step,
        "output": key,
        "path": str(folder / output["path"]),
        "record": f"../{item.step}/subcell-step.json",
        "sha256": output["sha256"],
    }


def recorded_digest(entries: dict | None) -> dict | None:
    """Only the hashes of input entries: what must match for a reuse."""
    if entries is None:
        return None
    digest = {}
    for name, entry in entries.items():
        if "items" in entry:
            digest[name] = {k: v.get("sha256") for k, v in entry["items"].items()}
        else:
            digest[name] = entry.get("sha256")
    return digest
