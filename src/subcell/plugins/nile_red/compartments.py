"""The 15 compartments of the Nile Red cell: class order, groups, and Nile Red labelling.

Classes
-------
:data:`CLASS_NAMES` fixes the order of the mask channels (and of ``Emitters.klass``). The
paper (Zhanghao et al., "Fast, live-cell imaging of 15 intracellular compartments by deep
learning segmentation of super-resolution data") trains three multi-class networks and
seven binary ones; :data:`GROUPS` holds its multi-class groups (VOLUME, ER, PM) and
:data:`BINARY` the rest.

Exclusivity
-----------
Every voxel has exactly one *volume* class (nucleus, cytosol or ecs) and at most one
*structure* class (the other twelve): the structure layer is painted in
:data:`PAINT_ORDER`, a later class overwriting an earlier one, so the ER and PM groups are
exclusive within themselves (each with an implicit background) and the seven binary
classes never overlap one another, while any structure class overlaps a volume class.

Labelling
---------
Nile Red stains every lipid membrane; its emission shifts to the red with the polarity
(hydration) of its surroundings (Greenspan & Fowler 1985, J. Lipid Res. 26, 781–789: peak
628 nm in phosphatidylcholine vesicles, shorter with neutral lipids; quenched in water).
Each compartment gets a membrane density (emitters per µm² of membrane; a double membrane
counts twice), a density inside its volume (emitters per µm³: a lipid droplet's neutral
lipid core, cristae, intraluminal vesicles), an emission peak and a relative brightness
(Nile Red's quantum yield rises in apolar lipid). The ordering of the peaks, apolar to
polar:

1. lipid droplets (neutral lipid: triacylglycerol, cholesteryl ester) are the most
   apolar: Nile Red emits "green-yellow only in lipid droplets" (Zhanghao et al. 2020,
   Nat. Commun. 11, 5890 (SPOT), the paper's ref. 14), and its red/yellow ratio orders
   phospholipid > free cholesterol > triolein > cholesteryl ester (Diaz et al. 2008,
   Micron 39, 819–824);
2. the plasma membrane (and its filopodia) is ordered and dehydrated by its high
   cholesterol (the ER–Golgi–PM cholesterol gradient: van Meer, Voelker & Feigenson 2008,
   Nat. Rev. Mol. Cell Biol. 9, 112–124); solvatochromic probes report it far more apolar
   than internal membranes (Laurdan probes: doi:10.12688/f1000research.11577.1; Nile Red
   probe NR12S: Kucherak et al. 2010, J. Am. Chem. Soc. 132, 4907–4916, ordered phases
   blue-shifted);
3. endosomes receive PM lipids and stay cholesterol-rich (early, then late endosomes with
   intraluminal vesicles); lysosomes export cholesterol, Golgi is intermediate;
4. ER, nuclear envelope, nuclear reticulum and peroxisomes (ER-derived) are loosely packed
   and hydrated, mitochondria (cardiolipin, almost no cholesterol) the most polar
   membranes;
5. the few dye molecules in cytosol and nucleoplasm (small lipid particles, protein) and in
   the medium sit in the most polar surroundings and are dim.

The paper gives no per-compartment numbers; the peaks below follow this ordering within
the span of Greenspan & Fowler (≈585 nm in neutral lipid, ≈630 nm in fluid
phospholipid), and the densities are set for a visually balanced image with a sane emitter
count (~10⁵–10⁶ per cell). All are configurable (:class:`LabellingConfig`).
"""

from __future__ import annotations

import attrs

from subcell.core.validators import within

__all__ = [
    "BINARY",
    "CLASS_NAMES",
    "GROUPS",
    "PAINT_ORDER",
    "TABLE",
    "VOLUME_CLASSES",
    "Compartment",
    "LabelConfig",
    "LabellingConfig",
]

#: Mask channel order (and ``Emitters.klass`` index) of the Nile Red cell.
CLASS_NAMES = (
    "nucleus",
    "cytosol",
    "ecs",
    "er",
    "nuclear_membrane",
    "nuclear_reticulum",
    "plasma_membrane",
    "filopodia",
    "golgi",
    "lipid_droplet",
    "mitochondria",
    "peroxisome",
    "early_endosome",
    "late_endosome",
    "lysosome",
)

