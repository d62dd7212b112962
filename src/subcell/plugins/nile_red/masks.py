"""Ground truth of a Nile Red cell on the imaging grid: 15 semantic classes and instances.

Two layers (see :mod:`~subcell.plugins.nile_red.compartments`): the *volume* layer gives
every voxel one of nucleus / cytosol / ecs (the cell body's and the nucleus's voxel
centres; filopodia are too thin to count as cytosol); the *structure* layer gives a voxel
at most one of the twelve other classes, painted in
:data:`~subcell.plugins.nile_red.compartments.PAINT_ORDER`:

- ``er``: voxels the tubule axes and sheet mid-planes pass through, within the cytosol;
- ``golgi``: voxels whose centre lies in a stack's cylinder (cisterna radius × stack
  height), plus the voxel at its centre;
- ``mitochondria`` and the round organelles: solid (voxel centres inside the tube or
  sphere, plus the voxels their axis or centre lies in);
- ``nuclear_reticulum``: solid channels, inside the nucleus under its envelope;
- ``filopodia``: solid tubes outside the cell body;
- ``nuclear_membrane``, ``plasma_membrane``: the inner boundary voxels of the nucleus and
  of the cell body (the basal membrane included; no membrane where the field cuts the
  cell).

Instances: Golgi stacks, mitochondria, lipid droplets, late and early endosomes,
lysosomes, peroxisomes, nuclear reticulum channels and filopodia carry their object's id
(:mod:`~subcell.plugins.nile_red.layout`) where their class won the voxel; 0 elsewhere.
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.model import Field, Masks
from subcell.plugins.nile_red.compartments import CLASS_NAMES, PAINT_ORDER
from subcell.plugins.nile_red.layout import SPHERE_CLASSES, CellLayout
from subcell.plugins.nile_red.raster import (
    axis_points,
    box_voxels,
    capsule_voxels,
    inner_boundary,
    point_voxels,
)

__all__ = ["CellRasters", "cell_masks"]


@attrs.frozen(eq=False)
class CellRasters:
    """The cell's ground truth and the layers it is made of.

    Attributes
    ----------
    masks
        Semantic (15, Z, Y, X) uint8 in :data:`CLASS_NAMES` order, instances (Z, Y, X).
    structure
        (Z, Y, X) uint8: 0, or 1 + the class index of the voxel's structure class.
    """

    masks: Masks
    structure: np.ndarray


def _golgi_voxels(field: Field, layout: CellLayout) -> tuple[np.ndarray, np.ndarray]:
    stacks = layout.golgi
    if not len(stacks):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    bound = np.hypot(stacks.radius_nm, stacks.half_height_nm)[:, None]
    flats, owners = [], []
    for obj, flat, centre in box_voxels(field, stacks.centre_nm - bound, stacks.centre_nm + bound):
        d = centre - stacks.centre_nm[obj]
        axial = np.einsum("ij,ij->i", d, stacks.normal[obj])
        radial = np.linalg.norm(d - axial[:, None] * stacks.normal[obj], axis=1)
        inside = (np.abs(axial) <= stacks.half_height_nm[obj] + 0.5 * field.voxel_nm[1]) & (
            radial <= stacks.radius_nm[obj]
        )
        flats.append(flat[inside])
        owners.append(obj[inside])
    flat, inside = point_voxels(field, stacks.centre_nm)
    flats.append(flat)
    owners.append(np.flatnonzero(inside))
    return np.concatenate(flats), np.concatenate(owners)


def _er_voxels(field: Field, layout: CellLayout) -> np.ndarray:
    step = min(field.voxel_nm) / 3
    points, _ = axis_points(layout.er.start_nm, layout.er.end_nm, step)
    sheet_points, _ = layout.sheets.lattice(step)
    flat, _ = point_voxels(field, np.concatenate([points, sheet_points]))
    return flat


def cell_masks(layout: CellLayout, field: Field) -> CellRasters:
    """Rasterise a cell layout on ``field`` (see the module notes)."""
    body, nucleus = layout.shape.rasters(field)
    envelope = inner_boundary(nucleus)
    cytosol = body & ~nucleus
    structure = np.zeros(field.shape, dtype=np.uint8)
    instances = np.zeros(field.shape, dtype=np.uint32)
    code = {name: CLASS_NAMES.index(name) + 1 for name in CLASS_NAMES}

    solids = {}
    for kind in ("mitochondria", *SPHERE_CLASSES, "nuclear_reticulum", "filopodia"):
        g = layout.objects[kind]
        flat, owner = capsule_voxels(field, g.start_nm, g.end_nm, g.radius_nm)
        solids[kind] = (flat, g.instance[owner].astype(np.uint32))
    flat, owner = _golgi_voxels(field, layout)
    solids["golgi"] = (flat, layout.golgi_ids[owner].astype(np.uint32))
    restrict = {
        "nuclear_reticulum": nucleus & ~envelope,
        "filopodia": ~body,
    }
    for name in PAINT_ORDER:
        if name == "er":
            flat = _er_voxels(field, layout)
            _paint(structure, instances, code[name], flat, None, cytosol)
        elif name == "nuclear_membrane":
            _paint(structure, instances, code[name], np.flatnonzero(envelope), None, None)
        elif name == "plasma_membrane":
            pm = inner_boundary(body, open_bottom=True)
            _paint(structure, instances, code[name], np.flatnonzero(pm), None, None)
        else:
            flat, ids = solids[name]
            _paint(structure, instances, code[name], flat, ids, restrict.get(name))
    semantic = np.zeros((len(CLASS_NAMES), *field.shape), dtype=np.uint8)
    semantic[CLASS_NAMES.index("nucleus")] = nucleus
    semantic[CLASS_NAMES.index("cytosol")] = cytosol
    semantic[CLASS_NAMES.index("ecs")] = ~body
    for name in PAINT_ORDER:
        semantic[CLASS_NAMES.index(name)] = structure == code[name]
    masks = Masks(semantic, CLASS_NAMES, field.voxel_nm, instances)
    return CellRasters(masks=masks, structure=structure)


def _paint(structure, instances, value: int, flat, ids, where) -> None:
    """Set ``flat`` voxels (optionally only those in ``where``) to class ``value`` and
    instance ``ids`` (0 when None)."""
    if where is not None:
        keep = where.ravel()[flat]
        flat = flat[keep]
        ids = None if ids is None else ids[keep]
    structure.ravel()[flat] = value
    instances.ravel()[flat] = 0 if ids is None else ids
