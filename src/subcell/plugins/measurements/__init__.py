"""Per-object measurements in physical units: size, position, bounding box and intensity.

Coordinates follow the core convention: voxel ``i`` along an axis spans
``[i * voxel_nm, (i + 1) * voxel_nm)``, so a centroid in nm is ``(index + 0.5) * voxel_nm``
and lines up with the geometry a simulation placed. A mask with one plane (``Z == 1``) is
measured as a 2D image (areas in nm², circle-equivalent diameters); otherwise in 3D
(volumes in nm³, sphere-equivalent diameters).
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np
from skimage.measure import label, regionprops_table

from subcell.core.errors import VolumeError
from subcell.core.hookspecs import hookimpl
from subcell.core.model import AXES_4D, Masks, Table, Volume
from subcell.plugins.measurements.compartments import Compartments, CompartmentsConfig
from subcell.plugins.measurements.contacts import Contacts, ContactsConfig
from subcell.plugins.measurements.per_cell import PerCell, PerCellConfig

__all__ = [
    "Compartments",
    "CompartmentsConfig",
    "Contacts",
    "ContactsConfig",
    "PerCell",
    "PerCellConfig",
    "RegionProps",
    "RegionPropsConfig",
    "register_analytics",
]

_AXES = ("z", "y", "x")


@attrs.frozen(kw_only=True)
class RegionPropsConfig:
    """Parameters of the per-object measurements.

    Attributes
    ----------
    connectivity
        When the masks carry no instance labels, each semantic channel's connected
        components become the objects: ``"face"`` joins voxels sharing a face, ``"full"``
        also those sharing an edge or a corner.
    """

    connectivity: Literal["face", "full"] = attrs.field(
        default="full", validator=attrs.validators.in_(("face", "full"))
    )


class RegionProps:
    """Measures every object of a mask with ``skimage.measure.regionprops_table``.

    Parameters
    ----------
    config
        The measurement's parameters.
    """

    def __init__(self, config: RegionPropsConfig):
        self.config = config

    def measure(self, masks: Masks, volume: Volume | None = None) -> Table:
        """One row per object of ``masks``, in nm.

        Objects are ``masks.instances``; when that is None, the connected components of
        each semantic channel, numbered on from the previous channel's.

        Parameters
        ----------
        masks
            The segmentation to measure.
        volume
            The image the masks belong to (``CZYX``, same Z, Y, X); when given, each
            channel's mean and max intensity per object are added.

        Returns
        -------
        Table
            Columns ``label``, ``class`` (the semantic class holding most of the object's
            voxels; ``""`` if none), ``area_nm2`` (2D) or ``volume_nm3`` (3D),
            ``centroid_z_nm``, ``centroid_y_nm``, ``centroid_x_nm``,
            ``equivalent_diameter_nm``, ``bbox_min_{z,y,x}_px`` and ``bbox_max_{z,y,x}_px``
            (voxel indices, max exclusive) and, with a volume,
            ``mean_intensity_<channel>`` and ``max_intensity_<channel>``. An empty mask
            gives an empty table with the same columns.

        Raises
        ------
        VolumeError
            If the volume has a time axis or its spatial shape differs from the masks'.
        """
        labels, classes = self._objects(masks)
        intensity, channel_names = _intensity(volume, labels.shape)
        flat = labels.shape[0] == 1
        # Measure a single plane as a 2D image so areas and diameters are planar.
        spacing = masks.voxel_nm[1:] if flat else masks.voxel_nm
        props = regionprops_table(
            labels[0] if flat else labels,
            intensity_image=None if intensity is None else (intensity[0] if flat else intensity),
            spacing=spacing,
            properties=("label", "area", "centroid", "equivalent_diameter_area", "bbox")
            + (() if intensity is None else ("intensity_mean", "intensity_max")),
        )
        return Table(_columns(props, classes, masks, flat, channel_names))

    def _objects(self, masks: Masks) -> tuple[np.ndarray, dict[int, str]]:
        """The object label image (Z, Y, X) and each label's class name."""
        if masks.instances is not None:
            labels = np.asarray(masks.instances).astype(np.int64)
            return labels, _majority_class(labels, masks)
        connectivity = 1 if self.config.connectivity == "face" else 3
        labels = np.zeros(masks.semantic.shape[1:], dtype=np.int64)
        classes: dict[int, str] = {}
        # Classes may overlap; a voxel in two channels keeps the later channel's object.
        for k, name in enumerate(masks.class_names):
            components, n = label(masks.semantic[k] > 0, connectivity=connectivity, return_num=True)
            offset = len(classes)
            labels = np.where(components > 0, components + offset, labels)
            classes.update({offset + i: name for i in range(1, n + 1)})
        return labels, classes


