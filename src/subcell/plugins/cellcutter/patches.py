"""Patches around markers, the position channel and area-limited batches (Din & Yu 2021).

Every marker gets a full ``k x k`` patch, also at the image border: the image is padded before
cropping, so no marker is ever dropped (the public cellcutter code drops markers whose patch
leaves the image and so never segments border cells). Padding is *zero in z-scored units*
(``pad_mode="constant"``: the channel mean) by default, or a mirror image of the border
(``pad_mode="reflect"``). Whatever the image padding, the foreground mask is padded with
``False``: outside the image is background, so the mask term of the loss keeps every patch's
cell inside the image.

A patch's origin is the image coordinate of its top-left pixel, ``round(marker) - k // 2``; it
is negative for a marker closer than ``k // 2`` to the top or left edge. The marker therefore
sits at patch pixel ``k // 2`` (plus its sub-pixel offset) in both axes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from subcell.core.errors import VolumeError

__all__ = [
    "PadMode",
    "area_batches",
    "crop_patches",
    "extract_mask_patches",
    "extract_patches",
    "patch_origins",
    "position_maps",
    "zscore_channels",
]

PadMode = Literal["constant", "reflect"]


def zscore_channels(image: np.ndarray) -> np.ndarray:
    """Z-score each channel of an image: zero mean, unit standard deviation.

    Parameters
    ----------
    image
        ``(C, Y, X)`` array of any real dtype.

    Returns
    -------
    numpy.ndarray
        ``(C, Y, X)`` float32. A constant channel becomes all zeros (its deviation is taken as 1).
    """
    data = _check_image(image).astype(np.float64)
    mean = data.mean(axis=(1, 2), keepdims=True)
    std = data.std(axis=(1, 2), keepdims=True)
    std[std == 0] = 1.0
    return ((data - mean) / std).astype(np.float32)


def patch_origins(markers_yx: np.ndarray, image_shape: tuple[int, int], k: int) -> np.ndarray:
    """Top-left image coordinates of each marker's ``k x k`` patch.

    Parameters
    ----------
    markers_yx
        ``(N, 2)`` marker positions (y, x) in array-index pixels (see Notes).
    image_shape
        ``(Y, X)`` of the image the markers belong to.
    k
        Patch size in pixels.

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` int64 origins ``round(marker) - k // 2``; may be negative, and
        ``origin + k`` may exceed the image size.

    Raises
    ------
    VolumeError
        If a marker is not finite or lies outside the image.

    Notes
    -----
    Marker coordinates follow scikit-image (``peak_local_max``, ``blob_dog``, ``regionprops``
    centroids): pixel centres at integers, so a marker at ``(10.4, 3.7)`` lies in pixel
    ``(10, 4)`` = ``round(marker)``; valid markers have ``-0.5 <= marker < size - 0.5``.
    """
    markers = np.asarray(markers_yx, dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(markers)):
        raise VolumeError("cellcutter: marker positions must be finite numbers")
    pixel = np.rint(markers).astype(np.int64)
    shape = np.asarray(image_shape, dtype=np.int64)
    outside = np.any((pixel < 0) | (pixel >= shape), axis=1)
    if outside.any():
        first = markers[np.argmax(outside)]
        raise VolumeError(
            f"cellcutter: {int(outside.sum())} marker(s) outside the {shape[0]}x{shape[1]} image,"
            f" e.g. at (y, x) = ({first[0]:g}, {first[1]:g})"
        )
    return pixel - k // 2


def position_maps(
    markers_yx: np.ndarray, origins: np.ndarray, k: int, sigma_px: float
) -> np.ndarray:
    """The Gaussian-disk position channel: ``exp(-r^2 / (2 sigma^2))`` around each patch's marker.

    Parameters
    ----------
    markers_yx
        ``(N, 2)`` marker positions (y, x) in image pixels.
    origins
        ``(N, 2)`` patch origins from :func:`patch_origins`.
    k
        Patch size in pixels.
    sigma_px
        Standard deviation of the Gaussian in pixels (15 in the paper).

    Returns
    -------
    numpy.ndarray
        ``(N, k, k)`` float32 with peak 1 at the (sub-pixel) marker position.
    """
    centre = np.asarray(markers_yx, dtype=np.float64).reshape(-1, 2) - origins
    grid = np.arange(k, dtype=np.float64)
    gy = np.exp(-((grid[None, :] - centre[:, :1]) ** 2) / (2.0 * sigma_px**2))
    gx = np.exp(-((grid[None, :] - centre[:, 1:]) ** 2) / (2.0 * sigma_px**2))
    # A 2-D isotropic Gaussian is the outer product of two 1-D ones.
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def crop_patches(
    array: np.ndarray, origins: np.ndarray, k: int, pad_mode: PadMode = "constant"
) -> np.ndarray:
    """Crop ``k x k`` windows at the given origins from a padded copy of ``array``.

    Parameters
    ----------
    array
        ``(C, Y, X)`` array.
    origins
        ``(N, 2)`` int top-left corners in image coordinates, each within ``k`` of the image.
    k
        Patch size in pixels.
    pad_mode
        ``"constant"`` pads with zeros, ``"reflect"`` mirrors the border (numpy ``reflect``).

    Returns
    -------
    numpy.ndarray
        ``(N, C, k, k)`` array of ``array``'s dtype.
    """
    origins = np.asarray(origins, dtype=np.int64).reshape(-1, 2)
    padded = np.pad(array, ((0, 0), (k, k), (k, k)), mode=pad_mode)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    # windows[c, y, x] is the k x k window whose top-left padded pixel is (y, x).
    picked = windows[:, origins[:, 0] + k, origins[:, 1] + k]
    return np.ascontiguousarray(np.moveaxis(picked, 0, 1))


def extract_patches(
    image: np.ndarray,
    markers_yx: np.ndarray,
    k: int = 64,
    *,
    sigma_px: float = 15.0,
    pad_mode: PadMode = "constant",
    normalise: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs: each marker's image patch plus its position channel.

    Parameters
    ----------
    image
        ``(C, Y, X)`` image (any size, also smaller than one patch).
    markers_yx
        ``(N, 2)`` marker positions (y, x) in pixels, inside the image.
    k
        Patch size in pixels (64 in the paper).
    sigma_px
        Standard deviation of the Gaussian-disk position channel in pixels.
    pad_mode
        How the image is extended beyond its border: ``"constant"`` (zero after z-scoring,
        i.e. the channel mean) or ``"reflect"``.
    normalise
        Z-score each channel over the whole image first (:func:`zscore_channels`); pass
        False when ``image`` is already normalised.

    Returns
    -------
    patches : numpy.ndarray
        ``(N, C + 1, k, k)`` float32; the last channel is the position map.
    origins : numpy.ndarray
        ``(N, 2)`` int64 top-left image coordinates of the patches (may be negative).

    Raises
    ------
    VolumeError
        If the image is not 3-D or a marker lies outside it.
    """
    data = zscore_channels(image) if normalise else _check_image(image).astype(np.float32)
    origins = patch_origins(markers_yx, data.shape[1:], k)
    crops = crop_patches(data, origins, k, pad_mode)
    position = position_maps(markers_yx, origins, k, sigma_px)
    return np.concatenate([crops, position[:, None]], axis=1), origins


def extract_mask_patches(mask: np.ndarray, origins: np.ndarray, k: int) -> np.ndarray:
    """Foreground-mask patches, with everything outside the image counted as background.

    Parameters
    ----------
    mask
        ``(Y, X)`` bool foreground mask.
    origins
        ``(N, 2)`` patch origins from :func:`extract_patches`.
    k
        Patch size in pixels.

    Returns
    -------
    numpy.ndarray
        ``(N, 1, k, k)`` float32 of 0 and 1.
    """
    return crop_patches(np.asarray(mask, dtype=np.float32)[None], origins, k, "constant")


def area_batches(
    markers_yx: np.ndarray,
    image_shape: tuple[int, int],
    area_px: tuple[int, int] = (640, 640),
    rng: np.random.Generator | None = None,
) -> Iterator[np.ndarray]:
    """One epoch of batches: the markers of each window of a randomly shifted tiling.

    The image plane is tiled with ``area_px`` windows shifted by a random offset in
    ``[0, area)`` per axis, so that every marker falls into exactly one window and the window
    borders move from epoch to epoch. Each non-empty window is one batch; the cross-patch
    loss then only couples patches of one window (and a batch's canvas is at most
    ``area + k`` on a side). Windows come in random order.

    Parameters
    ----------
    markers_yx
        ``(N, 2)`` marker positions (y, x) in pixels.
    image_shape
        ``(Y, X)`` of the image.
    area_px
        ``(height, width)`` of a window in pixels (640 x 640 in the paper).
    rng
        Source of the offset and order; None uses offset 0 and row-major order.

    Yields
    ------
    numpy.ndarray
        Sorted int64 indices into ``markers_yx`` of one window's markers.
    """
    markers = np.rint(np.asarray(markers_yx, dtype=np.float64).reshape(-1, 2)).astype(np.int64)
    area = np.asarray(area_px, dtype=np.int64)
    if np.any(area < 1):
        raise ValueError(f"area_px must be positive, got {tuple(area_px)}")
    offset = np.zeros(2, np.int64) if rng is None else rng.integers(0, area)
    # Window (a, b) spans [a * h - offset_y, (a + 1) * h - offset_y) in y, likewise in x.
    tile = (markers + offset) // area
    n_cols = int((int(image_shape[1]) + int(offset[1])) // int(area[1]) + 1)
    key = tile[:, 0] * n_cols + tile[:, 1]
    windows = np.unique(key)
    if rng is not None:
        windows = rng.permutation(windows)
    for window in windows:
        yield np.flatnonzero(key == window)


def _check_image(image: np.ndarray) -> np.ndarray:
    data = np.asarray(image)
    if data.ndim != 3 or min(data.shape) < 1:
        raise VolumeError(f"cellcutter: expected a (C, Y, X) image, got shape {data.shape}")
    return data
