"""Object labels from masks, and the per-object sizes every analytics plugin starts from.

Shared by the analytics plugins (mitochondria morphology, vesicle sizes, contacts, per-cell),
which may import only the core.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from subcell.core.errors import VolumeError
from subcell.core.model import Masks

__all__ = ["check_labels", "label_sizes", "object_labels"]


def check_labels(labels, name: str, ndim: int | None = 3) -> np.ndarray:
    """``labels`` as int64 (``ndim`` axes: (Z, Y, X) by default; None: any), or a
    one-line :class:`VolumeError` naming ``name``."""
    labels = np.asarray(labels)
    if ndim is not None and labels.ndim != ndim:
        raise VolumeError(f"{name} must be (Z, Y, X), got shape {labels.shape}")
    if labels.dtype.kind not in "biu":
        raise VolumeError(f"{name} must be integers, got {labels.dtype}")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise VolumeError(f"{name} must be >= 0 (0 = background)")
    return labels.astype(np.int64, copy=False)


def object_labels(
    masks: Masks, class_name: str, connectivity: str = "full", *, strict: bool = False
) -> np.ndarray:
    """(Z, Y, X) int64 labels of one class: its instances, else its connected components.

    Parameters
    ----------
    masks
        Semantic masks, with or without instance labels.
    class_name
        The class. Unless ``strict``, masks with a single channel (or an empty name) use
        every foreground voxel whatever the channel is called.
    connectivity
        ``"face"`` or ``"full"``: which neighbours join a component (without instances).
    strict
        Require ``class_name`` among the mask's classes.

    Raises
    ------
    VolumeError
        No such class; instance labels that are not non-negative integers.
    """
    semantic = np.asarray(masks.semantic)
    if not strict and (semantic.shape[0] == 1 or not class_name):
        channel = semantic.any(axis=0)
    elif class_name in masks.class_names:
        channel = semantic[masks.class_names.index(class_name)] > 0
    else:
        raise VolumeError(
            f"the masks have no class {class_name!r} (classes: {', '.join(masks.class_names)})"
        )
    if masks.instances is None:
        structure = ndi.generate_binary_structure(3, 1 if connectivity == "face" else 3)
        return ndi.label(channel, structure=structure)[0].astype(np.int64)
    instances = check_labels(masks.instances, "instance labels")
    return np.where(channel, instances, 0)


def label_sizes(image: np.ndarray, spacing) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels present, and per label: centroid (index and nm), voxel count and physical size.

    Parameters
    ----------
    image
        Non-negative integer labels, 2D (Y, X) or 3D (Z, Y, X).
    spacing
        Voxel size in nm per axis of ``image``.

    Returns
    -------
    present : numpy.ndarray
        The labels present, ascending.
    columns : dict
        ``label``, ``centroid_{z,y,x}`` (voxel index), ``centroid_{z,y,x}_nm``, and
        ``area_px``/``area_nm2`` (2D) or ``volume_voxels``/``volume_nm3`` (3D).
    """
    flat_labels = image.reshape(-1)
    index = np.flatnonzero(flat_labels)
    lab = flat_labels[index]
    n = int(lab.max()) + 1 if lab.size else 1
    count = np.bincount(lab, minlength=n)
    present = np.flatnonzero(count)
    present = present[present > 0]
    k = count[present].astype(float)
    coords = np.unravel_index(index, image.shape)
    axes = "yx" if image.ndim == 2 else "zyx"
    columns: dict[str, np.ndarray] = {"label": present.astype(np.int64)}
    for axis, c, step in zip(axes, coords, spacing, strict=True):
        mean = np.bincount(lab, weights=c, minlength=n)[present] / np.maximum(k, 1)
        columns[f"centroid_{axis}"] = mean
        columns[f"centroid_{axis}_nm"] = (mean + 0.5) * step
    unit = float(np.prod(spacing))
    if image.ndim == 2:
        columns["area_px"], columns["area_nm2"] = count[present], k * unit
    else:
        columns["volume_voxels"], columns["volume_nm3"] = count[present], k * unit
    return present, columns
