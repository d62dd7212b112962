"""Nuclei of the clumped-cells phantom: one irregular ellipse inside every cell.

Where a nucleus goes and how large it may be come from a coarse raster of the cells (the
last round of :func:`~subcell.plugins.cellcutter.phantom_packing.balance_weights`): the
distance transform inside each cell gives its most interior point (the centre of the
largest disc it holds) and that disc's radius (the *room*); second moments give the cell's
long axis. The nucleus is an ellipse of the drawn area fraction of the cell and aspect
ratio, long axis along the cell's, its outline modulated by harmonics of orders 2-4, shrunk
until it fits the room less ``nucleus_clearance_um`` (+ ``gap_um / 2`` and one coarse
pixel for the coarse raster), and shifted at random within what room is left. It is then
drawn on the supersampled grid, in each cell's own box.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
from scipy import ndimage

__all__ = ["NucleusFrames", "draw_nuclei", "nucleus_frames"]

#: Harmonic orders that make nucleus outlines irregular.
_HARMONICS = (2, 3, 4)


@attrs.frozen(eq=False)
class NucleusFrames:
    """Ellipse parameters of every cell's nucleus (lengths µm, grid-corner coordinates).

    Attributes
    ----------
    centre_um
        (n, 2) centre (y, x).
    semi_axes_um
        (n, 2) semi-major and semi-minor axis (0: no nucleus).
    angle
        (n,) direction of the long axis, radians from +x towards +y.
    harmonics
        (n, H, 2) relative amplitude and phase of each harmonic on the outline.
    """

    centre_um: np.ndarray
    semi_axes_um: np.ndarray
    angle: np.ndarray
    harmonics: np.ndarray

    @property
    def reach_um(self) -> np.ndarray:
        """Largest distance of each nucleus's outline from its centre."""
        return self.semi_axes_um[:, 0] * (1.0 + self.harmonics[..., 0].sum(axis=1))


def nucleus_frames(config, rng, labels: np.ndarray, h_um: float, n: int) -> NucleusFrames:
    """Place a nucleus in each of ``n`` cells, from their coarse raster.

    Parameters
    ----------
    config
        The phantom's config.
    rng
        The only source of randomness.
    labels
        Cell labels ``1..n`` on a coarse grid of spacing ``h_um`` (pixel centres at
        ``(i + ½) · h_um``).
    h_um
        The coarse grid's spacing, µm.
    n
        Number of cells.
    """
    fraction = rng.uniform(*config.nucleus_area_fraction, n)
    aspect = rng.uniform(*config.nucleus_aspect, n)
    amps = rng.uniform(0.0, 1.0, (n, len(_HARMONICS))) * config.nucleus_irregularity
    phases = rng.uniform(0.0, 2.0 * math.pi, (n, len(_HARMONICS)))
    direction = rng.uniform(0.0, 2.0 * math.pi, n)
    shift = rng.uniform(0.0, 1.0, n)

    pole, room, area, angle = _cell_shapes(labels, h_um, n)
    room = room - config.nucleus_clearance_um - config.gap_um / 2.0 - h_um
    bulge = 1.0 + amps.sum(axis=1)
    semi_minor = np.sqrt(fraction * area / (math.pi * aspect))
    fit = np.maximum(room, 0.0) / np.maximum(aspect * semi_minor * bulge, 1e-9)
    semi_minor *= np.minimum(1.0, fit)
    semi_major = aspect * semi_minor
    offset = np.maximum(room - semi_major * bulge, 0.0) * shift
    centre = pole + offset[:, None] * np.stack([np.sin(direction), np.cos(direction)], axis=1)
    return NucleusFrames(
        centre_um=centre,
        semi_axes_um=np.stack([semi_major, semi_minor], axis=1),
        angle=angle,
        harmonics=np.stack([amps, phases], axis=-1),
    )


