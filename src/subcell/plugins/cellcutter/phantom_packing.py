"""The clumped-cells phantom's cells as a balanced power diagram of their seeds.

All lengths are µm. A cell is the power cell of its seed (distances in warped coordinates)
clipped to its colony; an isolated cell is clipped to its disc. The weights start at the
core radii squared (each power cell then holds its core) and are *balanced* on a coarse
grid towards the cells' target areas ``π D² / 4``, scaled so that they fill each colony: a
capacity-constrained power diagram, solved by Newton's method (a few rounds; cells cut by
the grid's edge, in the margin, keep their weights).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import spsolve

from subcell.plugins.cellcutter.phantom_seeds import SIZE_MARGIN, area_limits_um2

__all__ = ["balance_weights", "clip_cells", "power_labels", "reach_um"]

#: Balancing: grid spacing (µm), most rounds, damping of the Newton step, relative area
#: tolerance.
_BALANCE_STEP_UM = 1.0
_BALANCE_ROUNDS = 6
_BALANCE_GAIN = 1.0
_BALANCE_TOLERANCE = 0.05
#: Largest edge move of one balancing step, µm.
_STEP_LIMIT_UM = 3.0
#: Spacing of the coarse raster the nuclei are placed on, µm.
NUCLEUS_GRID_UM = 0.5
#: Added to each cell's reach on that raster for the final one's search box, µm.
_REACH_MARGIN_UM = 3.0


def reach_um(config, weight, slack) -> float:
    """Distance within which the power owner of any cell pixel lies, when every colony
    point is within a cell size of some seed (search boxes of the coarse rasters)."""
    spread = float(weight.max() - weight.min()) if len(weight) else 0.0
    return math.sqrt(config.cell_diameter_um[1] ** 2 + max(spread, 0.0)) + 2.0 * slack


def power_labels(points, weight, clip, qy, qx, h_um, reach, *, runner_up=False):
    """Power-diagram labels (1..n) of a grid whose pixel centres lie at ``(qy, qx)``.

    Each seed updates the pixels of its box (``reach`` µm round it; one for all seeds, or
    one per seed): the power distance ``|q - s|² - w`` and the owner with the lowest. A seed
    with a finite ``clip`` radius claims no pixel beyond it. Pixels no box covers get 0.

    Returns
    -------
    labels, best, boxes[, second, rival]
        Owner labels, the owner's power distance (float32), each seed's box, and with
        ``runner_up`` the second-lowest power distance and its seed's label.
    """
    shape = qy.shape
    best = np.full(shape, np.inf, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.int32)
    if runner_up:
        second = np.full(shape, np.inf, dtype=np.float32)
        rival = np.zeros(shape, dtype=np.int32)
    boxes = _boxes(points, reach, h_um, shape)
    w32 = weight.astype(np.float32)
    clip2 = (clip**2).astype(np.float32)
    for i, win in enumerate(boxes):
        power = (qy[win] - np.float32(points[i, 0])) ** 2
        power += (qx[win] - np.float32(points[i, 1])) ** 2
        here = best[win]
        if np.isfinite(clip2[i]):
            wins = (power <= clip2[i]) & (power - w32[i] < here)
            power -= w32[i]
        else:
            power -= w32[i]
            wins = power < here
        if runner_up:
            runner = ~wins & (power < second[win])
            second[win] = np.where(wins, here, np.where(runner, power, second[win]))
            rival[win] = np.where(wins, labels[win], np.where(runner, i + 1, rival[win]))
        here[wins] = power[wins]
        labels[win][wins] = i + 1
    if runner_up:
        return labels, best, boxes, second, rival
    return labels, best, boxes


def _boxes(points, reach, h_um, shape):
    """Windows of the grid within ``reach`` µm (scalar or per seed) of every seed."""
    reach = np.broadcast_to(np.asarray(reach, dtype=float), (len(points),))[:, None]
    half = np.ceil(reach / np.asarray(h_um)).astype(int)
    centre = np.floor(points / np.asarray(h_um)).astype(int)
    low = np.maximum(centre - half, 0)
    high = np.minimum(centre + half + 1, shape)
    return [(slice(y0, y1), slice(x0, x1)) for (y0, x0), (y1, x1) in zip(low, high, strict=True)]


def clip_cells(labels, isolated, colony):
    """Zero the pixels of colony cells outside the colony (in place)."""
    keep = np.append(False, isolated)[labels] | colony
    labels[~keep] = 0
    return labels


def balance_weights(
    config, points, size, weight, clip, isolated, colony_at, warped_at, extent, slack
):
    """Balance the colony cells' weights towards their target areas (on a coarse grid).

    Parameters
    ----------
    config
        The phantom's config.
    points, size, weight, clip, isolated
        Seeds (µm), target sizes (µm), starting weights (µm²), clipping radii and the
        isolated flags (isolated cells keep their weight).
    colony_at, warped_at
        ``f(shape, h_um)``: the colony mask, and the warped coordinates (qy, qx), on a grid
        of that shape and spacing.
    extent
        (y, x) size of the area, µm.
    slack
        Largest displacement of the warp, µm.

    Returns
    -------
    weight, labels, h_um, reach
        The balanced weights; the cells' labels with them on a grid of spacing ``h_um`` =
        ``NUCLEUS_GRID_UM`` (pixel centres at ``(i + ½) · h_um``); and for each seed the
        largest distance (µm, with a margin) from its cell's pixels, the box the final
        raster searches round it.
    """
    weight = weight.astype(np.float64).copy()
    h = np.full(2, _BALANCE_STEP_UM)
    shape = tuple(int(math.ceil(e / _BALANCE_STEP_UM)) for e in extent)
    qy, qx = warped_at(shape, h)
    colony = colony_at(shape, h)
    target = _target_areas(config, points, size, isolated, colony, h)
    for round_ in range(_BALANCE_ROUNDS):
        reach = reach_um(config, weight, slack)
        labels = power_labels(points, weight, clip, qy, qx, h, reach)[0]
        clip_cells(labels, isolated, colony)
        area = np.bincount(labels.ravel(), minlength=len(points) + 1)[1:] * float(h.prod())
        # Cells cut by the grid's edge (in the margin, outside the field) cannot reach their
        # targets: they keep their weights.
        frozen = isolated.copy()
        frozen[_edge_labels(labels) - 1] = True
        miss = np.where(frozen, 0.0, target - area)
        if np.all(np.abs(miss) <= _BALANCE_TOLERANCE * target) or round_ == _BALANCE_ROUNDS - 1:
            break
        weight += _BALANCE_GAIN * _newton_step(labels, points, frozen, miss, h[0])
    # The raster the nuclei are placed on, and how far cells reach from their seeds.
    h = np.full(2, NUCLEUS_GRID_UM)
    shape = tuple(int(math.ceil(e / NUCLEUS_GRID_UM)) for e in extent)
    qy, qx = warped_at(shape, h)
    labels = power_labels(points, weight, clip, qy, qx, h, reach_um(config, weight, slack))[0]
    clip_cells(labels, isolated, colony_at(shape, h))
    inside = labels > 0
    own = labels[inside] - 1
    dist = np.hypot(qy[inside] - points[own, 0], qx[inside] - points[own, 1])
    reach = np.zeros(len(points))
    np.maximum.at(reach, own, dist)
    reach += _REACH_MARGIN_UM + config.gap_um
    return weight, labels, NUCLEUS_GRID_UM, reach


def _edge_labels(labels: np.ndarray) -> np.ndarray:
    """Labels (> 0) of the cells on the raster's outer rows and columns."""
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    return np.unique(edge[edge > 0])


