"""Files in and out of ``subcell segment``: the mask file, its provenance, an overlay PNG.

Outputs are written next to their final name and renamed into place, so an interrupted run
never leaves a file that passes as complete; the provenance sidecar is written first, so a
mask that exists always has one.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from subcell.core.errors import VolumeError
from subcell.core.model import Masks
from subcell.core.provenance import record, write_sidecar
from subcell.models.predict import class_index_map
from subcell.pipeline.segment import SegmentResult, run_segment
from subcell.pipeline.segment_steps import label_instances

if TYPE_CHECKING:
    from subcell.registry import Registry

__all__ = [
    "OUTPUT_SUFFIXES",
    "check_output",
    "overlay_png",
    "segment_file",
    "segmentation_provenance",
    "write_segmentation",
]

#: Suffixes ``write_segmentation`` writes.
OUTPUT_SUFFIXES = (".tif", ".tiff", ".npy", ".png")
#: Outline colours of classes 1, 2, ... in overlays (cycled).
_COLOURS = ((255, 60, 60), (0, 220, 0), (60, 140, 255), (255, 200, 0), (220, 0, 220), (0, 220, 220))


def check_output(path: str | os.PathLike, n_planes: int = 1) -> Path:
    """Raise :class:`VolumeError` unless a segmentation of ``n_planes`` z planes can go to ``path``.

    Called before segmenting, so a bad output name fails in a moment, not after inference.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        hint = " (zarr output is the chunked path's)" if suffix == ".zarr" else ""
        raise VolumeError(
            f"{path}: cannot write a segmentation as {suffix or 'a file without suffix'!r}; "
            f"use one of {', '.join(OUTPUT_SUFFIXES)}{hint}"
        )
    if path.is_dir():
        raise VolumeError(f"{path}: is a directory")
    if suffix == ".png" and n_planes > 1:
        raise VolumeError(
            f"{path}: PNG holds one plane, the segmentation has {n_planes}; use .tif or .npy"
        )
    return path


