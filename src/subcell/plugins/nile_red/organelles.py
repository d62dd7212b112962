"""Organelles in the cytoplasm: vesicles and droplets (spheres), mitochondria (tubes),
Golgi stacks (stacks of discs), placed without overlaps.

Placement
---------
Every organelle lies in the cytoplasm at least ``clearance_nm`` from the plasma membrane
and the nuclear envelope, and at least ``gap_nm`` from every organelle placed before it
(an :class:`Occupancy` of spheres: a tube counts as spheres along its axis, a Golgi stack
as its bounding sphere). Classes are placed in a fixed order (Golgi, mitochondria, then
spheres from the largest kind down); candidates come in batches from the rng and are
accepted greedily in draw order. Counts are targets: a cell too small or too crowded
holds fewer objects, never overlapping ones.

Sizes and numbers per cell (defaults) are literature ranges for cultured human cells:

========================  ===========  ==================  =====================================
organelle                 per cell     size                source
========================  ===========  ==================  =====================================
mitochondria              60–150       Ø 250–500 nm,       Posakony et al. 1977, J. Cell Biol. 74,
                                       1–8 µm long         468 (HeLa: ~5–10 % of cytoplasm)
Golgi                     4–10 stacks  4–7 cisternae of    Klumperman 2011, CSH Perspect. Biol.
                                       Ø 0.7–1.2 µm        3, a005181
lipid droplets            10–50        Ø 0.2–1.5 µm        Walther & Farese 2012, Annu. Rev.
                                                           Biochem. 81, 687
peroxisomes               100–300      Ø 0.1–0.5 µm        Smith & Aitchison 2013, Nat. Rev. Mol.
                                                           Cell Biol. 14, 803
early endosomes           50–150       Ø 0.1–0.5 µm        Huotari & Helenius 2011, EMBO J. 30,
                                                           3481
late endosomes            30–100       Ø 0.25–1 µm         Huotari & Helenius 2011
lysosomes                 50–250       Ø 0.2–1 µm          Xu & Ren 2015, Annu. Rev. Physiol. 77,
                                                           57; Luzio et al. 2007, Nat. Rev. Mol.
                                                           Cell Biol. 8, 622
========================  ===========  ==================  =====================================
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy.spatial import cKDTree

from subcell.core.model import Geometry
from subcell.core.validators import range_field
from subcell.plugins.nile_red.cell import CellShape

__all__ = [
    "GolgiConfig",
    "GolgiStacks",
    "MitochondriaConfig",
    "Occupancy",
    "SpheresConfig",
    "golgi_stacks",
    "mitochondria",
    "place_spheres",
]

#: Candidate batches tried per class before settling for fewer objects.
_BATCHES = 12
#: Rebuild the occupancy's k-d tree once this many spheres wait outside it.
_PENDING = 256
#: Step (nm) along a mitochondrion's centreline.
_MITO_STEP_NM = 150.0


@attrs.frozen(kw_only=True)
class SpheresConfig:
    """Round organelles of one kind (vesicles, droplets).

    Attributes
    ----------
    count
        Number per cell (uniform in the range).
    radius_nm
        Radius (nm), uniform in the range.
    """

    count: tuple[int, int] = range_field((50, 150), integer=True)
    radius_nm: tuple[float, float] = range_field((50.0, 250.0), positive=True)


@attrs.frozen(kw_only=True)
class MitochondriaConfig:
    """Mitochondria: tubes bending in the plane of the cell.

    Attributes
    ----------
    count
        Number per cell.
    radius_nm
        Tube radius (nm).
    length_um
        Centreline length (µm); a tube that meets the cell's boundary or another organelle
        is cut there, and dropped if shorter than the range's low end.
    persistence_um
        Persistence length of the centreline (µm).
    """

    count: tuple[int, int] = range_field((60, 150), integer=True)
    radius_nm: tuple[float, float] = range_field((125.0, 250.0), positive=True)
    length_um: tuple[float, float] = range_field((1.0, 8.0), positive=True)
    persistence_um: float = attrs.field(
        default=3.0, converter=float, validator=attrs.validators.gt(0)
    )


@attrs.frozen(kw_only=True)
class GolgiConfig:
    """The Golgi ribbon: stacks of flat cisternae in an arc beside the nucleus.

    Attributes
    ----------
    stacks
        Number of stacks.
    cisternae
        Cisternae per stack.
    cisterna_radius_nm
        Radius of a stack's cisternae (nm).
    pitch_nm
        Distance between neighbouring cisternae (nm).
    distance_nm
        Gap between the nuclear envelope and the stacks (nm).
    """

    stacks: tuple[int, int] = range_field((4, 10), integer=True)
    cisternae: tuple[int, int] = range_field((4, 7), integer=True)
    cisterna_radius_nm: tuple[float, float] = range_field((350.0, 600.0), positive=True)
    pitch_nm: float = attrs.field(default=70.0, converter=float, validator=attrs.validators.gt(0))
    distance_nm: tuple[float, float] = range_field((300.0, 1500.0))


class Occupancy:
    """Spheres already placed; answers which new spheres would come too close."""

    def __init__(self):
        self._centres = np.zeros((0, 3))
        self._radii = np.zeros(0)
        self._tree: cKDTree | None = None
        self._in_tree = 0

    def add(self, centres, radii) -> None:
        """Record spheres (centres (N, 3), radii (N,))."""
        self._centres = np.concatenate([self._centres, np.reshape(centres, (-1, 3))])
        self._radii = np.concatenate([self._radii, np.ravel(radii)])
        if len(self._centres) - self._in_tree > _PENDING:
            self._tree, self._in_tree = cKDTree(self._centres), len(self._centres)

    def clashes(self, centres, radii, gap_nm: float) -> np.ndarray:
        """(N,) bool: sphere ``i`` comes within ``gap_nm`` of a recorded one."""
        centres, radii = np.reshape(centres, (-1, 3)), np.ravel(radii)
        out = np.zeros(len(centres), dtype=bool)
        if not len(self._radii) or not len(centres):
            return out
        reach = radii.max() + self._radii.max() + gap_nm
        if self._tree is not None:
            pairs = cKDTree(centres).sparse_distance_matrix(
                self._tree, reach, output_type="ndarray"
            )
            i, j, dist = pairs["i"], pairs["j"], pairs["v"]
            out[i[dist < radii[i] + self._radii[j] + gap_nm]] = True
        rest = slice(self._in_tree, None)
        d = np.linalg.norm(centres[:, None] - self._centres[None, rest], axis=-1)
        out |= (d < radii[:, None] + self._radii[None, rest] + gap_nm).any(axis=1)
        return out


def _greedy(centres: np.ndarray, radii: np.ndarray, gap_nm: float, n: int) -> np.ndarray:
    """Indices of at most ``n`` spheres, taken in order, none within ``gap_nm`` of an
    earlier taken one."""
    if not len(radii):
        return np.zeros(0, dtype=np.int64)
    pairs = cKDTree(centres).query_pairs(2 * radii.max() + gap_nm, output_type="ndarray")
    dist = np.linalg.norm(centres[pairs[:, 0]] - centres[pairs[:, 1]], axis=1)
    pairs = pairs[dist < radii[pairs[:, 0]] + radii[pairs[:, 1]] + gap_nm]
    both = np.concatenate([pairs, pairs[:, ::-1]])
    order = np.argsort(both[:, 0], kind="stable")
    nbr = both[order, 1]
    start = np.searchsorted(both[order, 0], np.arange(len(radii) + 1))
    blocked = np.zeros(len(radii), dtype=bool)
    taken = []
    for i in range(len(radii)):
        if blocked[i]:
            continue
        taken.append(i)
        if len(taken) == n:
            break
        blocked[nbr[start[i] : start[i + 1]]] = True
    return np.asarray(taken, dtype=np.int64)


def place_spheres(
    shape: CellShape,
    config: SpheresConfig,
    occupancy: Occupancy,
    clearance_nm: float,
    gap_nm: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Centres (N, 3) and radii (N,) of non-overlapping spheres in the cytoplasm.

    Recorded in ``occupancy``. ``N`` is drawn from ``config.count``; fewer when no more
    fit after a few batches of candidates.
    """
    n = int(rng.integers(config.count[0], config.count[1] + 1))
    low, high = shape.bounds_nm()
    centres, radii = [np.zeros((0, 3))], [np.zeros(0)]
    placed = 0
    for _ in range(_BATCHES):
        if placed >= n:
            break
        m = max(64, 4 * (n - placed))
        c = low + rng.random((m, 3)) * (high - low)
        r = rng.uniform(config.radius_nm[0], config.radius_nm[1], m)
        ok = shape.in_cytoplasm(c, r + clearance_nm)
        c, r = c[ok], r[ok]
        ok = ~occupancy.clashes(c, r, gap_nm)
        c, r = c[ok], r[ok]
        take = _greedy(c, r, gap_nm, n - placed)
        occupancy.add(c[take], r[take])
        centres.append(c[take])
        radii.append(r[take])
        placed += len(take)
    return np.concatenate(centres), np.concatenate(radii)


