"""The block grid of a chunked segmentation, and each block's halo.

Blocks tile the (T, Z, Y, X) grid of the input without overlap: a block's *core* is the
part of the output it owns and writes. Each block is predicted on its core plus a *halo*
(its *region*) and the halo is cropped.

Halo choice
-----------
The halo is not a guess of the network's receptive field: a block's region is the union of
exactly those sliding windows that whole-image inference (MONAI ``sliding_window_inference``
over the whole volume, window ``roi`` and step ``int(roi * 0.75)``, the last window moved
back to end at the border) would place over any voxel of the core. Inference inside the
region then places the same windows at the same places (MONAI starts every scan at the
region's first voxel, and the region starts at a window), each window sees the same input,
and each core voxel is the same Gaussian-weighted mean of the same window predictions. So
every core voxel gets what whole-image inference gives it, whatever the receptive field is,
and even for networks whose output depends on the whole window (instance normalisation).
The halo is therefore at most ``roi - 1`` voxels per side; for cores that start on the
window grid (a multiple of the step, as the default blocks do) it is the step below the core
and ``roi - step`` above it, so each window is computed at most twice along an axis.

Axes without windows (time; z for a 2D model, which segments planes one by one) get no halo.
When the image is rescaled to the model's pixel size, the window grid lives on the model's
grid, and a block resamples its region in the whole image's coordinates (:mod:`.rescale`), so
the model-grid voxels it predicts are the whole image's; the region then also covers the
interpolation taps and the anti-aliasing kernel on both grids. Agreement is then exact up to
the rounding of interpolation weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import attrs
import numpy as np

from subcell.core.errors import VolumeError
from subcell.models.predict import window_size
from subcell.pipeline.segment_steps import grid_shape

__all__ = [
    "OVERLAP",
    "AxisWindows",
    "Block",
    "BlockPlan",
    "default_block",
    "plan_blocks",
    "window_starts",
]

#: Window overlap of :func:`subcell.models.predict.predict_probabilities` (its default).
OVERLAP = 0.25
#: Voxels of a default block's core (a 2D model's planes are stacked up to this).
_TARGET_VOXELS = 2**23
#: A 2D model's default block holds whole planes up to this many pixels.
_WHOLE_PLANE_PX = 4096 * 4096
#: Windows per axis in a split plane (2D) or per windowed axis (3D) of a default block.
_WINDOWS_2D, _WINDOWS_3D = 5, 4


def window_starts(size: int, roi: int, overlap: float = OVERLAP) -> list[int]:
    """Where MONAI's sliding windows start along an axis of ``size`` voxels.

    The same rule as ``monai.data.utils.dense_patch_slices`` with the scan interval of
    ``sliding_window_inference``: steps of ``int(roi * (1 - overlap))``, the last window moved
    back to end at the border; an axis shorter than ``roi`` is padded to it (one window).
    """
    image = max(int(size), int(roi))
    step = roi if roi == image else max(1, int(roi * (1 - overlap)))
    count = next(d for d in range(image) if d * step + roi >= image) + 1
    return [d * step - max(d * step + roi - image, 0) for d in range(count)]


@attrs.frozen
class AxisWindows:
    """The whole-image window grid along one spatial axis, on the model's grid.

    Attributes
    ----------
    size
        Axis length on the input grid.
    model_size
        Axis length on the model's grid (``size`` resampled by ``scale``).
    roi
        Window length (model grid).
    step
        Distance between window starts (model grid).
    scale
        Input voxels to model voxels (``model = input * scale``).
    """

    size: int
    model_size: int
    roi: int
    step: int
    scale: float = 1.0

    @property
    def starts(self) -> list[int]:
        return window_starts(self.model_size, self.roi)

    @property
    def min_block(self) -> int:
        """The smallest core (input voxels) that holds a window step."""
        return min(self.size, math.ceil(self.step / self.scale))

    def span(self, start: int, stop: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """The input-grid region and the model-grid window range of core ``[start, stop)``.

        Not rescaled, both are the union of the windows whole-image inference puts over the
        core. Rescaled, the model-grid range is the union of the windows over every model
        voxel the core's interpolation taps (plus the anti-aliasing kernel) reach, and the
        input region is what resampling that range reads: with the resampling done in the
        whole image's coordinates (:mod:`.rescale`), the block gets the whole image's values.
        """
        if self.scale == 1.0:
            lo, hi = self._over(start, stop)
            return (lo, hi), (lo, hi)
        back = self.model_size / self.size  # model voxels per input voxel
        reach = _radius(back) + 1
        n0 = max(0, math.floor((start + 0.5) * back - 0.5) - reach)
        n1 = min(self.model_size, math.floor((stop - 0.5) * back - 0.5) + 2 + reach)
        w0, w1 = self._over(n0, n1)
        forth = self.size / self.model_size
        reach = _radius(forth) + 1
        i0 = max(0, math.floor((w0 + 0.5) * forth - 0.5) - reach)
        i1 = min(self.size, math.floor((w1 - 0.5) * forth - 0.5) + 2 + reach)
        return (min(i0, start), max(i1, stop)), (w0, w1)

    def _over(self, lo: int, hi: int) -> tuple[int, int]:
        """The model-grid range of the windows that overlap model voxels ``[lo, hi)``."""
        if self.model_size <= self.roi:
            return 0, self.model_size  # one (padded) window covers the axis
        starts = np.asarray(self.starts)
        inside = starts[(starts + self.roi > lo) & (starts < hi)]
        return int(inside[0]), min(int(inside[-1]) + self.roi, self.model_size)


def _radius(factor: float) -> int:
    """Half-width of scipy's Gaussian for skimage's anti-aliasing when shrinking ``factor``
    times (sigma ``(factor - 1) / 2``, truncated at 4 sigma); 0 when not shrinking."""
    sigma = max(0.0, (factor - 1.0) / 2.0)
    return int(4.0 * sigma + 0.5) if sigma > 0 else 0


@attrs.frozen
class Block:
    """One block: where it sits and what it reads.

    Attributes
    ----------
    index
        Block coordinates (t, z, y, x) in the grid.
    number
        Position in raster order (0-based).
    core
        (t, z, y, x) slices of the input grid the block owns and writes.
    region
        (t, z, y, x) slices it reads and predicts (core plus halo).
    model
        (z, y, x) slices of the model's grid it predicts (the region's own when not
        rescaled).
    """

    index: tuple[int, int, int, int]
    number: int
    core: tuple[slice, ...]
    region: tuple[slice, ...]
    model: tuple[slice, ...]

    @property
    def inner(self) -> tuple[slice, ...]:
        """The core's slices inside the region."""
        return tuple(
            slice(c.start - r.start, c.stop - r.start)
            for c, r in zip(self.core, self.region, strict=True)
        )

    @property
    def voxels(self) -> int:
        return int(np.prod([s.stop - s.start for s in self.core]))