def _cell_shapes(labels, h_um, n):
    """Most interior point (µm), its distance to the border (µm), area (µm²) and long-axis
    angle of each cell on the coarse raster."""
    inner = labels > 0
    for axis in range(2):
        for a, b in ((slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None))):
            key_a = (a, slice(None)) if axis == 0 else (slice(None), a)
            key_b = (b, slice(None)) if axis == 0 else (slice(None), b)
            inner[key_a] &= labels[key_a] == labels[key_b]
    dist = ndimage.distance_transform_edt(inner).astype(np.float32) * np.float32(h_um)
    flat = labels.ravel()
    order = np.lexsort((dist.ravel(), flat))
    last = np.flatnonzero(np.diff(flat[order], append=np.iinfo(flat.dtype).max))
    pole = np.zeros((n, 2))
    room = np.zeros(n)
    ids = flat[order[last]]
    keep = ids > 0
    ids, where = ids[keep], order[last][keep]
    pole[ids - 1] = (np.stack(np.unravel_index(where, labels.shape), axis=1) + 0.5) * h_um
    # The pole pixel's distance is to the nearest centre outside; the border lies half a
    # pixel nearer.
    room[ids - 1] = dist.ravel()[where] - 0.5 * h_um

    cell = flat > 0
    lab = flat[cell]
    yy, xx = np.unravel_index(np.flatnonzero(cell), labels.shape)
    count = np.bincount(lab, minlength=n + 1).astype(float)
    safe = np.maximum(count, 1.0)
    my = np.bincount(lab, yy, n + 1) / safe
    mx = np.bincount(lab, xx, n + 1) / safe
    dy, dx = yy - my[lab], xx - mx[lab]
    syy = np.bincount(lab, dy * dy, n + 1)
    sxx = np.bincount(lab, dx * dx, n + 1)
    sxy = np.bincount(lab, dx * dy, n + 1)
    angle = 0.5 * np.arctan2(2.0 * sxy, sxx - syy)
    return pole, room, count[1:] * h_um * h_um, angle[1:]


def draw_nuclei(frames: NucleusFrames, cells: np.ndarray, h_um) -> np.ndarray:
    """Rasterise the nuclei on the supersampled grid, each inside its own cell.

    Parameters
    ----------
    frames
        The nuclei.
    cells
        (Y, X) cell labels on the supersampled grid.
    h_um
        (y, x) spacing of that grid, µm.

    Returns
    -------
    numpy.ndarray
        (Y, X) bool.
    """
    nuclei = np.zeros(cells.shape, dtype=bool)
    h = np.asarray(h_um, dtype=float)
    reach = frames.reach_um
    low = np.maximum(np.floor((frames.centre_um - reach[:, None]) / h).astype(int), 0)
    high = np.minimum(np.ceil((frames.centre_um + reach[:, None]) / h).astype(int) + 1, cells.shape)
    for i in np.flatnonzero(frames.semi_axes_um[:, 1] > 0):
        (y0, x0), (y1, x1) = low[i], high[i]
        if y0 >= y1 or x0 >= x1:
            continue
        dy = ((np.arange(y0, y1) + 0.5) * h[0] - frames.centre_um[i, 0])[:, None]
        dx = ((np.arange(x0, x1) + 0.5) * h[1] - frames.centre_um[i, 1])[None, :]
        cos, sin = math.cos(frames.angle[i]), math.sin(frames.angle[i])
        u = (dx * cos + dy * sin) / frames.semi_axes_um[i, 0]
        v = (dy * cos - dx * sin) / frames.semi_axes_um[i, 1]
        phi = np.arctan2(v, u)
        edge = np.ones_like(phi)
        for k, order in enumerate(_HARMONICS):
            amp, phase = frames.harmonics[i, k]
            edge += amp * np.cos(order * phi + phase)
        win = (slice(y0, y1), slice(x0, x1))
        nuclei[win] |= (u * u + v * v <= edge * edge) & (cells[win] == i + 1)
    return nuclei
