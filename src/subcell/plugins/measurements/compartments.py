"""Per-compartment count, size and contact frequencies of a multi-class mask.

For a mask with K classes (e.g. the 15 compartments of a Nile Red cell) every class is a
*compartment*; its objects are the mask's instance ids when every voxel of the class
carries one, else the class's connected components (a volume class such as cytosol, whose
voxels carry instance ids only where an organelle overlaps it, is therefore split into
components, not into those organelles).

Contacts follow :mod:`~subcell.plugins.measurements.contacts` exactly: an object of A is in
contact with class B when it overlaps B, or when one of its surface faces (between a voxel
of the object and a face neighbour outside it; faces on the image border excluded) has a
gap to B of at most ``distance_nm``, the gap being the Euclidean distance (voxel size as
sampling) from the voxel just outside the face to the nearest B voxel. Overlap counts as
contact, so a mitochondrion painted inside the cytosol touches the cytosol.

Instead of one :func:`~subcell.plugins.measurements.contacts.contacts` call (one distance
transform with indices) per pair of classes, every class's surface faces are listed once
(with ``contacts``' own face finder) and each class B gets one distance transform of its
complement, thresholded at ``distance_nm`` (none at all for ``distance_nm == 0``: a gap of 0
means the voxel is in B), which every other class then looks its faces up in. Whether two
objects are in contact is the same as ``contacts`` decides; which B object and how much
surface are not computed here (use ``contacts`` for a pair of classes).
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np
from scipy import ndimage as ndi

from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Table, Volume
from subcell.plugins.measurements.contacts import _boundary_faces

__all__ = [
    "Compartments",
    "CompartmentsConfig",
    "compartment_objects",
    "compartment_table",
    "contact_matrix",
]

#: nm³ per µm³ and nm² per µm².
_NM3_PER_UM3 = 1e9
_NM2_PER_UM2 = 1e6


def _class_names(instance, attribute, value):
    if any(not isinstance(v, str) or not v for v in value):
        raise ValueError(f"'{attribute.name}' must be class names (non-empty strings), got {value}")
    if len(set(value)) != len(value):
        raise ValueError(f"'{attribute.name}' names a class twice: {value}")


@attrs.frozen(kw_only=True)
class CompartmentsConfig:
    """Parameters of the compartment analytics.

    Attributes
    ----------
    classes
        The compartments (mask classes) to measure, in table order; empty: every class of
        the mask, in mask order.
    distance_nm
        Largest gap (nm) between two objects that counts as a contact; 0 counts only
        touching or overlapping objects.
    connectivity
        Objects of classes without instance ids are connected components: ``"face"`` joins
        voxels sharing a face, ``"full"`` also edges and corners.
    """

    classes: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_class_names)
    distance_nm: float = attrs.field(default=0.0, converter=float, validator=attrs.validators.ge(0))
    connectivity: Literal["face", "full"] = attrs.field(
        default="full", validator=attrs.validators.in_(("face", "full"))
    )


@attrs.frozen(eq=False)
class _Compartment:
    """One class's objects: voxel flat indices, their object ids (1..n) and surface faces."""

    name: str
    n: int
    flat: np.ndarray
    ids: np.ndarray
    face_id: np.ndarray
    face_outside: np.ndarray


def compartment_objects(masks: Masks, class_name: str, connectivity: str = "full") -> np.ndarray:
    """(Z, Y, X) int64 object labels 1..n of one class (0 elsewhere).

    The mask's instance ids when every voxel of the class carries one (renumbered 1..n in
    ascending id order), else the class's connected components.

    Parameters
    ----------
    masks
        The multi-class mask.
    class_name
        One of ``masks.class_names``.
    connectivity
        ``"face"`` or ``"full"``: which neighbours join a component.

    Raises
    ------
    VolumeError
        If the mask has no such class.
    """
    if class_name not in masks.class_names:
        raise VolumeError(
            f"the masks have no class {class_name!r} (classes: {', '.join(masks.class_names)})"
        )
    channel = np.asarray(masks.semantic[masks.class_names.index(class_name)]) > 0
    if masks.instances is not None and channel.any():
        ids = np.asarray(masks.instances)[channel]
        if ids.min() > 0:
            labels = np.zeros(channel.shape, dtype=np.int64)
            labels[channel] = np.unique(ids, return_inverse=True)[1].reshape(-1) + 1
            return labels
    structure = ndi.generate_binary_structure(3, 1 if connectivity == "face" else 3)
    return ndi.label(channel, structure=structure)[0].astype(np.int64)


