"""Organelles per cell: each object goes to the cell label it overlaps most.

Cells are any label image of the same grid (e.g. from cellcutter); 0 is outside every cell.
An object overlapping no cell gets cell 0. The per-cell summary counts objects per class and
averages their measurements, so that statistics can be taken over cells (the paper's
Fig. 4 reports per-cell means over 30 cells), not only over objects.
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np
from scipy import ndimage as ndi

from subcell.core.errors import VolumeError
from subcell.core.labels import check_labels, object_labels
from subcell.core.model import Masks, Table, Volume

__all__ = ["PerCell", "PerCellConfig", "assign_cells", "per_cell_summary"]

#: Measurement columns averaged per cell when a table has them.
AVERAGED = (
    "area_nm2",
    "volume_nm3",
    "skeleton_length_nm",
    "mean_width_nm",
    "tortuosity",
    "equivalent_radius_nm",
    "fitted_radius_nm",
)


def assign_cells(labels: np.ndarray, cells: np.ndarray) -> Table:
    """The cell each object overlaps most.

    Parameters
    ----------
    labels
        Object labels, any shape; 0 = background.
    cells
        Cell labels of the same shape; 0 = outside every cell.

    Returns
    -------
    Table
        One row per object: ``label``, ``cell`` (0 when it overlaps no cell) and
        ``overlap_fraction`` (of the object's voxels inside that cell). Ties go to the
        lower cell label.

    Raises
    ------
    VolumeError
        If the shapes differ or either is not non-negative integer labels.
    """
    labels, cells = check_labels(labels, "labels", None), check_labels(cells, "cells", None)
    if labels.shape != cells.shape:
        raise VolumeError(
            f"cells {cells.shape} and organelle labels {labels.shape} differ in shape"
        )
    index = np.flatnonzero(labels)
    obj, cell = labels.reshape(-1)[index], cells.reshape(-1)[index]
    n_cells = int(cells.max()) + 1 if cells.size else 1
    keys, count = np.unique(obj * n_cells + cell, return_counts=True)
    key_obj, key_cell = keys // n_cells, keys % n_cells
    present = np.unique(key_obj)
    total = np.bincount(key_obj, weights=count)[present] if present.size else np.zeros(0)
    inside = key_cell > 0
    # Most overlap first, then the lower cell label: the first row per object wins.
    order = np.lexsort((key_cell[inside], -count[inside], key_obj[inside]))
    best_obj = key_obj[inside][order]
    first = np.ones(best_obj.size, dtype=bool)
    first[1:] = best_obj[1:] != best_obj[:-1]
    chosen_cell = np.zeros(present.size, dtype=np.int64)
    chosen_count = np.zeros(present.size)
    position = np.searchsorted(present, best_obj[first])
    chosen_cell[position] = key_cell[inside][order][first]
    chosen_count[position] = count[inside][order][first]
    return Table(
        {
            "label": present.astype(np.int64),
            "cell": chosen_cell,
            "overlap_fraction": chosen_count / np.maximum(total, 1),
        }
    )


def per_cell_summary(
    objects: Table, assignment: Table, cells: np.ndarray, voxel_nm, classes=()
) -> Table:
    """One row per cell: size, object counts per class and mean measurements.

    Parameters
    ----------
    objects
        Per-object table with a ``label`` column (and ``class`` and measurements).
    assignment
        :func:`assign_cells`'s table for the same objects.
    cells
        Cell labels, (Z, Y, X) (``Z == 1``: 2D, cell size in nm²; else nm³).
    voxel_nm
        Voxel size (z, y, x) in nm.
    classes
        Class names to count even where absent (e.g. ``("dot", "rod", "network")``).

    Returns
    -------
    Table
        ``cell``, ``cell_area_nm2`` (3D: ``cell_volume_nm3``), ``n_objects``,
        ``n_<class>`` and ``fraction_<class>`` per class, ``objects_size_fraction`` (the
        objects' total size over the cell's), and ``mean_<column>`` for each of
        :data:`AVERAGED` the objects have. Objects outside every cell are left out.
    """
    cells = check_labels(cells, "cells", None)
    flat = cells.shape[0] == 1
    spacing = np.asarray(voxel_nm[1:] if flat else voxel_nm, dtype=float)
    count = np.bincount(cells.reshape(-1))
    ids = np.flatnonzero(count)
    ids = ids[ids > 0]
    n = int(ids.max()) + 1 if ids.size else 1
    cell_size = count[ids] * float(np.prod(spacing))
    cell_of = _cell_of(objects, assignment)
    inside = cell_of > 0
    cell_of = np.clip(cell_of, 0, n - 1) * inside
    c = objects.columns

    def per(weights=None, mask=inside):
        return np.bincount(
            cell_of[mask], weights=None if weights is None else weights[mask], minlength=n
        )[ids]

    n_objects = per()
    out = {
        "cell": ids.astype(np.int64),
        ("cell_area_nm2" if flat else "cell_volume_nm3"): cell_size,
        "n_objects": n_objects.astype(np.int64),
    }
    names = list(dict.fromkeys([*classes, *np.unique(c.get("class", np.zeros(0, str)))]))
    if "class" not in c:
        names = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in names:
            k = per(mask=inside & (c["class"] == name))
            out[f"n_{name}"] = k.astype(np.int64)
            out[f"fraction_{name}"] = np.where(n_objects > 0, k / n_objects, np.nan)
        size_key = next((k for k in ("area_nm2", "volume_nm3") if k in c), None)
        if size_key is not None:
            out["objects_size_fraction"] = per(c[size_key].astype(float)) / cell_size
        for key in AVERAGED:
            if key in c:
                values = c[key].astype(float)
                ok = inside & np.isfinite(values)
                total = per(np.where(ok, values, 0.0), mask=ok)
                out[f"mean_{key}"] = np.where(per(mask=ok) > 0, total / per(mask=ok), np.nan)
    return Table(out)


def _cell_of(objects: Table, assignment: Table) -> np.ndarray:
    """The assigned cell of each row of ``objects`` (0 when not assigned)."""
    a = assignment.columns
    labels = objects.columns["label"]
    position = np.searchsorted(a["label"], labels)
    position = np.clip(position, 0, max(len(a["label"]) - 1, 0))
    if len(a["label"]) == 0:
        return np.zeros(len(labels), dtype=np.int64)
    found = a["label"][position] == labels
    return np.where(found, a["cell"][position], 0).astype(np.int64)


@attrs.frozen(kw_only=True)
class PerCellConfig:
    """Parameters of the per-cell assignment.

    Attributes
    ----------
    class_name
        The class whose objects are assigned to cells (its instances, else its connected
        components).
    cell_class
        The class holding the cells; its connected components are the cells.
    connectivity
        Connectivity of the connected components: ``"face"`` or ``"full"``.
    """

    class_name: str = "mitochondria"
    cell_class: str = "cell"
    connectivity: Literal["face", "full"] = attrs.field(
        default="full", validator=attrs.validators.in_(("face", "full"))
    )


class PerCell:
    """Assigns each object of one class to the cell (another class) it overlaps most.

    Parameters
    ----------
    config
        The analytics' parameters.
    """

    # it looks classes up by name: give it a multi-class input's real classes
    multiclass = True

    def __init__(self, config: PerCellConfig):
        self.config = config

    def measure(self, masks: Masks, volume: Volume | None = None) -> Table:
        """One row per object: ``label``, ``cell``, ``overlap_fraction``."""
        cfg = self.config
        objects = object_labels(masks, cfg.class_name, cfg.connectivity, strict=True)
        if cfg.cell_class not in masks.class_names:
            raise VolumeError(
                f"the masks have no class {cfg.cell_class!r} "
                f"(classes: {', '.join(masks.class_names)})"
            )
        channel = np.asarray(masks.semantic[masks.class_names.index(cfg.cell_class)]) > 0
        structure = ndi.generate_binary_structure(3, 1 if cfg.connectivity == "face" else 3)
        cells = ndi.label(channel, structure=structure)[0]
        return assign_cells(objects, cells)
