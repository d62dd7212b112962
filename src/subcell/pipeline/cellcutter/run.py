"""The cellcutter step: read the images, find markers and foreground, train or load the
network, integrate the patches into cell labels, write them with provenance."""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs
import numpy as np

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.model import Masks, Volume
from subcell.core.provenance import record
from subcell.pipeline.cellcutter.model_dir import CellCutterModel, load_model, save_model
from subcell.pipeline.segment_io import check_output, write_segmentation
from subcell.registry import Registry, get_registry

__all__ = ["CellCutterResult", "cell_volume", "run_cellcutter"]

_NUCLEUS = "nucleus"


@attrs.frozen(eq=False)
class CellCutterResult:
    """What a cellcutter run produced.

    Attributes
    ----------
    masks
        ``cell`` semantic mask and cell instances, on the image's grid.
    markers
        ``(M, 2)`` (y, x) markers in pixels; instance ``i + 1`` grew from marker ``i``.
    mask
        The foreground mask used.
    history
        Per-epoch loss of the training (empty when a saved model was applied).
    seconds
        Wall time.
    """

    masks: Masks
    markers: np.ndarray
    mask: np.ndarray
    history: list[float]
    seconds: float


def cell_volume(image: Volume, nuclei: Volume | None) -> Volume:
    """One single-plane volume: the image's channels, then the nucleus channel.

    Raises
    ------
    VolumeError
        Several planes, or nucleus and cell images of different shapes.
    """
    if image.shape[-3] != 1:
        raise VolumeError(f"cellcutter segments 2D images; this one has {image.shape[-3]} planes")
    data = np.asarray(image.data, dtype=np.float32)
    names = [n for n in image.channel_names]
    if nuclei is None:
        return Volume(data, image.voxel_nm, channel_names=names)
    if nuclei.shape[-2:] != image.shape[-2:] or nuclei.shape[-3] != 1:
        raise VolumeError(
            f"the nucleus image is {nuclei.shape[-3:]} (Z, Y, X) and the cell image "
            f"{image.shape[-3:]}; they must have the same shape"
        )
    nucleus = np.asarray(nuclei.data, dtype=np.float32)[:1]
    names = [n if n != _NUCLEUS else f"{n}_image" for n in names] + [_NUCLEUS]
    return Volume(np.concatenate([data, nucleus]), image.voxel_nm, channel_names=names)


def run_cellcutter(
    image: Volume,
    out: str | os.PathLike | None = None,
    *,
    nuclei: Volume | None = None,
    method_config=None,
    mask: np.ndarray | None = None,
    markers: np.ndarray | None = None,
    model: str | os.PathLike | None = None,
    synthetic_nuclei: str | os.PathLike | None = None,
    save_model_to: str | os.PathLike | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    progress=None,
    inputs: dict | None = None,
    registry: Registry | None = None,
) -> CellCutterResult:
    """Segment the cells of one image with cellcutter (or its watershed baseline).

    Parameters
    ----------
    image
        The whole-cell image (channels are cell stains; a channel named ``nucleus`` is the
        nuclear stain).
    out
        Instance labels to write (``.tif``, ``.png``, ``.npy``) with a provenance sidecar;
        None writes nothing.
    nuclei
        A separate nuclear-stain image of the same shape (its first channel is used).
    method_config
        The ``cellcutter`` or ``marker_watershed`` segmenter config; default cellcutter's.
    mask, markers
        Foreground mask and ``(M, 2)`` markers to use instead of finding them.
    model
        A saved cellcutter model to apply instead of training on this image.
    synthetic_nuclei
        A subcell segmentation model (name or folder) predicting nuclei from the cell image:
        markers for images without a nuclear stain.
    save_model_to
        Save the trained network here.
    overwrite
        Replace existing outputs.
    device
        Torch device.
    progress
        Called with ``(epoch, loss)`` after each training epoch.
    inputs
        Input paths by name, for the provenance record.

    Raises
    ------
    VolumeError
        Bad images, no markers, markers outside the image, shape mismatches.
    ConfigError
        Options that do not go together; outputs that exist.
    """
    start = time.perf_counter()
    registry = registry or get_registry()
    if out is not None:
        _check_out(out, overwrite)
    if save_model_to is not None and Path(save_model_to).exists() and not overwrite:
        raise ConfigError(f"{save_model_to}: exists; use --overwrite to replace it")
    if model is not None and save_model_to is not None:
        raise ConfigError("--save-model saves a network trained here; with --model none is")
    loaded = load_model(model, registry) if model is not None else None
    name, config = _method(method_config, loaded, registry)
    if (loaded or save_model_to) and name != "cellcutter":
        raise ConfigError(f"--model and --save-model need the cellcutter method, not {name}")
    segmenter = registry.create("segmenter", name, config)
    volume = cell_volume(image, nuclei)
    if loaded is not None:
        _check_channels(loaded, volume)
    if markers is None and synthetic_nuclei is not None:
        markers = _synthetic_markers(volume, synthetic_nuclei, segmenter, device, registry)
    markers, mask = segmenter.markers_and_mask(volume, markers, mask)
    history: list[float] = []
    if name == "marker_watershed":
        masks = segmenter.segment(volume, markers=markers, mask=mask)
    elif loaded is not None:
        masks = segmenter.apply(loaded.network, volume, markers, mask, device=device)
    else:
        network, history = segmenter.fit(
            volume, markers=markers, mask=mask, progress=progress, device=device
        )
        masks = segmenter.apply(network, volume, markers, mask, device=device)
    seconds = time.perf_counter() - start
    provenance = _provenance(name, config, inputs, loaded, history, seconds, registry)
    if save_model_to is not None:
        training = {"history": history, "seconds": round(seconds, 3), "inputs": inputs or {}}
        save_model(
            save_model_to,
            network,
            config,
            channel_names=volume.channel_names,
            pixel_nm=volume.voxel_nm[1:],
            training=training,
            provenance=provenance,
            overwrite=overwrite,
        )
    if out is not None:
        write_segmentation(masks, out, instances=True, attrs=provenance)
    return CellCutterResult(masks, markers, mask, history, seconds)


