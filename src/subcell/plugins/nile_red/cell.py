"""The cell body: footprint, plasma membrane and where the nucleus sits in it.

Shape
-----
A cultured cell (the paper's U2-OS) spread on the coverslip. Its footprint is star-shaped
about its centre, ``R(θ) = R₀ (1 + Σ_k A_k cos(kθ − φ_k))`` (k = 2..6, ``A_k ∝ 1/k``). The
basal membrane is the plane ``z = base_nm`` (the coverslip lies at the field's z = 0);
the apical membrane is a height field over the footprint: a thin lamella
(``edge_height_nm``) at the edge rising towards the nucleus, and a dome over the nucleus
``cortex_nm`` above it (a smooth maximum of the two, so it never dips into the nucleus).
The nucleus is an ellipsoid with its short axis vertical, resting ``bottom_gap_nm`` above
the basal membrane, turned by a random angle in the plane.

Coordinates are nm in the field, axis order (z, y, x). The shapes are analytic: emitters
are drawn on them exactly (Poisson processes, thinned where the area element varies), and
masks are rasterised from them on the field's grid.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy import ndimage

from subcell.core.model import Field
from subcell.core.validators import range_field, within
from subcell.plugins.nile_red.nucleus import Nucleus

__all__ = ["CellConfig", "CellShape", "NucleusConfig", "draw_cell"]

_ORDERS = np.arange(2, 7)
#: Softness (nm) of the smooth maximum joining the lamella and the dome over the nucleus.
_SOFT_NM = 200.0
#: Spacing (nm) of the table of the apical surface's height and slope.
_GRID_NM = 100.0
#: Angles of the table of the footprint radius.
_TABLE_THETA = np.linspace(-np.pi, np.pi, 4097)
_TABLE_STEP = _TABLE_THETA[1] - _TABLE_THETA[0]


@attrs.frozen(kw_only=True)
class CellConfig:
    """The cell body. Ranges are inclusive ``[low, high]``, drawn uniformly per cell.

    Attributes
    ----------
    radius_um
        Mean footprint radius (µm). U2-OS cells spread to ~600–1100 µm² on glass; the
        paper crops 256 × 256 px patches "matching the size of a cell" (42 µm at its
        164.6 nm working pixel).
    irregularity
        Relative amplitude of the footprint's harmonics (0: a disc).
    centre_jitter_um
        Largest offset (µm) of the cell's centre from the field's lateral centre.
    base_nm
        Height of the basal membrane above the coverslip (field z = 0).
    edge_height_nm
        Thickness of the lamella at the cell's edge.
    cortex_nm
        Cytoplasm between the nucleus and the apical membrane above it.
    taper
        Exponent of the rise from the edge towards the nucleus (> 1: a thin lamella).
    """

    radius_um: tuple[float, float] = range_field((14.0, 19.0), positive=True)
    irregularity: float = attrs.field(default=0.12, converter=float, validator=within(0, 0.3))
    centre_jitter_um: float = attrs.field(
        default=2.0, converter=float, validator=attrs.validators.ge(0)
    )
    base_nm: float = attrs.field(default=100.0, converter=float, validator=attrs.validators.ge(0))
    edge_height_nm: tuple[float, float] = range_field((300.0, 700.0), positive=True)
    cortex_nm: float = attrs.field(default=400.0, converter=float, validator=attrs.validators.gt(0))
    taper: float = attrs.field(default=1.5, converter=float, validator=within(0.2, 5.0))


@attrs.frozen(kw_only=True)
class NucleusConfig:
    """The nucleus and its nuclear reticulum.

    Attributes
    ----------
    semi_axis_um
        Long lateral semi-axis (µm); U2-OS nuclei are ~12–18 µm long.
    aspect
        Short over long lateral semi-axis.
    half_height_um
        Vertical semi-axis (µm): nuclei of spread cells are ~3–5 µm tall.
    offset_um
        Largest lateral offset (µm) of the nucleus from the cell's centre.
    bottom_gap_nm
        Cytoplasm between the basal membrane and the nucleus.
    reticulum_count
        Number of nuclear reticulum channels (type II invaginations of the envelope;
        Fricker et al. 1997, J. Cell Biol. 136, 531–544; Malhas et al. 2011, J. Cell Biol.
        194, 553–563).
    reticulum_radius_nm
        Channel radius (nm); channels are ~0.1–0.5 µm wide.
    reticulum_length_um
        Channel length (µm); channels end where they would leave the nucleus.
    """

    semi_axis_um: tuple[float, float] = range_field((6.0, 9.0), positive=True)
    aspect: tuple[float, float] = range_field((0.6, 0.9), positive=True)
    half_height_um: tuple[float, float] = range_field((1.6, 2.4), positive=True)
    offset_um: float = attrs.field(default=2.0, converter=float, validator=attrs.validators.ge(0))
    bottom_gap_nm: float = attrs.field(
        default=400.0, converter=float, validator=attrs.validators.ge(0)
    )
    reticulum_count: tuple[int, int] = range_field((1, 5), integer=True)
    reticulum_radius_nm: tuple[float, float] = range_field((75.0, 250.0), positive=True)
    reticulum_length_um: tuple[float, float] = range_field((1.0, 4.0), positive=True)

    def __attrs_post_init__(self):
        if self.aspect[1] > 1:
            raise ValueError(f"'aspect' must not exceed 1, got {list(self.aspect)}")


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


@attrs.frozen(eq=False)
class CellShape:
    """The cell body (see the module notes). Lengths in nm, field coordinates."""

    centre_nm: np.ndarray  # (y, x)
    radius_nm: float
    amplitude: np.ndarray  # per harmonic order in _ORDERS
    phase: np.ndarray
    base_nm: float
    edge_height_nm: float
    cortex_nm: float
    taper: float
    nucleus: Nucleus
    edge_table: np.ndarray | None = None
    height_table: np.ndarray | None = None

    # ----------------------------------------------------------------- footprint

    def _harmonics(self, theta, derivative: bool) -> np.ndarray:
        arg = _ORDERS * np.asarray(theta, dtype=float)[..., None] - self.phase
        if derivative:
            return -self.radius_nm * (self.amplitude * _ORDERS * np.sin(arg)).sum(-1)
        return self.radius_nm * (1 + (self.amplitude * np.cos(arg)).sum(-1))

    def edge_radius(self, theta) -> np.ndarray:
        """Footprint radius ``R(θ)`` (nm), from a table of :data:`_TABLE` angles (the
        harmonics are smooth: linear interpolation is good to < 0.1 nm)."""
        if self.edge_table is None:
            return self._harmonics(theta, False)
        pos = (np.asarray(theta, dtype=float) + np.pi) % (2 * np.pi) / _TABLE_STEP
        i = np.minimum(pos.astype(np.int64), len(_TABLE_THETA) - 2)
        frac = pos - i
        return (1 - frac) * self.edge_table[i] + frac * self.edge_table[i + 1]

    def edge_slope(self, theta) -> np.ndarray:
        """``dR/dθ`` (nm per radian)."""
        return self._harmonics(theta, True)

    @property
    def max_radius_nm(self) -> float:
        return self.radius_nm * (1 + np.abs(self.amplitude).sum())

    def polar(self, y, x) -> tuple[np.ndarray, np.ndarray]:
        """Distance from the cell's centre and angle (θ = 0 along +x)."""
        dy, dx = np.asarray(y) - self.centre_nm[0], np.asarray(x) - self.centre_nm[1]
        return np.hypot(dy, dx), np.arctan2(dy, dx)

    def edge_distance(self, y, x) -> np.ndarray:
        """``R(θ) − r``: positive inside the footprint (≈ the lateral distance to the edge)."""
        r, theta = self.polar(y, x)
        return self.edge_radius(theta) - r

    # ----------------------------------------------------------------- heights

    def profile(self, y, x) -> np.ndarray:
        """The apical surface's height formula, continued beyond the footprint (nm)."""
        de = self.edge_distance(y, x)
        nuc = self.nucleus
        a, b = nuc.semi_axes_nm[1:]
        q = nuc.lateral_level(y, x)
        dn = np.maximum(np.sqrt(q) - 1, 0) * np.sqrt(a * b)
        inside = np.maximum(de, 0)
        s = np.where(dn > 0, inside / np.maximum(inside + dn, 1e-9), 1.0)
        equator = nuc.centre_nm[0] - self.base_nm + self.cortex_nm
        body = self.edge_height_nm + (equator - self.edge_height_nm) * s**self.taper
        qi = nuc.lateral_level(y, x, self.cortex_nm)
        reach = nuc.semi_axes_nm[0] + self.cortex_nm
        dome = nuc.centre_nm[0] - self.base_nm + reach * np.sqrt(np.clip(1 - qi, 0, 1))
        dome = np.where(qi < 1, dome, -np.inf)
        top = np.maximum(body, dome)
        return top + _SOFT_NM * np.log1p(np.exp(-np.abs(body - dome) / _SOFT_NM))

    def _grid(self, values: np.ndarray, y, x) -> np.ndarray:
        """Bilinear interpolation of a table on the height grid at (y, x)."""
        low, _ = self.bounds_nm()
        y, x = np.broadcast_arrays(np.asarray(y, dtype=float), np.asarray(x, dtype=float))
        coords = np.stack([(y - low[1]) / _GRID_NM, (x - low[2]) / _GRID_NM])
        out = ndimage.map_coordinates(values, coords.reshape(2, -1), order=1, mode="nearest")
        return out.reshape(y.shape)

    def height(self, y, x) -> np.ndarray:
        """Apical membrane height above the basal one (nm); 0 outside the footprint.

        Read off a table of :meth:`profile` on a 100 nm grid (bilinear: a few nm off where
        the lamella meets the dome over the nucleus, far less elsewhere).
        """
        inside = self.edge_distance(y, x) > 0
        if self.height_table is None:
            return np.where(inside, self.profile(y, x), 0.0)
        return np.where(inside, self._grid(self.height_table[0], y, x), 0.0)

    def top(self, y, x) -> np.ndarray:
        """z of the apical membrane (nm)."""
        return self.base_nm + self.height(y, x)

    def area_element(self, y, x) -> np.ndarray:
        """``sqrt(1 + |∇ top|²)``: apical membrane area per unit footprint area."""
        if self.height_table is None:
            d = _GRID_NM / 2
            gy = (self.profile(y + d, x) - self.profile(y - d, x)) / (2 * d)
            gx = (self.profile(y, x + d) - self.profile(y, x - d)) / (2 * d)
        else:
            gy = self._grid(self.height_table[1], y, x)
            gx = self._grid(self.height_table[2], y, x)
        return np.sqrt(1 + gy * gy + gx * gx)

    def tabulated(self) -> CellShape:
        """This shape with its edge radius and apical surface tabulated (fast lookups)."""
        shape = attrs.evolve(self, edge_table=self._harmonics(_TABLE_THETA, False))
        low, high = shape.bounds_nm()
        ny, nx = (np.ceil((high[1:] - low[1:]) / _GRID_NM)).astype(int) + 1
        gy, gx = np.meshgrid(
            low[1] + _GRID_NM * np.arange(ny), low[2] + _GRID_NM * np.arange(nx), indexing="ij"
        )
        h = shape.profile(gy, gx)
        grad_y, grad_x = np.gradient(h, _GRID_NM)
        return attrs.evolve(shape, height_table=np.stack([h, grad_y, grad_x]))

    # ----------------------------------------------------------------- insides

    def in_body(self, points, clearance_nm: float = 0.0) -> np.ndarray:
        """Inside the cell body at least ``clearance_nm`` from the plasma membrane
        (vertical and radial distances stand in for the true one)."""
        p = np.asarray(points, dtype=float)
        z, y, x = p[..., 0], p[..., 1], p[..., 2]
        ok = self.edge_distance(y, x) >= clearance_nm
        ok &= z >= self.base_nm + clearance_nm
        return ok & (z <= self.top(y, x) - clearance_nm)

    def in_cytoplasm(self, points, clearance_nm: float = 0.0) -> np.ndarray:
        """In the body and outside the nucleus, both by ``clearance_nm``."""
        outside = self.nucleus.level(points, clearance_nm) >= 1
        return outside & self.in_body(points, clearance_nm)

    def bounds_nm(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding box (z, y, x) of the cell body."""
        r = self.max_radius_nm
        top = self.base_nm + self.nucleus.centre_nm[0] + self.nucleus.semi_axes_nm[0]
        top += self.cortex_nm + 2 * _SOFT_NM
        low = np.array([self.base_nm, self.centre_nm[0] - r, self.centre_nm[1] - r])
        return low, np.array([top, self.centre_nm[0] + r, self.centre_nm[1] + r])

    # ----------------------------------------------------------------- membranes

    def plasma_membrane(self, density_per_nm2: float, rng: np.random.Generator) -> np.ndarray:
        """Poisson points on the whole plasma membrane: basal, apical and the edge's wall."""
        low, high = self.bounds_nm()
        side = high[1:] - low[1:]
        # Basal membrane: uniform in the footprint.
        pts = low[1:] + rng.random((rng.poisson(density_per_nm2 * side.prod()), 2)) * side
        basal = pts[self.edge_distance(pts[:, 0], pts[:, 1]) > 0]
        basal = np.column_stack([np.full(len(basal), self.base_nm), basal])
        # Apical membrane: thinned by the area element over its maximum on a grid.
        gy, gx = np.meshgrid(
            *(np.linspace(lo, hi, 161) for lo, hi in zip(low[1:], high[1:], strict=True))
        )
        j_max = 1.1 * float(self.area_element(gy, gx).max())
        pts = low[1:] + rng.random((rng.poisson(density_per_nm2 * j_max * side.prod()), 2)) * side
        keep = self.edge_distance(pts[:, 0], pts[:, 1]) > 0
        pts = pts[keep]
        keep = rng.random(len(pts)) * j_max < self.area_element(pts[:, 0], pts[:, 1])
        pts = pts[keep]
        apical = np.column_stack([self.top(pts[:, 0], pts[:, 1]), pts])
        return np.concatenate([basal, apical, self._wall(density_per_nm2, rng)])

    def _wall(self, density_per_nm2: float, rng: np.random.Generator) -> np.ndarray:
        """The vertical wall of the lamella at the edge: arc length ``sqrt(R² + R'²) dθ``."""
        theta = np.linspace(0, 2 * np.pi, 721)
        ds_max = 1.1 * float(np.hypot(self.edge_radius(theta), self.edge_slope(theta)).max())
        n = rng.poisson(density_per_nm2 * ds_max * 2 * np.pi * self.edge_height_nm)
        theta, u, h = rng.uniform(0, 2 * np.pi, n), rng.random(n), rng.random(n)
        radius = self.edge_radius(theta)
        keep = u * ds_max < np.hypot(radius, self.edge_slope(theta))
        theta, radius, h = theta[keep], radius[keep], h[keep]
        y = self.centre_nm[0] + radius * np.sin(theta)
        x = self.centre_nm[1] + radius * np.cos(theta)
        return np.column_stack([self.base_nm + h * self.edge_height_nm, y, x])

    def rasters(self, field: Field) -> tuple[np.ndarray, np.ndarray]:
        """Body and nucleus on the field's voxel centres, two (Z, Y, X) bool arrays."""
        centres = [
            (np.arange(n) + 0.5) * v for n, v in zip(field.shape, field.voxel_nm, strict=True)
        ]
        yy, xx = np.meshgrid(centres[1], centres[2], indexing="ij")
        inside = self.edge_distance(yy, xx) > 0
        top = self.top(yy, xx)
        z = centres[0][:, None, None]
        body = inside & (z >= self.base_nm) & (z <= top)
        # The nucleus only within its bounding box.
        nuc = self.nucleus
        reach = nuc.semi_axes_nm.max()
        box = []
        for axis, (c, r) in enumerate(
            zip(nuc.centre_nm, [nuc.semi_axes_nm[0], reach, reach], strict=True)
        ):
            v = field.voxel_nm[axis]
            lo = int(np.clip(np.floor((c - r) / v), 0, field.shape[axis]))
            box.append(slice(lo, int(np.clip(np.ceil((c + r) / v) + 1, lo, field.shape[axis]))))
        grid = np.stack(
            np.broadcast_arrays(*np.ix_(*(c[b] for c, b in zip(centres, box, strict=True)))), -1
        )
        nucleus = np.zeros(field.shape, dtype=bool)
        nucleus[tuple(box)] = nuc.level(grid) < 1
        return body, nucleus & body


def draw_cell(cell: CellConfig, nucleus: NucleusConfig, field: Field, rng) -> CellShape:
    """Draw a cell body and its nucleus centred (with jitter) in ``field``.

    The nucleus is shrunk, if needed, until its footprint lies within 75 % of the cell's
    footprint radius in every direction.
    """
    extent = field.extent_nm
    jitter = cell.centre_jitter_um * 1e3 * np.sqrt(rng.random())
    angle = rng.uniform(0, 2 * np.pi)
    centre = extent[1:] / 2 + jitter * np.array([np.sin(angle), np.cos(angle)])
    radius = _uniform(rng, cell.radius_um) * 1e3
    amplitude = cell.irregularity * rng.standard_normal(len(_ORDERS)) / (_ORDERS - 1)
    phase = rng.uniform(0, 2 * np.pi, len(_ORDERS))
    edge = _uniform(rng, cell.edge_height_nm)
    a = _uniform(rng, nucleus.semi_axis_um) * 1e3
    b = a * _uniform(rng, nucleus.aspect)
    c = _uniform(rng, nucleus.half_height_um) * 1e3
    yaw = rng.uniform(0, np.pi)
    offset = nucleus.offset_um * 1e3 * np.sqrt(rng.random())
    angle = rng.uniform(0, 2 * np.pi)
    centre_n = centre + offset * np.array([np.sin(angle), np.cos(angle)])
    shape = CellShape(
        centre_nm=centre,
        radius_nm=radius,
        amplitude=amplitude,
        phase=phase,
        base_nm=cell.base_nm,
        edge_height_nm=edge,
        cortex_nm=cell.cortex_nm,
        taper=cell.taper,
        nucleus=Nucleus(np.array([0.0, *centre_n]), np.array([c, a, b]), yaw),
    )
    # Shrink the nucleus laterally until its equator lies within 75 % of the footprint.
    t = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    rim = np.stack([np.zeros_like(t), a * np.cos(t), b * np.sin(t)], axis=1)
    r_rim, theta = shape.polar(*shape.nucleus.to_field(rim)[:, 1:].T)
    scale = min(1.0, float((0.75 * shape.edge_radius(theta) / r_rim).min()))
    zc = cell.base_nm + nucleus.bottom_gap_nm + c
    nuc = Nucleus(np.array([zc, *centre_n]), np.array([c, a * scale, b * scale]), yaw)
    return attrs.evolve(shape, nucleus=nuc).tabulated()
