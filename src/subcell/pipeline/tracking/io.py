"""Reading label time series for ``subcell track`` and writing its outputs.

Inputs: a TIFF stack, a NumPy ``.npy`` file, or a simulated dataset (zarr, one image
of it). Axes: (T, Y, X) or (T, Z, Y, X); axes of length 1 (a channel, a single plane)
are dropped. A TIFF that names a ``T`` axis has it moved first; otherwise, as for NumPy
files, the first axis is time.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np

from subcell.core.errors import SubcellError, VolumeError

__all__ = ["LabelVideo", "check_labels", "read_label_video", "write_json"]


@attrs.frozen(eq=False)
class LabelVideo:
    """A label series and what its file says about its units.

    Attributes
    ----------
    labels
        (T, Y, X) or (T, Z, Y, X) non-negative integer labels (Z > 1).
    voxel_nm
        Voxel size per spatial axis, nm, when the file states it (datasets); else None.
    frame_s
        Frame interval, s, when the file states it; else None.
    source
        Where it came from (path, and image/class for datasets).
    """

    labels: np.ndarray
    voxel_nm: tuple[float, ...] | None
    frame_s: float | None
    source: str


def read_label_video(
    path: str | Path,
    *,
    index: int = 0,
    class_name: str | None = None,
    components: bool = False,
) -> LabelVideo:
    """Read and check a label series.

    Parameters
    ----------
    path
        ``.tif``/``.tiff``, ``.npy`` or a simulated dataset folder (``.zarr``).
    index
        The dataset image to take (datasets only).
    class_name
        Keep only the voxels of this class (datasets only: its ``masks`` channel).
    components
        Label the connected components of each frame's foreground (non-zero voxels):
        for binary masks or class maps. Boolean data is always labelled so.

    Raises
    ------
    VolumeError
        Missing or unreadable file, wrong shape, non-integer or negative labels, a
        single frame.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file or folder")
    voxel, frame_s, source = None, None, str(path)
    if path.is_dir() or path.suffix.lower() == ".zarr":
        data, voxel, frame_s = _read_dataset(path, index, class_name)
        source = f"{path} (image {index}{f', class {class_name}' if class_name else ''})"
    elif class_name is not None:
        raise SubcellError("--class applies to simulated datasets (zarr) only")
    elif path.suffix.lower() in (".tif", ".tiff"):
        data = _read_tiff(path)
    elif path.suffix.lower() == ".npy":
        data = _wrap(path, lambda: np.load(path, allow_pickle=False))
    else:
        raise VolumeError(f"{path}: expected a .tif, .tiff, .npy file or a dataset .zarr")
    labels, keep = _time_series(np.asarray(data), path)
    if voxel is not None:
        voxel = tuple(v for v, k in zip(voxel, keep, strict=True) if k)
    labels = check_labels(labels, path, components=components)
    return LabelVideo(labels, voxel, frame_s, source)


def check_labels(labels: np.ndarray, name, *, components: bool = False) -> np.ndarray:
    """Integer, non-negative labels (or, with ``components``, labelled foreground).

    Raises
    ------
    VolumeError
        Float labels (without ``components``), NaN/inf, negative values, T < 2.
    """
    if labels.shape[0] < 2:
        raise VolumeError(f"{name}: a single frame; tracking needs a time series (T >= 2)")
    if labels.dtype == bool:
        components = True
    elif np.issubdtype(labels.dtype, np.floating):
        if not components:
            raise VolumeError(
                f"{name}: labels must be integers, got {labels.dtype} (for a mask, use "
                f"--components)"
            )
        if not np.isfinite(labels).all():
            raise VolumeError(f"{name}: holds NaN or infinity")
    elif not np.issubdtype(labels.dtype, np.integer):
        raise VolumeError(f"{name}: labels must be integers, got {labels.dtype}")
    if labels.dtype != bool and labels.size and labels.min() < 0:
        raise VolumeError(f"{name}: labels must be non-negative, found {labels.min()}")
    if components:
        from skimage.measure import label

        return np.stack([label(frame != 0, connectivity=frame.ndim) for frame in labels])
    return labels


def write_json(data: dict, path: Path) -> Path:
    """Write ``data`` as indented JSON (NaN as null)."""
    path.write_text(json.dumps(_finite(data), indent=2) + "\n")
    return path


def _read_dataset(path: Path, index: int, class_name: str | None):
    from subcell.pipeline.dataset import open_dataset

    data = open_dataset(path)
    if not 0 <= index < len(data):
        raise VolumeError(f"{path}: no image {index} (the dataset has {len(data)})")
    if data.attrs.get("n_frames", 1) <= 1:
        raise VolumeError(f"{path}: a single frame per image; tracking needs a video dataset")
    labels = np.asarray(data.instances[index])  # (T, Z, Y, X)
    if class_name is not None:
        if class_name not in data.class_names:
            names = ", ".join(data.class_names)
            raise SubcellError(f"{path}: no class {class_name!r} (classes: {names})")
        k = data.class_names.index(class_name)
        labels = np.where(np.asarray(data.masks[index][:, k]) > 0, labels, 0)
    return labels, data.voxel_nm, float(data.attrs["frame_interval_s"])


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    def load():
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data, axes = series.asarray(), series.axes.upper()
        if "T" in axes:
            data = np.moveaxis(data, axes.index("T"), 0)
        return data

    return _wrap(path, load)


def _time_series(data: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[bool, ...]]:
    """(T, [Z,] Y, X): drop length-1 axes but T, Y and X. Also which (Z, Y, X) axes stay."""
    if data.ndim < 3:
        raise VolumeError(
            f"{path}: shape {data.shape} is a single frame; tracking needs (T, Y, X) or "
            f"(T, Z, Y, X)"
        )
    middle = [s for s in data.shape[1:-2] if s != 1]
    data = data.reshape(data.shape[0], *middle, *data.shape[-2:])
    if data.ndim > 4:
        raise VolumeError(f"{path}: shape {data.shape}; expected (T, Y, X) or (T, Z, Y, X)")
    keep = (data.ndim == 4, True, True)
    return data, keep


def _wrap(path: Path, call):
    try:
        return call()
    except VolumeError:
        raise
    except Exception as exc:  # each library raises its own types for a bad file
        raise VolumeError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc


def _finite(value):
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
