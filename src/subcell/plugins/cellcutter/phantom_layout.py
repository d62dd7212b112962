"""Geometry of the clumped-cells phantom: colonies, packed cells and nuclei as label rasters.

Construction (lengths in µm inside this module):

1. **Colonies**: white noise on a coarse grid, smoothed at ``colony_scale_um`` plus a finer
   octave (``colony_roughness``), thresholded at the quantile that covers ``confluence``
   of the area.
2. **Cells**: seeds packed into the colonies (:mod:`~subcell.plugins.cellcutter.phantom_seeds`)
   and a balanced power (weighted Voronoi) diagram of them clipped to the colonies
   (:mod:`~subcell.plugins.cellcutter.phantom_packing`), sizes held in ``cell_diameter_um``
   (:mod:`~subcell.plugins.cellcutter.phantom_sizes`); isolated cells are warped discs in
   the background. Distances are measured in *warped* coordinates ``q = p + d(p)``,
   ``d`` a smooth random displacement (``warp_um``, ``warp_scale_um``, clipped at 3 sd): a
   smooth deformation that makes the straight power-diagram edges irregular.
3. **Gap**: with ``gap_um > 0`` the pixels within ``gap_um / 2`` of the bisector between a
   cell and its nearest competitor become background.
4. **Nuclei**: an irregular ellipse per cell (area a fraction of the cell's, aspect ratio,
   long axis along the cell's, harmonics of orders 2-4 on its outline) inside the largest
   disc round the seed that the cell holds, at least ``nucleus_clearance_um``
   (+ ``gap_um / 2``) from that disc's edge: nuclei never touch the cell border.

Everything is drawn on a supersampled grid (``supersample`` × the field's pixel grid) that
extends ``margin_px`` pixels beyond the field on each side, so cells cut by the image border
are whole in the phantom and emitters can be placed just outside the field.
"""

from __future__ import annotations

import math

import attrs
import numpy as np
from scipy import ndimage, sparse

from subcell.plugins.cellcutter import phantom_packing as packing
from subcell.plugins.cellcutter import phantom_seeds as seeding
from subcell.plugins.cellcutter.phantom_nuclei import NucleusFrames, draw_nuclei, nucleus_frames
from subcell.plugins.cellcutter.phantom_sizes import fix_sizes

__all__ = ["ClumpedLayout", "build_layout", "upsample"]

#: Coarse grid spacing for colonies and the warp field, µm (at most; finer for short warps).
_COARSE_UM = 1.0
#: Displacements are clipped at this many standard deviations (bounds the search boxes).
_WARP_CLIP_SD = 3.0


