"""Final size checks of the clumped-cells phantom's cells, on the supersampled raster.

A cell keeps only its largest piece (clipping a power cell to a colony outline can cut off
a sliver). A cell below the size range merges into the neighbour it shares most border with
(or becomes background if that would make the neighbour too large); a cell above it keeps
only its pixels nearest its seed (the rest becomes intercellular space).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from subcell.plugins.cellcutter.phantom_seeds import area_limits_um2

__all__ = ["fix_sizes", "keep_largest_pieces"]


def fix_sizes(config, labels, points, boxes, qy, qx, h_um):
    """Keep each cell's largest piece, merge cells below the size range into a neighbour,
    trim those above (in place)."""
    keep_largest_pieces(labels)
    low, high = area_limits_um2(config)
    pixel = float(np.prod(h_um))
    n = len(points)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    small = (area > 0) & (area * pixel < low)
    small[0] = False
    if small.any():
        lut = np.arange(n + 1, dtype=labels.dtype)
        lut[small] = _merge_targets(labels, small, area, high / pixel)
        labels[...] = lut[labels]
        area = np.bincount(labels.ravel(), minlength=n + 1)
    most = int(high / pixel)
    for i in np.flatnonzero(area[1:] > most):
        win = boxes[i]
        mine = labels[win] == i + 1
        dist2 = (qy[win] - points[i, 0]) ** 2 + (qx[win] - points[i, 1]) ** 2
        dist2[~mine] = np.inf
        order = np.argsort(dist2, axis=None, kind="stable")[most : int(area[i + 1])]
        labels[win][np.unravel_index(order, mine.shape)] = 0
    return labels


def keep_largest_pieces(labels: np.ndarray) -> np.ndarray:
    """Zero every piece of a cell but its largest (4-connected), in place.

    Clipping a power cell to a colony outline can cut off a sliver; each cell is checked
    in its own bounding box.
    """
    for i, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        mine = labels[box] == i + 1
        pieces, n = ndimage.label(mine)
        if n > 1:
            largest = np.argmax(np.bincount(pieces.ravel())[1:]) + 1
            labels[box][mine & (pieces != largest)] = 0
    return labels


def _merge_targets(labels, small, area, most_px):
    """For each small cell, the neighbour it shares most border with (not small itself,
    and not made too large by the merge), else 0."""
    n1 = len(small)
    keys = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        touch = (a != b) & (a > 0) & (b > 0)
        a, b = a[touch].astype(np.int64), b[touch].astype(np.int64)
        keys += [a * n1 + b, b * n1 + a]
    mine, other = np.divmod(np.concatenate(keys), n1)
    use = small[mine] & ~small[other]
    pairs, shared = np.unique(mine[use] * n1 + other[use], return_counts=True)
    mine, other = np.divmod(pairs, n1)
    order = np.lexsort((-shared, mine))
    mine, other = mine[order], other[order]
    first = np.ones(len(mine), dtype=bool)
    first[1:] = mine[1:] != mine[:-1]
    mine, other = mine[first], other[first]
    target = np.zeros(n1, dtype=np.int64)
    fits = area[mine] + area[other] <= most_px
    target[mine[fits]] = other[fits]
    return target[small]
