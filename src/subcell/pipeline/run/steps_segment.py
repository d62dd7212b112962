"""Pipeline step ``segment`` (``evaluate`` is in :mod:`.steps_evaluate`).

``segment`` takes a simulated dataset (one split or all of it), a folder of images or one
image. A dataset becomes a prediction group ``prediction.zarr`` (``mask`` (N, [T,] K, Z, Y,
X) uint8, ``instances`` with ``instances: true``) that ``evaluate`` scores against the
dataset; a folder becomes ``masks/`` with one TIFF per image; one image ``mask.tif``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
import numpy as np

from subcell.core.errors import ConfigError, VolumeError
from subcell.pipeline.run import context
from subcell.pipeline.schemas import SegmentConfig

__all__ = [
    "SegmentStep",
    "SegmentStepConfig",
    "file_stem",
    "image_files",
    "is_dataset",
    "prediction_group",
]

Split = Literal["all", "train", "val", "test"]


def _non_negative(instance, attribute, value):
    if value < 0:
        raise ValueError(f"'{attribute.name}' must be >= 0 (0: from the image), got {value}")


@attrs.frozen(kw_only=True)
class SegmentStepConfig:
    """The ``segment`` step: masks of images (``subcell segment``).

    What segments: the ``model`` input (a model folder, e.g. a train step's output), else
    ``model_name``, else the config's segmenter.

    Attributes
    ----------
    config
        A segment config (``segmenter: {plugin: otsu, ...}``): the classical baseline used
        when no model is given.
    model_name
        A bundled model (``subcell models``) instead of the ``model`` input.
    split
        With a dataset input: segment this split only (``all``: every image).
    instances
        Also write instance labels (a dataset's ``instances`` array; for files, instance
        labels instead of the class-index map).
    pixel_nm
        The images' pixel size in nm; 0: from their metadata.
    overlays
        With file inputs, also write each image with class outlines as a PNG.
    device
        ``cpu`` or ``cuda`` for learned models; not part of the reuse hash.
    """

    config: SegmentConfig | None = None
    model_name: str = ""
    split: Split = "all"
    instances: bool = False
    pixel_nm: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    overlays: bool = False
    device: str = attrs.field(default="cpu", metadata={"hash": False})


class SegmentStep:
    """Segments a dataset, a folder of images or one image (see the module notes)."""

    inputs = {"images": "required", "model": "optional"}
    outputs = ("masks",)

    def __init__(self, config: SegmentStepConfig) -> None:
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        from subcell.pipeline.segment import resolve_method

        registry = context.registry()
        method = resolve_method(
            self._method(inputs, registry), device=self.config.device, registry=registry
        )
        images = Path(inputs["images"])
        if is_dataset(images):
            return {"masks": self._dataset(images, method, out / "prediction.zarr", registry)}
        if self.config.split != "all":
            raise ConfigError(f"segment: split {self.config.split!r} needs a dataset input")
        if images.is_dir():
            folder = out / "masks"
            for image in image_files(images, registry):
                self._file(image, method, folder / f"{file_stem(image)}.tif", registry)
            return {"masks": folder}
        return {"masks": self._file(images, method, out / "mask.tif", registry)}

    def _method(self, inputs: dict, registry):
        from subcell.pipeline.segment import Method

        if "model" in inputs:
            if self.config.model_name:
                raise ConfigError("segment: give a model input or model_name, not both")
            return inputs["model"]
        if self.config.model_name:
            return self.config.model_name
        if self.config.config is None:
            return "otsu"  # the packaged segment default
        spec = self.config.config.segmenter
        segmenter = registry.create("segmenter", spec.plugin, spec.config)
        return Method("segmenter", spec.plugin, segmenter=segmenter)

    def _file(self, image: Path, method, out: Path, registry) -> Path:
        from subcell.pipeline.segment_io import segment_file

        overlay = None
        if self.config.overlays:
            single = out.name == "mask.tif"
            overlay = out.with_name("overlay.png") if single else out.parent.parent / "overlays"
            overlay = overlay if single else overlay / f"{out.stem}.png"
        segment_file(
            image,
            method,
            out,
            pixel_nm=self.config.pixel_nm or None,
            instances=self.config.instances,
            device=self.config.device,
            overlay=overlay,
            registry=registry,
        )
        return out

    def _dataset(self, path: Path, method, out: Path, registry) -> Path:
        from subcell.core.model import Volume
        from subcell.pipeline.dataset import open_dataset
        from subcell.pipeline.segment import run_segment

        data = open_dataset(path)
        split = self.config.split
        chosen = list(range(len(data))) if split == "all" else data.split(split)
        if not chosen:
            raise VolumeError(f"{path}: the {self.config.split} split holds no images")
        lead = tuple(data.images.shape[1:-4])  # (T,) for videos, else ()
        group = None
        for row, index in enumerate(chosen):
            for frame in np.ndindex(*lead):
                volume = Volume(
                    np.asarray(data.images[(index, *frame)]),
                    data.voxel_nm,
                    channel_names=data.channel_names,
                )
                masks = run_segment(
                    volume,
                    method,
                    pixel_nm=self.config.pixel_nm or None,
                    instances=self.config.instances,
                    device=self.config.device,
                    registry=registry,
                ).masks
                if group is None:
                    group = prediction_group(
                        out,
                        (len(chosen), *lead),
                        masks,
                        source=path,
                        split=split,
                        images=chosen,
                        instances=self.config.instances,
                    )
                group["mask"][(row, *frame)] = masks.semantic
                if self.config.instances:
                    group["instances"][(row, *frame)] = masks.instances
        return out


def prediction_group(
    out: Path,
    lead: tuple[int, ...],
    masks,
    *,
    source: Path,
    split: str,
    images,
    instances: bool,
    attributes: dict | None = None,
):
    """Create ``prediction.zarr`` laid out like a dataset's masks (one chunk per item).

    Parameters
    ----------
    out
        The group's path.
    lead
        (N,) or (N, T): images (and frames) it holds.
    masks
        The first item's :class:`~subcell.core.model.Masks`: class names, voxel size and
        the (K, Z, Y, X) shape of every item.
    source, split, images
        The dataset, the split and the dataset indices of the N images (attributes).
    instances
        Also create the ``instances`` array (N, [T,] Z, Y, X) uint32.
    attributes
        More attributes of the group.

    Returns
    -------
    zarr.Group
        With ``mask`` (N, [T,] K, Z, Y, X) uint8 and, with ``instances``, ``instances``.
    """
    import zarr

    group = zarr.open_group(str(out), mode="w")
    spatial = tuple(masks.semantic.shape[1:])
    k = masks.semantic.shape[0]
    ones = (1,) * (len(lead) - 1)
    group.create_array(
        "mask", shape=(*lead, k, *spatial), chunks=(1, *ones, k, *spatial), dtype="uint8"
    )
    if instances:
        group.create_array(
            "instances", shape=(*lead, *spatial), chunks=(1, *ones, *spatial), dtype="uint32"
        )
    group.attrs.update(
        {
            "format": "subcell-prediction",
            "class_names": list(masks.class_names),
            "voxel_nm": list(masks.voxel_nm),
            "source": str(source),
            "split": split,
            "images": [int(i) for i in images],
            **(attributes or {}),
        }
    )
    return group


def file_stem(path: Path) -> str:
    """A file's name without its suffixes (``.ome.zarr`` and ``.ome.tif`` counted as one)."""
    name = path.name
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_dataset(path: Path) -> bool:
    """Whether ``path`` is a simulated dataset (``subcell simulate``)."""
    from subcell.pipeline.dataset import FORMAT

    if not (path / "zarr.json").is_file():
        return False
    import zarr

    try:
        return zarr.open_group(str(path), mode="r").attrs.get("format") == FORMAT
    except Exception:  # noqa: BLE001 - any zarr that is not a readable group is no dataset
        return False


def image_files(folder: Path, registry) -> list[Path]:
    """The images in a folder that some reader can read, sorted by name (hidden files,
    JSON sidecars and step records left out)."""
    readers = [r.create() for r in registry.all("reader")]
    found = [
        p
        for p in sorted(folder.iterdir())
        if not p.name.startswith(".")
        and not p.name.endswith(".json")
        and any(r.can_read(p) for r in readers)
    ]
    if not found:
        raise VolumeError(f"{folder}: no image that a reader recognises")
    return found
