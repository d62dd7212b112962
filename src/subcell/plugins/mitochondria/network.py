"""One mitochondrion: a tube, optionally with side branches, placed inside the field.

An instance is a list of polylines (vertices in nm, ``(z, y, x)``), all with one radius.
Each polyline becomes a chain of capsules from vertex ``k`` to ``k + 1``; a branch's first
vertex is bit-for-bit a vertex of an earlier polyline, so its junction has degree 3.
"""

from __future__ import annotations

import numpy as np

from subcell.plugins.mitochondria.centreline import Shape, centreline

__all__ = ["build_instance", "fit_laterally", "to_capsules"]

#: Branches leave their parent at this angle (degrees) or steeper, either side.
_BRANCH_ANGLE_DEG = (45.0, 135.0)


def _junction_candidates(lines: list[np.ndarray], used: set, keep_out_nm: float):
    """(line, vertex) pairs at least ``keep_out_nm`` of arc length from every polyline end
    and from every junction already used."""
    out = []
    for li, line in enumerate(lines):
        step = np.linalg.norm(np.diff(line, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(step)])
        ok = (s >= keep_out_nm) & (s <= s[-1] - keep_out_nm)
        for lj, vj in used:
            if lj == li:
                ok &= np.abs(s - s[vj]) >= keep_out_nm
        out.extend((li, int(v)) for v in np.flatnonzero(ok))
    return out


def _heading_at(line: np.ndarray, vertex: int) -> float:
    """Horizontal direction (radians, from +x towards +y) of a polyline at a vertex."""
    a, b = line[max(vertex - 1, 0)], line[min(vertex + 1, len(line) - 1)]
    return float(np.arctan2(b[1] - a[1], b[2] - a[2]))


def build_instance(
    length_nm: float,
    radius_nm: float,
    shape: Shape,
    n_branches: int,
    branch_length_nm: tuple[float, float],
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """A tube of centreline length ``length_nm`` with up to ``n_branches`` side branches.

    Each branch starts at a vertex of the tube (or of an earlier branch) at least one
    diameter from any end and from other junctions, leaves at 45°–135° to either side of
    the parent's heading, and has a length uniform in ``branch_length_nm``. A tube too short
    to host a junction gets fewer branches.

    Returns
    -------
    list of numpy.ndarray
        Polylines, the main tube first, laterally starting at the origin.
    """
    step = radius_nm
    lines = [centreline(length_nm, step, shape, rng)]
    used: set[tuple[int, int]] = set()
    for _ in range(n_branches):
        candidates = _junction_candidates(lines, used, 2 * radius_nm)
        if not candidates:
            break
        li, vi = candidates[int(rng.integers(len(candidates)))]
        used.add((li, vi))
        side = rng.choice([-1.0, 1.0])
        turn = np.deg2rad(rng.uniform(*_BRANCH_ANGLE_DEG))
        heading = _heading_at(lines[li], vi) + side * turn
        length = rng.uniform(*branch_length_nm)
        branch = centreline(length, step, shape, rng, heading=heading, start_nm=lines[li][vi])
        lines.append(branch)
        used.add((len(lines) - 1, 0))
    return lines


def fit_laterally(
    lines: list[np.ndarray],
    radius_nm: float,
    extent_yx_nm: np.ndarray,
    allow_partial: bool,
    rng: np.random.Generator,
) -> list[np.ndarray] | None:
    """Translate an instance laterally to a uniform position inside the field.

    The whole tube (surface included) stays inside ``[0, extent)``; with ``allow_partial``
    the centre of its bounding box is uniform over the field instead. Returns None when the
    instance is too wide to fit.
    """
    yx = np.concatenate([line[:, 1:] for line in lines])
    low, high = yx.min(axis=0) - radius_nm, yx.max(axis=0) + radius_nm
    if allow_partial:
        target = rng.random(2) * extent_yx_nm - (low + high) / 2
    else:
        room = extent_yx_nm - (high - low)
        if (room < 0).any():
            return None
        target = rng.random(2) * room - low
    shift = np.concatenate([[0.0], target])
    return [line + shift for line in lines]


def to_capsules(lines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Capsule starts and ends (each (M, 3)) of the chains along the polylines."""
    starts = np.concatenate([line[:-1] for line in lines])
    ends = np.concatenate([line[1:] for line in lines])
    return starts, ends
