"""Pipeline step ``evaluate``: scores of a segmentation against ground truth.

Without ``classes`` it is ``subcell evaluate`` (:func:`subcell.pipeline.evaluate.evaluate`).
With ``classes`` it scores a prediction of some of a dataset's classes against those
classes alone — a Nile Red group network (VOLUME-net: nucleus, cytosol, ECS) against the
15-compartment dataset: the ground truth keeps the named classes' masks, in that order,
and becomes a class-index map as the network's training saw it (where they overlap the
first named class wins).
"""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np

from subcell.core.errors import ConfigError, VolumeError
from subcell.pipeline.run import context
from subcell.pipeline.run.steps_segment import Split, is_dataset

__all__ = ["EvaluateStep", "EvaluateStepConfig", "evaluate_classes"]


@attrs.frozen(kw_only=True)
class EvaluateStepConfig:
    """The ``evaluate`` step: scores of a segmentation against ground truth
    (``subcell evaluate``).

    Attributes
    ----------
    split
        Score only this split of a dataset (``all``: everything).
    instances
        Read single-channel integer images as instance labels (AP, PQ).
    classes
        Score only these classes of a dataset's ground truth (by name, in the prediction's
        order); empty: all of them. For predictions of a subset of the classes (a Nile Red
        group network); pixel scores only.
    """

    split: Split = "all"
    instances: bool = False
    classes: tuple[str, ...] = ()


class EvaluateStep:
    """Writes ``metrics.json``: IoU, F1, precision, recall, Manders' overlap, and AP and PQ
    where both sides carry instance labels."""

    inputs = {"prediction": "required", "truth": "required"}
    outputs = ("metrics",)

    def __init__(self, config: EvaluateStepConfig) -> None:
        if config.classes and config.instances:
            raise ConfigError("classes: instance scores are not computed for a class subset")
        self.config = config

    def run(self, inputs: dict, out: Path) -> dict[str, Path]:
        from subcell.pipeline.evaluate import evaluate, write_metrics

        split = None if self.config.split == "all" else self.config.split
        if self.config.classes:
            metrics = evaluate_classes(
                inputs["prediction"],
                inputs["truth"],
                self.config.classes,
                split=split,
                registry=context.registry(),
            )
        else:
            metrics = evaluate(
                inputs["prediction"],
                inputs["truth"],
                split=split,
                instances=self.config.instances,
                registry=context.registry(),
            )
        return {"metrics": write_metrics(metrics, out / "metrics.json")}


def evaluate_classes(
    prediction: str | Path,
    truth: str | Path,
    classes,
    *,
    split: str | None = None,
    registry=None,
) -> dict:
    """Pixel scores of a prediction of some classes against those classes of a dataset.

    Parameters
    ----------
    prediction
        Labels ``subcell evaluate`` reads (a prediction group from a ``segment`` step);
        one class per name in ``classes``, or a class-index map.
    truth
        A simulated dataset holding every class of ``classes``.
    classes
        The class names to score, in the prediction's order.
    split
        Score only this split; the prediction holds every image or the split's only.
    registry
        Where image readers are looked up.

    Returns
    -------
    dict
        As :func:`subcell.pipeline.evaluate.evaluate` without instance scores, plus
        ``classes``.

    Raises
    ------
    VolumeError
        Truth that is not a dataset or lacks a class, a prediction of other classes, other
        shapes or another number of images.
    """
    from subcell.pipeline.dataset import open_dataset
    from subcell.pipeline.evaluate import labels_of, open_labels
    from subcell.pipeline.evaluate_scoring import ItemScorer

    truth, classes = Path(truth), tuple(classes)
    if not is_dataset(truth):
        raise VolumeError(f"{truth}: classes: scoring a class subset needs a simulated dataset")
    data = open_dataset(truth)
    missing = [c for c in classes if c not in data.class_names]
    if missing:
        raise VolumeError(
            f"{truth}: classes: no class {', '.join(missing)}; its classes: "
            f"{', '.join(data.class_names)}"
        )
    pred = open_labels(prediction, registry=registry)
    _check_prediction(pred, classes, tuple(data.masks.shape[-3:]))
    images = list(range(len(data))) if split is None else data.split(split)
    if not images:
        raise VolumeError(f"{truth}: the {split} split holds no images")
    pred_images = images if pred.n_images == len(data) else list(range(pred.n_images))
    lead = tuple(data.masks.shape[1:-4])  # (T,) for videos
    truth_items = [(i, *f) for i in images for f in np.ndindex(*lead)]
    pred_items = pred.items(pred_images)
    if len(pred_items) != len(truth_items):
        raise VolumeError(
            f"{pred.path}: {len(pred_items)} items, but the ground truth's "
            f"{split or 'whole dataset'} holds {len(truth_items)}"
        )
    channels = [data.class_names.index(c) for c in classes]
    scorer = ItemScorer(len(classes) + 1)
    for p, t in zip(pred_items, truth_items, strict=True):
        scorer.add(np.asarray(data.masks[t])[channels], labels_of(pred, p, len(classes) + 1))
    result = {"prediction": str(pred.path), "truth": str(truth), "split": split}
    result["classes"] = list(classes)
    return result | scorer.scores(classes)


def _check_prediction(pred, classes: tuple[str, ...], shape: tuple[int, ...]) -> None:
    if pred.item_shape != shape:
        raise VolumeError(
            f"{pred.path}: prediction items are {pred.item_shape} (Z, Y, X), the ground "
            f"truth's {shape}"
        )
    if pred.n_classes is not None and pred.n_classes != len(classes) + 1:
        raise VolumeError(
            f"{pred.path}: {pred.n_classes - 1} classes, but classes names {len(classes)}: "
            f"{', '.join(classes)}"
        )
    if pred.class_names is not None and tuple(pred.class_names) != classes:
        raise VolumeError(
            f"{pred.path}: predicts {', '.join(pred.class_names)}; classes names "
            f"{', '.join(classes)}"
        )
    if pred.n_classes is None and pred.max_class > len(classes):
        raise VolumeError(
            f"{pred.path}: holds class index {pred.max_class}; classes names {len(classes)}"
        )
