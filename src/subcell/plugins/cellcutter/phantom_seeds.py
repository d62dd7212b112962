"""Seeds of the clumped-cells phantom's cells: how many, their target sizes, where.

All lengths are µm. Each colony cell draws a target size ``D`` uniform in
``cell_diameter_um``; the number of colony cells is the colonies' area over the mean target
area. Seeds are placed by random sequential adsorption of non-overlapping discs ("cores",
radius ``0.55 · D / 2``), largest first, in rounds until every seed is placed (or the rounds
run out): cores keep seeds apart, so cells are compact and nuclei fit. Each colony seed lies
at least half its core radius (plus the warp) inside its colony. Isolated cells are discs
of a size drawn from the same range, placed in the background clear of the colonies.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

__all__ = ["SIZE_MARGIN", "area_limits_um2", "distance_maps", "mean_cell_area_um2", "seeds"]

#: Core radius / target cell radius: cores cover ~0.3 of a colony, well below what random
#: adsorption reaches (~0.5), so every seed finds a place.
CORE_RATIO = 0.55
#: Most rounds of adsorption (one try per unplaced seed each).
_ROUNDS = 64
#: Colony seeds lie at least this fraction of their core radius inside the colony.
_EDGE_CORE = 0.5
#: Least distance between an isolated cell and a colony, µm.
_ISOLATED_CLEARANCE_UM = 2.0
#: Relative margin kept inside the size range (warp, pixel sampling).
SIZE_MARGIN = 0.03


def mean_cell_area_um2(config) -> float:
    """Mean target area of a colony cell, µm² (``D`` uniform in the size range)."""
    d_lo, d_hi = config.cell_diameter_um
    return math.pi * (d_lo * d_lo + d_lo * d_hi + d_hi * d_hi) / 12.0


def area_limits_um2(config) -> tuple[float, float]:
    """Smallest and largest cell area, µm², with the size margin kept inside."""
    d_lo, d_hi = config.cell_diameter_um
    d_lo, d_hi = d_lo * (1.0 + SIZE_MARGIN), d_hi * (1.0 - SIZE_MARGIN)
    return math.pi * d_lo * d_lo / 4.0, math.pi * d_hi * d_hi / 4.0


def seeds(config, rng, inside, outside, step, extent, slack):
    """Seeds of colony and isolated cells.

    Parameters
    ----------
    config
        The phantom's config.
    rng
        The only source of randomness.
    inside, outside
        Distance (µm) to the colony edge from inside and from outside, on a coarse grid of
        spacing ``step`` (µm).
    extent
        (y, x) size of the area, µm.
    slack
        Largest displacement of the warp, µm.

    Returns
    -------
    points, size, core, clip, isolated
        Seeds (n, 2) µm; target sizes D (n,); core radii (n,); clipping radii (n,) (inf for
        colony cells); True for isolated cells.
    """
    d_lo, d_hi = config.cell_diameter_um

    # Isolated cells (warped discs): a Poisson number over the background that lies a
    # cell radius (plus the warp) clear of the colonies; they may touch each other.
    away = d_hi / 2.0 + 2.0 * slack + config.gap_um + _ISOLATED_CLEARANCE_UM
    free = np.flatnonzero(outside.ravel() >= away)
    n_iso = int(rng.poisson(config.isolated_per_mm2 * len(free) * step**2 / 1e6))
    radius = rng.uniform(d_lo / 2.0, d_hi / 2.0, n_iso)
    radius = np.clip(radius, d_lo / 2.0 * (1 + SIZE_MARGIN), d_hi / 2.0 * (1 - SIZE_MARGIN))
    nodes = rng.choice(free, n_iso) if n_iso else np.zeros(0, dtype=np.int64)
    pts = np.stack(np.unravel_index(nodes, outside.shape), axis=1) + rng.random((n_iso, 2))
    pts = np.clip((pts - 0.5) * step, 0.0, extent)
    keep = _adsorb(pts, radius, np.zeros((0, 2)), np.zeros(0))
    iso_pts, iso_r = pts[keep], radius[keep]

    # Colony cells: as many as the colonies hold at the mean target size, largest first.
    col_pts, col_size = _place_colony_seeds(config, rng, inside, step, extent, slack)
    points = np.concatenate([col_pts, iso_pts])
    size = np.concatenate([col_size, 2.0 * iso_r])
    core = np.concatenate([CORE_RATIO * col_size / 2.0, iso_r])
    clip = np.concatenate([np.full(len(col_size), np.inf), iso_r])
    isolated = np.concatenate([np.zeros(len(col_size), bool), np.ones(len(iso_r), bool)])
    return points, size, core, clip, isolated


def _place_colony_seeds(config, rng, inside, step, extent, slack):
    """Seeds (n, 2) and target sizes (n,) of the colony cells."""
    colony_area = (inside > 0).sum() * step**2
    n = int(round(colony_area / mean_cell_area_um2(config)))
    size = np.sort(rng.uniform(*config.cell_diameter_um, n))[::-1]
    core = CORE_RATIO * size / 2.0
    points = np.zeros((n, 2))
    placed = np.zeros(n, dtype=bool)
    for _ in range(_ROUNDS):
        todo = np.flatnonzero(~placed)
        if not len(todo):
            break
        pts, ok = _candidates(rng, inside, step, extent, _EDGE_CORE * core[todo] + slack)
        todo, pts = todo[ok], pts[ok]
        keep = _adsorb(pts, core[todo], points[placed], core[placed])
        points[todo[keep]] = pts[keep]
        placed[todo[keep]] = True
    return points[placed], size[placed]


def _candidates(rng, dist, step, extent, need):
    """Uniform candidate points, and whether the coarse distance map ``dist`` is at least
    ``need`` there."""
    pts = rng.random((len(need), 2)) * extent
    node = np.clip(np.rint(pts / step).astype(np.int64), 0, np.asarray(dist.shape) - 1)
    return pts, dist[node[:, 0], node[:, 1]] >= need


def _adsorb(pts, radius, fixed_pts, fixed_radius):
    """Which candidates (in priority order) have discs clear of the fixed discs and of every
    earlier candidate they would touch: a conservative, vectorised round of adsorption."""
    ok = np.ones(len(pts), dtype=bool)
    if len(pts) and len(fixed_pts):
        reach = radius.max() + fixed_radius.max()
        pairs = cKDTree(pts).sparse_distance_matrix(
            cKDTree(fixed_pts), reach, output_type="ndarray"
        )
        hit = pairs["v"] < radius[pairs["i"]] + fixed_radius[pairs["j"]]
        ok[pairs["i"][hit]] = False
    if len(pts) > 1:
        pairs = cKDTree(pts).query_pairs(2.0 * radius.max(), output_type="ndarray")
        if len(pairs):
            i, j = pairs[:, 0], pairs[:, 1]
            hit = np.linalg.norm(pts[i] - pts[j], axis=1) < radius[i] + radius[j]
            ok[np.maximum(i, j)[hit]] = False
    return ok


def distance_maps(colony: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance (µm) to the colony edge from inside and from outside, on the coarse grid."""
    inside = ndimage.distance_transform_edt(colony) * step
    if not colony.any():
        return inside, np.full(colony.shape, np.inf)
    return inside, ndimage.distance_transform_edt(~colony) * step
