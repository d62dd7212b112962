"""Score a segmentation against ground truth: pixel, per-class and instance metrics.

Both sides can be an image file (TIFF, PNG, NumPy: a class-index map, or one binary
channel per class), an OME-Zarr image written by subcell (its ``labels/``), a prediction
zarr group (a ``mask`` array laid out like a dataset's masks, optional ``instances``) or
a subcell simulated dataset. Images are read and scored one at a time; a dataset is scored
by its pooled confusion matrix and pooled object matches (see :mod:`subcell.core.metrics`
and ``docs/evaluate.md``).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import zarr

from subcell.core.errors import VolumeError
from subcell.core.metrics import (
    class_index_map,
    instance_counts,
    instance_scores_from_counts,
    pool_instance_counts,
)
from subcell.core.omezarr import read_labels
from subcell.pipeline.dataset import FORMAT, SPLIT_NAMES, open_dataset
from subcell.pipeline.evaluate_scoring import ItemScorer, one_hot
from subcell.pipeline.volumes import read_volume
from subcell.registry import Registry

__all__ = ["LabelSource", "evaluate", "open_labels", "write_metrics"]

# Names subcell makes up when a file names no classes or channels; they say nothing.
_PLACEHOLDER = re.compile(r"^(c|class)\d+$")


@attrs.frozen(eq=False)
class LabelSource:
    """Label images to score, read one item at a time.

    Attributes
    ----------
    path
        Where they come from.
    kind
        ``"dataset"``, ``"prediction group"``, ``"OME-Zarr"`` or ``"file"``.
    n_images
        Images (the first axis; what a split selects).
    frames
        Items per image (frames of a video dataset, else 1).
    item_shape
        (Z, Y, X) of every item.
    n_classes
        Classes including background when the source states them (one mask channel per
        class), else None (a class-index map: its largest value is ``max_class``).
    max_class
        Largest class index present (only where ``n_classes`` is None, else -1).
    class_names
        Foreground class names when the source names them, else None.
    splits
        Image indices per split name (datasets), else None.
    classes
        ``classes(item)``: the item's class-index map (Z, Y, X).
    instances
        ``instances(item)``: its instance labels (Z, Y, X), or None when there are none.
    masks
        ``masks(item)``: its (K, Z, Y, X) binary masks where the source has one channel per
        class (classes may overlap), else None.
    """

    path: Path
    kind: str
    n_images: int
    frames: int
    item_shape: tuple[int, ...]
    n_classes: int | None
    max_class: int
    class_names: tuple[str, ...] | None
    splits: dict[str, list[int]] | None
    classes: Callable[[int], np.ndarray]
    instances: Callable[[int], np.ndarray] | None
    masks: Callable[[int], np.ndarray] | None = None

    def items(self, images) -> list[int]:
        """Item indices of the given image indices."""
        return [i * self.frames + f for i in images for f in range(self.frames)]


def evaluate(
    predicted_path: str | Path,
    truth_path: str | Path,
    *,
    split: str | None = None,
    instances: bool = False,
    registry: Registry | None = None,
) -> dict:
    """Score a prediction against ground truth.

    Parameters
    ----------
    predicted_path, truth_path
        Image files, OME-Zarr images, prediction zarr groups or simulated datasets.
    split
        ``"train"``, ``"val"`` or ``"test"``: score only that split of a dataset. The other
        side is either a dataset too, or holds one image per dataset image, or one per
        image of the split.
    instances
        Read single-channel integer images as instance labels (their non-zero voxels as
        class 1). Without it, instance scores are reported only where both sides carry
        instance labels.
    registry
        Where image readers are looked up; the process-wide registry if None.

    Returns
    -------
    dict
        ``prediction``, ``truth``, ``split`` and the keys of
        :func:`subcell.core.metrics.pooled_semantic_scores` (``pixel_accuracy``, ``iou``,
        ``miou``, ``f1``, ``precision``, ``recall``, ``moc``, ``confusion``...); with
        instance labels, ``instances`` holds
        :func:`subcell.core.metrics.instance_scores_from_counts`.

    Raises
    ------
    VolumeError
        Unreadable input, different shapes or class counts, labels that are not
        non-negative integers, a split of something that is not a dataset.
    """
    if split is not None and split not in SPLIT_NAMES:
        raise VolumeError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
    pred = open_labels(predicted_path, instances=instances, registry=registry)
    truth = open_labels(truth_path, instances=instances, registry=registry)
    pred_items, truth_items = _select(pred, truth, split)
    if pred.item_shape != truth.item_shape:
        raise VolumeError(
            f"{pred.path}: prediction shape {_shape(pred, pred_items)} does not match ground "
            f"truth {truth.path} shape {_shape(truth, truth_items)}"
        )
    n_classes, names = _resolve_classes(pred, truth)
    with_instances = pred.instances is not None and truth.instances is not None
    if instances and not with_instances:
        lacking = pred if pred.instances is None else truth
        raise VolumeError(f"{lacking.path}: no instance labels to score (--instances)")
    scorer, counts = ItemScorer(n_classes), []
    for p_item, t_item in zip(pred_items, truth_items, strict=True):
        scorer.add(labels_of(truth, t_item, n_classes), labels_of(pred, p_item, n_classes))
        if with_instances:
            counts.append(instance_counts(truth.instances(t_item), pred.instances(p_item)))
    result = {"prediction": str(pred.path), "truth": str(truth.path), "split": split}
    result |= scorer.scores(names)
    if with_instances:
        result["instances"] = instance_scores_from_counts(pool_instance_counts(counts))
    return result


def labels_of(source: LabelSource, item: int, n_classes: int) -> np.ndarray:
    """An item's (K, Z, Y, X) binary masks (of its class-index map where it has no masks);
    ``n_classes`` includes the background."""
    if source.masks is None:
        return one_hot(source.classes(item), n_classes - 1)
    return source.masks(item)


def _shape(source: LabelSource, items) -> tuple[int, ...]:
    return (len(items), *source.item_shape)


def _select(pred: LabelSource, truth: LabelSource, split: str | None):
    """Matching item lists of both sides (one split of a dataset, or everything)."""
    if split is None:
        pred_items, truth_items = list(range(_n_items(pred))), list(range(_n_items(truth)))
    else:
        ref = truth if truth.splits is not None else pred
        if ref.splits is None:
            raise VolumeError(
                f"--split {split}: neither {pred.path} nor {truth.path} is a subcell "
                f"simulated dataset"
            )
        chosen = ref.splits[split]
        if not chosen:
            raise VolumeError(f"{ref.path}: the {split} split holds no images")
        other = pred if ref is truth else truth
        if other.splits is not None:
            other_images = other.splits[split]
        elif other.n_images == ref.n_images:
            other_images = chosen
        else:  # the other side holds the split's images only (or a mismatch, found below)
            other_images = list(range(other.n_images))
        ref_items, other_items = ref.items(chosen), other.items(other_images)
        pred_items, truth_items = (
            (other_items, ref_items) if ref is truth else (ref_items, other_items)
        )
    if len(pred_items) != len(truth_items):
        raise VolumeError(
            f"{pred.path}: prediction shape {_shape(pred, pred_items)} does not match ground "
            f"truth {truth.path} shape {_shape(truth, truth_items)} (number of images differs)"
        )
    return pred_items, truth_items


def _n_items(source: LabelSource) -> int:
    return source.n_images * source.frames


def _resolve_classes(pred: LabelSource, truth: LabelSource) -> tuple[int, tuple[str, ...]]:
    """The class count (background included) and the foreground class names."""
    if pred.n_classes and truth.n_classes and pred.n_classes != truth.n_classes:
        raise VolumeError(
            f"{pred.path}: {pred.n_classes - 1} classes{_names(pred)} but ground truth "
            f"{truth.path} has {truth.n_classes - 1}{_names(truth)}"
        )
    n_classes = truth.n_classes or pred.n_classes or max(pred.max_class, truth.max_class, 1) + 1
    for source in (pred, truth):
        if source.n_classes is None and source.max_class >= n_classes:
            other = truth if source is pred else pred
            raise VolumeError(
                f"{source.path}: holds class index {source.max_class} but {other.path} has "
                f"only {n_classes - 1} classes"
            )
    names = truth.class_names or pred.class_names
    if truth.class_names and pred.class_names and truth.class_names != pred.class_names:
        warnings.warn(
            f"class names differ: prediction {list(pred.class_names)}, ground truth "
            f"{list(truth.class_names)}; using the ground truth's",
            stacklevel=3,
        )
    if names is None or len(names) != n_classes - 1:
        names = tuple(f"class{k}" for k in range(1, n_classes))
    return n_classes, tuple(names)


def _names(source: LabelSource) -> str:
    return f" ({', '.join(source.class_names)})" if source.class_names else ""


# --------------------------------------------------------------------------- reading


def open_labels(
    path: str | Path, *, instances: bool = False, registry: Registry | None = None
) -> LabelSource:
    """Open label images for scoring (see :func:`evaluate` for what ``path`` may be).

    Raises
    ------
    VolumeError
        Missing or unreadable, or labels that are not non-negative integers.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{path}: no such file or directory")
    attributes = _zarr_attrs(path) if path.is_dir() else None
    if attributes is not None:
        if attributes.get("format") == FORMAT:
            return _dataset_source(path)
        if "multiscales" in attributes.get("ome", attributes):
            found = _ome_source(path)
            if found is not None:
                return found
        else:
            group = zarr.open_group(str(path), mode="r")
            if "mask" not in group:
                raise VolumeError(
                    f"{path}: a zarr group that is neither a subcell dataset, an OME-Zarr "
                    f"image nor a prediction group (no 'mask' array)"
                )
            return _group_source(path, group, attributes)
    return _file_source(path, instances, registry)


