"""Training samples from a simulated dataset: normalised patches, targets, augmentation.

A 2D network learns from single planes (every z plane of every image is a sample); a 3D
network from whole stacks. Images are read from the zarr group lazily, one at a time, so a
dataset larger than memory trains as well as a small one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from subcell.core.errors import ConfigError, VolumeError
from subcell.core.metrics import class_index_map
from subcell.models.predict import normalize

if TYPE_CHECKING:
    from subcell.pipeline.dataset import Dataset
    from subcell.pipeline.train_schema import AugmentConfig

__all__ = ["SampleSet", "augmenter", "pad_to_multiple", "target_of"]


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
        """Normalised image (C, *spatial) float32 and masks (K, *spatial) uint8 of a sample."""
        index, z = self.samples[sample]
        image = np.asarray(self.dataset.images[index], dtype=np.float32)
        masks = np.asarray(self.dataset.masks[index])
        image, _ = normalize(image, self.normalization)
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