@attrs.frozen
class BlockPlan:
    """A (T, Z, Y, X) grid cut into blocks, and the window grid that sets their halos.

    Attributes
    ----------
    shape
        (T, Z, Y, X) of the input.
    block
        (Z, Y, X) core size (the last block along an axis may be smaller); one time point
        per block.
    windows
        (z, y, x) window grids; None for an axis without windows.
    """

    shape: tuple[int, int, int, int]
    block: tuple[int, int, int]
    windows: tuple[AxisWindows | None, AxisWindows | None, AxisWindows | None]

    @property
    def grid(self) -> tuple[int, int, int, int]:
        """Blocks along (t, z, y, x)."""
        sizes = (1, *self.block)
        return tuple(-(-n // b) for n, b in zip(self.shape, sizes, strict=True))

    def __len__(self) -> int:
        return int(np.prod(self.grid))

    def __iter__(self) -> Iterator[Block]:
        for number in range(len(self)):
            yield self[number]

    def __getitem__(self, number: int) -> Block:
        index = tuple(int(i) for i in np.unravel_index(number, self.grid))
        sizes = (1, *self.block)
        core = tuple(
            slice(i * b, min((i + 1) * b, n))
            for i, b, n in zip(index, sizes, self.shape, strict=True)
        )
        region, model = [core[0]], []
        for axis, windows in enumerate(self.windows):
            c = core[axis + 1]
            if windows is None:
                region.append(c)
                model.append(c)
                continue
            (i0, i1), (m0, m1) = windows.span(c.start, c.stop)
            region.append(slice(i0, i1))
            model.append(slice(m0, m1))
        return Block(index, int(number), core, tuple(region), tuple(model))

    def number(self, index: tuple[int, ...]) -> int:
        """The raster position of block ``index``."""
        return int(np.ravel_multi_index(index, self.grid))

    @property
    def halo(self) -> tuple[int, int, int]:
        """The widest halo (z, y, x) of any block, in input voxels (one side)."""
        widest = [0, 0, 0]
        for axis, windows in enumerate(self.windows):
            if windows is None:
                continue
            n, b = self.shape[axis + 1], self.block[axis]
            for start in range(0, n, b):
                (lo, hi), _ = windows.span(start, min(start + b, n))
                widest[axis] = max(widest[axis], start - lo, hi - min(start + b, n))
        return tuple(widest)

    def as_dict(self) -> dict:
        return {
            "shape_tzyx": list(self.shape),
            "block_zyx": list(self.block),
            "grid_tzyx": list(self.grid),
            "halo_zyx": list(self.halo),
            "windows_zyx": [
                None if w is None else {"roi": w.roi, "step": w.step, "scale": w.scale}
                for w in self.windows
            ],
        }


def _axis_windows(card: dict, shape_zyx, scale) -> tuple[AxisWindows | None, ...]:
    spatial_dims = int(card["network"]["config"].get("spatial_dims", 2))
    divisor = int(card.get("input_multiple_px", 32))
    model_shape = grid_shape(tuple(shape_zyx), tuple(scale))
    axes = (0, 1, 2) if spatial_dims == 3 else (1, 2)
    patch = tuple(card["patch_px"][-len(axes) :])
    roi = window_size(patch, tuple(model_shape[a] for a in axes), divisor)
    out: list[AxisWindows | None] = [None, None, None]
    for a, r in zip(axes, roi, strict=True):
        image = max(model_shape[a], r)
        step = r if r == image else max(1, int(r * (1 - OVERLAP)))
        out[a] = AxisWindows(int(shape_zyx[a]), int(model_shape[a]), int(r), step, float(scale[a]))
    return tuple(out)


def default_block(shape_zyx, windows) -> tuple[int, int, int]:
    """A block (Z, Y, X) of a few million voxels whose cores start on the window grid.

    A 2D model gets whole planes when they hold up to 4096² pixels (no window is then
    computed twice), else tiles of five window steps, and as many planes as make ~8 M voxels.
    A 3D model gets four window steps along each axis.
    """
    z, y, x = (int(s) for s in shape_zyx)
    if windows[0] is None:  # 2D model: windows in y and x only
        if y * x <= _WHOLE_PLANE_PX:
            by, bx = y, x
        else:
            by, bx = (min(n, _steps(w, _WINDOWS_2D)) for n, w in ((y, windows[1]), (x, windows[2])))
        bz = int(np.clip(_TARGET_VOXELS // (by * bx), 1, z))
        return bz, by, bx
    return tuple(min(n, _steps(w, _WINDOWS_3D)) for n, w in zip((z, y, x), windows, strict=True))


def _steps(windows: AxisWindows, n: int) -> int:
    """``n`` window steps in input voxels, a multiple of the step when not rescaled."""
    return max(1, math.ceil(n * windows.step / windows.scale))


def plan_blocks(
    shape_tzyx: tuple[int, int, int, int],
    card: dict,
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0),
    block: tuple[int, int, int] | None = None,
) -> BlockPlan:
    """Cut a (T, Z, Y, X) input into blocks for the model of ``card``.

    Parameters
    ----------
    shape_tzyx
        The input's shape.
    card
        The model card (window ``patch_px``, ``input_multiple_px``, ``spatial_dims``).
    scale
        Input voxels to model voxels per axis (:class:`~subcell.pipeline.segment_steps.PixelSizes`).
    block
        Core size (Z, Y, X) in input voxels; :func:`default_block` if None. Larger than the
        input along an axis means the whole axis.

    Raises
    ------
    VolumeError
        A block smaller than a window step along a windowed axis (the message gives the
        minimum): its windows would each be computed by several blocks.
    """
    shape = tuple(int(s) for s in shape_tzyx)
    windows = _axis_windows(card, shape[1:], scale)
    if block is None:
        block = default_block(shape[1:], windows)
    if len(block) != 3 or any(int(b) < 1 for b in block):
        raise VolumeError(f"block must be three positive sizes (Z, Y, X), got {tuple(block)}")
    block = tuple(min(int(b), n) for b, n in zip(block, shape[1:], strict=True))
    for name, b, w in zip("zyx", block, windows, strict=True):
        if w is not None and b < w.min_block:
            raise VolumeError(
                f"block {b} px along {name} is smaller than the halo the model's sliding "
                f"windows need (window {w.roi} px, step {w.step} px on the model's grid); "
                f"the minimum --block along {name} is {w.min_block}"
            )
    return BlockPlan(shape, block, windows)