#: The paper's multi-class networks: VOLUME-net, ER-net, PM-net.
GROUPS = {
    "volume": ("nucleus", "cytosol", "ecs"),
    "er": ("er", "nuclear_membrane", "nuclear_reticulum"),
    "pm": ("plasma_membrane", "filopodia"),
}

#: The paper's binary networks (GOLGI, LD, MITO, PERO, EE, LE, LYSO).
BINARY = (
    "golgi",
    "lipid_droplet",
    "mitochondria",
    "peroxisome",
    "early_endosome",
    "late_endosome",
    "lysosome",
)

#: Classes of the volume layer: exactly one per voxel.
VOLUME_CLASSES = GROUPS["volume"]

#: The structure layer, painted first to last (a later class wins a voxel). Organelles
#: displace the ER; membranes are painted last so that they stay closed.
PAINT_ORDER = (
    "er",
    "golgi",
    "mitochondria",
    "late_endosome",
    "early_endosome",
    "lysosome",
    "peroxisome",
    "lipid_droplet",
    "nuclear_reticulum",
    "filopodia",
    "nuclear_membrane",
    "plasma_membrane",
)


@attrs.frozen
class Compartment:
    """One row of the default labelling table (see the module notes for the sources).

    Attributes
    ----------
    name
        Class name.
    surface_per_um2
        Emitters per µm² of the compartment's membrane (both bilayers of a double one).
    volume_per_um3
        Emitters per µm³ inside it.
    emission_peak_nm
        Peak of Nile Red's emission there.
    brightness
        Photons per emitter relative to ``photons_per_emitter``.
    note
        Where the numbers come from, for the docs.
    """

    name: str
    surface_per_um2: float
    volume_per_um3: float
    emission_peak_nm: float
    brightness: float
    note: str


#: Base membrane density: emitters per µm² of one bilayer (~2 emitters per 165 nm pixel
#: of a flat membrane; each emitter stands for many dye molecules).
_BILAYER = 100.0

TABLE = (
    # Nucleoplasm: weak diffuse signal, polar (dye on proteins / small lipid particles).
    Compartment("nucleus", 0.0, 1.5, 645.0, 0.5, "diffuse, polar (Greenspan & Fowler 1985)"),
    Compartment("cytosol", 0.0, 3.0, 645.0, 0.5, "diffuse, polar (Greenspan & Fowler 1985)"),
    # Nile Red is quenched in water (Greenspan & Fowler 1985): no signal from the medium.
    Compartment("ecs", 0.0, 0.0, 650.0, 0.5, "medium: Nile Red quenched in water"),
    # ER: fluid, cholesterol-poor (~5 mol %) membranes, PC-like peak (628 nm in PC).
    Compartment("er", _BILAYER, 0.0, 630.0, 1.0, "fluid PC-like bilayer (van Meer 2008)"),
    # Nuclear envelope: inner + outer membrane, continuous with the ER.
    Compartment("nuclear_membrane", 2 * _BILAYER, 0.0, 630.0, 1.0, "two ER-like bilayers"),
    # Type II nucleoplasmic reticulum: both envelope membranes folded in.
    Compartment("nuclear_reticulum", 2 * _BILAYER, 0.0, 630.0, 1.0, "two ER-like bilayers"),
    # PM: cholesterol-rich, ordered, apolar: blue-shifted and brighter.
    Compartment("plasma_membrane", _BILAYER, 0.0, 612.0, 1.2, "ordered, Lo-like (Kucherak 2010)"),
    Compartment("filopodia", _BILAYER, 0.0, 612.0, 1.2, "PM protrusions, same lipids"),
    # Golgi: per face of each cisterna (two faces), cholesterol intermediate.
    Compartment("golgi", _BILAYER, 0.0, 622.0, 1.0, "intermediate cholesterol (van Meer 2008)"),
    # Lipid droplet: neutral lipid core, most apolar; Nile Red far brighter there.
    Compartment("lipid_droplet", 0.0, 2000.0, 585.0, 2.0, "neutral lipid (Diaz 2008, SPOT 2020)"),
    # Mitochondria: outer + inner boundary membrane, plus cristae (~5 µm² per µm³ at 100/µm²).
    Compartment("mitochondria", 2 * _BILAYER, 500.0, 635.0, 1.0, "cardiolipin, no cholesterol"),
    Compartment("peroxisome", _BILAYER, 0.0, 628.0, 1.0, "ER-derived membrane"),
    # Endosomes: PM-derived, cholesterol-rich; late ones full of intraluminal vesicles.
    Compartment("early_endosome", _BILAYER, 100.0, 615.0, 1.0, "PM-derived, few ILVs"),
    Compartment("late_endosome", _BILAYER, 800.0, 618.0, 1.0, "MVB: ILVs, cholesterol, BMP"),
    # Lysosomes: cholesterol exported (NPC1), membrane whorls inside.
    Compartment("lysosome", _BILAYER, 400.0, 624.0, 1.0, "cholesterol exported, whorls"),
)

