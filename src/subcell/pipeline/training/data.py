"""Training samples from a simulated dataset: normalised patches, targets, augmentation.

A 2D network learns from single planes (every z plane of every image is a sample); a 3D
network from whole stacks. Images are read from the zarr group lazily, one at a time, so a
dataset larger than memory trains as well as a small one.

The training config may select some of the dataset's classes (``classes``) and transform
its channels (``input``, e.g. Nile Red's intensity + ratio): :func:`training_view` gives the
dataset as that network sees it (only the selected mask channels and class names, and the
input transform), so the loop, the evaluation and the card all follow from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.metrics import class_index_map
from subcell.core.network_input import output_names
from subcell.models.predict import network_input, normalize
from subcell.pipeline.dataset import Dataset

if TYPE_CHECKING:
    from subcell.pipeline.train_schema import AugmentConfig, TrainConfig

__all__ = [
    "SampleSet",
    "TrainingData",
    "augmenter",
    "input_spec",
    "pad_to_multiple",
    "target_of",
    "training_view",
]


@attrs.frozen(eq=False)
class TrainingData(Dataset):
    """A dataset as one network trains on it (:func:`training_view`).

    ``masks`` and ``class_names`` hold only the selected classes; ``images`` all channels.

    Attributes
    ----------
    input
        The model card's ``input`` entry: the transform, the channel indices it takes, its
        ratio regulariser and the names of the network's input channels.
    source_class_names
        The dataset's own classes (all of them).
    """

    input: dict = attrs.field(factory=dict)
    source_class_names: tuple[str, ...] = ()


class _ClassSubset:
    """Mask channels ``indices`` of a lazy (N, K, ...) mask array, read one image at a time."""

    def __init__(self, masks: Any, indices: list[int]) -> None:
        self._masks, self._indices = masks, indices
        self.shape = (masks.shape[0], len(indices), *masks.shape[2:])
        self.ndim, self.dtype = len(self.shape), masks.dtype

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if not isinstance(key[0], int | np.integer):
            raise TypeError("class-selected masks are read one image at a time: masks[i]")
        image = np.asarray(self._masks[int(key[0])])[self._indices]
        return image[key[1:]] if len(key) > 1 else image


def _indices(wanted: tuple[str, ...], names: tuple[str, ...], what: str, dataset) -> list[int]:
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ConfigError(
            f"{what} {', '.join(map(repr, missing))} not in the dataset {dataset.path} "
            f"(it has {', '.join(names)})"
        )
    return [names.index(name) for name in wanted]


def input_spec(config: TrainConfig, channel_names: tuple[str, ...], dataset=None) -> dict:
    """The card's ``input`` entry for ``config.input`` on a dataset with these channels."""
    spec = config.input
    names = tuple(spec.channels) or tuple(channel_names)
    indices = _indices(names, tuple(channel_names), "input.channels", dataset)
    try:
        network_channels = output_names(spec.transform, names)
    except ConfigError as exc:
        where = f"{dataset.path}: " if dataset is not None else ""
        raise ConfigError(f"{where}{exc} (dataset channels: {', '.join(channel_names)})") from None
    return {
        "transform": spec.transform,
        "channels": indices,
        "channel_names": list(names),
        "ratio_eps": float(spec.ratio_eps),
        "network_channels": list(network_channels),
    }


def training_view(dataset: Dataset, config: TrainConfig) -> TrainingData:
    """The dataset as the network of ``config`` sees it: selected classes, input transform.

    Parameters
    ----------
    dataset
        An opened simulated dataset (or a view of one: the view of a view is rebuilt from
        the source dataset's classes).
    config
        The train config (``classes``, ``input``).

    Raises
    ------
    ConfigError
        A selected class or channel the dataset lacks (the message lists what it has), or
        a transform that does not take the selected number of channels.
    """
    source, masks = tuple(dataset.class_names), dataset.masks
    if isinstance(dataset, TrainingData):
        source = dataset.source_class_names
        masks = masks._masks if isinstance(masks, _ClassSubset) else masks
    wanted = tuple(config.classes) or tuple(source)
    indices = _indices(wanted, tuple(source), "classes", dataset)
    selected = masks if indices == list(range(len(source))) else _ClassSubset(masks, indices)
    fields = {f.name: getattr(dataset, f.name) for f in attrs.fields(Dataset)}
    fields.update(masks=selected, attrs={**dataset.attrs, "class_names": list(wanted)})
    return TrainingData(
        **fields,
        input=input_spec(config, dataset.channel_names, dataset),
        source_class_names=tuple(source),
    )