def _compartments(masks: Masks, names, connectivity: str, spacing) -> list[_Compartment]:
    """Objects and surface faces of each named class (2D arrays when the mask is flat)."""
    flat_mask = masks.semantic.shape[1] == 1
    out = []
    for name in names:
        labels = compartment_objects(masks, name, connectivity)
        if flat_mask:
            labels = labels[0]
        flat = np.flatnonzero(labels)
        ids = labels.reshape(-1)[flat]
        if flat.size:
            face_id, face_outside, _ = _boundary_faces(labels, spacing)
        else:
            face_id = face_outside = np.zeros(0, dtype=np.int64)
        out.append(_Compartment(name, int(labels.max()), flat, ids, face_id, face_outside))
    return out


def _within(channel: np.ndarray, spacing: np.ndarray, distance_nm: float) -> np.ndarray:
    """Voxels within ``distance_nm`` of ``channel`` (bool, flat): the distance transform of
    the complement thresholded, on a crop around the class that holds every such voxel."""
    if distance_nm == 0 or not channel.any():
        return channel.reshape(-1)
    reach = np.floor(distance_nm / spacing).astype(int)
    where = np.nonzero(channel)
    box = tuple(
        slice(max(int(w.min()) - r, 0), min(int(w.max()) + r + 1, size))
        for w, r, size in zip(where, reach, channel.shape, strict=True)
    )
    # Every class voxel is inside the crop, so distances there are those of the full image;
    # outside it every voxel is farther than distance_nm along some axis.
    distance = ndi.distance_transform_edt(~channel[box], sampling=spacing)
    near = np.zeros(channel.shape, dtype=bool)
    near[box] = distance <= distance_nm
    return near.reshape(-1)


def _contact_fraction(a: _Compartment, near_b: np.ndarray, in_b: np.ndarray) -> float:
    """Fraction of A's objects with a face gap within reach of B or overlapping B."""
    if a.n == 0:
        return 0.0
    touched = np.zeros(a.n + 1, dtype=bool)
    touched[a.face_id[near_b[a.face_outside]]] = True
    touched[a.ids[in_b[a.flat]]] = True
    return float(touched[1:].sum()) / a.n


def _resolve(masks: Masks, voxel_nm, classes) -> tuple[tuple[str, ...], np.ndarray]:
    """The classes to measure (checked) and the spacing of the measured axes."""
    names = tuple(classes) if classes else tuple(masks.class_names)
    missing = [n for n in names if n not in masks.class_names]
    if missing:
        raise VolumeError(
            f"the masks have no class {', '.join(map(repr, missing))} "
            f"(classes: {', '.join(masks.class_names)})"
        )
    voxel = np.asarray(masks.voxel_nm if voxel_nm is None else voxel_nm, dtype=float)
    if voxel.shape != (3,) or not (np.isfinite(voxel).all() and (voxel > 0).all()):
        raise VolumeError(f"voxel_nm must be three positive sizes (z, y, x), got {voxel_nm}")
    flat = masks.semantic.shape[1] == 1
    return names, voxel[1:] if flat else voxel


def _matrix(parts: list[_Compartment], masks: Masks, spacing, distance_nm: float) -> np.ndarray:
    k = len(parts)
    matrix = np.zeros((k, k))
    shape = masks.semantic.shape[2:] if masks.semantic.shape[1] == 1 else masks.semantic.shape[1:]
    size = int(np.prod(shape))
    for j, b in enumerate(parts):
        in_b = np.zeros(size, dtype=bool)
        in_b[b.flat] = True
        near_b = _within(in_b.reshape(shape), spacing, distance_nm)
        for i, a in enumerate(parts):
            if i != j and b.n:
                matrix[i, j] = _contact_fraction(a, near_b, in_b)
    return matrix