_DEFAULTS = {row.name: row for row in TABLE}
assert tuple(_DEFAULTS) == CLASS_NAMES  # the table lists the classes in mask order


def _nonnegative(default: float):
    return attrs.field(default=default, converter=float, validator=attrs.validators.ge(0))


@attrs.frozen(kw_only=True)
class LabelConfig:
    """Nile Red in one compartment.

    Attributes
    ----------
    surface_per_um2
        Mean emitters per µm² of membrane (Poisson).
    volume_per_um3
        Mean emitters per µm³ of the compartment's volume (Poisson).
    emission_peak_nm
        Emission peak (nm) of the dye there; sets the red/yellow ratio.
    brightness
        Photons per emitter relative to the phantom's ``photons_per_emitter``.
    """

    surface_per_um2: float = _nonnegative(0.0)
    volume_per_um3: float = _nonnegative(0.0)
    emission_peak_nm: float = attrs.field(
        default=620.0, converter=float, validator=within(400.0, 900.0)
    )
    brightness: float = attrs.field(default=1.0, converter=float, validator=attrs.validators.gt(0))


def _label(name: str):
    row = _DEFAULTS[name]
    return attrs.field(
        factory=lambda: LabelConfig(
            surface_per_um2=row.surface_per_um2,
            volume_per_um3=row.volume_per_um3,
            emission_peak_nm=row.emission_peak_nm,
            brightness=row.brightness,
        )
    )


@attrs.frozen(kw_only=True)
class LabellingConfig:
    """Nile Red labelling of each compartment (defaults: :data:`TABLE`).

    Attributes
    ----------
    nucleus, cytosol, ecs, er, nuclear_membrane, nuclear_reticulum, plasma_membrane,
    filopodia, golgi, lipid_droplet, mitochondria, peroxisome, early_endosome,
    late_endosome, lysosome
        :class:`LabelConfig` of that compartment. Membrane densities count every bilayer
        (nuclear envelope and mitochondria: two); Golgi's is per face of a cisterna.
    """

    nucleus: LabelConfig = _label("nucleus")
    cytosol: LabelConfig = _label("cytosol")
    ecs: LabelConfig = _label("ecs")
    er: LabelConfig = _label("er")
    nuclear_membrane: LabelConfig = _label("nuclear_membrane")
    nuclear_reticulum: LabelConfig = _label("nuclear_reticulum")
    plasma_membrane: LabelConfig = _label("plasma_membrane")
    filopodia: LabelConfig = _label("filopodia")
    golgi: LabelConfig = _label("golgi")
    lipid_droplet: LabelConfig = _label("lipid_droplet")
    mitochondria: LabelConfig = _label("mitochondria")
    peroxisome: LabelConfig = _label("peroxisome")
    early_endosome: LabelConfig = _label("early_endosome")
    late_endosome: LabelConfig = _label("late_endosome")
    lysosome: LabelConfig = _label("lysosome")

    def of(self, name: str) -> LabelConfig:
        """The labelling of compartment ``name``."""
        return getattr(self, name)
