"""Resumable training state: last weights, optimizer and scheduler, history, in ``checkpoint/``.

Weights are safetensors; the optimizer state is written with ``torch.save`` and read back
with ``torch.load(weights_only=True)`` (tensors and numbers only, no code). The state JSON
carries the hash of everything that defines the run, so a rerun resumes only the same run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from subcell.core.errors import SubcellError

__all__ = ["CHECKPOINT_DIR", "clear", "read_state", "restore", "write"]

CHECKPOINT_DIR = "checkpoint"
_STATE = "state.json"
_WEIGHTS = "last.safetensors"
_OPTIMIZER = "optimizer.pt"


def read_state(out: Path) -> dict | None:
    """The saved state of a run in ``out``, or None when there is none."""
    path = out / CHECKPOINT_DIR / _STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SubcellError(f"{path}: unreadable training state ({exc}); use --overwrite") from None


def write(out: Path, network, optimizer, scheduler, state: dict[str, Any]) -> None:
    """Save the run's state after an epoch; the state JSON is written last, atomically."""
    import torch
    from safetensors.torch import save_file

    folder = out / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in network.state_dict().items()}
    save_file(weights, str(folder / (_WEIGHTS + ".partial")))
    os.replace(folder / (_WEIGHTS + ".partial"), folder / _WEIGHTS)
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        folder / (_OPTIMIZER + ".partial"),
    )
    os.replace(folder / (_OPTIMIZER + ".partial"), folder / _OPTIMIZER)
    (folder / (_STATE + ".partial")).write_text(json.dumps(state, indent=1))
    os.replace(folder / (_STATE + ".partial"), folder / _STATE)


def restore(out: Path, network, optimizer, scheduler, device) -> None:
    """Load the last weights, optimizer and scheduler state saved by :func:`write`."""
    import torch
    from safetensors.torch import load_file

    folder = out / CHECKPOINT_DIR
    try:
        network.load_state_dict(load_file(str(folder / _WEIGHTS), device=str(device)))
        extra = torch.load(folder / _OPTIMIZER, map_location=device, weights_only=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise SubcellError(f"{folder}: cannot resume ({exc}); use --overwrite") from None
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])


def clear(out: Path) -> None:
    """Remove the checkpoint folder (after a finished run, or with ``--overwrite``)."""
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
