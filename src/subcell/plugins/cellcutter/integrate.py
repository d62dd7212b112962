"""Integration of per-marker patch probabilities into one instance label image."""

from __future__ import annotations

import numpy as np
from skimage.measure import label

from subcell.core.errors import VolumeError


def integrate_patches(
    probabilities: np.ndarray,
    origins_yx,
    image_shape: tuple[int, int],
    *,
    threshold: float = 0.5,
    keep_main_component: bool = False,
    foreground: np.ndarray | None = None,
) -> np.ndarray:
    """Instance labels from the patch probabilities of every marker (Din & Yu 2021).

    Each pixel goes to the patch (cell) with the highest probability there; a pixel where
    every covering patch says less than ``threshold`` is background. Patches may reach past
    the image (negative origins, or past the far edge): they are clipped, never dropped.

    Parameters
    ----------
    probabilities
        ``(N, ky, kx)`` probability of each marker's cell over its patch, in [0, 1].
    origins_yx
        ``(N, 2)`` integer image coordinates of each patch's pixel ``(0, 0)``.
    image_shape
        ``(Y, X)`` of the output (extra leading entries are ignored).
    threshold
        Pixels whose best probability is below it are background.
    keep_main_component
        If True, the pixels of a cell that are not 4-connected to its largest piece become
        background (a patch may win a few stray pixels far from its marker).
    foreground
        Optional ``(Y, X)`` bool foreground mask: its pixels go to the most probable covering
        patch even below ``threshold``. The loss makes two patches that cannot tell whose a
        pixel is both say about 0.27 (the symmetric optimum at λ = 3.32), so the plain
        threshold leaves a gap between touching cells that the mask says is cell.

    Returns
    -------
    np.ndarray
        ``(Y, X)`` uint32 labels: label ``i + 1`` is patch ``i`` (marker ``i``); equal
        probabilities go to the lower index. A cell that wins no pixel is absent.

    Raises
    ------
    VolumeError
        If the arrays' shapes disagree, origins are not integers, or probabilities are
        NaN/inf.
    """
    probabilities = np.asarray(probabilities, dtype=np.float32)
    origins = np.asarray(origins_yx)
    height, width = (int(n) for n in tuple(image_shape)[-2:])
    if probabilities.ndim != 3:
        raise VolumeError(
            f"patch probabilities must be (N, ky, kx), got shape {probabilities.shape}"
        )
    n_patches, ky, kx = probabilities.shape
    if origins.shape != (n_patches, 2):
        raise VolumeError(
            f"patch origins must be ({n_patches}, 2) for {n_patches} patches, "
            f"got shape {origins.shape}"
        )
    if origins.size and not np.array_equal(origins, np.round(origins)):
        raise VolumeError("patch origins must be integer pixel coordinates")
    if not np.isfinite(probabilities).all():
        raise VolumeError("patch probabilities hold NaN or inf values")
    origins = origins.astype(np.int64)

    # Running maximum over patches: a canvas of the best probability so far and its owner.
    best = np.full((height, width), -np.inf, dtype=np.float32)
    owner = np.zeros((height, width), dtype=np.uint32)
    for index, ((y0, x0), patch) in enumerate(zip(origins, probabilities, strict=True)):
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + ky, height), min(x0 + kx, width)
        if ye <= ys or xe <= xs:
            continue
        window = patch[ys - y0 : ye - y0, xs - x0 : xe - x0]
        canvas = best[ys:ye, xs:xe]
        wins = window > canvas
        canvas[wins] = window[wins]
        owner[ys:ye, xs:xe][wins] = index + 1
    keep = best >= threshold
    if foreground is not None:
        foreground = np.asarray(foreground, dtype=bool)
        if foreground.shape != (height, width):
            raise VolumeError(
                f"foreground mask shape {foreground.shape} differs from the image's "
                f"{(height, width)}"
            )
        keep |= foreground
    labels = np.where(keep, owner, 0).astype(np.uint32)
    if keep_main_component:
        labels = main_components(labels)
    return labels


def main_components(labels: np.ndarray) -> np.ndarray:
    """Labels with every cell cut down to its largest 4-connected piece (ties: first found).

    Parameters
    ----------
    labels
        ``(Y, X)`` instance labels, 0 background.

    Returns
    -------
    np.ndarray
        The same labels (uint32), stray pieces set to 0.
    """
    pieces = label(labels, background=0, connectivity=1)
    n_pieces = int(pieces.max())
    if n_pieces == 0:
        return labels.astype(np.uint32)
    sizes = np.bincount(pieces.ravel(), minlength=n_pieces + 1)
    # Owner cell of each piece: any pixel of the piece carries it.
    piece_cell = np.zeros(n_pieces + 1, dtype=np.int64)
    piece_cell[pieces.ravel()] = labels.ravel()
    # Largest piece per cell: sort pieces by (cell, -size, index) and take the first per cell.
    ids = np.arange(1, n_pieces + 1)
    order = np.lexsort((ids, -sizes[1:], piece_cell[1:]))
    sorted_cells = piece_cell[1:][order]
    first = np.ones(n_pieces, dtype=bool)
    first[1:] = sorted_cells[1:] != sorted_cells[:-1]
    keep = np.zeros(n_pieces + 1, dtype=bool)
    keep[ids[order][first]] = True
    return np.where(keep[pieces], labels, 0).astype(np.uint32)