def mitochondria(
    shape: CellShape,
    config: MitochondriaConfig,
    occupancy: Occupancy,
    clearance_nm: float,
    gap_nm: float,
    rng: np.random.Generator,
) -> Geometry:
    """Mitochondria as capsule chains (instance ``i + 1`` per tube), recorded in
    ``occupancy`` as spheres along their axes.

    A tube starts at a random point of the cytoplasm, heads in a random direction in the
    plane and bends as a worm-like chain (its height drifts at a third of the in-plane
    rate: mitochondria of spread cells lie flat). It is cut at the first node that leaves
    the cytoplasm or meets an earlier organelle, and dropped if then shorter than
    ``length_um``'s low end. Candidates are drawn in one batch (4 per tube asked for) and
    tried in order.
    """
    n = int(rng.integers(config.count[0], config.count[1] + 1))
    m = 4 * n
    radius = rng.uniform(*config.radius_nm, m)
    length = rng.uniform(*config.length_um, m) * 1e3
    steps = np.maximum(1, np.ceil(length / _MITO_STEP_NM).astype(int))
    start = _cytoplasm_points(shape, radius + clearance_nm, rng)
    angle = rng.uniform(0, 2 * np.pi, m)
    heading = np.column_stack([np.zeros(m), np.sin(angle), np.cos(angle)])
    bend = np.sqrt(_MITO_STEP_NM / (config.persistence_um * 1e3))
    noise = bend * rng.standard_normal((m, steps.max(), 3)) * [1 / 3, 1, 1]
    lines = _walk(start, heading, noise)  # (m, steps.max() + 1, 3)
    k = np.arange(lines.shape[1])
    ok = shape.in_cytoplasm(lines, (radius + clearance_nm)[:, None]) & (k <= steps[:, None])
    first_bad = np.where(ok.all(axis=1), lines.shape[1], np.argmin(ok, axis=1))
    min_nodes = int(np.ceil(config.length_um[0] * 1e3 / _MITO_STEP_NM)) + 1
    kept, radii = [], []
    for i in np.flatnonzero(first_bad >= min_nodes):
        if len(kept) == n:
            break
        line = lines[i, : first_bad[i]]
        clash = occupancy.clashes(line, np.full(len(line), radius[i]), gap_nm)
        end = int(np.argmax(clash)) if clash.any() else len(line)
        if end < min_nodes:
            continue
        occupancy.add(line[:end], np.full(end, radius[i]))
        kept.append(line[:end])
        radii.append(radius[i])
    if not kept:
        return Geometry.empty(("mitochondria",))
    counts = [len(line) - 1 for line in kept]
    return Geometry(
        ("mitochondria",),
        np.concatenate([line[:-1] for line in kept]),
        np.concatenate([line[1:] for line in kept]),
        np.repeat(radii, counts),
        np.repeat(np.arange(1, len(kept) + 1), counts),
        np.zeros(sum(counts), dtype=np.int16),
    )


