"""Instance labels across blocks: one id per object, whatever blocks it spans.

Instances are the connected components (full connectivity in z, y and x) of each class's
mask, numbered class by class, as :func:`~subcell.pipeline.segment_steps.label_instances`
numbers them for an image in memory. Across blocks:

1. **Globally unique ids per block.** Each block labels the components of its own core
   (``local`` ids 1..n, class by class) when it is predicted. Block ``b``'s ids become
   provisional ids ``offset[b] + local``, the offsets being the running sum of every earlier
   block's count, so no two blocks share an id and no coordination is needed while they run.
2. **Matching in the shared halo.** For each face a block shares with a following
   neighbour, the two voxel layers on either side of the face (one voxel wider than the core
   on each side, so edge and corner contacts count too) are read back from the stored
   output. Two provisional ids are matched where a voxel of one touches a voxel of the other
   (26-neighbourhood) within the same class.
3. **Union-find.** The matches join provisional ids into objects (connected components of
   the match graph, scipy's union-find); objects are numbered 1.. by class, then by the
   first block they appear in. That is one relabel table, provisional id -> final id.
4. **Applied block-wise.** Each block relabels its own core with the table and writes it.

Ownership: every voxel belongs to exactly one block, the one whose core holds it; the halos
only feed the predictions and are cropped, so an object that lies wholly in a neighbour's
halo (smaller than the halo) is labelled once, by the block that owns its voxels, and never
duplicated or lost. Because masks are read back from the stored output, the matching sees
exactly the mask that is written, and the instance count equals the number of connected
components of that mask.
"""

from __future__ import annotations

import itertools

import numpy as np

from subcell.core.errors import VolumeError
from subcell.models.predict import class_index_map
from subcell.pipeline.chunked.blocks import BlockPlan
from subcell.pipeline.chunked.store import RELABELLED, ChunkedOutput

__all__ = ["face_pairs", "label_block", "offsets_of", "relabel_block", "relabel_table"]