def pad_to_multiple(array: np.ndarray, multiple: int, n_spatial: int) -> np.ndarray:
    """Zero-pad the last ``n_spatial`` axes at their end up to multiples of ``multiple``."""
    pad = [(0, 0)] * (array.ndim - n_spatial)
    pad += [(0, -(-s // multiple) * multiple - s) for s in array.shape[-n_spatial:]]
    return np.pad(array, pad) if any(p[1] for p in pad) else array


def target_of(masks: np.ndarray, head: str) -> np.ndarray:
    """The training target of masks (K, ...): the masks for a sigmoid head, a class-index
    map (1, ...) for a softmax head (the first class set wins where masks overlap)."""
    if head == "sigmoid":
        return masks.astype(np.float32)
    return class_index_map(masks)[None].astype(np.float32)


class SampleSet:
    """The samples of one split: (image index, z plane or None) pairs, read on demand.

    Parameters
    ----------
    dataset
        An opened simulated dataset.
    split
        ``"train"``, ``"val"`` or ``"test"``.
    spatial_dims
        2 (a sample is one plane) or 3 (a sample is a stack).
    percentiles
        Normalisation percentiles (low, high) applied per image and channel.
    max_images
        Use only the first this many images of the split (0: all).

    A :class:`TrainingData` view gives only its classes' masks and applies its input
    transform after normalisation (:func:`subcell.models.predict.network_input`, as
    inference does).
    """

    def __init__(
        self,
        dataset: Dataset,
        split: str,
        spatial_dims: int,
        percentiles: tuple[float, float],
        max_images: int = 0,
    ) -> None:
        self.dataset = dataset
        self.spatial_dims = spatial_dims
        self.input = dict(getattr(dataset, "input", None) or {})
        self.normalization = {
            "method": "percentile",
            "low_percentile": float(percentiles[0]),
            "high_percentile": float(percentiles[1]),
        }
        indices = dataset.split(split)
        if max_images:
            indices = indices[:max_images]
        if not indices:
            raise ConfigError(f"{dataset.path}: the {split} split is empty; simulate more images")
        if dataset.images.ndim != 5:
            raise VolumeError(
                f"{dataset.path}: training takes single-frame datasets (N, C, Z, Y, X), got "
                f"images of shape {dataset.images.shape}"
            )
        n_z = int(dataset.images.shape[2])
        planes = range(n_z) if spatial_dims == 2 else [None]
        self.samples = [(int(i), z) for i in indices for z in planes]

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, sample: int) -> tuple[np.ndarray, np.ndarray]:
        """Network input (C', *spatial) float32 and masks (K, *spatial) uint8 of a sample:
        the image normalised channel by channel, then transformed (the view's ``input``)."""
        index, z = self.samples[sample]
        image = np.asarray(self.dataset.images[index], dtype=np.float32)
        masks = np.asarray(self.dataset.masks[index])
        image, _ = normalize(image, self.normalization)
        image = network_input(image, self.input)
        if z is not None:
            return image[:, z], masks[:, z]
        return image, masks


def random_crop(
    arrays: tuple[np.ndarray, ...], patch: tuple[int, ...], rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """The same random crop of size ``patch`` from each array (C, *spatial); smaller axes
    are zero-padded up to the patch."""
    spatial = arrays[0].shape[1:]
    starts = [int(rng.integers(0, max(s - p, 0) + 1)) for s, p in zip(spatial, patch, strict=True)]
    out = []
    for array in arrays:
        window = (slice(None),) + tuple(slice(a, a + p) for a, p in zip(starts, patch, strict=True))
        crop = array[window]
        pad = [(0, 0)] + [(0, p - s) for s, p in zip(crop.shape[1:], patch, strict=True)]
        out.append(np.pad(crop, pad) if any(p[1] for p in pad) else crop)
    return tuple(out)


def augmenter(config: AugmentConfig, spatial_dims: int, seed: int):
    """A MONAI dictionary transform (keys ``image``, ``label``) seeded with ``seed``."""
    from monai.transforms import (
        Compose,
        RandFlipd,
        RandGaussianNoised,
        RandRotate90d,
        RandScaleIntensityd,
    )

    keys = ["image", "label"]
    steps = []
    if config.flip:
        steps += [RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in range(spatial_dims)]
    if config.rotate90:
        plane = (spatial_dims - 2, spatial_dims - 1)
        steps.append(RandRotate90d(keys, prob=0.75, max_k=3, spatial_axes=plane))
    if config.intensity_scale > 0:
        steps.append(RandScaleIntensityd("image", factors=config.intensity_scale, prob=1.0))
    if config.noise_sd > 0:
        steps.append(RandGaussianNoised("image", prob=0.5, std=config.noise_sd))
    transform = Compose(steps)
    transform.set_random_state(seed=seed % (2**32))
    return transform


def batches(
    samples: SampleSet,
    order: np.ndarray,
    *,
    batch_size: int,
    patch: tuple[int, ...],
    head: str,
    transform,
    rng: np.random.Generator,
):
    """Yield (image, target) torch batches of random, augmented crops in ``order``."""
    import torch

    for start in range(0, len(order), batch_size):
        images, targets = [], []
        for sample in order[start : start + batch_size]:
            image, masks = samples.read(int(sample))
            image, target = random_crop((image, target_of(masks, head)), patch, rng)
            item = transform({"image": torch.from_numpy(image), "label": torch.from_numpy(target)})
            images.append(torch.as_tensor(item["image"]).float())
            targets.append(torch.as_tensor(item["label"]).float())
        yield torch.stack(images), torch.stack(targets)
