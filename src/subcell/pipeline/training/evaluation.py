"""Scoring a network on a split while training: whole images, pooled scores, mIoU; and the
choice of the sigmoid head's threshold on the validation split.

Scores are those of ``subcell evaluate`` (:class:`subcell.pipeline.evaluate_scoring.ItemScorer`):
a pooled confusion matrix, or per-class binary scores where classes overlap (multi-label).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from subcell.models.predict import activation, class_masks
from subcell.pipeline.evaluate_scoring import ItemScorer
from subcell.pipeline.training.data import SampleSet, pad_to_multiple

if TYPE_CHECKING:
    from subcell.pipeline.train_schema import TrainConfig

__all__ = ["THRESHOLDS", "calibrate_threshold", "predict_split", "score_split"]

#: Candidate thresholds of a sigmoid head, tried on the validation split.
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.2, 0.951, 0.05))


def predict_split(
    network, samples: SampleSet, config: TrainConfig, device, multiple: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (probabilities (K, ...), masks (K, ...)) of every sample, segmented whole."""
    import torch

    was_training = network.training
    network.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(samples), config.batch_size):
                stop = min(start + config.batch_size, len(samples))
                pairs = [samples.read(i) for i in range(start, stop)]
                images = np.stack([image for image, _ in pairs])
                spatial = images.shape[2:]
                padded = pad_to_multiple(images, multiple, len(spatial))
                logits = network(torch.from_numpy(padded).to(device)).float()
                probs = activation(logits, config.head).cpu().numpy()
                probs = probs[(slice(None), slice(None), *(slice(0, s) for s in spatial))]
                for (_, masks), prob in zip(pairs, probs, strict=True):
                    yield prob, masks
    finally:
        network.train(was_training)


def score_split(
    network,
    samples: SampleSet,
    config: TrainConfig,
    class_names,
    device,
    multiple: int = 32,
    threshold: float | None = None,
) -> dict:
    """Segment every sample of a split whole and score it against its masks.

    Returns the scores ``subcell evaluate`` gives (mIoU over background and every class; over
    the classes where they overlap), at ``threshold`` (the config's if None).
    """
    scorer = ItemScorer(len(class_names) + 1)
    threshold = config.threshold if threshold is None else threshold
    for prob, masks in predict_split(network, samples, config, device, multiple):
        scorer.add(masks, class_masks(prob, config.head, threshold))
    return scorer.scores(class_names)


def calibrate_threshold(
    network, samples: SampleSet, config: TrainConfig, class_names, device, multiple: int
) -> tuple[float, dict[str, float]]:
    """The sigmoid threshold with the best validation mIoU, and the mIoU of each candidate.

    A network trained with Dice + focal loss on tiny objects tends to be confident over a
    margin around them; the threshold that matches the ground truth's extent is chosen on
    the validation split (never the test split), once, after training.
    """
    scorers = {t: ItemScorer(len(class_names) + 1) for t in THRESHOLDS}
    for prob, masks in predict_split(network, samples, config, device, multiple):
        for t in THRESHOLDS:
            scorers[t].add(masks, class_masks(prob, config.head, t))
    mious = {f"{t:.2f}": scorer.scores(class_names)["miou"] for t, scorer in scorers.items()}
    best = max(THRESHOLDS, key=lambda t: (mious[f"{t:.2f}"], -abs(t - 0.5)))
    return float(best), mious
