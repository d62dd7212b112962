"""The ``nile_red_cell`` phantom: a whole cell with 15 compartments stained by Nile Red.

One dye, ``nile_red``, on every lipid membrane of a cultured cell (Zhanghao et al.: U2-OS
stained with 1 µg/ml Nile Red, imaged under 488 nm excitation in a yellow 580–653 nm and a
red 665–705 nm band). Each emitter carries the emission peak of the compartment it sits in
(:mod:`~subcell.plugins.nile_red.compartments`), so a spectral microscope
(``spinning_disk``) splits its photons between the bands by the local lipid polarity:
lipid droplets are yellow, the plasma membrane is yellower than the ER, mitochondria are
the reddest membranes.

The geometry (:mod:`~subcell.plugins.nile_red.cell`, :mod:`~subcell.plugins.nile_red.er`,
:mod:`~subcell.plugins.nile_red.organelles`) is drawn in nm, the emitters on it exactly,
and the masks on the field's grid (:mod:`~subcell.plugins.nile_red.masks`): 15 classes in
:data:`~subcell.plugins.nile_red.compartments.CLASS_NAMES` order, instance ids per
organelle.

The field's z = 0 is the coverslip: the cell's basal membrane lies ``cell.base_nm`` above
it. Give the microscope ``focus_depth_nm`` = half the field's depth so that its depths
match (see :mod:`subcell.plugins.microscopes.base`). The paper's working grid is
164.6 nm laterally (its 1200 px camera fields at 110 nm, resized to 802 px) and 24
planes; a cell is ~5 µm tall, so 250 nm planes hold it.
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.model import Field
from subcell.core.scene import Dye, Scene
from subcell.plugins.nile_red.cell import CellConfig, NucleusConfig
from subcell.plugins.nile_red.compartments import LabellingConfig
from subcell.plugins.nile_red.dye import emission_peaks, nile_red_emitters, to_dye_emitters
from subcell.plugins.nile_red.er import ERConfig
from subcell.plugins.nile_red.layout import CellLayout, build_layout
from subcell.plugins.nile_red.masks import CellRasters, cell_masks
from subcell.plugins.nile_red.organelles import GolgiConfig, MitochondriaConfig, SpheresConfig
from subcell.plugins.nile_red.tubes import FilopodiaConfig

__all__ = ["DYE_NAME", "NileRedCell", "NileRedCellConfig"]

DYE_NAME = "nile_red"

_ge0 = attrs.validators.ge(0)
_gt0 = attrs.validators.gt(0)


def _spheres(count, radius_nm):
    return attrs.field(factory=lambda: SpheresConfig(count=count, radius_nm=radius_nm))


def _number(default: float, *validators):
    return attrs.field(default=default, converter=float, validator=list(validators))


@attrs.frozen(kw_only=True)
class NileRedCellConfig:
    """Parameters of the Nile Red cell phantom (sources in docs/nile_red.md).

    Attributes
    ----------
    cell
        Cell body and plasma membrane (:class:`~subcell.plugins.nile_red.cell.CellConfig`).
    nucleus
        Nucleus and nuclear reticulum.
    filopodia
        Filopodia.
    er
        ER tubular network and sheets.
    golgi
        Golgi stacks.
    mitochondria
        Mitochondria.
    lipid_droplets, peroxisomes, early_endosomes, late_endosomes, lysosomes
        Round organelles: ``count`` per cell and ``radius_nm``.
    labelling
        Nile Red densities, emission peaks and brightness per compartment.
    clearance_nm
        Smallest distance (nm) of organelles from the plasma membrane and the nuclear
        envelope.
    gap_nm
        Smallest distance (nm) between two organelles.
    emitter_scale
        Factor on every density: fewer emitters draw and render faster (grainier images).
    photons_per_emitter
        Detected photons per emitter per frame at brightness 1 (the phantom step may
        rescale all photons to reach its target SNR).
    peak_object_sd_nm
        Standard deviation (nm) of the emission peak between objects (each organelle, and
        each membrane compartment as a whole).
    peak_emitter_sd_nm
        Standard deviation (nm) of the emission peak between emitters of one object.
    margin_nm
        Emitters farther than this outside the field are dropped.
    """

    cell: CellConfig = attrs.field(factory=CellConfig)
    nucleus: NucleusConfig = attrs.field(factory=NucleusConfig)
    filopodia: FilopodiaConfig = attrs.field(factory=FilopodiaConfig)
    er: ERConfig = attrs.field(factory=ERConfig)
    golgi: GolgiConfig = attrs.field(factory=GolgiConfig)
    mitochondria: MitochondriaConfig = attrs.field(factory=MitochondriaConfig)
    lipid_droplets: SpheresConfig = _spheres((10, 50), (100.0, 750.0))
    peroxisomes: SpheresConfig = _spheres((100, 300), (50.0, 250.0))
    early_endosomes: SpheresConfig = _spheres((50, 150), (50.0, 250.0))
    late_endosomes: SpheresConfig = _spheres((30, 100), (125.0, 500.0))
    lysosomes: SpheresConfig = _spheres((50, 250), (100.0, 500.0))
    labelling: LabellingConfig = attrs.field(factory=LabellingConfig)
    clearance_nm: float = _number(150.0, _ge0)
    gap_nm: float = _number(50.0, _ge0)
    emitter_scale: float = _number(1.0, _gt0)
    photons_per_emitter: float = _number(10.0, _gt0)
    peak_object_sd_nm: float = _number(3.0, _ge0)
    peak_emitter_sd_nm: float = _number(2.0, _ge0)
    margin_nm: float = _number(1000.0, _ge0)

    def spheres(self) -> dict:
        """The round organelles' configs by class name."""
        return {
            "lipid_droplet": self.lipid_droplets,
            "peroxisome": self.peroxisomes,
            "early_endosome": self.early_endosomes,
            "late_endosome": self.late_endosomes,
            "lysosome": self.lysosomes,
        }


