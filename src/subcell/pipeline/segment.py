"""Segment an image that fits in memory with a learned model or a classical segmenter.

:func:`segment_volume` resolves the method (model directory > bundled model > ``segmenter``
plugin), checks the image, and runs the per-array steps of
:mod:`subcell.pipeline.segment_steps` (which the chunked path shares). Files in and out:
:mod:`subcell.pipeline.segment_io`. Pixel-size rules: :mod:`subcell.pipeline.segment_steps`.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from subcell.core.errors import SubcellError, VolumeError
from subcell.core.model import AXES_4D, Masks, Volume
from subcell.core.volumes import check_volume
from subcell.models import LoadedModel, ModelError, bundled_names, load, resolve, summary
from subcell.models.predict import class_masks, normalize
from subcell.pipeline.segment_steps import (
    PixelSizes,
    check_channels,
    count_objects,
    label_instances,
    pixel_sizes,
    probabilities_on_grid,
)

if TYPE_CHECKING:
    from subcell.registry import Registry

__all__ = [
    "Method",
    "PixelSizes",
    "SegmentResult",
    "check_channels",
    "check_tta",
    "count_objects",
    "label_instances",
    "resolve_method",
    "run_segment",
    "segment_volume",
]


@attrs.frozen(eq=False)
class Method:
    """What segments: a loaded model or a ``segmenter`` plugin.

    Attributes
    ----------
    kind
        ``"model"`` or ``"segmenter"``.
    name
        The model's card name or the plugin name.
    model
        The loaded model (``kind == "model"``).
    segmenter
        The segmenter object (``kind == "segmenter"``).
    """

    kind: str
    name: str
    model: LoadedModel | None = None
    segmenter: Any = None

    def describe(self) -> dict:
        """A JSON-ready description for provenance: kind, name, path and card summary."""
        if self.model is None:
            return {"kind": self.kind, "name": self.name}
        return {
            "kind": self.kind,
            "name": self.name,
            "path": str(Path(self.model.path).resolve()),
            "card": summary(self.model.card),
        }


@attrs.frozen(eq=False)
class SegmentResult:
    """A segmentation and how it was made.

    Attributes
    ----------
    masks
        The masks (and instances when asked for), on the input's grid.
    method
        What segmented.
    pixels
        The pixel sizes in use.
    seconds
        Wall time of the segmentation.
    """

    masks: Masks
    method: Method
    pixels: PixelSizes
    seconds: float


def resolve_method(
    method: str | os.PathLike | LoadedModel | Method,
    *,
    device: str | None = None,
    registry: Registry | None = None,
) -> Method:
    """Find what ``method`` names: a model directory, a bundled model, or a segmenter plugin.

    Resolution order: an existing directory, then a bundled model name, then a
    ``segmenter`` plugin name.

    Raises
    ------
    ModelError
        A model that cannot be loaded (corrupt or foreign weights, a pickled file).
    SubcellError
        An unknown name; the message lists the bundled models and segmenter plugins.
    """
    from subcell.registry import get_registry

    if isinstance(method, Method):
        return method
    if isinstance(method, LoadedModel):
        return Method("model", method.name, model=method)
    _check_device(device)
    text, path = str(method), Path(method)
    if path.is_dir() or text in bundled_names():
        model = load(path if path.is_dir() else text, device=device or "cpu", registry=registry)
        return Method("model", model.name, model=model)
    registry = registry or get_registry()
    segmenters = registry.names("segmenter")
    if text in segmenters:
        return Method("segmenter", text, segmenter=registry.create("segmenter", text))
    if path.is_file():
        resolve(path)  # names pickled PyTorch files as such
        raise ModelError(
            f"{path}: a model is a directory holding card.json and model.safetensors, "
            f"not a single file"
        )
    raise SubcellError(
        f"{text}: no such model directory, bundled model or segmenter (bundled models: "
        f"{', '.join(bundled_names()) or 'none installed'}; segmenters: "
        f"{', '.join(segmenters) or 'none'})"
    )


def check_tta(method: Method, tta: bool) -> None:
    """Refuse test-time augmentation for a classical segmenter (it has no probabilities)."""
    if tta and method.model is None:
        raise SubcellError(
            f"test-time augmentation (--tta) is for learned models; {method.name!r} is a "
            f"classical segmenter"
        )


def _check_device(device: str | None) -> None:
    if device and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SubcellError(f"device {device!r}: no CUDA device is available; use cpu")


def _in_memory(volume: Volume) -> np.ndarray:
    """The (C, Z, Y, X) data as a numpy array; a single time point is accepted."""
    data = volume.data
    if volume.axes != AXES_4D:
        if data.shape[0] != 1:
            raise VolumeError(
                f"a time series of {data.shape[0]} frames: segment one time point at a time"
            )
        data = data[0]
    # Rejects empty images and NaN/inf, which would make every percentile NaN.
    return check_volume(np.asarray(data), name="image")


def _constant_channels(data: np.ndarray) -> list[int]:
    return [c for c in range(data.shape[0]) if data[c].min() == data[c].max()]


def _warn_constant(data: np.ndarray, constant: list[int]) -> bool:
    """Warn about constant channels; True when the whole image is constant (nothing to find)."""
    if len(constant) == data.shape[0]:
        what = (
            f"the image is constant ({float(data.min()):g})"
            if data.shape[0] == 1
            else "every channel of the image is constant"
        )
        warnings.warn(f"{what}: nothing to segment, the mask is empty", stacklevel=3)
        return True
    if constant:
        warnings.warn(
            f"channel(s) {', '.join(map(str, constant))} of the image are constant",
            stacklevel=3,
        )
    return False


def _segment_model(
    model: LoadedModel, data: np.ndarray, voxel_nm, pixel_nm, device, tta: bool
) -> tuple[np.ndarray, PixelSizes]:
    card = model.card
    check_channels(card, data.shape[0])
    pixels = pixel_sizes(voxel_nm, pixel_nm=pixel_nm, card=card)
    n_classes = len(card["classes"])
    if _warn_constant(data, _constant_channels(data)):
        return np.zeros((n_classes, *data.shape[1:]), np.uint8), pixels
    normalized, _ = normalize(data, card["normalization"])
    probs = probabilities_on_grid(model, normalized, pixels.scale, device=device, tta=tta)
    return class_masks(probs, card["head"], float(card["threshold"])), pixels


def _segment_plugin(
    method: Method, data: np.ndarray, volume: Volume, pixel_nm
) -> tuple[Masks, PixelSizes]:
    pixels = pixel_sizes(volume.voxel_nm, pixel_nm=pixel_nm)
    if _warn_constant(data, _constant_channels(data)):
        # Segmenters refuse a constant image; the empty answer needs their class name.
        name = getattr(getattr(method.segmenter, "config", None), "class_name", "foreground")
        empty = np.zeros((1, *data.shape[1:]), np.uint8)
        return Masks(empty, (name,), pixels.used_nm), pixels
    masks = method.segmenter.segment(
        Volume(data, pixels.used_nm, channel_names=volume.channel_names)
    )
    return masks, pixels


def run_segment(
    volume: Volume,
    method: str | os.PathLike | LoadedModel | Method,
    *,
    pixel_nm: float | None = None,
    instances: bool = False,
    device: str | None = None,
    registry: Registry | None = None,
    tta: bool = False,
) -> SegmentResult:
    """Segment an in-memory image or volume; the masks and how they were made.

    Parameters are those of :func:`segment_volume`.

    Returns
    -------
    SegmentResult
        The masks, the method, the pixel sizes in use, and the time taken.
    """
    if pixel_nm is not None and not pixel_nm > 0:
        raise SubcellError(f"pixel_nm must be a positive number of nm, got {pixel_nm}")
    start = time.perf_counter()
    resolved = resolve_method(method, device=device, registry=registry)
    check_tta(resolved, tta)
    data = _in_memory(volume)
    if resolved.model is not None:
        semantic, pixels = _segment_model(
            resolved.model, data, volume.voxel_nm, pixel_nm, device, tta
        )
        masks = Masks(semantic, resolved.model.card["classes"], pixels.used_nm)
    else:
        masks, pixels = _segment_plugin(resolved, data, volume, pixel_nm)
    labels = None
    if instances:
        # A segmenter's own instances win: they match its semantic mask (small objects
        # removed alike); a model's are the connected components of each class.
        labels = masks.instances if masks.instances is not None else label_instances(masks.semantic)
        labels = labels.astype(np.uint32, copy=False)
    masks = Masks(masks.semantic, masks.class_names, pixels.used_nm, labels)
    return SegmentResult(masks, resolved, pixels, time.perf_counter() - start)


def segment_volume(
    volume: Volume,
    method: str | os.PathLike | LoadedModel,
    *,
    pixel_nm: float | None = None,
    instances: bool = False,
    device: str | None = None,
    registry: Registry | None = None,
    tta: bool = False,
) -> Masks:
    """Segment an image or volume that fits in memory.

    Parameters
    ----------
    volume
        A ``CZYX`` volume (or ``TCZYX`` with one time point); 2D images have ``Z == 1``.
        A 2D model segments the z planes of a stack one by one.
    method
        A model directory, a bundled model name (``subcell models``), a ``segmenter``
        plugin name (``otsu``, ``adaptive``, ...) or a loaded model. A directory wins over
        a bundled name, a bundled name over a plugin.
    pixel_nm
        The image's in-plane pixel size in nm, overriding its metadata.
    instances
        Also number the connected components of each class (``Masks.instances``).
    device
        ``"cpu"`` (default), ``"cuda"``, or any torch device, for learned models.
    registry
        Plugin registry; the process-wide one if None.
    tta
        Test-time augmentation (learned models): average the probabilities over the flips
        and 90-degree turns the model was trained with (up to 8 views, 8 times the work).

    Returns
    -------
    Masks
        ``semantic`` (K, Z, Y, X) uint8 on the input's grid, with the pixel size in use.

    Raises
    ------
    VolumeError
        The image does not have the model's channel count, or has a time axis.
    ModelError
        The model cannot be loaded.
    SubcellError
        ``method`` names nothing known, or ``tta`` is asked of a classical segmenter.

    Warns
    -----
    UserWarning
        The pixel size is unstated or differs from the model's; the image is constant.
    """
    return run_segment(
        volume,
        method,
        pixel_nm=pixel_nm,
        instances=instances,
        device=device,
        registry=registry,
        tta=tta,
    ).masks
