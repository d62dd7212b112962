"""What a running step may ask of the run: the plugin registry and whether to show progress.

The step protocol is ``run(inputs, out)``; these two settings of the whole run reach the
built-in steps (and any plugin step that wants them) through context variables set around
each call, so a step running in a worker thread sees the run's values.
"""

from __future__ import annotations

import contextlib
import contextvars

from subcell.registry import Registry, get_registry

__all__ = ["registry", "show_progress", "step_context"]

_REGISTRY: contextvars.ContextVar[Registry | None] = contextvars.ContextVar(
    "subcell_run_registry", default=None
)
_PROGRESS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "subcell_run_progress", default=False
)


def registry() -> Registry:
    """The registry of the running pipeline (the process-wide one outside a run)."""
    return _REGISTRY.get() or get_registry()


def show_progress() -> bool:
    """Whether a step may draw its own progress bar (one step at a time, on a terminal)."""
    return _PROGRESS.get()


@contextlib.contextmanager
def step_context(run_registry: Registry | None, progress: bool):
    """Set the registry and progress flag for the step run inside the block."""
    tokens = (_REGISTRY.set(run_registry), _PROGRESS.set(progress))
    try:
        yield
    finally:
        _PROGRESS.reset(tokens[1])
        _REGISTRY.reset(tokens[0])
