"""The endoplasmic reticulum: a tubular network in layers, and perinuclear sheets.

Tubules
-------
The peripheral ER is a polygonal network of tubules joined at three-way junctions
(Shibata et al. 2006, J. Biol. Chem. 281, 24829; Nixon-Abell et al. 2016, Science 354,
aaf3928). Each layer is the edge set of a planar Poisson–Voronoi tessellation (three edges
meet at every vertex, as at ER junctions) with ``polygon_density_per_um2`` polygons per
µm²; layers lie ``layer_spacing_nm`` apart from the basal membrane up, every junction is
moved up or down by a random ``jitter_nm`` so that tubules slant between layers, and only
tubules inside the cytoplasm (clear of the plasma membrane and nucleus by their radius) are
kept: one layer in the thin lamella, several around the nucleus. Edges are cut into
capsules of at most 250 nm that follow the jittered heights linearly. Tubules are
60–100 nm wide (Shibata et al. 2006; Friedman & Voeltz 2011, Trends Cell Biol. 21, 709).

Sheets
------
Flat cisternae near the nucleus (Shibata et al. 2010, Cell 143, 774: sheets with a
~50 nm lumen, stacked in the perinuclear region): horizontal discs whose two faces, 50 nm
apart, carry dye; their centres lie within ``sheet_zone_um`` of the nuclear envelope.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy.spatial import Voronoi

from subcell.core.model import Geometry
from subcell.core.validators import range_field
from subcell.plugins.nile_red.cell import CellShape

__all__ = ["ERConfig", "ERSheets", "er_sheets", "er_tubules"]

#: Longest capsule (nm) of a tubule.
_PIECE_NM = 250.0
#: Half the distance (nm) between the two faces of a sheet.
_SHEET_HALF_LUMEN_NM = 25.0


@attrs.frozen(kw_only=True)
class ERConfig:
    """The ER network and sheets.

    Attributes
    ----------
    polygon_density_per_um2
        Polygons of the tubular network per µm² of a layer.
    tubule_radius_nm
        Tubule radius (nm), one value per cell drawn from the range.
    layer_spacing_nm
        Vertical distance between network layers (nm).
    jitter_nm
        Standard deviation (nm) of each junction's vertical displacement.
    sheets
        Number of perinuclear sheets.
    sheet_radius_um
        Sheet radius (µm).
    sheet_zone_um
        Largest lateral distance (µm) of a sheet's centre from the nuclear envelope.
    """

    polygon_density_per_um2: float = attrs.field(
        default=1.5, converter=float, validator=attrs.validators.gt(0)
    )
    tubule_radius_nm: tuple[float, float] = range_field((30.0, 50.0), positive=True)
    layer_spacing_nm: float = attrs.field(
        default=700.0, converter=float, validator=attrs.validators.gt(0)
    )
    jitter_nm: float = attrs.field(default=150.0, converter=float, validator=attrs.validators.ge(0))
    sheets: tuple[int, int] = range_field((4, 12), integer=True)
    sheet_radius_um: tuple[float, float] = range_field((0.5, 2.0), positive=True)
    sheet_zone_um: float = attrs.field(
        default=3.0, converter=float, validator=attrs.validators.gt(0)
    )


def _layer_edges(low_yx, high_yx, density_per_nm2: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi vertices (V, 2) and edges (E, 2) of Poisson seeds in the box (plus a 2 µm
    margin, so the tessellation inside it is complete)."""
    low, high = np.asarray(low_yx) - 2000.0, np.asarray(high_yx) + 2000.0
    n = max(4, int(rng.poisson(density_per_nm2 * np.prod(high - low))))
    seeds = low + rng.random((n, 2)) * (high - low)
    vor = Voronoi(seeds)
    edges = np.array([r for r in vor.ridge_vertices if -1 not in r], dtype=np.int64)
    return vor.vertices, edges.reshape(-1, 2)