def _zarr_attrs(path: Path) -> dict | None:
    try:
        node = zarr.open(str(path), mode="r")
    except Exception:  # noqa: BLE001 - not zarr: a reader plugin may still know it
        return None
    return dict(node.attrs) if isinstance(node, zarr.Group) else None


def _fg_names(names, n_channels: int) -> tuple[str, ...] | None:
    """Foreground names from a file's class/channel names, if they are real names."""
    names = [str(n) for n in names or ()]
    if len(names) == n_channels + 1 and names[0] == "background":
        names = names[1:]
    if len(names) != n_channels or all(_PLACEHOLDER.match(n) for n in names):
        return None
    return tuple(names)


def _stacked(masks, instances, path: Path, splits, names, kind: str) -> LabelSource:
    """A source over zarr arrays: masks (N, [T,] K, Z, Y, X), instances (N, [T,] Z, Y, X)."""
    lead = tuple(masks.shape[:-4])
    if len(lead) > 2 or masks.ndim < 4:
        raise VolumeError(
            f"{path}: mask shape {tuple(masks.shape)}; expected (K, Z, Y, X), (N, K, Z, Y, X) "
            f"or (N, T, K, Z, Y, X)"
        )
    if instances is not None and tuple(instances.shape) != lead + tuple(masks.shape[-3:]):
        raise VolumeError(
            f"{path}: instances shape {tuple(instances.shape)} does not match the masks' "
            f"{lead + tuple(masks.shape[-3:])}"
        )
    n_images = lead[0] if lead else 1
    frames = lead[1] if len(lead) == 2 else 1

    def index(item: int):
        return np.unravel_index(item, lead) if lead else ()

    n_channels = int(masks.shape[-4])
    return LabelSource(
        path=path,
        kind=kind,
        n_images=n_images,
        frames=frames,
        item_shape=tuple(int(s) for s in masks.shape[-3:]),
        n_classes=n_channels + 1,
        max_class=-1,
        class_names=_fg_names(names, n_channels),
        splits=splits,
        classes=lambda item: class_index_map(_binary(np.asarray(masks[index(item)]), path)),
        instances=None
        if instances is None
        else (lambda item: _integers(np.asarray(instances[index(item)]), path)),
        masks=lambda item: _binary(np.asarray(masks[index(item)]), path),
    )