def contact_matrix(
    masks: Masks,
    voxel_nm=None,
    distance_nm: float = 0.0,
    classes=(),
    *,
    connectivity: str = "full",
) -> tuple[tuple[str, ...], np.ndarray]:
    """Contact frequencies between every pair of compartments.

    Parameters
    ----------
    masks
        Multi-class mask (K, Z, Y, X); ``Z == 1`` is measured as a 2D image.
    voxel_nm
        Voxel size (z, y, x) in nm; None: ``masks.voxel_nm``.
    distance_nm
        Largest gap (nm) that counts as a contact; 0: touching or overlapping.
    classes
        The compartments, in order; empty: every class of the mask.
    connectivity
        ``"face"`` or ``"full"``, for classes measured as connected components.

    Returns
    -------
    names : tuple of str
        The compartments, in the matrix's order.
    matrix : numpy.ndarray
        (K, K) float: ``matrix[i, j]`` is the fraction of compartment i's objects in
        contact with some object of compartment j (0..1). 0 when compartment i or j has no
        objects; the diagonal is 0 (contacts within a class are not measured).

    Raises
    ------
    VolumeError
        Unknown class names or a bad voxel size.
    """
    names, spacing = _resolve(masks, voxel_nm, classes)
    parts = _compartments(masks, names, connectivity, spacing)
    return names, _matrix(parts, masks, spacing, float(distance_nm))


def compartment_table(
    masks: Masks,
    voxel_nm=None,
    distance_nm: float = 0.0,
    classes=(),
    *,
    connectivity: str = "full",
) -> Table:
    """One row per compartment: object count, size and contact frequencies.

    Parameters are those of :func:`contact_matrix`.

    Returns
    -------
    Table
        ``compartment`` (class name), ``count`` (objects), ``volume_um3`` (the class's
        total volume, µm³) and ``mean_object_volume_um3`` (volume / count; 0 without
        objects) — for a 2D mask ``area_um2`` and ``mean_object_area_um2`` — and for every
        compartment B a column ``contact_<B>``: the fraction of this compartment's objects
        in contact with B (0..1). Never NaN: a compartment without objects has 0 in every
        contact column, and a compartment's own column is 0.
    """
    names, spacing = _resolve(masks, voxel_nm, classes)
    parts = _compartments(masks, names, connectivity, spacing)
    matrix = _matrix(parts, masks, spacing, float(distance_nm))
    flat = masks.semantic.shape[1] == 1
    unit = float(np.prod(spacing)) / (_NM2_PER_UM2 if flat else _NM3_PER_UM3)
    size_key = "area_um2" if flat else "volume_um3"
    count = np.array([p.n for p in parts], dtype=np.int64)
    size = np.array([p.flat.size * unit for p in parts], dtype=float)
    columns = {
        "compartment": np.array(names, dtype=str),
        "count": count,
        size_key: size,
        f"mean_object_{size_key}": np.where(count > 0, size / np.maximum(count, 1), 0.0),
    }
    for j, name in enumerate(names):
        columns[f"contact_{name}"] = matrix[:, j]
    return Table(columns)


class Compartments:
    """Count, size and contact frequencies of every compartment of a multi-class mask.

    Parameters
    ----------
    config
        The analytics' parameters.
    """

    #: Takes multi-class masks: ``subcell analyze`` and the ``analyze`` step hand it the
    #: classes of inputs that carry them, not one class named after the plugin.
    multiclass = True

    def __init__(self, config: CompartmentsConfig):
        self.config = config

    def measure(self, masks: Masks, volume: Volume | None = None) -> Table:
        """One row per compartment (see :func:`compartment_table`); ``volume`` is unused."""
        c = self.config
        return compartment_table(masks, None, c.distance_nm, c.classes, connectivity=c.connectivity)
