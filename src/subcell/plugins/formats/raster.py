"""PNG (Pillow) and NumPy ``.npy`` readers."""

from __future__ import annotations

from pathlib import Path

import attrs
import dask.array as da
import numpy as np
from PIL import Image

from subcell.core.model import Volume
from subcell.plugins.formats._common import axes_field, finish, require_file, voxel_field, wrap

_NDIM_AXES = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}


@attrs.frozen(kw_only=True)
class PngReaderConfig:
    """Reading PNG images (8- or 16-bit, grey or colour).

    PNG carries no usable physical pixel size, so ``voxel_nm`` is always used. With
    ``merge_identical_rgb`` a colour image whose channels are all equal (a grey image saved
    as RGB) becomes one channel; an alpha channel that is fully opaque is dropped.

    Attributes
    ----------
    voxel_nm
        Voxel size (z, y, x) in nm, used where the file does not state one.
    merge_identical_rgb
        Merge R, G and B into one channel when they are identical.
    """

    voxel_nm: tuple[float, float, float] = voxel_field()
    merge_identical_rgb: bool = True


class PngReader:
    """Reads a PNG file into a one- or multi-channel, single-plane Volume."""

    def __init__(self, config: PngReaderConfig):
        self.config = config

    def can_read(self, path) -> bool:
        return str(path).lower().endswith(".png")

    def read(self, path) -> Volume:
        path = Path(path)
        require_file(path)
        data = wrap(path, "PNG", lambda: _load_png(path))
        if data.ndim == 3:
            data = self._squeeze_channels(data)
        axes = "YXC" if data.ndim == 3 else "YX"
        return finish(data, axes, self.config.voxel_nm, path, check_finite=False)

    def _squeeze_channels(self, data: np.ndarray) -> np.ndarray:
        if data.shape[-1] in (2, 4) and (data[..., -1] == np.iinfo(data.dtype).max).all():
            data = data[..., :-1]  # an opaque alpha channel holds no information
        if self.config.merge_identical_rgb and (data == data[..., :1]).all():
            return data[..., 0]
        return data


def _load_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        if image.format != "PNG":
            raise ValueError(f"not a PNG file (found {image.format})")
        image.load()
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif image.mode == "1":
            image = image.convert("L")
        # Copy so the array owns its memory after the file is closed.
        return np.array(image)


@attrs.frozen(kw_only=True)
class NumpyReaderConfig:
    """Reading NumPy ``.npy`` files (never pickles).

    ``.npy`` has no axis names or pixel size: ``axes`` ("" = YX, ZYX, CZYX, TCZYX by
    dimensionality) and ``voxel_nm`` say what the file holds. Files above ``lazy_above_mb``
    stay memory-mapped behind a dask array.

    Attributes
    ----------
    voxel_nm
        Voxel size (z, y, x) in nm, used where the file does not state one.
    axes
        Axis letters of the data, e.g. ``"ZYX"``; ``""`` infers them (see above).
    lazy_above_mb
        Files larger than this (MB) are read lazily instead of loaded.
    check_finite
        Reject data holding NaN or infinity (one pass over float data).
    """

    voxel_nm: tuple[float, float, float] = voxel_field()
    axes: str = axes_field()
    lazy_above_mb: float = attrs.field(default=256.0, validator=attrs.validators.ge(0))
    check_finite: bool = True


class NumpyReader:
    """Reads a ``.npy`` array into a Volume."""

    def __init__(self, config: NumpyReaderConfig):
        self.config = config

    def can_read(self, path) -> bool:
        return str(path).lower().endswith(".npy")

    def read(self, path) -> Volume:
        path = Path(path)
        require_file(path)
        mapped = wrap(path, "NumPy array", lambda: np.load(path, mmap_mode="r", allow_pickle=False))
        if mapped.nbytes > self.config.lazy_above_mb * 2**20:
            data = da.from_array(mapped, chunks="auto")
        else:
            data = np.array(mapped)
            del mapped  # release the mapping now rather than at garbage collection
        axes = self.config.axes or _NDIM_AXES.get(data.ndim, "?" * data.ndim)
        return finish(data, axes, self.config.voxel_nm, path, check_finite=self.config.check_finite)