def _atomic(write: Callable[[Path], None], path: Path) -> Path:
    """Call ``write(tmp)`` on a hidden sibling of ``path``, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_tiff(data: np.ndarray, path: Path, voxel_nm, classes: list[str]) -> None:
    import tifffile

    z_nm, y_nm, x_nm = voxel_nm
    axes = "ZYX" if data.ndim == 3 else "YX"
    info = {"subcell": {"content": "instances" if data.dtype == np.uint32 else "classes"}}
    info["subcell"]["classes"] = classes
    if data.dtype == np.uint8:
        # ImageJ hyperstack: Fiji and our reader get the pixel size and z step (in µm).
        metadata = {"axes": axes, "unit": "um", "Info": json.dumps(info)}
        if data.ndim == 3:
            metadata["spacing"] = z_nm / 1e3
        tifffile.imwrite(
            path,
            data,
            imagej=True,
            resolution=(1e3 / x_nm, 1e3 / y_nm),
            metadata=metadata,
            compression="zlib",
        )
        return
    # ImageJ has no 32-bit integers: a plain TIFF with the pixel size as a metric resolution
    # (pixels per cm, standard TIFF) and the voxel size in tifffile's JSON description.
    tifffile.imwrite(
        path,
        data,
        resolution=(1e7 / x_nm, 1e7 / y_nm),
        resolutionunit="CENTIMETER",
        metadata={"axes": axes, "voxel_nm": list(voxel_nm), **info},
        compression="zlib",
    )


def _write_png(data: np.ndarray, path: Path) -> None:
    from PIL import Image

    if data.dtype == np.uint32:
        data = data.astype(np.uint16)  # _check_png made sure the labels fit
    Image.fromarray(data).save(path, format="PNG")


def _check_png(data: np.ndarray, path: Path) -> None:
    if data.ndim != 2:
        raise VolumeError(f"{path}: PNG holds one plane; use .tif or .npy for a stack")
    top = int(data.max(initial=0))
    if data.dtype == np.uint32 and top >= 2**16:
        raise VolumeError(f"{path}: {top} instances do not fit a 16-bit PNG; write .tif instead")


def _write_npy(data: np.ndarray, path: Path) -> None:
    with path.open("wb") as handle:  # a handle, so numpy adds no second .npy suffix
        np.save(handle, data, allow_pickle=False)


def write_segmentation(
    masks: Masks,
    out_path: str | os.PathLike,
    *,
    instances: bool = False,
    attrs: dict | None = None,
) -> Path:
    """Write the class-index map or the instance labels, and a provenance sidecar.

    Parameters
    ----------
    masks
        The segmentation.
    out_path
        ``.tif``/``.tiff`` (uint8 class map as an ImageJ hyperstack with pixel size and z
        step; uint32 instances as a plain TIFF with the pixel size as a metric resolution),
        ``.npy``, or ``.png`` (2D only; instances as 16-bit when they fit). A single z plane is
        written as a (Y, X) image, a stack as (Z, Y, X).
    instances
        Write instance labels (uint32, 0 = background) instead of the class-index map
        (uint8, 0 = background, ``k`` = class ``k`` of ``masks.class_names``).
    attrs
        Provenance (:func:`segmentation_provenance`) for ``<out>.provenance.json``; the
        output's own description is added.

    Returns
    -------
    Path
        ``out_path``.
    """
    path = check_output(out_path)
    if instances:
        data = masks.instances if masks.instances is not None else label_instances(masks.semantic)
        data = data.astype(np.uint32, copy=False)
    else:
        data = class_index_map(masks.semantic)
    if data.shape[0] == 1:
        data = data[0]
    suffix = path.suffix.lower()
    if suffix == ".png":
        _check_png(data, path)  # before anything is written
    classes = list(masks.class_names)
    provenance = dict(attrs or {})
    provenance["output"] = {
        "path": str(path),
        "content": "instances" if instances else "class_index",
        "dtype": "uint16" if instances and suffix == ".png" else str(data.dtype),
        "shape": list(data.shape),
        "classes": {str(k + 1): name for k, name in enumerate(classes)},
        "voxel_nm": list(masks.voxel_nm),
    }
    _write_sidecar(path, provenance)
    if suffix in (".tif", ".tiff"):
        return _atomic(lambda tmp: _write_tiff(data, tmp, masks.voxel_nm, classes), path)
    if suffix == ".png":
        return _atomic(lambda tmp: _write_png(data, tmp), path)
    return _atomic(lambda tmp: _write_npy(data, tmp), path)


def _write_sidecar(path: Path, provenance: dict) -> Path:
    final = path.with_name(path.name + ".provenance.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_sidecar(path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}"), provenance)
    os.replace(tmp, final)
    return final


def _to_uint8(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, [0.5, 99.8])
    scaled = (image.astype(np.float64) - low) / max(high - low, 1e-12)
    return (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def overlay_png(image2d: np.ndarray, class_map2d: np.ndarray, path: str | os.PathLike) -> Path:
    """The image in grey with each class's outlines in its own colour, as an RGB PNG.

    Parameters
    ----------
    image2d
        The image (Y, X), any real type; shown between its 0.5th and 99.8th percentiles.
    class_map2d
        The class-index map (Y, X): 0 background, ``k`` class ``k`` (colours: red, green,
        blue, yellow, magenta, cyan, then repeating).
    path
        The PNG to write.
    """
    from PIL import Image
    from scipy import ndimage

    image2d, class_map2d = np.asarray(image2d), np.asarray(class_map2d)
    if image2d.ndim != 2 or image2d.shape != class_map2d.shape:
        raise VolumeError(
            f"overlay needs a 2D image and class map of one shape, got {image2d.shape} "
            f"and {class_map2d.shape}"
        )
    rgb = np.repeat(_to_uint8(image2d)[..., None], 3, axis=-1)
    for k in np.unique(class_map2d[class_map2d > 0]):
        mask = class_map2d == k
        edge = mask & ~ndimage.binary_erosion(mask, border_value=1)
        rgb[edge] = _COLOURS[(int(k) - 1) % len(_COLOURS)]
    return _atomic(lambda tmp: Image.fromarray(rgb).save(tmp, format="PNG"), Path(path))


def segmentation_provenance(
    result: SegmentResult,
    *,
    image: str | os.PathLike | None = None,
    settings: dict | None = None,
    registry: Registry | None = None,
) -> dict:
    """A provenance record for a segmentation: input, method, pixel sizes, versions.

    Parameters
    ----------
    result
        What :func:`~subcell.pipeline.segment.run_segment` returned.
    image
        The input file.
    settings
        The options the segmentation ran with (recorded as its config).
    registry
        Where the plugins used are looked up (their package versions are recorded).
    """
    from subcell.registry import get_registry

    registry = registry or get_registry()
    method = result.method
    if method.model is not None:
        used = [registry.get("network", method.model.card["network"]["plugin"])]
    else:
        used = [registry.get("segmenter", method.name)]
    provenance = record(
        settings or {},
        plugins=used,
        inputs={} if image is None else {"image": str(Path(image).resolve())},
        step="segment",
    )
    provenance["method"] = method.describe()
    provenance["pixel_nm"] = result.pixels.as_dict()
    provenance["seconds"] = round(result.seconds, 3)
    return provenance


def segment_file(
    image: str | os.PathLike,
    method: str | os.PathLike,
    out: str | os.PathLike,
    *,
    pixel_nm: float | None = None,
    instances: bool = False,
    device: str | None = None,
    overlay: str | os.PathLike | None = None,
    registry: Registry | None = None,
    tta: bool = False,
) -> SegmentResult:
    """Read an image, segment it, write the mask (with provenance) and optionally an overlay.

    Parameters
    ----------
    image
        TIFF, PNG, NumPy or zarr file that fits in memory.
    method, pixel_nm, instances, device, registry, tta
        As :func:`~subcell.pipeline.segment.segment_volume`.
    out
        The mask file (:func:`write_segmentation`).
    overlay
        Also write the image with class outlines as a PNG; a stack is shown as its
        maximum-intensity projection (first channel) with the outlines of the projected mask.
    """
    from subcell.pipeline.volumes import read_volume

    volume = read_volume(image, registry=registry)
    check_output(out, volume.shape[-3])
    if overlay is not None and Path(overlay).suffix.lower() != ".png":
        raise VolumeError(f"{overlay}: the overlay is a PNG; name it .png")
    result = run_segment(
        volume,
        method,
        pixel_nm=pixel_nm,
        instances=instances,
        device=device,
        registry=registry,
        tta=tta,
    )
    settings = {
        "method": str(method),
        "pixel_nm": pixel_nm,
        "instances": instances,
        "device": device,
        "tta": tta,
    }
    provenance = segmentation_provenance(result, image=image, settings=settings, registry=registry)
    write_segmentation(result.masks, out, instances=instances, attrs=provenance)
    if overlay is not None:
        data = np.asarray(volume.data)
        plane = data[(0,) * (data.ndim - 3)].max(axis=0)  # first channel (and time point), MIP
        overlay_png(plane, class_index_map(result.masks.semantic).max(axis=0), overlay)
    return result
