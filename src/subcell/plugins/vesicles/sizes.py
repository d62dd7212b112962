"""Vesicle sizes: equivalent and fitted radius, intensity, and a small / large class.

Each object (2D or 3D, physical units from ``Masks.voxel_nm``) gets

- its equivalent radius: of the disc with its area, ``sqrt(A / pi)`` (3D: of the sphere
  with its volume, ``cbrt(3 V / (4 pi))``);
- a circle (3D: sphere) fitted to its boundary by algebraic least squares (Kåsa): the
  boundary is the set of faces between the object's pixels and the rest (the digital
  contour, whose points lie on the drawn circle on average; pixel centres of the outer
  ring would lie half a pixel inside), in nm; faces on the image border are left out so
  that a cut vesicle is fitted on its arc;
- with an image, the mean and integrated intensity per channel;
- the class ``small`` if the chosen radius is at most ``small_max_radius_nm`` (the paper:
  fitted radius, 150 nm), else ``large``.

Every value is a ``np.bincount`` reduction over labels; the per-object least-squares
systems are solved as one batch.
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

from subcell.core.errors import VolumeError
from subcell.core.labels import label_sizes, object_labels
from subcell.core.model import AXES_4D, Masks, Table, Volume

__all__ = ["VesicleSizes", "VesicleSizesConfig", "VesicleResult", "fit_radii"]

CLASSES = ("small", "large")


@attrs.frozen(kw_only=True)
class VesicleSizesConfig:
    """Parameters of the vesicle size analytics.

    Attributes
    ----------
    class_name
        The semantic class measured when the masks hold several; a mask with one class is
        measured whatever its name.
    small_max_radius_nm
        Largest radius (nm) of a ``small`` vesicle (the paper: 150 nm).
    radius
        The radius the class is decided on: ``"fitted"`` (circle / sphere fit, the
        paper's) or ``"equivalent"`` (from the area / volume).
    connectivity
        When the masks carry no instance labels, objects are connected components:
        ``"face"`` joins voxels sharing a face, ``"full"`` also edges and corners.
    """

    class_name: str = "vesicles"
    small_max_radius_nm: float = attrs.field(
        default=150.0, converter=float, validator=attrs.validators.gt(0)
    )
    radius: Literal["fitted", "equivalent"] = attrs.field(
        default="fitted", validator=attrs.validators.in_(("fitted", "equivalent"))
    )
    connectivity: Literal["face", "full"] = attrs.field(
        default="full", validator=attrs.validators.in_(("face", "full"))
    )


@attrs.frozen(eq=False)
class VesicleResult:
    """One image's vesicle analysis.

    Attributes
    ----------
    objects
        One row per vesicle (see :meth:`VesicleSizes.measure`).
    summary
        Counts and fractions per class, mean and median radii.
    labels
        The object labels measured, (Z, Y, X).
    """

    objects: Table
    summary: dict
    labels: np.ndarray


class VesicleSizes:
    """Measures vesicles: radii, intensity and small / large class.

    Parameters
    ----------
    config
        The analytics' parameters.
    """

    def __init__(self, config: VesicleSizesConfig):
        self.config = config

    def measure(self, masks: Masks, volume: Volume | None = None) -> Table:
        """One row per vesicle of ``masks``.

        Columns: ``label``, ``class`` (small / large), ``centroid_y``, ``centroid_x``
        (and ``centroid_z`` in 3D; voxel index units), ``area_px`` and ``area_nm2`` (3D:
        ``volume_voxels``, ``volume_nm3``), ``equivalent_radius_nm``,
        ``fitted_radius_nm``, ``fit_rms_nm`` (RMS distance of the boundary from the fitted
        circle), ``fit_centre_{z,y,x}_nm``, with an image ``mean_intensity_<channel>``
        and ``integrated_intensity_<channel>``, and the centroid in nm
        (``centroid_{z,y,x}_nm``, voxel ``i`` centred at ``(i + 0.5) * voxel``).
        """
        return self.analyze(masks, volume).objects

    def analyze(self, masks: Masks, volume: Volume | None = None) -> VesicleResult:
        """Objects and per-image summary of ``masks``.

        Raises
        ------
        VolumeError
            Non-integer or negative instance labels; a volume with a time axis or another
            spatial shape than the masks.
        """
        labels = object_labels(masks, self.config.class_name, self.config.connectivity)
        flat = labels.shape[0] == 1
        spacing = np.asarray(masks.voxel_nm[1:] if flat else masks.voxel_nm, dtype=float)
        image = labels[0] if flat else labels
        present, columns = label_sizes(image, spacing)
        size = columns["area_nm2"] if flat else columns["volume_nm3"]
        columns["equivalent_radius_nm"] = (
            np.sqrt(size / np.pi) if flat else np.cbrt(3 * size / (4 * np.pi))
        )
        centre, radius, rms = fit_radii(image, spacing, present)
        columns["fitted_radius_nm"], columns["fit_rms_nm"] = radius, rms
        for axis, values in zip("yx" if flat else "zyx", centre.T, strict=True):
            columns[f"fit_centre_{axis}_nm"] = values
        chosen = columns[f"{self.config.radius}_radius_nm"]
        columns["class"] = np.where(chosen <= self.config.small_max_radius_nm, "small", "large")
        columns.update(_intensities(volume, labels, present))
        objects = Table(_ordered(columns, flat))
        return VesicleResult(objects, self._summary(objects), labels)

    def _summary(self, objects: Table) -> dict:
        c = objects.columns
        n = len(objects)
        counts = {k: int((c["class"] == k).sum()) for k in CLASSES}
        radius = c["fitted_radius_nm"]
        return {
            "n_objects": n,
            "counts": counts,
            "fractions": {k: (v / n if n else None) for k, v in counts.items()},
            "means": {
                key: _stat(np.mean, c[key]) for key in ("fitted_radius_nm", "equivalent_radius_nm")
            },
            "median_fitted_radius_nm": _stat(np.median, radius),
            "mean_fitted_radius_by_class_nm": {
                k: _stat(np.mean, radius[c["class"] == k]) for k in CLASSES
            },
            "small_max_radius_nm": self.config.small_max_radius_nm,
            "radius": self.config.radius,
        }


def fit_radii(
    image: np.ndarray, spacing_nm, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Circle (2D) or sphere (3D) fitted to each object's boundary by least squares.

    Parameters
    ----------
    image
        Integer labels, (Y, X) or (Z, Y, X).
    spacing_nm
        Voxel size per axis (nm).
    present
        The labels to fit, ascending.

    Returns
    -------
    centre, radius, rms
        Fitted centres (n, ndim) in nm (voxel ``i`` centred at ``(i + 0.5) * voxel``),
        radii (nm) and the RMS distance (nm) of the boundary points from the fitted
        circle; NaN for an object without boundary points.
    """
    spacing = np.asarray(spacing_nm, dtype=float)
    ndim = image.ndim
    n = int(present.max()) + 1 if present.size else 1
    label, points = _boundary_points(image, spacing)
    count = np.bincount(label, minlength=n).astype(float)
    safe = np.maximum(count, 1)
    # Centre each object's points on their mean: the normal equations stay well scaled.
    mean = np.stack([np.bincount(label, points[:, d], n) / safe for d in range(ndim)], 1)
    p = points - mean[label]
    design = np.concatenate([p, np.ones((len(p), 1))], axis=1)
    target = -(p**2).sum(axis=1)
    k = ndim + 1
    normal = np.empty((n, k, k))
    for i in range(k):
        for j in range(i, k):
            normal[:, i, j] = normal[:, j, i] = np.bincount(label, design[:, i] * design[:, j], n)
    rhs = np.stack([np.bincount(label, design[:, i] * target, n) for i in range(k)], 1)
    # pinv: a degenerate object (a straight line of faces) gets a least-norm answer.
    solution = np.einsum("nij,nj->ni", np.linalg.pinv(normal), rhs)
    offset = -solution[:, :ndim] / 2
    radius2 = (offset**2).sum(axis=1) - solution[:, ndim]
    radius = np.sqrt(np.clip(radius2, 0, None))
    residual = np.linalg.norm(p - offset[label], axis=1) - radius[label]
    rms = np.sqrt(np.bincount(label, residual**2, n) / safe)
    centre = mean + offset + 0.5 * spacing
    empty = count == 0
    radius[empty], rms[empty] = np.nan, np.nan
    centre[empty] = np.nan
    return centre[present], radius[present], rms[present]


def _boundary_points(image: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and nm positions (index ``i`` at ``i * voxel``) of every face between an
    object voxel and a voxel of another label, inside the image."""
    labels, points = [], []
    for axis in range(image.ndim):
        for step in (-1, 1):
            inner = [slice(None)] * image.ndim
            outer = [slice(None)] * image.ndim
            inner[axis] = slice(1, None) if step < 0 else slice(None, -1)
            outer[axis] = slice(None, -1) if step < 0 else slice(1, None)
            here, there = image[tuple(inner)], image[tuple(outer)]
            face = (here > 0) & (here != there)
            where = np.nonzero(face)
            coords = np.stack(where, axis=1).astype(float)
            if step < 0:
                coords[:, axis] += 1  # ``inner`` started one voxel in
            coords[:, axis] += 0.5 * step
            labels.append(here[where])
            points.append(coords * spacing)
    if not labels:
        return np.zeros(0, dtype=np.int64), np.zeros((0, image.ndim))
    return np.concatenate(labels).astype(np.int64), np.concatenate(points)


def _intensities(volume: Volume | None, labels: np.ndarray, present: np.ndarray) -> dict:
    """Mean and integrated intensity per channel and object (nothing without a volume)."""
    if volume is None:
        return {}
    if volume.axes != AXES_4D:
        raise VolumeError(f"intensities need a {AXES_4D} volume, got {volume.axes!r}")
    if tuple(volume.shape[1:]) != tuple(labels.shape):
        raise VolumeError(
            f"image spatial shape {tuple(volume.shape[1:])} does not match the labels "
            f"{tuple(labels.shape)}"
        )
    flat = labels.reshape(-1)
    index = np.flatnonzero(flat)
    lab = flat[index]
    n = int(present.max()) + 1 if present.size else 1
    count = np.maximum(np.bincount(lab, minlength=n)[present], 1)
    out = {}
    for c, name in enumerate(volume.channel_names):
        values = np.asarray(volume.data[c], dtype=np.float64).reshape(-1)[index]
        total = np.bincount(lab, weights=values, minlength=n)[present]
        out[f"mean_intensity_{name}"] = total / count
        out[f"integrated_intensity_{name}"] = total
    return out


def _ordered(columns: dict, flat: bool) -> dict:
    axes = "yx" if flat else "zyx"
    size = ("area_px", "area_nm2") if flat else ("volume_voxels", "volume_nm3")
    first = ["label", "class", *(f"centroid_{a}" for a in axes), *size]
    first += ["equivalent_radius_nm", "fitted_radius_nm", "fit_rms_nm"]
    first += [f"fit_centre_{a}_nm" for a in axes]
    last = [f"centroid_{a}_nm" for a in axes]
    middle = [k for k in columns if k not in first and k not in last]
    return {k: columns[k] for k in first + middle + last}


def _stat(function, values) -> float | None:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(function(v)) if v.size else None
