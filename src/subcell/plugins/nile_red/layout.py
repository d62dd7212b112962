"""A whole cell's geometry: body, nucleus, membranes and organelles, with instance ids.

Instance ids are unique across the cell and numbered by kind in the order of
:data:`INSTANCE_ORDER` (Golgi stacks first, filopodia last), ``1..n`` without gaps; the
membranes that form one connected whole (plasma membrane, nuclear envelope, ER) and the
volume classes carry id 0. The same ids label the emitters and the instance mask.
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.model import Field, Geometry
from subcell.plugins.nile_red.cell import CellConfig, CellShape, NucleusConfig, draw_cell
from subcell.plugins.nile_red.er import ERConfig, ERSheets, er_sheets, er_tubules
from subcell.plugins.nile_red.organelles import (
    GolgiConfig,
    GolgiStacks,
    MitochondriaConfig,
    Occupancy,
    SpheresConfig,
    golgi_stacks,
    mitochondria,
    place_spheres,
)
from subcell.plugins.nile_red.tubes import FilopodiaConfig, filopodia, nuclear_reticulum

__all__ = ["INSTANCE_ORDER", "SPHERE_CLASSES", "CellLayout", "build_layout"]

#: Round organelles, placed largest kind first.
SPHERE_CLASSES = ("lipid_droplet", "late_endosome", "lysosome", "early_endosome", "peroxisome")
#: Kinds with instance ids, in id order.
INSTANCE_ORDER = ("golgi", "mitochondria", *SPHERE_CLASSES, "nuclear_reticulum", "filopodia")


@attrs.frozen(eq=False)
class CellLayout:
    """Everything a Nile Red cell is made of (lengths in nm, field coordinates).

    Attributes
    ----------
    shape
        Cell body, plasma membrane and nucleus.
    er
        ER tubules (capsules of class ``"er"``, instance 0).
    sheets
        ER sheets.
    golgi
        Golgi stacks; ``golgi_ids`` their instance ids.
    golgi_ids
        (S,) instance id of each stack.
    objects
        Capsule geometry per kind with instances (mitochondria, the five round organelles,
        nuclear reticulum, filopodia), instance ids global.
    """

    shape: CellShape
    er: Geometry
    sheets: ERSheets
    golgi: GolgiStacks
    golgi_ids: np.ndarray
    objects: dict[str, Geometry]

    def counts(self) -> dict[str, int]:
        """Number of objects of each kind with instances."""
        out = {"golgi": len(self.golgi)}
        out.update({k: len(np.unique(g.instance)) for k, g in self.objects.items()})
        return out

    def radii_nm(self, kind: str) -> np.ndarray:
        """Radius of each object of a capsule kind (one per instance, in id order)."""
        g = self.objects[kind]
        _, first = np.unique(g.instance, return_index=True)
        return g.radius_nm[first]


def _renumber(geometry: Geometry, offset: int) -> Geometry:
    """Instance ids ``1..n`` shifted by ``offset``."""
    return attrs.evolve(geometry, instance=geometry.instance + offset)


def build_layout(
    field: Field,
    *,
    cell: CellConfig,
    nucleus: NucleusConfig,
    filopodia_config: FilopodiaConfig,
    er: ERConfig,
    golgi: GolgiConfig,
    mitochondria_config: MitochondriaConfig,
    spheres: dict[str, SpheresConfig],
    clearance_nm: float,
    gap_nm: float,
    rng: np.random.Generator,
) -> CellLayout:
    """Draw a cell's geometry in a fixed order (body, filopodia, nuclear reticulum, Golgi,
    mitochondria, round organelles largest kind first, ER tubules, ER sheets)."""
    shape = draw_cell(cell, nucleus, field, rng)
    fil = filopodia(shape, filopodia_config, rng)
    reticulum = nuclear_reticulum(shape, nucleus, rng)
    occupancy = Occupancy()
    stacks = golgi_stacks(shape, golgi, occupancy, clearance_nm, gap_nm, rng)
    objects = {
        "mitochondria": mitochondria(
            shape, mitochondria_config, occupancy, clearance_nm, gap_nm, rng
        )
    }
    for kind in SPHERE_CLASSES:
        centres, radii = place_spheres(shape, spheres[kind], occupancy, clearance_nm, gap_nm, rng)
        n = len(radii)
        objects[kind] = Geometry.spheres(
            (kind,), centres, radii, np.arange(1, n + 1), np.zeros(n, dtype=np.int16)
        )
    objects["nuclear_reticulum"] = reticulum
    objects["filopodia"] = fil
    tubules = er_tubules(shape, er, rng)
    tubules = attrs.evolve(tubules, instance=np.zeros(len(tubules), dtype=np.int32))
    sheets = er_sheets(shape, er, rng)
    offset = len(stacks)
    for kind in INSTANCE_ORDER[1:]:
        n = objects[kind].n_instances  # ids are 1..n before renumbering
        objects[kind] = _renumber(objects[kind], offset)
        offset += n
    return CellLayout(
        shape=shape,
        er=tubules,
        sheets=sheets,
        golgi=stacks,
        golgi_ids=np.arange(1, len(stacks) + 1),
        objects=objects,
    )
