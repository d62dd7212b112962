"""Tubes of the cell: filopodia (out of the cell's edge) and nuclear reticulum channels
(into the nucleus), as chains of capsules, one instance per tube.

Coordinates are nm in the field, axis order (z, y, x).
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.model import Geometry
from subcell.core.validators import range_field
from subcell.plugins.nile_red.cell import CellShape, NucleusConfig

__all__ = ["FilopodiaConfig", "filopodia", "nuclear_reticulum"]

#: Length (nm) of the capsules that make up tubes.
_TUBE_STEP_NM = 200.0


@attrs.frozen(kw_only=True)
class FilopodiaConfig:
    """Filopodia: thin plasma membrane tubes reaching out from the cell's edge along the
    coverslip (Mattila & Lappalainen 2008, Nat. Rev. Mol. Cell Biol. 9, 446–454: 0.1–0.3 µm
    wide, a few µm long).

    Attributes
    ----------
    count
        Filopodia per cell.
    radius_nm
        Tube radius (nm).
    length_um
        Length beyond the cell's edge (µm).
    """

    count: tuple[int, int] = range_field((10, 40), integer=True)
    radius_nm: tuple[float, float] = range_field((50.0, 100.0), positive=True)
    length_um: tuple[float, float] = range_field((1.0, 8.0), positive=True)


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _chain(start, heading, step_nm, n_steps, bend_sd, rng) -> np.ndarray:
    """A worm-like polyline from ``start`` (3,) along unit ``heading`` (3,): ``n_steps``
    steps of ``step_nm``, each direction perturbed by ``bend_sd`` radians."""
    directions = np.empty((n_steps, 3))
    d = heading / np.linalg.norm(heading)
    for i in range(n_steps):
        d = d + bend_sd * rng.standard_normal(3)
        d /= np.linalg.norm(d)
        directions[i] = d
    return np.concatenate([start[None], start + np.cumsum(directions * step_nm, axis=0)])


def _capsules(lines: list[np.ndarray], radii: list[float], class_name: str) -> Geometry:
    """Chains of capsules, instance ``i + 1`` for line ``i``."""
    if not lines:
        return Geometry.empty((class_name,))
    start = np.concatenate([line[:-1] for line in lines])
    end = np.concatenate([line[1:] for line in lines])
    counts = [len(line) - 1 for line in lines]
    return Geometry(
        (class_name,),
        start,
        end,
        np.repeat(radii, counts),
        np.repeat(np.arange(1, len(lines) + 1), counts),
        np.zeros(len(start), dtype=np.int16),
    )


def filopodia(shape: CellShape, config: FilopodiaConfig, rng) -> Geometry:
    """Filopodia: tubes from just inside the edge outwards, near the coverslip.

    Each starts 300 nm inside the edge at mid-height of the lamella, heads along the
    footprint's outward normal (± 25°) and bends gently (persistence ~5 µm).
    """
    n = int(rng.integers(config.count[0], config.count[1] + 1))
    lines, radii = [], []
    for _ in range(n):
        theta = rng.uniform(0, 2 * np.pi)
        radius = _uniform(rng, config.radius_nm)
        length = _uniform(rng, config.length_um) * 1e3 + 300.0
        normal = theta - np.arctan2(shape.edge_slope(theta), shape.edge_radius(theta))
        normal += np.deg2rad(25.0) * rng.standard_normal()
        rim = shape.edge_radius(theta) - 300.0
        z = shape.base_nm + max(radius + 20.0, rng.uniform(0.3, 0.7) * shape.edge_height_nm)
        start = np.array(
            [z, shape.centre_nm[0] + rim * np.sin(theta), shape.centre_nm[1] + rim * np.cos(theta)]
        )
        heading = np.array([0.0, np.sin(normal), np.cos(normal)])
        steps = max(1, int(np.ceil(length / _TUBE_STEP_NM)))
        line = _chain(start, heading, length / steps, steps, 0.1, rng)
        line[:, 0] = np.clip(line[:, 0], shape.base_nm + radius + 20.0, None)
        lines.append(line)
        radii.append(radius)
    return _capsules(lines, radii, "filopodia")


def nuclear_reticulum(shape: CellShape, config: NucleusConfig, rng) -> Geometry:
    """Nuclear reticulum channels: tubes from the envelope into the nucleus.

    Each starts on the envelope (uniform in area), heads for the nucleus's centre (± 20°)
    and ends at its drawn length or where it would reach the envelope again; a channel
    that would not get one step inside is skipped (fewer channels, never an endless
    search).
    """
    nuc = shape.nucleus
    n = int(rng.integers(config.reticulum_count[0], config.reticulum_count[1] + 1))
    # ~one candidate mouth per µm² of envelope, at least 4 per channel asked for.
    mouths = nuc.surface(max(1e-6, 4 * n / nuc.area_nm2()), rng)
    shrink = 0.5 * nuc.semi_axes_nm.min()  # a channel's axis stays this far inside at most
    lines, radii = [], []
    for point in mouths:
        if len(lines) == n:
            break
        radius = _uniform(rng, config.reticulum_radius_nm)
        length = _uniform(rng, config.reticulum_length_um) * 1e3
        heading = nuc.centre_nm - point
        heading /= np.linalg.norm(heading)
        heading += np.deg2rad(20.0) * rng.standard_normal(3)
        steps = max(1, int(np.ceil(length / _TUBE_STEP_NM)))
        line = _chain(point, heading, length / steps, steps, 0.1, rng)
        inside = nuc.level(line[1:], -min(radius, shrink)) < 1
        stop = int(np.argmin(inside)) if not inside.all() else len(inside)
        if stop >= 1:
            lines.append(line[: stop + 1])
            radii.append(radius)
    return _capsules(lines, radii, "nuclear_reticulum")
