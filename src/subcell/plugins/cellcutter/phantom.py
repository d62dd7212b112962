"""The ``clumped_cells`` phantom: tightly clumped cells with nuclei, for cellcutter benchmarks.

A monolayer of cultured cells seen at low magnification (Din & Yu 2021 imaged A431 cells
at ~70 % confluence with a 20× objective): colonies of tightly packed cells of irregular
shape (a perturbed power diagram, see :mod:`~subcell.plugins.cellcutter.phantom_layout`),
some isolated cells, a nucleus in every cell. Two dyes:

``cell``
    A whole-cell marker (an immunostain of the cytoplasm with membrane enrichment): dye
    fills each cell at a density varied per cell (log-normal), enriched on a thin membrane
    line along every cell border (touching cells are separable, as in real membrane /
    cytoplasm stains, and an interface between two cells carries two membranes), dimmer
    over the nucleus.
``nucleus``
    A nuclear stain (DAPI-like): dye fills each nucleus at a density varied per nucleus
    (log-normal) and modulated by a smooth chromatin texture.

Emitters are placed at random (Poisson counts per supersampled pixel, uniform positions
inside it) with the configured densities (emitters per µm² of the monolayer's area), so
the number of emitters in a region is Poisson with mean density × area. The field is a thin
slab: the cells are prisms through its whole depth (``Z = 1`` is the intended use; with
``Z > 1`` every plane holds the same cross-section) and emitters' z is uniform in it.

Ground truth on the field's pixel grid (sampled at the pixel centres of the supersampled
rasters): semantic masks for ``classes`` (``"cell"``: every cell including its nucleus,
``"nucleus"``: the nuclei), and instances: cell ids ``1..n`` for every cell seen in the
field, including those cut by its border. :func:`nucleus_centroids_px` gives each cell's
nucleus centroid from the masks (for scoring marker detection). Emitters carry the same
instance ids; cells drawn only in the margin outside the field have ids above ``n``.
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

from subcell.core.errors import VolumeError
from subcell.core.model import Field, Masks
from subcell.core.scene import Dye, Scene
from subcell.core.validators import range_field, to_floats, value_range, within
from subcell.plugins.cellcutter.phantom_dyes import cell_dye, nucleus_dye
from subcell.plugins.cellcutter.phantom_layout import ClumpedLayout, build_layout

__all__ = [
    "CellDyeConfig",
    "ClumpedCells",
    "ClumpedCellsConfig",
    "NucleusDyeConfig",
    "nucleus_centroids_px",
]

DYES = ("cell", "nucleus")
CLASSES = ("cell", "nucleus")

_ge0 = attrs.validators.ge(0)
_gt0 = attrs.validators.gt(0)


def _number(default: float, *validators):
    return attrs.field(default=default, converter=float, validator=list(validators))


def _names(allowed: tuple[str, ...]):
    """Validator of a non-empty list of distinct names from ``allowed``."""

    def check(instance, attribute, value):
        name = attribute.name
        if not value:
            raise ValueError(f"'{name}' must name at least one of {list(allowed)}")
        unknown = [v for v in value if v not in allowed]
        if unknown:
            raise ValueError(f"'{name}' may only hold {list(allowed)}, got {unknown}")
        if len(set(value)) != len(value):
            raise ValueError(f"'{name}' names an entry twice: {list(value)}")

    return check


def _fraction_range(instance, attribute, value):
    if not 0 < value[0] <= value[1] < 1:
        raise ValueError(f"'{attribute.name}' must be a range within (0, 1), got {list(value)}")


def _aspect_range(instance, attribute, value):
    if value[0] < 1:
        raise ValueError(f"'{attribute.name}' must start at 1 or above, got {list(value)}")


def _odd(instance, attribute, value):
    if not 1 <= value <= 9 or value % 2 == 0:
        raise ValueError(f"'{attribute.name}' must be an odd number from 1 to 9, got {value}")


@attrs.frozen(kw_only=True)
class CellDyeConfig:
    """The whole-cell marker (cytoplasm with membrane enrichment).

    Attributes
    ----------
    density_per_um2
        Mean emitters per µm² of cytoplasm (before the per-cell brightness factor).
    photons_per_emitter
        Detected photons per emitter per frame.
    brightness_sd
        Standard deviation of the log of each cell's brightness factor (log-normal, mean 1):
        cell-to-cell variation of staining.
    membrane_enrichment
        Density on the membrane line relative to the cytoplasm (per membrane: an interface
        between two cells carries two); 1: no enrichment.
    membrane_width_um
        Gaussian σ of the membrane's profile across the border, µm.
    nucleus_factor
        Density over the nucleus relative to the cytoplasm (< 1: dimmer nucleus).
    """

    density_per_um2: float = _number(40.0, _ge0)
    photons_per_emitter: float = _number(20.0, _gt0)
    brightness_sd: float = _number(0.3, _ge0)
    membrane_enrichment: float = _number(2.5, _ge0)
    membrane_width_um: float = _number(0.3, _gt0)
    nucleus_factor: float = _number(0.5, _ge0)


@attrs.frozen(kw_only=True)
class NucleusDyeConfig:
    """The nuclear stain.

    Attributes
    ----------
    density_per_um2
        Mean emitters per µm² of nucleus (before brightness and texture).
    photons_per_emitter
        Detected photons per emitter per frame.
    brightness_sd
        Standard deviation of the log of each nucleus's brightness factor (log-normal,
        mean 1).
    texture
        Relative standard deviation of the chromatin texture (smooth noise multiplying the
        density, clipped at 0); 0: uniform nuclei.
    texture_scale_um
        Correlation length (Gaussian σ) of the texture, µm.
    """

    density_per_um2: float = _number(60.0, _ge0)
    photons_per_emitter: float = _number(20.0, _gt0)
    brightness_sd: float = _number(0.25, _ge0)
    texture: float = _number(0.3, _ge0)
    texture_scale_um: float = _number(0.8, _gt0)


@attrs.frozen(kw_only=True)
class ClumpedCellsConfig:
    """Parameters of the clumped-cells phantom. Ranges are inclusive ``[low, high]``.

    Attributes
    ----------
    dyes
        Which dyes the scene holds, in channel order: ``"cell"`` and/or ``"nucleus"``.
    classes
        Which ground-truth classes the masks carry: ``"cell"`` and/or ``"nucleus"``.
    cell_diameter_um
        Range of the cells' equivalent diameters (of a disc of the same area), µm. Each cell
        draws a target size uniform in it and the packing is balanced towards the targets
        (:mod:`~subcell.plugins.cellcutter.phantom_seeds`, ``phantom_packing``); a cell
        still outside the range is merged into a neighbour or trimmed, so every cell lies
        in it.
    confluence
        Fraction of the area covered by colonies (0: isolated cells only, 1: one sheet).
    colony_scale_um
        Length scale of colony outlines: the Gaussian σ of the smoothed noise thresholded
        into colonies, µm (colonies are typically a few times this across).
    colony_roughness
        Weight of a finer noise octave (σ / 4) that roughens the colony outlines.
    isolated_per_mm2
        Mean number of isolated cells per mm² of the background between colonies (of the
        part at least a cell radius clear of them).
    gap_um
        Width of the gap between touching cells, µm (0: their borders touch).
    warp_um
        Standard deviation of the smooth random displacement that makes cell borders
        irregular, µm (0: straight power-diagram edges).
    warp_scale_um
        Correlation length (Gaussian σ) of that displacement, µm.
    nucleus_area_fraction
        Range of the nucleus's area as a fraction of its cell's (less where the cell is too
        narrow to hold it).
    nucleus_aspect
        Range of the nucleus's aspect ratio (long / short axis, >= 1); its long axis follows
        the cell's.
    nucleus_irregularity
        Relative amplitude of the harmonics (orders 2-4) on nucleus outlines.
    nucleus_clearance_um
        Smallest distance from a nucleus to its cell's border, µm (below a quarter of the
        smallest cell diameter): nuclei never touch the border.
    supersample
        Supersampled pixels per field pixel along each axis for the label rasters and
        emitter placement (odd: the field's pixel centres are sample points).
    emitter_margin_um
        Emitters are placed up to this far outside the field (their light reaches in), µm.
    cell_dye, nucleus_dye
        The dyes' parameters (:class:`CellDyeConfig`, :class:`NucleusDyeConfig`).
    """

    dyes: tuple[Literal["cell", "nucleus"], ...] = attrs.field(
        default=DYES, converter=tuple, validator=_names(DYES)
    )
    classes: tuple[Literal["cell", "nucleus"], ...] = attrs.field(
        default=CLASSES, converter=tuple, validator=_names(CLASSES)
    )
    cell_diameter_um: tuple[float, float] = range_field((12.0, 25.0), positive=True)
    confluence: float = _number(0.7, within(0, 1))
    colony_scale_um: float = _number(30.0, _gt0)
    colony_roughness: float = _number(0.3, _ge0)
    isolated_per_mm2: float = _number(20.0, _ge0)
    gap_um: float = _number(0.0, _ge0)
    warp_um: float = _number(1.0, _ge0)
    warp_scale_um: float = _number(5.0, _gt0)
    nucleus_area_fraction: tuple[float, float] = attrs.field(
        default=(0.15, 0.3),
        converter=to_floats,
        validator=[value_range(positive=True), _fraction_range],
    )
    nucleus_aspect: tuple[float, float] = attrs.field(
        default=(1.0, 1.5),
        converter=to_floats,
        validator=[value_range(positive=True), _aspect_range],
    )
    nucleus_irregularity: float = _number(0.05, within(0, 0.3))
    nucleus_clearance_um: float = _number(1.0, _ge0)
    supersample: int = attrs.field(default=3, converter=int, validator=_odd)
    emitter_margin_um: float = _number(3.0, _ge0)
    cell_dye: CellDyeConfig = attrs.field(factory=CellDyeConfig)
    nucleus_dye: NucleusDyeConfig = attrs.field(factory=NucleusDyeConfig)

    def __attrs_post_init__(self):
        low = self.cell_diameter_um[0] / 2.0
        # The largest disc inside a cell of the smallest size is at least about half its
        # radius across: the nucleus must fit in it with its clearance.
        if self.nucleus_clearance_um + self.gap_um / 2.0 >= low / 2.0:
            raise ValueError(
                f"nucleus_clearance_um ({self.nucleus_clearance_um:g}) + gap_um / 2 "
                f"({self.gap_um / 2:g}) leaves no room for a nucleus in the smallest cells: "
                f"keep it below a quarter of cell_diameter_um low ({low / 2:g} µm)"
            )
        if self.gap_um >= low:
            raise ValueError(
                f"gap_um ({self.gap_um:g}) must be well below the smallest cell radius "
                f"(cell_diameter_um low / 2 = {low:g})"
            )


class ClumpedCells:
    """Draws clumped-cell scenes: colonies of packed cells with nuclei, two dyes, truth.

    Parameters
    ----------
    config
        The phantom's parameters.
    """

    def __init__(self, config: ClumpedCellsConfig):
        self.config = config

    def layout(self, field: Field, rng: np.random.Generator) -> ClumpedLayout:
        """The cells and nuclei of a field, as supersampled label rasters.

        ``draw(field, rng)`` draws its layout with the first of three generators spawned
        from ``rng``; ``layout(field, rng.spawn(3)[0])`` (same seed) gives the same one.
        """
        return build_layout(self.config, field.shape[1:], field.voxel_nm[1:], rng)

    def draw(self, field: Field, rng: np.random.Generator) -> Scene:
        """Draw a scene: the configured dyes' emitters and the ground truth.

        Parameters
        ----------
        field
            The imaging grid (Z = 1: one plane of a thin slab; more planes repeat it).
        rng
            The only source of randomness. Three generators are spawned from it (layout,
            cell dye, nucleus dye), so the layout and each dye are the same whichever dyes
            and classes are included.

        Returns
        -------
        Scene
            Dyes in ``config.dyes`` order; masks with ``config.classes`` and instances.
        """
        rng_layout, rng_cell, rng_nucleus = rng.spawn(3)
        layout = self.layout(field, rng_layout)
        shape_yx = field.shape[1:]
        cells = layout.on_field(layout.cells, shape_yx)
        ids = _field_ids(cells, layout.n_cells)
        cfg = self.config
        margin = cfg.emitter_margin_um
        makers = {
            "cell": lambda: cell_dye(cfg.cell_dye, layout, field, ids, rng_cell, margin),
            "nucleus": lambda: nucleus_dye(
                cfg.nucleus_dye, layout, field, ids, rng_nucleus, margin
            ),
        }
        dyes = [Dye(name, makers[name]()) for name in self.config.dyes]
        return Scene(dyes, self._masks(layout, field, ids[cells]))

    def _masks(self, layout: ClumpedLayout, field: Field, instances: np.ndarray) -> Masks:
        n_z = field.shape[0]
        planes = {
            "cell": instances > 0,
            "nucleus": layout.on_field(layout.nuclei, field.shape[1:]),
        }
        semantic = np.stack([planes[c] for c in self.config.classes]).astype(np.uint8)
        semantic = np.ascontiguousarray(
            np.broadcast_to(semantic[:, None], (len(semantic), n_z, *semantic.shape[1:]))
        )
        inst = np.ascontiguousarray(
            np.broadcast_to(instances.astype(np.uint32), (n_z, *instances.shape))
        )
        return Masks(semantic, self.config.classes, field.voxel_nm, inst)


def _field_ids(cells_on_field: np.ndarray, n_cells: int) -> np.ndarray:
    """Lookup from layout labels to instance ids: cells seen in the field get ``1..n`` in
    label order, the others ``n + 1..``; 0 stays 0."""
    seen = np.zeros(n_cells + 1, dtype=bool)
    seen[np.unique(cells_on_field)] = True
    seen[0] = False
    ids = np.zeros(n_cells + 1, dtype=np.int32)
    n_seen = int(seen.sum())
    ids[seen] = np.arange(1, n_seen + 1)
    unseen = ~seen
    unseen[0] = False
    ids[unseen] = np.arange(n_seen + 1, n_seen + 1 + int(unseen.sum()))
    return ids


def nucleus_centroids_px(masks: Masks, plane: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Centroid of each cell's nucleus, from the ground truth of a clumped-cells scene.

    Parameters
    ----------
    masks
        Masks with a ``"nucleus"`` class and instances (cell ids), e.g. ``scene.masks``, or
        one tile of a phantom dataset (``Masks(masks[i], class_names, voxel, instances[i])``).
    plane
        Which z plane.

    Returns
    -------
    ids, centroids
        Cell ids (K,) whose nucleus is (at least partly) in the field, in increasing order,
        and their nucleus centroids (K, 2) as (y, x) pixel indices (pixel ``i``'s centre is
        at ``i``, as in scikit-image); a nucleus cut by the border gives the centroid of its
        visible part.

    Raises
    ------
    VolumeError
        Without a ``"nucleus"`` class or instances.
    """
    if "nucleus" not in masks.class_names or masks.instances is None:
        raise VolumeError(
            "nucleus centroids need masks with a 'nucleus' class and instances "
            f"(classes {list(masks.class_names)}, instances "
            f"{'present' if masks.instances is not None else 'missing'})"
        )
    nucleus = masks.semantic[masks.class_names.index("nucleus"), plane] > 0
    labels = masks.instances[plane][nucleus].astype(np.int64)
    yy, xx = np.nonzero(nucleus)
    n = int(masks.instances.max()) + 1
    count = np.bincount(labels, minlength=n)
    sum_y = np.bincount(labels, yy, minlength=n)
    sum_x = np.bincount(labels, xx, minlength=n)
    ids = np.flatnonzero(count)
    ids = ids[ids > 0]
    centroids = np.stack([sum_y[ids] / count[ids], sum_x[ids] / count[ids]], axis=1)
    return ids, centroids
