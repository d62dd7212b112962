"""The objects of each frame of a label time series: centroids in nm, sizes, intensities.

Coordinates follow the core convention: voxel ``i`` along an axis spans
``[i * voxel_nm, (i + 1) * voxel_nm)``, so a centroid at index ``c`` lies at
``(c + 0.5) * voxel_nm``. A frame's spatial axes are (Y, X) or (Z, Y, X); ``voxel_nm``
holds one size per spatial axis, in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

__all__ = ["FrameObjects", "extract_objects", "frame_objects"]


@attrs.frozen(eq=False)
class FrameObjects:
    """The objects of one frame (one row per label present).

    Attributes
    ----------
    labels
        (M,) int64 label values, ascending.
    centroid_px
        (M, D) centroids as (fractional) voxel indices, axes (y, x) or (z, y, x).
    centroid_nm
        (M, D) centroids in nm, ``(centroid_px + 0.5) * voxel_nm``.
    size_px
        (M,) voxels per object.
    size_nm
        (M,) area in nm² (2D) or volume in nm³ (3D).
    mean_intensity
        (M,) mean image value over each object, or None without an image.
    """

    labels: np.ndarray
    centroid_px: np.ndarray
    centroid_nm: np.ndarray
    size_px: np.ndarray
    size_nm: np.ndarray
    mean_intensity: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def ndim(self) -> int:
        """Spatial dimensions D (2 or 3)."""
        return int(self.centroid_px.shape[1])


def frame_objects(
    labels: np.ndarray, voxel_nm: Sequence[float], intensity: np.ndarray | None = None
) -> FrameObjects:
    """Centroid, size and mean intensity of every object of one label frame.

    Only the foreground voxels are visited, so sparse frames are cheap whatever their
    size and however large the label values.

    Parameters
    ----------
    labels
        (Y, X) or (Z, Y, X) non-negative integer labels; 0 is background.
    voxel_nm
        Voxel size per spatial axis of ``labels``, nm.
    intensity
        Optional image of the same shape; its mean over each object is reported.

    Returns
    -------
    FrameObjects
    """
    voxel = np.asarray(voxel_nm, dtype=np.float64)
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    ids, inverse, counts = np.unique(flat[where], return_inverse=True, return_counts=True)
    n = len(ids)
    coords = np.unravel_index(where, labels.shape)
    centroid = np.empty((n, labels.ndim))
    for axis, c in enumerate(coords):
        centroid[:, axis] = np.bincount(inverse, weights=c, minlength=n) / np.maximum(counts, 1)
    mean_intensity = None
    if intensity is not None:
        values = np.asarray(intensity, dtype=np.float64).ravel()[where]
        mean_intensity = np.bincount(inverse, weights=values, minlength=n) / np.maximum(counts, 1)
    return FrameObjects(
        labels=ids.astype(np.int64),
        centroid_px=centroid,
        centroid_nm=(centroid + 0.5) * voxel,
        size_px=counts.astype(np.int64),
        size_nm=counts * float(np.prod(voxel)),
        mean_intensity=mean_intensity,
    )


def extract_objects(
    video: np.ndarray, voxel_nm: Sequence[float], intensity: np.ndarray | None = None
) -> list[FrameObjects]:
    """:func:`frame_objects` of every frame of a (T, Y, X) or (T, Z, Y, X) label series."""
    return [
        frame_objects(
            np.asarray(video[t]), voxel_nm, None if intensity is None else np.asarray(intensity[t])
        )
        for t in range(video.shape[0])
    ]