def er_tubules(shape: CellShape, config: ERConfig, rng: np.random.Generator) -> Geometry:
    """The tubular network as capsules of class ``"er"``, all of instance 1."""
    low, high = shape.bounds_nm()
    radius = rng.uniform(*config.tubule_radius_nm)
    reach = shape.max_radius_nm
    starts, ends = [], []
    n_layers = int(np.ceil((high[0] - low[0]) / config.layer_spacing_nm))
    for layer in range(n_layers):
        z0 = shape.base_nm + (layer + 0.5) * config.layer_spacing_nm
        vertices, edges = _layer_edges(
            low[1:], high[1:], config.polygon_density_per_um2 * 1e-6, rng
        )
        z = z0 + config.jitter_nm * rng.standard_normal(len(vertices))
        nodes = np.column_stack([z, vertices])
        # Only edges with an end within the footprint's bounding circle can be kept.
        near = np.hypot(*(vertices - shape.centre_nm).T) <= reach
        edges = edges[near[edges].any(axis=1)]
        a, b = nodes[edges[:, 0]], nodes[edges[:, 1]]
        pieces = np.maximum(1, np.ceil(np.linalg.norm(b - a, axis=1) / _PIECE_NM)).astype(int)
        # Nodes 0..pieces of every edge; piece k joins nodes k and k + 1.
        edge = np.repeat(np.arange(len(edges)), pieces + 1)
        k = np.arange(len(edge)) - np.repeat(np.cumsum(pieces + 1) - (pieces + 1), pieces + 1)
        f = (k / pieces[edge])[:, None]
        points = a[edge] + f * (b[edge] - a[edge])
        ok = shape.in_cytoplasm(points, radius)
        piece = np.flatnonzero(k < pieces[edge])  # index of each piece's first node
        keep = piece[ok[piece] & ok[piece + 1]]
        starts.append(points[keep])
        ends.append(points[keep + 1])
    start, end = np.concatenate(starts), np.concatenate(ends)
    n = len(start)
    return Geometry(("er",), start, end, np.full(n, radius), np.ones(n), np.zeros(n))


@attrs.frozen(eq=False)
class ERSheets:
    """Horizontal ER sheets: centre (S, 3) and radius (S,), in nm."""

    centre_nm: np.ndarray
    radius_nm: np.ndarray

    def __len__(self) -> int:
        return len(self.radius_nm)

    def faces(self, density_per_nm2: float, rng: np.random.Generator) -> np.ndarray:
        """Poisson points on both faces of every sheet (not yet clipped to the cytoplasm)."""
        counts = rng.poisson(density_per_nm2 * 2 * np.pi * self.radius_nm**2)
        sheet = np.repeat(np.arange(len(self)), counts)
        u = rng.random((len(sheet), 3))
        rho = self.radius_nm[sheet] * np.sqrt(u[:, 0])
        phi = 2 * np.pi * u[:, 1]
        side = np.where(u[:, 2] < 0.5, -1.0, 1.0) * _SHEET_HALF_LUMEN_NM
        offset = np.column_stack([side, rho * np.sin(phi), rho * np.cos(phi)])
        return self.centre_nm[sheet] + offset

    def lattice(self, spacing_nm: float) -> tuple[np.ndarray, np.ndarray]:
        """Points on a square lattice of ``spacing_nm`` covering each sheet's mid-plane,
        and the sheet of each (for rasterising)."""
        points, owner = [], []
        for i, (centre, radius) in enumerate(zip(self.centre_nm, self.radius_nm, strict=True)):
            t = np.arange(-radius, radius + spacing_nm, spacing_nm)
            gy, gx = np.meshgrid(t, t, indexing="ij")
            inside = gy * gy + gx * gx <= radius * radius
            grid = np.column_stack([np.zeros(inside.sum()), gy[inside], gx[inside]])
            points.append(centre + grid)
            owner.append(np.full(len(grid), i))
        if not points:
            return np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
        return np.concatenate(points), np.concatenate(owner)


def er_sheets(shape: CellShape, config: ERConfig, rng: np.random.Generator) -> ERSheets:
    """Sheets whose centres lie in the cytoplasm within ``sheet_zone_um`` of the nucleus
    (drawn by rejection from the nucleus's surroundings)."""
    nuc = shape.nucleus
    n = int(rng.integers(config.sheets[0], config.sheets[1] + 1))
    zone = config.sheet_zone_um * 1e3
    reach = nuc.semi_axes_nm[1] + zone
    centres = []
    for _ in range(20):
        if sum(len(c) for c in centres) >= n:
            break
        m = 8 * n
        c = np.empty((m, 3))
        c[:, 1:] = nuc.centre_nm[1:] + rng.uniform(-reach, reach, (m, 2))
        c[:, 0] = rng.uniform(shape.base_nm, shape.bounds_nm()[1][0], m)
        near = nuc.lateral_level(c[:, 1], c[:, 2], zone) < 1
        centres.append(c[near & shape.in_cytoplasm(c, 100.0)])
    centre = np.concatenate(centres)[:n]
    radius = rng.uniform(*config.sheet_radius_um, len(centre)) * 1e3
    return ERSheets(centre, radius)
