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

from subcell.core.errors import ConfigError, VolumeError
from subcell.pipeline.run import context
from subcell.pipeline.schemas import SegmentConfig
from subcell.pipeline.segment_dataset import is_dataset, prediction_group, segment_dataset

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
    tta
        Test-time augmentation for learned models (``subcell segment --tta``).
    """

    config: SegmentConfig | None = None
    model_name: str = ""
    split: Split = "all"
    instances: bool = False
    pixel_nm: float = attrs.field(default=0.0, converter=float, validator=_non_negative)
    overlays: bool = False
    device: str = attrs.field(default="cpu", metadata={"hash": False})
    tta: bool = False


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
            tta=self.config.tta,
        )
        return out

    def _dataset(self, path: Path, method, out: Path, registry) -> Path:
        return segment_dataset(
            path,
            method,
            out,
            split=self.config.split,
            instances=self.config.instances,
            pixel_nm=self.config.pixel_nm or None,
            device=self.config.device,
            registry=registry,
            progress=context.show_progress(),
            tta=self.config.tta,
        )


def file_stem(path: Path) -> str:
    """A file's name without its suffixes (``.ome.zarr`` and ``.ome.tif`` counted as one)."""
    name = path.name
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


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
