"""Emitters of the clumped-cells phantom's dyes, placed on its supersampled layout.

Each dye is a density map (emitters per supersampled pixel) over the field plus the
emitter margin; counts per supersampled pixel are Poisson and positions uniform inside the
pixel, so the dye is an inhomogeneous Poisson process with a piecewise-constant intensity
and emitters sit at sub-pixel (off-grid) positions.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from subcell.core.model import Emitters, Field
from subcell.plugins.cellcutter.phantom_layout import ClumpedLayout, upsample

__all__ = ["cell_dye", "cell_dye_density", "membrane_profile", "nucleus_dye"]

#: Coarse noise nodes per texture correlation length.
_TEXTURE_NODES = 3.0


def _window(layout: ClumpedLayout, field: Field, margin_um: float):
    pad = int(math.ceil(margin_um * 1e3 / min(field.voxel_nm[1:])))
    return layout.field_window(field.shape[1:], pad)


def _log_normal(rng, sd: float, n: int) -> np.ndarray:
    """Per-object brightness factors, log-normal with mean 1 (and 0 for label 0)."""
    factors = rng.lognormal(-0.5 * sd * sd, sd, n) if sd > 0 else np.ones(n)
    return np.append(0.0, factors).astype(np.float32)


def membrane_profile(cells: np.ndarray, width_um: float, subpixel_nm) -> np.ndarray:
    """Membrane line density across every cell border, peak 1 per membrane.

    Border pixels are cell pixels with a neighbour of another label (background included):
    an interface between two cells is marked on both sides (two membranes), a free edge on
    one. The mean of the 4- and 8-neighbour border sets has about one pixel per pixel of
    length at any angle; a Gaussian of σ ``width_um``, scaled so that a straight line
    peaks at 1, spreads it across the border.

    Parameters
    ----------
    cells
        (Y, X) cell labels on the supersampled grid.
    width_um
        Gaussian σ of the profile, µm.
    subpixel_nm
        (y, x) pixel size of ``cells``, nm.

    Returns
    -------
    numpy.ndarray
        (Y, X) float32.
    """
    four = np.zeros(cells.shape, dtype=bool)
    eight = np.zeros(cells.shape, dtype=bool)
    shifts = ((1, 0), (0, 1), (1, 1), (1, -1))
    for k, (dy, dx) in enumerate(shifts):
        a = cells[dy:, max(dx, 0) : cells.shape[1] + min(dx, 0)]
        b = cells[: cells.shape[0] - dy, max(-dx, 0) : cells.shape[1] + min(-dx, 0)]
        differ = a != b
        for target in (eight, four) if k < 2 else (eight,):
            target[dy:, max(dx, 0) : cells.shape[1] + min(dx, 0)] |= differ
            target[: cells.shape[0] - dy, max(-dx, 0) : cells.shape[1] + min(-dx, 0)] |= differ
    line = (0.5 * (four.astype(np.float32) + eight)) * (cells > 0)
    sigma = np.asarray([width_um * 1e3 / p for p in subpixel_nm])
    profile = ndimage.gaussian_filter(line, sigma, mode="nearest")
    profile *= math.sqrt(2.0 * math.pi) * float(np.sqrt(sigma.prod()))
    return profile


def cell_dye_density(config, layout: ClumpedLayout, window, rng) -> np.ndarray:
    """Expected emitters of the whole-cell marker per supersampled pixel of ``window``.

    Parameters
    ----------
    config
        A :class:`~subcell.plugins.cellcutter.phantom.CellDyeConfig`.
    layout
        The phantom's layout.
    window
        (rows, cols) slices of the supersampled grid.
    rng
        Draws each cell's brightness factor.
    """
    brightness = _log_normal(rng, config.brightness_sd, layout.n_cells)
    # Borders are found on a slightly larger window so the blur sees those just outside.
    extra = int(math.ceil(4.0 * config.membrane_width_um * 1e3 / min(layout.subpixel_nm))) + 1
    outer = tuple(
        slice(max(w.start - extra, 0), min(w.stop + extra, n))
        for w, n in zip(window, layout.cells.shape, strict=True)
    )
    inner = tuple(
        slice(w.start - o.start, w.stop - o.start) for w, o in zip(window, outer, strict=True)
    )
    membrane = membrane_profile(layout.cells[outer], config.membrane_width_um, layout.subpixel_nm)
    cells = layout.cells[window]
    density = np.float32(config.density_per_um2 * layout.subpixel_area_um2) * brightness[cells]
    density *= 1.0 + np.float32(config.membrane_enrichment - 1.0) * membrane[inner]
    density[layout.nuclei[window]] *= np.float32(config.nucleus_factor)
    np.maximum(density, 0.0, out=density)
    return density


def nucleus_dye_density(config, layout: ClumpedLayout, window, rng) -> np.ndarray:
    """Expected emitters of the nuclear stain per supersampled pixel of ``window``."""
    brightness = _log_normal(rng, config.brightness_sd, layout.n_cells)
    cells = layout.cells[window]
    nuclei = layout.nuclei[window]
    density = np.float32(config.density_per_um2 * layout.subpixel_area_um2) * brightness[cells]
    density *= nuclei
    if config.texture > 0:
        sub_um = np.asarray(layout.subpixel_nm) / 1e3
        step = config.texture_scale_um / _TEXTURE_NODES
        shape = cells.shape
        coarse = tuple(int(math.ceil(n * h / step)) + 2 for n, h in zip(shape, sub_um, strict=True))
        noise = ndimage.gaussian_filter(rng.standard_normal(coarse), _TEXTURE_NODES, mode="wrap")
        noise /= max(float(noise.std()), 1e-12)
        texture = 1.0 + np.float32(config.texture) * upsample(noise, step, shape, sub_um)
        density *= np.maximum(texture, 0.0)
    return density


def _place(rng, density, layout, window, field, ids, photons, name) -> Emitters:
    """Poisson counts per supersampled pixel, uniform positions inside each."""
    rows, cols = np.nonzero(density > 0)
    counts = rng.poisson(density[rows, cols].astype(np.float64))
    rows, cols = np.repeat(rows, counts), np.repeat(cols, counts)
    n = len(rows)
    hy, hx = layout.subpixel_nm
    position = np.empty((n, 3))
    position[:, 0] = rng.random(n, dtype=np.float32)
    position[:, 0] *= field.extent_nm[0]
    position[:, 1] = rng.random(n, dtype=np.float32)
    position[:, 1] += rows
    position[:, 1] *= hy
    position[:, 1] += layout.origin_nm[0] + window[0].start * hy
    position[:, 2] = rng.random(n, dtype=np.float32)
    position[:, 2] += cols
    position[:, 2] *= hx
    position[:, 2] += layout.origin_nm[1] + window[1].start * hx
    labels = layout.cells[window][rows, cols]
    return Emitters(
        position_nm=position,
        photons=np.full(n, float(photons)),
        instance=ids[labels],
        klass=np.zeros(n, dtype=np.int16),
        class_names=(name,),
    )


def cell_dye(config, layout, field, ids, rng, margin_um: float) -> Emitters:
    """Emitters of the whole-cell marker (see :func:`cell_dye_density`)."""
    window = _window(layout, field, margin_um)
    density = cell_dye_density(config, layout, window, rng)
    return _place(rng, density, layout, window, field, ids, config.photons_per_emitter, "cell")


def nucleus_dye(config, layout, field, ids, rng, margin_um: float) -> Emitters:
    """Emitters of the nuclear stain (see :func:`nucleus_dye_density`)."""
    window = _window(layout, field, margin_um)
    density = nucleus_dye_density(config, layout, window, rng)
    return _place(rng, density, layout, window, field, ids, config.photons_per_emitter, "nucleus")