def _majority_class(labels: np.ndarray, masks: Masks) -> dict[int, str]:
    """For each instance, the semantic class covering most of its voxels ("" if none)."""
    n = int(labels.max()) if labels.size else 0
    if n == 0 or masks.semantic.shape[0] == 0:
        return {i: "" for i in range(1, n + 1)}
    counts = np.stack(
        [
            np.bincount(labels[masks.semantic[k] > 0], minlength=n + 1)
            for k in range(masks.semantic.shape[0])
        ]
    )
    best = counts.argmax(axis=0)
    return {
        i: (masks.class_names[best[i]] if counts[best[i], i] > 0 else "") for i in range(1, n + 1)
    }


def _intensity(volume: Volume | None, spatial: tuple[int, ...]):
    """The volume as a float (Z, Y, X, C) array and its channel names, or (None, ())."""
    if volume is None:
        return None, ()
    if volume.axes != AXES_4D:
        raise VolumeError(
            f"region_props measures a {AXES_4D} volume, got {volume.axes!r}; "
            f"measure one time point at a time"
        )
    if tuple(volume.shape[1:]) != tuple(spatial):
        raise VolumeError(
            f"volume spatial shape {volume.shape[1:]} does not match the masks {tuple(spatial)}"
        )
    data = np.moveaxis(np.asarray(volume.data, dtype=np.float64), 0, -1)
    return data, volume.channel_names


def _columns(
    props: dict, classes: dict[int, str], masks: Masks, flat: bool, channel_names: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """Rename skimage's columns to unit-carrying names and add the class and z columns."""
    labels = props["label"].astype(np.int64)
    n = len(labels)
    voxel = np.asarray(masks.voxel_nm)
    columns: dict[str, np.ndarray] = {
        "label": labels,
        "class": np.array([classes.get(int(i), "") for i in labels], dtype=str),
        ("area_nm2" if flat else "volume_nm3"): props["area"].astype(float),
    }
    axes = _AXES[1:] if flat else _AXES
    centroid = {a: props[f"centroid-{i}"] for i, a in enumerate(axes)}
    centroid.setdefault("z", np.zeros(n))
    for a in _AXES:
        # skimage puts voxel i at i * spacing; the core puts its centre at (i + 0.5) * voxel.
        columns[f"centroid_{a}_nm"] = centroid[a] + 0.5 * voxel[_AXES.index(a)]
    columns["equivalent_diameter_nm"] = props["equivalent_diameter_area"].astype(float)
    ndim = len(axes)
    bbox_min = {a: props[f"bbox-{i}"] for i, a in enumerate(axes)}
    bbox_max = {a: props[f"bbox-{i + ndim}"] for i, a in enumerate(axes)}
    bbox_min.setdefault("z", np.zeros(n, dtype=np.int64))
    bbox_max.setdefault("z", np.ones(n, dtype=np.int64))
    for side, values in (("min", bbox_min), ("max", bbox_max)):
        for a in _AXES:
            columns[f"bbox_{side}_{a}_px"] = values[a].astype(np.int64)
    for c, name in enumerate(channel_names):
        columns[f"mean_intensity_{name}"] = props[f"intensity_mean-{c}"].astype(float)
    for c, name in enumerate(channel_names):
        columns[f"max_intensity_{name}"] = props[f"intensity_max-{c}"].astype(float)
    return columns


@hookimpl
def register_analytics(register):
    """Register the per-object measurements."""
    register(
        "region_props",
        RegionPropsConfig,
        RegionProps,
        "per-object size, centroid, bounding box and intensity in physical units",
    )
    register(
        "contacts",
        ContactsConfig,
        Contacts,
        "contacts between the objects of two classes within a distance: counts and size",
    )
    register(
        "per_cell",
        PerCellConfig,
        PerCell,
        "assigns each object to the cell it overlaps most",
    )
    register(
        "compartments",
        CompartmentsConfig,
        Compartments,
        "per compartment of a multi-class mask: object count, volume, contact frequencies",
    )
