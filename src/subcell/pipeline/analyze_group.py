"""``subcell analyze`` on every image of a prediction group or a simulated dataset.

A prediction group (``subcell segment DATA.zarr``, the segment step's ``prediction.zarr``)
and a dataset hold ``mask`` / ``masks`` (N, K, Z, Y, X) uint8 with ``class_names`` and
optional ``instances`` (N, Z, Y, X). Each image is analysed into ``out/<index>/`` (the
dataset index, zero-padded). A plugin that measures several classes (``multiclass = True``,
e.g. ``compartments``) gets each image's masks with their classes
(:func:`~subcell.pipeline.analyze.analyze_masks`); any other plugin gets one label image:
the instances, else the connected components of each class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.model import Masks, Volume
from subcell.registry import Registry, get_registry

__all__ = ["analyze_group", "intensity_source", "label_group"]


def label_group(path: str | Path):
    """(masks, instances or None, attributes) of a prediction group or dataset, else None.

    ``masks`` and ``instances`` are the zarr arrays (read one image at a time). OME-Zarr
    images and other zarr groups give None (they are read as files).
    """
    path = Path(path)
    if not (path.is_dir() and (path / "zarr.json").is_file()):
        return None
    import zarr

    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception:  # noqa: BLE001 - an OME-Zarr image or other zarr: read as a file
        return None
    name = "mask" if "mask" in group else "masks" if "masks" in group else None
    if name is None or "multiscales" in dict(group.attrs).get("ome", group.attrs):
        return None
    instances = group["instances"] if "instances" in group else None
    return group[name], instances, dict(group.attrs)


def intensity_source(path: str | Path | None, shape) -> Callable[[int], Volume] | None:
    """``image(index)``: a dataset's image as a Volume, for a prediction group's rows.

    Raises
    ------
    ConfigError
        ``path`` is not a dataset.
    VolumeError
        Its images differ from ``shape`` (Z, Y, X).
    """
    if path is None:
        return None
    from subcell.pipeline.dataset import open_dataset
    from subcell.pipeline.segment_dataset import is_dataset

    path = Path(path)
    if not is_dataset(path):
        raise ConfigError(f"{path}: with a prediction group, the image is the dataset it segmented")
    data = open_dataset(path)
    if tuple(data.images.shape[-3:]) != tuple(shape):
        raise VolumeError(
            f"{path}: images are {tuple(data.images.shape[-3:])} (Z, Y, X), the labels "
            f"{tuple(shape)}"
        )
    return lambda index: Volume(
        np.asarray(data.images[index]), data.voxel_nm, channel_names=data.channel_names
    )


def analyze_group(
    path: str | Path,
    out_dir: str | Path,
    *,
    plugin: str,
    pixel_nm: float | None = None,
    z_nm: float | None = None,
    image: str | Path | None = None,
    condition: str | None = None,
    overrides: Iterable[str] = (),
    plots: bool = True,
    registry: Registry | None = None,
) -> dict[str, object]:
    """Analyse every image of a prediction group or dataset into ``out_dir/<index>``.

    Parameters
    ----------
    path
        The group (see :func:`label_group`).
    out_dir
        Parent of the per-image folders (``write_analysis`` layout each).
    plugin, overrides, condition, plots
        As for :func:`~subcell.pipeline.analyze.analyze_file`.
    pixel_nm, z_nm
        Override the group's ``voxel_nm``.
    image
        The dataset a prediction group was segmented from (intensity columns), or None.

    Returns
    -------
    dict
        Folder name -> :class:`~subcell.pipeline.analyze.Analysis`.

    Raises
    ------
    VolumeError
        Not a group, an incomplete one, a time series, no pixel size.
    """
    from subcell.pipeline.analyze import is_multiclass
    from subcell.pipeline.analyze_io import resolve_voxel, write_analysis

    registry = registry or get_registry()
    path = Path(path)
    masks, instances, attributes = _open_group(path)
    voxel = resolve_voxel(
        attributes.get("voxel_nm", (1.0, 1.0, 1.0)), masks.shape[-3:], pixel_nm, z_nm, path
    )
    names = _image_names(masks.shape[0], attributes)
    width = len(str(max((int(n) for n in names), default=0)))
    intensity = intensity_source(image, masks.shape[-3:])
    class_names = _class_names(attributes, masks) if is_multiclass(plugin, registry) else None
    common = {"overrides": overrides, "condition": condition, "registry": registry}
    analyses = {}
    for row, name in enumerate(names):
        ids = None if instances is None else np.asarray(instances[row])
        analysis = _analyze_item(
            np.asarray(masks[row]), ids, class_names, voxel, plugin,
            image=None if intensity is None else intensity(int(name)),
            inputs={"labels": f"{path.resolve()}[{row}]"}, **common,
        )  # fmt: skip
        folder = name.zfill(width)
        write_analysis(analysis, Path(out_dir) / folder, plots=plots)
        analyses[folder] = analysis
    return analyses


def _analyze_item(semantic, ids, class_names, voxel, plugin, **kwargs):
    """One image: its masks with their classes (``class_names`` given), else one label image."""
    from subcell.pipeline.analyze import analyze_labels, analyze_masks

    if class_names is not None:
        masks = Masks((semantic > 0).astype(np.uint8), class_names, voxel, instances=ids)
        return analyze_masks(masks, plugin, **kwargs)
    labels = ids if ids is not None else _components(semantic)
    return analyze_labels(labels.astype(np.int64), voxel, plugin, **kwargs)


def _open_group(path: Path):
    """:func:`label_group`, checked: complete, one (N, K, Z, Y, X) mask array."""
    found = label_group(path)
    if found is None:
        raise VolumeError(f"{path}: not a prediction group or dataset (no 'mask' array)")
    masks, _, attributes = found
    if attributes.get("complete") is False:
        raise VolumeError(f"{path}: incomplete (the run that wrote it stopped); write it again")
    if masks.ndim != 5:
        raise VolumeError(
            f"{path}: mask shape {tuple(masks.shape)}, not (N, K, Z, Y, X): a time series? "
            "track videos (subcell track, a track step)"
        )
    return found


def _image_names(n: int, attributes: dict) -> list[str]:
    """Folder names: the dataset indices a prediction group holds, else 0..N-1."""
    indices = range(n)
    if attributes.get("format") == "subcell-prediction":
        indices = attributes.get("images", indices)  # the dataset images segmented
    return [str(int(i)) for i in indices]


def _class_names(attributes: dict, masks) -> tuple[str, ...]:
    """The group's class names (or the mask array's), else ``class1`` ... ``classK``."""
    k = int(masks.shape[-4])
    names = attributes.get("class_names") or dict(masks.attrs).get("class_names") or ()
    names = tuple(str(n) for n in names)
    if len(names) == k and len(set(names)) == k and all(names):
        return names
    return tuple(f"class{i + 1}" for i in range(k))


def _components(semantic: np.ndarray) -> np.ndarray:
    from subcell.pipeline.segment_steps import label_instances

    return label_instances(semantic)