def _check_out(out, overwrite: bool) -> None:
    path = check_output(out)
    if path.exists() and not overwrite:
        raise ConfigError(f"{path}: exists; use --overwrite to replace it, or another path")


def _method(method_config, loaded: CellCutterModel | None, registry):
    """The segmenter name and config: a saved model's own config wins (it built the net)."""
    if loaded is not None:
        from subcell.core.structuring import structure

        cls = registry.config_class("segmenter", "cellcutter")
        return "cellcutter", structure(loaded.card["method"], cls, registry.config_class)
    if method_config is None:
        return "cellcutter", registry.config_class("segmenter", "cellcutter")()
    for name in ("cellcutter", "marker_watershed"):
        if isinstance(method_config, registry.config_class("segmenter", name)):
            return name, method_config
    raise ConfigError("the cellcutter step needs method: {plugin: cellcutter | marker_watershed}")


def _check_channels(loaded: CellCutterModel, volume: Volume) -> None:
    expected = list(loaded.card["channel_names"])
    if len(expected) != len(volume.channel_names):
        raise VolumeError(
            f"{loaded.path}: the model was trained on {len(expected)} channels "
            f"({', '.join(expected)}); this input has {len(volume.channel_names)} "
            f"({', '.join(volume.channel_names)})"
        )


def _synthetic_markers(volume: Volume, model, segmenter, device, registry) -> np.ndarray:
    """Markers from the nuclei a segmentation model predicts on the whole-cell channels."""
    from subcell.pipeline.segment import run_segment

    keep = [c for c, n in enumerate(volume.channel_names) if n != _NUCLEUS]
    cells = Volume(
        np.asarray(volume.data)[keep],
        volume.voxel_nm,
        channel_names=[volume.channel_names[c] for c in keep],
    )
    masks = run_segment(cells, model, device=device, registry=registry).masks
    names = list(masks.class_names)
    k = names.index(_NUCLEUS) if _NUCLEUS in names else 0
    return segmenter.markers_from_nuclei(masks.semantic[k, 0].astype(np.float32))


def _provenance(name, config, inputs, loaded, history, seconds, registry) -> dict:
    provenance = record(
        config,
        seed=getattr(getattr(config, "network", None), "seed", None),
        plugins=[registry.get("segmenter", name)],
        inputs={k: str(v) for k, v in (inputs or {}).items()},
        step="cellcutter",
    )
    provenance["method"] = name
    provenance["model"] = None if loaded is None else str(loaded.path)
    provenance["final_loss"] = history[-1] if history else None
    provenance["seconds"] = round(seconds, 3)
    return provenance
