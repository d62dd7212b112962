"""Scoring a network on a split while training: whole images, pooled confusion, mIoU."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from subcell.core.metrics import class_index_map, confusion_matrix, semantic_scores
from subcell.models.predict import activation, class_masks
from subcell.pipeline.training.data import SampleSet, pad_to_multiple

if TYPE_CHECKING:
    from subcell.pipeline.train_schema import TrainConfig

__all__ = ["score_split"]


def score_split(
    network, samples: SampleSet, config: TrainConfig, class_names, device, multiple: int = 32
) -> dict:
    """Segment every sample of a split whole and score it against its masks.

    Returns the :func:`subcell.core.metrics.semantic_scores` dict of the pooled confusion
    matrix (mIoU over background and every class).
    """
    import torch

    n_classes = len(class_names) + 1
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    was_training = network.training
    network.eval()
    order = np.arange(len(samples))
    with torch.inference_mode():
        for start in range(0, len(order), config.batch_size):
            pairs = [samples.read(int(i)) for i in order[start : start + config.batch_size]]
            images = np.stack([image for image, _ in pairs])
            spatial = images.shape[2:]
            padded = pad_to_multiple(images, multiple, len(spatial))
            logits = network(torch.from_numpy(padded).to(device)).float()
            probs = activation(logits, config.head).cpu().numpy()
            crop = (slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)
            probs = probs[crop]
            for (_, masks), prob in zip(pairs, probs, strict=True):
                predicted = class_index_map(class_masks(prob, config.head, config.threshold))
                confusion += confusion_matrix(class_index_map(masks), predicted, n_classes)
    network.train(was_training)
    return semantic_scores(confusion, ["background", *class_names])