def label_block(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of each class of masks (K, Z, Y, X), numbered class by class.

    Components are found with full connectivity (26 neighbours), each numbered from the
    first voxel met in raster order, by scipy straight into uint32 (no int64 copies of a
    block).

    Returns
    -------
    (labels, counts)
        (Z, Y, X) uint32 local ids (0 background), and the components of each class (K,).
    """
    from scipy import ndimage

    index = class_index_map(mask)
    structure = np.ones((3,) * index.ndim, dtype=bool)
    counts = np.zeros(mask.shape[0], dtype=np.int64)
    out = None
    offset = 0
    for k in range(1, mask.shape[0] + 1):
        labels, n = ndimage.label(index == k, structure=structure, output=np.uint32)
        counts[k - 1] = n
        if out is None:
            out = labels
        else:
            # Classes do not overlap in the index map: shift this class's ids and add.
            np.add(labels, np.uint32(offset), out=labels, where=labels > 0)
            out += labels
        offset += n
    return out, counts


def offsets_of(counts: np.ndarray) -> np.ndarray:
    """Provisional-id offsets of blocks with ``counts`` (n_blocks, K) objects per class."""
    totals = np.asarray(counts, dtype=np.int64).sum(axis=1)
    return np.concatenate([[0], np.cumsum(totals)[:-1]]).astype(np.int64)


#: Rows of a face compared at a time: bounds the temporaries whatever the face's size.
_ROWS = 128


def face_pairs(out: ChunkedOutput, plan: BlockPlan, number: int, offsets: np.ndarray) -> np.ndarray:
    """Provisional id pairs that touch across the faces block ``number`` shares with its
    following neighbours (z, y and x).

    Returns
    -------
    numpy.ndarray
        (M, 2) int64 unique pairs.
    """
    block = plan[number]
    t = block.core[0].start
    shape = plan.shape[1:]
    keys = [np.zeros(0, dtype=np.uint64)]
    for axis in range(3):
        face = block.core[axis + 1].stop
        if face >= shape[axis]:
            continue
        window = tuple(
            slice(face - 1, face + 1)
            if a == axis
            else slice(max(0, s.start - 1), min(shape[a], s.stop + 1))
            for a, s in enumerate(block.core[1:])
        )
        local = out.read_window("instances", t, window)
        classes = class_index_map(out.read_window("mask", t, window))
        layers = _Layers(plan, t, window, axis, offsets)
        keys.extend(layers.touching(local, classes))
    keys = np.unique(np.concatenate(keys))
    return np.stack([keys >> np.uint64(32), keys & np.uint64(2**32 - 1)], axis=1).astype(np.int64)


class _Layers:
    """The two voxel layers of a face: which block (so which id offset) holds each voxel."""

    def __init__(self, plan: BlockPlan, t: int, window: tuple[slice, ...], axis: int, offsets):
        self.plan, self.t, self.axis, self.offsets = plan, t, axis, offsets
        # Block index of every window coordinate along each axis (1-D, a few values each).
        self.index = [
            np.arange(s.start, s.stop) // b for s, b in zip(window, plan.block, strict=True)
        ]
        self.others = [a for a in range(3) if a != axis]

    def offset(self, layer: int, rows: slice, cols: slice) -> np.ndarray:
        """Id offsets (rows, cols) of part of layer 0 (below the face) or 1 (above)."""
        parts = [None, None, None]
        parts[self.axis] = self.index[self.axis][layer]
        parts[self.others[0]] = self.index[self.others[0]][rows][:, None]
        parts[self.others[1]] = self.index[self.others[1]][cols][None, :]
        gz, gy, gx = self.plan.grid[1:]
        number = ((self.t * gz + parts[0]) * gy + parts[1]) * gx + parts[2]
        return self.offsets[number]

    def touching(self, local: np.ndarray, classes: np.ndarray) -> list[np.ndarray]:
        """Unique ``low << 32 | high`` keys of same-class voxels in contact across the face
        (every 26-neighbourhood offset), a strip of rows at a time."""
        take = [slice(None)] * 3
        layer = []
        for side in (0, 1):
            take[self.axis] = side
            layer.append((local[tuple(take)], classes[tuple(take)]))
        (low, c_low), (high, c_high) = layer
        n0, n1 = low.shape
        found = []
        for d0, d1 in itertools.product((-1, 0, 1), repeat=2):
            a0, a1 = max(0, -d0), max(0, -d1)  # where the low layer's part starts
            b0, b1 = max(0, d0), max(0, d1)  # and the high layer's
            rows, width = n0 - abs(d0), n1 - abs(d1)
            for r0 in range(0, rows, _ROWS):
                r1 = min(r0 + _ROWS, rows)
                la, lb = slice(a0 + r0, a0 + r1), slice(b0 + r0, b0 + r1)
                ca, cb = slice(a1, a1 + width), slice(b1, b1 + width)
                lo, hi = low[la, ca], high[lb, cb]
                touch = (lo > 0) & (hi > 0) & (c_low[la, ca] == c_high[lb, cb])
                if not touch.any():
                    continue
                g_lo = self.offset(0, la, ca)[touch] + lo[touch]
                g_hi = self.offset(1, lb, cb)[touch] + hi[touch]
                key = (g_lo.astype(np.uint64) << np.uint64(32)) | g_hi.astype(np.uint64)
                found.append(np.unique(key))
        return found


def relabel_table(pairs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The table provisional id -> final id from the matches (union-find).

    Parameters
    ----------
    pairs
        (M, 2) matched provisional ids.
    counts
        (n_blocks, K) objects of each class in each block.

    Returns
    -------
    numpy.ndarray
        uint32 of length ``1 + counts.sum()``; entry 0 is 0. Final ids run 1..n: class by
        class, then by the first (provisional) id of each object.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    counts = np.asarray(counts, dtype=np.int64)
    n = int(counts.sum())
    if n >= 2**32 - 1:
        raise VolumeError(f"{n} provisional objects do not fit uint32 instance labels")
    classes = np.concatenate(
        [[0], np.repeat(np.tile(np.arange(1, counts.shape[1] + 1), len(counts)), counts.ravel())]
    )
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n + 1, n + 1)
    )
    _, component = connected_components(graph, directed=False)
    ids = np.arange(n + 1)
    first = np.full(component.max() + 1, n + 1, dtype=np.int64)
    np.minimum.at(first, component[1:], ids[1:])
    roots = np.unique(component[1:])
    order = np.lexsort((first[roots], classes[first[roots]]))
    final = np.zeros(component.max() + 1, dtype=np.uint32)
    final[roots[order]] = np.arange(1, len(roots) + 1, dtype=np.uint32)
    table = final[component]
    table[0] = 0
    return table


def relabel_block(
    out: ChunkedOutput, plan: BlockPlan, number: int, table: np.ndarray, offsets: np.ndarray
) -> int:
    """Write block ``number``'s final instance labels and mark it relabelled.

    The local ids are recomputed from the stored masks (the same deterministic labelling),
    not read back from ``instances``, so redoing an interrupted block is harmless.

    Returns
    -------
    int
        The block's voxels.
    """
    block = plan[number]
    local, counts = label_block(out.read_mask(block))
    # The block's slice of the table as a lookup from local ids (0 stays background).
    start = int(offsets[number])
    lookup = np.zeros(int(counts.sum()) + 1, dtype=np.uint32)
    lookup[1:] = table[start + 1 : start + 1 + int(counts.sum())]
    out.write_instances(block, lookup[local])
    out.mark(block, RELABELLED)
    return block.voxels