def _dataset_source(path: Path) -> LabelSource:
    data = open_dataset(path)
    splits = {name: data.split(name) for name in SPLIT_NAMES}
    return _stacked(data.masks, data.instances, path, splits, data.class_names, "dataset")


def _group_source(path: Path, group, attributes: dict) -> LabelSource:
    if attributes.get("complete") is False:
        raise VolumeError(f"{path}: incomplete (the run that wrote it stopped); segment again")
    masks = group["mask"]
    instances = group["instances"] if "instances" in group else None
    names = attributes.get("class_names") or dict(masks.attrs).get("class_names")
    return _stacked(masks, instances, path, None, names, "prediction group")


def _ome_source(path: Path) -> LabelSource | None:
    masks = read_labels(path)
    if masks is None:
        return None  # an image without labels: read as a class-index map
    instances = None if masks.instances is None else masks.instances
    return _stacked(masks.semantic, instances, path, None, masks.class_names, "OME-Zarr")


def _integers(data: np.ndarray, path: Path) -> np.ndarray:
    """``data`` as non-negative integers; floats must hold whole numbers."""
    if data.dtype.kind == "b":
        return data.view(np.uint8)
    if data.dtype.kind == "f":
        whole = np.isfinite(data) & (data == np.round(data))
        if not whole.all():
            bad = data[~whole].flat[0]
            raise VolumeError(
                f"{path}: holds non-integer values such as {bad}; labels must be integers"
            )
        data = data.astype(np.int64)
    elif data.dtype.kind not in "iu":
        raise VolumeError(f"{path}: labels must be integers, got data type {data.dtype}")
    if data.dtype.kind == "i" and data.size and int(data.min()) < 0:
        raise VolumeError(f"{path}: holds negative label {int(data.min())}")
    return data


