"""Baseline for cellcutter: marker-controlled watershed on the same markers and mask."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage
from skimage.filters import sobel
from skimage.segmentation import watershed

from subcell.core.errors import VolumeError
from subcell.plugins.cellcutter.markers import check_markers

#: Landscapes the watershed can flood; see :func:`marker_watershed`.
Relief = Literal["intensity", "inverted", "gradient"]


def marker_watershed(
    cell_image_2d: np.ndarray,
    markers_yx,
    mask: np.ndarray | None = None,
    *,
    relief: Relief = "intensity",
    smooth_sigma_px: float = 1.0,
    compactness: float = 0.0,
) -> np.ndarray:
    """Marker-controlled watershed of a whole-cell image, one seed per nucleus marker.

    Parameters
    ----------
    cell_image_2d
        ``(Y, X)`` whole-cell image (membrane or cytoplasm marker).
    markers_yx
        ``(M, 2)`` ``(y, x)`` marker positions in pixels (see :func:`check_markers`).
    mask
        ``(Y, X)`` bool foreground; pixels outside stay 0. ``None`` floods the whole image.
    relief
        The landscape flooded from the seeds, after Gaussian smoothing:
        ``"intensity"`` — the image itself, for bright membranes between cells (the cell
        interiors are basins, the membranes ridges); ``"inverted"`` — the negated image, for
        a bright cytoplasm with dim gaps between cells; ``"gradient"`` — the Sobel gradient
        magnitude, for either, at the cost of boundaries placed on one flank of a membrane.
        On synthetic touching cells with bright membranes (tests/plugins/
        test_cellcutter_classic.py, 6 images, 84 cells, true mask, true markers) the mean
        IoU of matched cells was 0.988 for ``"intensity"``, 0.76 for ``"gradient"`` and
        0.03 for ``"inverted"``, hence the default; with the graph-cut mask, 0.925.
    smooth_sigma_px
        Gaussian smoothing in pixels before building the relief; 0 for none.
    compactness
        Passed to ``skimage.segmentation.watershed``: > 0 favours round regions.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` uint32 labels: label ``i + 1`` belongs to marker ``i``. A marker outside
        the mask seeds nothing and its label is absent; two markers in the same pixel keep
        the later one.

    Raises
    ------
    VolumeError
        If the image is not 2D or holds NaN/inf, the mask has another shape, there are no
        markers, or a marker lies outside the image.
    """
    image = np.asarray(cell_image_2d, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise VolumeError(f"the cell image must be a non-empty 2D (Y, X) image, got {image.shape}")
    if not np.isfinite(image).all():
        raise VolumeError("the cell image holds NaN or inf values")
    markers = check_markers(markers_yx, image.shape)
    if mask is None:
        mask = np.ones(image.shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape:
        raise VolumeError(
            f"the mask {mask.shape} and the cell image {image.shape} have different shapes"
        )
    if relief not in ("intensity", "inverted", "gradient"):
        raise ValueError(f"relief must be 'intensity', 'inverted' or 'gradient', got {relief!r}")

    if smooth_sigma_px > 0:
        image = ndimage.gaussian_filter(image, smooth_sigma_px)
    landscape = {"intensity": image, "inverted": -image}.get(relief)
    if landscape is None:
        landscape = sobel(image)
    seeds = np.zeros(image.shape, dtype=np.uint32)
    iy, ix = _pixel_index(markers, image.shape)
    seeds[iy, ix] = np.arange(1, len(markers) + 1, dtype=np.uint32)
    seeds[~mask] = 0
    labels = watershed(landscape, seeds, mask=mask, compactness=compactness)
    return labels.astype(np.uint32)


def _pixel_index(markers: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel holding each marker (rounded, kept inside the image)."""
    index = np.floor(markers + 0.5).astype(np.int64)
    iy = np.clip(index[:, 0], 0, shape[0] - 1)
    ix = np.clip(index[:, 1], 0, shape[1] - 1)
    return iy, ix