class NileRedCell:
    """Draws one Nile Red stained cell per field.

    Parameters
    ----------
    config
        The phantom's parameters.
    """

    def __init__(self, config: NileRedCellConfig):
        self.config = config

    def layout(self, field: Field, rng: np.random.Generator) -> CellLayout:
        """The cell's geometry (the first draws of :meth:`draw` from the same rng)."""
        c = self.config
        return build_layout(
            field,
            cell=c.cell,
            nucleus=c.nucleus,
            filopodia_config=c.filopodia,
            er=c.er,
            golgi=c.golgi,
            mitochondria_config=c.mitochondria,
            spheres=c.spheres(),
            clearance_nm=c.clearance_nm,
            gap_nm=c.gap_nm,
            rng=rng,
        )

    def draw_parts(self, field: Field, rng: np.random.Generator):
        """Layout, rasters and dye of one cell (what :meth:`draw` assembles)."""
        c = self.config
        layout = self.layout(field, rng)
        rasters: CellRasters = cell_masks(layout, field)
        pos, klass, inst = nile_red_emitters(
            layout, rasters, field, c.labelling, rng, scale=c.emitter_scale
        )
        extent = field.extent_nm
        keep = ((pos >= -c.margin_nm) & (pos <= extent + c.margin_nm)).all(axis=1)
        pos, klass, inst = pos[keep], klass[keep], inst[keep]
        emitters = to_dye_emitters(pos, klass, inst, c.labelling, c.photons_per_emitter)
        peaks = emission_peaks(
            klass, inst, c.labelling, c.peak_object_sd_nm, c.peak_emitter_sd_nm, rng
        )
        return layout, rasters, Dye(DYE_NAME, emitters, emission_peak_nm=peaks)

    def draw(self, field: Field, rng: np.random.Generator) -> Scene:
        """Draw a cell in ``field``.

        Parameters
        ----------
        field
            The imaging grid; the cell is centred in it (with jitter) and may be cut by it.
        rng
            The only source of randomness.

        Returns
        -------
        Scene
            One dye ``"nile_red"`` with per-emitter emission peaks; masks with the 15
            classes and instance ids.
        """
        _, rasters, dye = self.draw_parts(field, rng)
        return Scene(dyes=(dye,), masks=rasters.masks)