def _binary(data: np.ndarray, path: Path) -> np.ndarray:
    """Per-class masks: 0/1 (or 0/255) only, else the layout was misread."""
    data = _integers(data, path)
    if data.size and int(data.max()) > 1 and not _is_binary_255(data):
        raise VolumeError(
            f"{path}: masks hold values up to {int(data.max())}; expected binary masks, one "
            f"channel per class (K, Z, Y, X)"
        )
    return data


def _is_binary_255(data: np.ndarray) -> bool:
    """A 0/255 image (an 8-bit binary mask): its 255 means class 1."""
    return data.size > 0 and int(data.max()) == 255 and bool(np.all((data == 0) | (data == 255)))


def _file_source(path: Path, as_instances: bool, registry: Registry | None) -> LabelSource:
    volume = read_volume(path, registry=registry)
    data = np.asarray(volume.data)
    frames = data if volume.axes == "TCZYX" else data[None]
    frames = _integers(frames, path)
    n_channels = frames.shape[1]
    names = tuple(volume.channel_names)
    labels = None
    if n_channels == 1:
        maps = frames[:, 0]
        if as_instances or names == ("instances",):
            labels = maps
            maps = (maps > 0).view(np.uint8)
        elif _is_binary_255(maps):
            maps = (maps > 0).view(np.uint8)
        n_classes, class_names = None, None
    else:  # one binary channel per class, like the TIFF masks subcell writes
        binary = [_binary(f, path) for f in frames]
        maps = np.stack([class_index_map(b) for b in binary])
        n_classes, class_names = n_channels + 1, _fg_names(names, n_channels)
    return LabelSource(
        path=path,
        kind="file",
        n_images=maps.shape[0],
        frames=1,
        item_shape=tuple(int(s) for s in maps.shape[1:]),
        n_classes=n_classes,
        max_class=int(maps.max()) if n_classes is None else -1,
        class_names=class_names,
        splits=None,
        classes=lambda item: maps[item],
        instances=None if labels is None else (lambda item: labels[item]),
        masks=None if n_channels == 1 else (lambda item: binary[item]),
    )


def write_metrics(metrics: dict, path: str | Path) -> Path:
    """Write ``metrics`` as JSON (undefined values are null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    return path
