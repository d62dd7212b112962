"""The eight dihedral transforms of a square patch: flips and transposes, applied and undone.

Transform ``t`` in ``0..7`` is read as bits: bit 0 flips the last axis (x), bit 1 flips the
second-last axis (y), bit 2 transposes the last two axes; they are applied in that order and
undone in the reverse order. The functions take torch tensors or numpy arrays of shape
``(..., k, k)`` (any ``(..., h, w)`` for the codes below 4, and for a transpose whose result
may be ``(..., w, h)``).

Used by the cellcutter training (all eight; the public cellcutter code draws ``t`` from
``0..3`` and so never transposes) and by test-time augmentation
(:func:`subcell.models.predict.tta_views`), which needs the subgroups below.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "FLIP_CODES",
    "N_DIHEDRAL",
    "TURN_CODES",
    "apply_dihedral",
    "apply_dihedral_batch",
    "undo_dihedral",
    "undo_dihedral_batch",
]

N_DIHEDRAL = 8
#: The flips of x, of y and of both (a half turn): what random flips of each axis show.
FLIP_CODES = (0, 1, 2, 3)
#: The quarter turns: none, a half turn (3), a quarter turn (5, as ``numpy.rot90``) and
#: three quarters (6).
TURN_CODES = (0, 3, 5, 6)

ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


def apply_dihedral(patches: ArrayT, t: int) -> ArrayT:
    """Apply dihedral transform ``t`` to the last two axes.

    Parameters
    ----------
    patches
        ``(..., k, k)`` tensor or array (square in the last two axes when ``t >= 4``).
    t
        Transform code in ``0..7``.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        The transformed patches, same type and shape.
    """
    _check_code(t)
    out = patches
    if t & 1:
        out = _flip(out, -1)
    if t & 2:
        out = _flip(out, -2)
    if t & 4:
        out = _transpose(out)
    return out


def undo_dihedral(patches: ArrayT, t: int) -> ArrayT:
    """Invert :func:`apply_dihedral`: ``undo_dihedral(apply_dihedral(p, t), t) == p``.

    Parameters
    ----------
    patches
        ``(..., k, k)`` tensor or array in the transformed frame.
    t
        Transform code in ``0..7`` that was applied.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        The patches in the original frame.
    """
    _check_code(t)
    out = patches
    if t & 4:
        out = _transpose(out)
    if t & 2:
        out = _flip(out, -2)
    if t & 1:
        out = _flip(out, -1)
    return out


def apply_dihedral_batch(patches: torch.Tensor, codes: np.ndarray) -> torch.Tensor:
    """Apply a separate transform to each patch of a batch.

    Parameters
    ----------
    patches
        ``(N, ..., k, k)`` tensor.
    codes
        ``(N,)`` transform codes in ``0..7``.

    Returns
    -------
    torch.Tensor
        ``(N, ..., k, k)``; differentiable.
    """
    return _per_code(patches, codes, apply_dihedral)


def undo_dihedral_batch(patches: torch.Tensor, codes: np.ndarray) -> torch.Tensor:
    """Undo a separate transform on each patch of a batch (inverse of :func:`apply_dihedral_batch`).

    Parameters
    ----------
    patches
        ``(N, ..., k, k)`` tensor in the transformed frames.
    codes
        ``(N,)`` transform codes in ``0..7`` that were applied.

    Returns
    -------
    torch.Tensor
        ``(N, ..., k, k)`` in the original frames; differentiable.
    """
    return _per_code(patches, codes, undo_dihedral)


def _per_code(patches: torch.Tensor, codes: np.ndarray, transform) -> torch.Tensor:
    codes = np.asarray(codes, dtype=np.int64).reshape(-1)
    if codes.shape[0] != patches.shape[0]:
        raise ValueError(f"{codes.shape[0]} transform codes for {patches.shape[0]} patches")
    out = torch.empty_like(patches)
    # One flip/transpose per distinct code instead of one per patch.
    for t in np.unique(codes):
        index = torch.as_tensor(np.flatnonzero(codes == t), device=patches.device)
        out = out.index_copy(0, index, transform(patches.index_select(0, index), int(t)))
    return out


def _flip(x, axis: int):
    if isinstance(x, torch.Tensor):
        return torch.flip(x, dims=(axis,))
    return np.flip(x, axis=axis)


def _transpose(x):
    if isinstance(x, torch.Tensor):
        return x.transpose(-1, -2)
    return np.swapaxes(x, -1, -2)


def _check_code(t: int) -> None:
    if not 0 <= int(t) < N_DIHEDRAL:
        raise ValueError(f"dihedral transform code must be in 0..7, got {t}")