def _newton_step(labels, points, frozen, miss, h):
    """Weight change that moves every free colony cell's area by ``miss`` to first order.

    The area of power cell ``i`` changes with the weights as ``dA_i/dw_i = Σ_j L_ij /
    (2 d_ij)`` and ``dA_i/dw_j = -L_ij / (2 d_ij)`` (edge length ``L``, seed distance
    ``d``): a graph Laplacian, whose linear system over the free cells is solved (Newton's
    method for a capacity-constrained power diagram, a semi-discrete transport problem).
    Frozen neighbours keep their weights. Edge lengths come from the raster: a random edge
    crosses ``4 / π`` pixel pairs per pixel of its length.
    """
    n = len(points)
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        touch = (a != b) & (a > 0) & (b > 0)
        pairs.append(np.sort(np.stack([a[touch], b[touch]], axis=1) - 1, axis=1))
    edges, count = np.unique(np.concatenate(pairs), axis=0, return_counts=True)
    step = np.zeros(n)
    if not len(edges):
        return step
    i, j = edges[:, 0], edges[:, 1]
    distance = np.maximum(np.linalg.norm(points[i] - points[j], axis=1), h)
    coupling = count * h * math.pi / 4.0 / (2.0 * distance)
    diagonal = np.bincount(i, coupling, n) + np.bincount(j, coupling, n)
    active = ~frozen & (diagonal > 0)
    index = np.cumsum(active) - 1
    inner = active[i] & active[j]
    m = int(active.sum())
    if m == 0:
        return step
    ii, jj, cc = index[i[inner]], index[j[inner]], coupling[inner]
    off = sparse.coo_matrix(
        (np.concatenate([cc, cc]), (np.concatenate([ii, jj]), np.concatenate([jj, ii]))),
        shape=(m, m),
    ).tocsr()
    diag = diagonal[active]
    rhs = miss[active]
    # A group of free cells that touches no frozen cell shares a fixed area: what its
    # misses add up to cannot be fixed by weights (that would only shift them all), so it
    # is taken out, and a small ridge fixes the free constant.
    _, group = connected_components(off, directed=False)
    anchored = np.bincount(group, diag - np.asarray(off.sum(axis=1)).ravel()) > 1e-9 * diag.max()
    floating = ~anchored[group]
    mean = np.bincount(group, rhs) / np.bincount(group)
    rhs = np.where(floating, rhs - mean[group], rhs)
    ridge = np.where(floating, 1e-6 * diag.max(), 0.0)
    hessian = (sparse.diags(diag + ridge) - off).tocsc()
    solved = spsolve(hessian, rhs)
    # The linearisation holds for small moves: an edge moves by Δw / (2 d); keep that
    # within a few µm.
    limit = 2.0 * float(np.median(distance)) * _STEP_LIMIT_UM
    step[active] = np.clip(solved, -limit, limit)
    return step


def _target_areas(config, points, size, isolated, colony, h):
    """Target area of each colony cell: ``π D² / 4`` scaled so that the cells of each
    colony fill it, then held inside the size range."""
    target = math.pi * size**2 / 4.0
    parts, n_parts = ndimage.label(colony)
    if n_parts == 0:
        return target
    node = np.clip((points / h).astype(np.int64), 0, np.asarray(colony.shape) - 1)
    part = np.where(isolated, 0, parts[node[:, 0], node[:, 1]])
    part_area = np.bincount(parts.ravel(), minlength=n_parts + 1) * float(h.prod())
    wanted = np.bincount(part, target, minlength=n_parts + 1)
    scale = np.divide(part_area, wanted, out=np.ones_like(part_area), where=wanted > 0)
    low, high = area_limits_um2(config)
    scaled = np.clip(target * scale[part], low * (1 + SIZE_MARGIN), high * (1 - SIZE_MARGIN))
    return np.where(part > 0, scaled, target)