def _cytoplasm_points(shape: CellShape, clearance_nm: np.ndarray, rng) -> np.ndarray:
    """One point of the cytoplasm per entry of ``clearance_nm`` (nm from the membranes),
    drawn uniformly by rejection from the cell's bounding box."""
    low, high = shape.bounds_nm()
    out = np.full((len(clearance_nm), 3), np.nan)
    todo = np.arange(len(clearance_nm))
    for _ in range(_BATCHES * 4):
        if not len(todo):
            break
        tries = np.repeat(todo, 8)
        points = low + rng.random((len(tries), 3)) * (high - low)
        ok = shape.in_cytoplasm(points, clearance_nm[tries])
        got, first = np.unique(tries[ok], return_index=True)
        out[got] = points[ok][first]
        todo = np.setdiff1d(todo, got)
    # Entries with no valid point (the cell is too thin for them) start outside: dropped.
    out[todo] = low - 1e6
    return out


def _walk(start: np.ndarray, heading: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Polylines (M, S + 1, 3) of ``S`` steps of ``_MITO_STEP_NM``: each direction is the
    running sum of ``heading`` (M, 3) and the noise rows (M, S, 3), normalised (a
    worm-like chain)."""
    direction = heading[:, None] + np.cumsum(noise, axis=1)
    direction /= np.linalg.norm(direction, axis=2, keepdims=True)
    steps = np.cumsum(direction * _MITO_STEP_NM, axis=1)
    return np.concatenate([start[:, None], start[:, None] + steps], axis=1)


@attrs.frozen(eq=False)
class GolgiStacks:
    """Golgi stacks: centre (S, 3), unit normal (S, 3) of the cisternae (horizontal,
    pointing away from the nucleus), cisterna radius (S,), number of cisternae (S,)."""

    centre_nm: np.ndarray
    normal: np.ndarray
    radius_nm: np.ndarray
    cisternae: np.ndarray
    pitch_nm: float

    def __len__(self) -> int:
        return len(self.radius_nm)

    @property
    def half_height_nm(self) -> np.ndarray:
        """Half the stack's height along its normal (nm)."""
        return 0.5 * (self.cisternae - 1) * self.pitch_nm


def golgi_stacks(
    shape: CellShape,
    config: GolgiConfig,
    occupancy: Occupancy,
    clearance_nm: float,
    gap_nm: float,
    rng: np.random.Generator,
) -> GolgiStacks:
    """Stacks side by side along an arc around the nucleus at ``distance_nm`` from it,
    each at a height where its bounding sphere fits in the cytoplasm (skipped if none)."""
    nuc = shape.nucleus
    n = int(rng.integers(config.stacks[0], config.stacks[1] + 1))
    radius = rng.uniform(*config.cisterna_radius_nm, n)
    cisternae = rng.integers(config.cisternae[0], config.cisternae[1] + 1, n)
    half = 0.5 * (cisternae - 1) * config.pitch_nm
    bound = np.hypot(radius, half)
    gap = rng.uniform(*config.distance_nm, n)
    heading = rng.uniform(0, 2 * np.pi)
    reach = np.sqrt(nuc.semi_axes_nm[1] * nuc.semi_axes_nm[2]) + gap.mean() + radius.mean()
    angle = heading + (np.arange(n) - (n - 1) / 2) * (2 * bound.mean() + gap_nm) / reach
    z_options = np.linspace(shape.base_nm, nuc.centre_nm[0] + shape.cortex_nm, 24)
    keep, centres, normals = [], [], []
    for k in range(n):
        e = np.array([0.0, np.sin(angle[k]), np.cos(angle[k])])
        # Distance from the nucleus's centre to its equator along e: level scales as t².
        rim = 1 / np.sqrt(nuc.lateral_level(*(nuc.centre_nm + e)[1:]))
        centre = nuc.centre_nm + (rim + gap[k] + bound[k] + clearance_nm) * e
        candidates = np.repeat(centre[None], len(z_options), axis=0)
        candidates[:, 0] = z_options
        ok = shape.in_cytoplasm(candidates, bound[k] + clearance_nm)
        ok &= ~occupancy.clashes(candidates, np.full(len(z_options), bound[k]), gap_nm)
        if not ok.any():
            continue
        chosen = candidates[rng.choice(np.flatnonzero(ok))]
        occupancy.add(chosen, bound[k])
        keep.append(k)
        centres.append(chosen)
        normals.append(e)
    keep = np.asarray(keep, dtype=np.int64)
    return GolgiStacks(
        centre_nm=np.reshape(centres, (-1, 3)),
        normal=np.reshape(normals, (-1, 3)),
        radius_nm=radius[keep],
        cisternae=cisternae[keep],
        pitch_nm=config.pitch_nm,
    )
