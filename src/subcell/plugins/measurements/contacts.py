"""Contacts between two sets of objects (e.g. mitochondria and vesicles) within a distance.

The Euclidean distance transform of the complement of set B
(``scipy.ndimage.distance_transform_edt`` with the voxel size as sampling, and the index
of the nearest B voxel) gives, at every voxel, the distance to the nearest B voxel and
which B object that is. No pair of objects is ever compared directly.

Contacts are decided on A's surface: the faces between an A voxel and a voxel outside that
object (faces on the image border excluded). A face's *gap* to B is the distance from the
voxel just outside it to the nearest B voxel (0 when that voxel is in B, i.e. the objects
touch; one voxel when one empty voxel separates them). An A object is in contact with a B
object when some of its faces are within ``distance_nm`` of it (nearest B object per face),
or when the two overlap. The contact's size is the total size of those faces: a length in
nm in 2D, an area in nm² in 3D, counted face by face (a digital measure: oblique surfaces
count up to ~1.4x (2D) their true size).
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np
from scipy import ndimage as ndi

from subcell.core.errors import VolumeError
from subcell.core.labels import check_labels, object_labels
from subcell.core.model import Masks, Table, Volume

__all__ = ["ContactResult", "Contacts", "ContactsConfig", "contacts"]


@attrs.frozen(kw_only=True)
class ContactsConfig:
    """Parameters of the contact analytics.

    Attributes
    ----------
    class_a
        The class whose objects are the table's rows (e.g. mitochondria).
    class_b
        The class they may touch (e.g. vesicles).
    distance_nm
        Largest gap (nm) between two objects that counts as a contact; 0 counts only
        touching or overlapping objects.
    connectivity
        When the masks carry no instance labels, objects are connected components:
        ``"face"`` joins voxels sharing a face, ``"full"`` also edges and corners.
    """

    class_a: str = "mitochondria"
    class_b: str = "vesicles"
    distance_nm: float = attrs.field(
        default=100.0, converter=float, validator=attrs.validators.ge(0)
    )
    connectivity: Literal["face", "full"] = attrs.field(
        default="full", validator=attrs.validators.in_(("face", "full"))
    )


@attrs.frozen(eq=False)
class ContactResult:
    """Contacts of one image.

    Attributes
    ----------
    objects
        One row per A object: ``label``, ``n_contacts`` (distinct B objects in contact),
        ``nearest_label`` (the nearest B object, 0 if none), ``min_gap_nm``,
        ``contact_length_nm`` (2D) or ``contact_area_nm2`` (3D) and ``contact_fraction``
        (of the object's boundary).
    pairs
        One row per contacting pair: ``label_a``, ``label_b``, ``min_gap_nm`` and the
        contact's length (2D) or area (3D).
    summary
        ``n_a``, ``n_b``, ``n_pairs``, ``contact_frequency_a`` (fraction of A objects in
        contact), ``contact_frequency_b`` (fraction of B objects), ``mean_contacts_per_a``
        and ``distance_nm``.
    """

    objects: Table
    pairs: Table
    summary: dict


def contacts(
    labels_a: np.ndarray, labels_b: np.ndarray, voxel_nm, distance_nm: float
) -> ContactResult:
    """Which objects of ``labels_a`` touch which of ``labels_b``, and over how much.

    Parameters
    ----------
    labels_a, labels_b
        Integer labels of the same shape, (Z, Y, X) (``Z == 1``: a 2D image); 0 is
        background. The two may overlap.
    voxel_nm
        Voxel size (z, y, x) in nm.
    distance_nm
        Largest gap (nm) that counts as a contact.

    Returns
    -------
    ContactResult

    Raises
    ------
    VolumeError
        If the shapes differ or the labels are not non-negative integers.
    """
    a, b = check_labels(labels_a, "labels_a"), check_labels(labels_b, "labels_b")
    if a.shape != b.shape:
        raise VolumeError(f"label images differ in shape: {a.shape} and {b.shape}")
    flat = a.shape[0] == 1
    spacing = np.asarray(voxel_nm[1:] if flat else voxel_nm, dtype=float)
    a, b = (a[0], b[0]) if flat else (a, b)
    measure = "contact_length_nm" if flat else "contact_area_nm2"
    present_a = _present(a)
    n_b = int(_present(b).size)
    if present_a.size == 0 or n_b == 0:
        return _no_contacts(present_a, n_b, measure, distance_nm)
    distance, nearest = ndi.distance_transform_edt(
        b == 0, sampling=spacing, return_distances=True, return_indices=True
    )
    nearest_b = b[tuple(nearest)].reshape(-1)
    del nearest
    face_label, outside, face_size = _boundary_faces(a, spacing)
    face_gap, face_b = distance.reshape(-1)[outside], nearest_b[outside]
    # Overlapping voxels are contacts at gap 0 whatever the surface does.
    both = np.flatnonzero((a > 0) & (b > 0))
    label = np.concatenate([face_label, a.reshape(-1)[both]])
    partner = np.concatenate([face_b, b.reshape(-1)[both]])
    gap = np.concatenate([face_gap, np.zeros(both.size)])
    size = np.concatenate([face_size, np.zeros(both.size)])
    near = gap <= distance_nm
    pairs = _pairs(label[near], partner[near], gap[near], size[near], measure)
    objects = _per_object(present_a, label, partner, gap, face_label, face_size, pairs, measure)
    return ContactResult(objects, pairs, _summary(objects, pairs, n_b, distance_nm))


def _present(labels: np.ndarray) -> np.ndarray:
    count = np.bincount(labels.reshape(-1))
    found = np.flatnonzero(count)
    return found[found > 0]


def _boundary_faces(a: np.ndarray, spacing: np.ndarray):
    """Every face between an A voxel and a voxel not of the same object (image border
    excluded): the A voxel's label, the flat index of the voxel outside the face and the
    face's size (nm in 2D, nm² in 3D)."""
    labels, outside, size = [], [], []
    for axis in range(a.ndim):
        face = float(np.prod(np.delete(spacing, axis)))
        for step in (-1, 1):
            inner = [slice(None)] * a.ndim
            outer = [slice(None)] * a.ndim
            inner[axis] = slice(1, None) if step < 0 else slice(None, -1)
            outer[axis] = slice(None, -1) if step < 0 else slice(1, None)
            here, there = a[tuple(inner)], a[tuple(outer)]
            where = np.nonzero((here > 0) & (here != there))
            coords = list(where)
            if step > 0:
                coords[axis] = coords[axis] + 1  # ``outer`` starts one voxel on
            outside.append(np.ravel_multi_index(coords, a.shape))
            labels.append(here[where])
            size.append(np.full(len(where[0]), face))
    return np.concatenate(labels), np.concatenate(outside), np.concatenate(size)


def _pairs(label, partner, gap, size, measure) -> Table:
    """Contacting (A, B) pairs, their smallest gap and contact size."""
    n_b = int(partner.max()) + 1 if partner.size else 1
    keys, inverse = np.unique(label * n_b + partner, return_inverse=True)
    min_gap = np.full(keys.size, np.inf)
    np.minimum.at(min_gap, inverse, gap)
    total = np.bincount(inverse, weights=size, minlength=keys.size)
    return Table(
        {"label_a": keys // n_b, "label_b": keys % n_b, "min_gap_nm": min_gap, measure: total}
    )


def _per_object(present, label, partner, gap, face_label, face_size, pairs, measure) -> Table:
    """Per A object: contacts, nearest B object and smallest gap, contact size."""
    n = int(present.max()) + 1
    # The smallest gap of each object: sort by (label, gap), keep the first per label.
    order = np.lexsort((gap, label))
    first = np.ones(order.size, dtype=bool)
    first[1:] = label[order][1:] != label[order][:-1]
    best = order[first]
    min_gap = np.full(n, np.nan)
    nearest = np.zeros(n, dtype=np.int64)
    min_gap[label[best]] = gap[best]
    nearest[label[best]] = partner[best]
    p = pairs.columns
    n_contacts = np.bincount(p["label_a"], minlength=n)[present]
    size = np.bincount(p["label_a"], weights=p[measure], minlength=n)[present]
    boundary = np.bincount(face_label, weights=face_size, minlength=n)[present]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(boundary > 0, size / boundary, 0.0)
    return Table(
        {
            "label": present.astype(np.int64),
            "n_contacts": n_contacts.astype(np.int64),
            "nearest_label": nearest[present],
            "min_gap_nm": min_gap[present],
            measure: size.astype(float),
            "contact_fraction": fraction,
        }
    )


def _summary(objects: Table, pairs: Table, n_b: int, distance_nm: float) -> dict:
    n_a = len(objects)
    touched_a = int((objects.columns["n_contacts"] > 0).sum())
    touched_b = int(np.unique(pairs.columns["label_b"]).size)
    return {
        "n_a": n_a,
        "n_b": n_b,
        "n_pairs": len(pairs),
        "contact_frequency_a": touched_a / n_a if n_a else None,
        "contact_frequency_b": touched_b / n_b if n_b else None,
        "mean_contacts_per_a": float(objects.columns["n_contacts"].mean()) if n_a else None,
        "distance_nm": float(distance_nm),
    }


def _no_contacts(present: np.ndarray, n_b: int, measure: str, distance_nm: float):
    n = present.size
    objects = Table(
        {
            "label": present.astype(np.int64),
            "n_contacts": np.zeros(n, dtype=np.int64),
            "nearest_label": np.zeros(n, dtype=np.int64),
            "min_gap_nm": np.full(n, np.nan),
            measure: np.zeros(n),
            "contact_fraction": np.zeros(n),
        }
    )
    pairs = Table(
        {
            "label_a": np.zeros(0, dtype=np.int64),
            "label_b": np.zeros(0, dtype=np.int64),
            "min_gap_nm": np.zeros(0),
            measure: np.zeros(0),
        }
    )
    return ContactResult(objects, pairs, _summary(objects, pairs, n_b, distance_nm))


class Contacts:
    """Contacts of the objects of one class with those of another.

    Parameters
    ----------
    config
        The analytics' parameters.
    """

    # it looks classes up by name: give it a multi-class input's real classes
    multiclass = True

    def __init__(self, config: ContactsConfig):
        self.config = config

    def measure(self, masks: Masks, volume: Volume | None = None) -> Table:
        """One row per object of ``class_a`` (see :class:`ContactResult`)."""
        return self.analyze(masks, volume).objects

    def analyze(self, masks: Masks, volume: Volume | None = None) -> ContactResult:
        """Objects, pairs and summary of the contacts of ``class_a`` with ``class_b``."""
        cfg = self.config
        a = object_labels(masks, cfg.class_a, cfg.connectivity, strict=True)
        b = object_labels(masks, cfg.class_b, cfg.connectivity, strict=True)
        return contacts(a, b, masks.voxel_nm, cfg.distance_nm)