@attrs.frozen(eq=False)
class ClumpedLayout:
    """Cells and nuclei of one phantom on its supersampled grid.

    Attributes
    ----------
    cells
        (SY, SX) int32 cell labels ``1..n_cells`` (0: background) on the supersampled grid.
    nuclei
        (SY, SX) bool, the nucleus of each cell (inside ``cells``).
    subpixel_nm
        (y, x) size of a supersampled pixel, nm.
    origin_nm
        (y, x) field coordinates of the grid's corner, nm (negative: the margin).
    supersample
        Supersampled pixels per field pixel along each axis (odd).
    margin_px
        Field pixels of margin on each side of the field.
    seeds_um
        (n_cells, 2) seed of each cell (label ``i + 1``), (y, x) µm from the grid's corner,
        in warped coordinates. Labels whose cell was merged away have no pixels.
    weight_um2
        (n_cells,) power-diagram weight of each seed, µm².
    isolated
        (n_cells,) True for cells drawn outside the colonies.
    nucleus_frames
        Centre, semi-axes and orientation of each cell's nucleus (µm, grid-corner
        coordinates, unwarped).
    colony
        (SY, SX) bool colony mask (isolated cells lie outside it).
    """

    cells: np.ndarray
    nuclei: np.ndarray
    subpixel_nm: tuple[float, float]
    origin_nm: tuple[float, float]
    supersample: int
    margin_px: int
    seeds_um: np.ndarray
    weight_um2: np.ndarray
    isolated: np.ndarray
    nucleus_frames: NucleusFrames
    colony: np.ndarray

    @property
    def n_cells(self) -> int:
        return len(self.seeds_um)

    @property
    def subpixel_area_um2(self) -> float:
        return self.subpixel_nm[0] * self.subpixel_nm[1] * 1e-6

    def field_window(self, shape_yx: tuple[int, int], pad_px: int = 0) -> tuple[slice, slice]:
        """Slices of the supersampled grid covering the field plus ``pad_px`` pixels."""
        s, m = self.supersample, self.margin_px
        pad = min(int(pad_px), m)
        rows, cols = (slice((m - pad) * s, (m + n + pad) * s) for n in shape_yx)
        return rows, cols

    def on_field(self, image: np.ndarray, shape_yx: tuple[int, int]) -> np.ndarray:
        """``image`` (on the supersampled grid) sampled at the field's pixel centres."""
        s, m = self.supersample, self.margin_px
        rows = slice(m * s + s // 2, (m + shape_yx[0]) * s, s)
        cols = slice(m * s + s // 2, (m + shape_yx[1]) * s, s)
        return image[rows, cols]


def upsample(coarse: np.ndarray, step_in: float, shape: tuple[int, int], step_out) -> np.ndarray:
    """Bilinear interpolation of a coarse grid (nodes at ``j · step_in``) at the centres
    ``(i + ½) · step_out`` of a fine grid of ``shape``: a sparse product along y, then a
    gather of the two neighbouring columns along x. Returns float32."""
    j0, f = _lerp_weights(shape[0], step_out[0], coarse.shape[0], step_in)
    rows = np.repeat(np.arange(shape[0]), 2)
    cols = np.stack([j0, j0 + 1], axis=1).ravel()
    vals = np.stack([1.0 - f, f], axis=1).ravel()
    along_y = sparse.csr_matrix((vals, (rows, cols)), shape=(shape[0], coarse.shape[0]))
    partial = (along_y @ coarse.astype(np.float64)).astype(np.float32)
    j0, f = _lerp_weights(shape[1], step_out[1], coarse.shape[1], step_in)
    f = f.astype(np.float32)
    out = partial[:, j0] * (1.0 - f)
    out += partial[:, j0 + 1] * f
    return out


def _lerp_weights(n_out: int, step_out: float, n_in: int, step_in: float):
    """Left node and fraction towards the right node of each fine pixel centre."""
    t = (np.arange(n_out) + 0.5) * step_out / step_in
    j0 = np.clip(np.floor(t).astype(np.int64), 0, n_in - 2)
    return j0, np.clip(t - j0, 0.0, 1.0)


def _smooth_noise(rng, shape, sigma_px: float) -> np.ndarray:
    """White noise smoothed by a Gaussian of ``sigma_px``, scaled to unit sd."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return noise / max(float(noise.std()), 1e-12)


def build_layout(config, shape_yx: tuple[int, int], pixel_nm, rng) -> ClumpedLayout:
    """Draw colonies, cells and nuclei for a field of ``shape_yx`` pixels of ``pixel_nm``.

    Parameters
    ----------
    config
        A :class:`~subcell.plugins.cellcutter.phantom.ClumpedCellsConfig`.
    shape_yx
        The field's lateral shape, pixels.
    pixel_nm
        (y, x) pixel size, nm.
    rng
        The only source of randomness.

    Returns
    -------
    ClumpedLayout
    """
    s = config.supersample
    pix_um = np.asarray(pixel_nm, dtype=float) / 1e3
    reach = config.cell_diameter_um[1] + config.emitter_margin_um
    margin_px = int(math.ceil(reach / pix_um.min()))
    shape = tuple(int((n + 2 * margin_px) * s) for n in shape_yx)
    h_um = pix_um / s
    extent = np.asarray(shape) * h_um
    slack = _WARP_CLIP_SD * config.warp_um

    step = min(_COARSE_UM, config.warp_scale_um / 3.0)
    coarse_shape = tuple(int(math.ceil(e / step)) + 2 for e in extent)
    colony_at = _colonies(config, rng, coarse_shape, step)
    colony_coarse = colony_at(coarse_shape, np.full(2, step), nodes=True)
    inside, outside = seeding.distance_maps(colony_coarse, step)
    points, size, core, clip, isolated = seeding.seeds(
        config, rng, inside, outside, step, extent, slack
    )
    warped_at = _warp(config, rng, coarse_shape, step)
    weight, coarse, coarse_h, reach = packing.balance_weights(
        config, points, size, core**2, clip, isolated, colony_at, warped_at, extent, slack
    )
    frames = nucleus_frames(config, rng, coarse, coarse_h, len(points))
    qy, qx = warped_at(shape, h_um)
    colony = colony_at(shape, h_um)
    cells = _cells(config, points, weight, clip, isolated, qy, qx, colony, h_um, reach)
    del qy, qx
    nuclei = draw_nuclei(frames, cells, h_um)
    return ClumpedLayout(
        cells=cells,
        nuclei=nuclei,
        subpixel_nm=tuple(float(p) / s for p in pixel_nm),
        origin_nm=tuple(float(-margin_px * p) for p in pixel_nm),
        supersample=s,
        margin_px=margin_px,
        seeds_um=points,
        weight_um2=weight,
        isolated=isolated,
        nucleus_frames=frames,
        colony=colony,
    )


def _colonies(config, rng, coarse_shape, step):
    """The colony mask as a function ``colony_at(shape, h_um)`` of the grid it is wanted on
    (``nodes=True``: the coarse grid's own nodes)."""
    noise = _smooth_noise(rng, coarse_shape, config.colony_scale_um / step)
    fine = _smooth_noise(rng, coarse_shape, config.colony_scale_um / 4.0 / step)
    noise = noise + config.colony_roughness * fine
    fill = config.confluence
    level = float(np.quantile(noise, 1.0 - fill)) if 0.0 < fill < 1.0 else 0.0

    def colony_at(shape, h_um, nodes=False):
        if fill <= 0.0 or fill >= 1.0:
            return np.full(shape, fill >= 1.0, dtype=bool)
        if nodes:
            return noise >= level
        return upsample(noise, step, shape, h_um) >= level

    return colony_at


def _warp(config, rng, coarse_shape, step):
    """The warp as a function ``warped_at(shape, h_um)``: warped coordinates (µm, float32)
    of the pixel centres of a grid of that shape and spacing."""
    noises = []
    for _ in range(2):
        noise = _smooth_noise(rng, coarse_shape, config.warp_scale_um / step)
        noises.append(np.clip(noise, -_WARP_CLIP_SD, _WARP_CLIP_SD) * config.warp_um)

    def warped_at(shape, h_um):
        grids = []
        for axis in range(2):
            centres = ((np.arange(shape[axis]) + 0.5) * h_um[axis]).astype(np.float32)
            if config.warp_um > 0:
                grid = upsample(noises[axis], step, shape, h_um)
            else:
                grid = np.zeros(shape, dtype=np.float32)
            grid += centres[:, None] if axis == 0 else centres[None, :]
            grids.append(grid)
        return grids[0], grids[1]

    return warped_at


def _cells(config, points, weight, clip, isolated, qy, qx, colony, h_um, reach):
    """The cell label raster: clipped power diagram, gap, sizes fixed."""
    gap = config.gap_um > 0
    found = packing.power_labels(points, weight, clip, qy, qx, h_um, reach, runner_up=gap)
    labels, best, boxes = found[:3]
    if gap:
        # Pixels within gap / 2 of the bisector with the nearest competitor.
        second, rival = found[3:]
        owner, rv = np.maximum(labels - 1, 0), np.maximum(rival - 1, 0)
        sep = np.hypot(points[owner, 0] - points[rv, 0], points[owner, 1] - points[rv, 1])
        with np.errstate(invalid="ignore"):  # inf - inf where no seed came second
            to_bisector = (second - best) / np.maximum(2.0 * sep, 1e-6).astype(np.float32)
        labels[(rival > 0) & (to_bisector < config.gap_um / 2.0)] = 0
    packing.clip_cells(labels, isolated, colony)
    return fix_sizes(config, labels, points, boxes, qy, qx, h_um)
