"""``subcell train``: a segmentation network from a simulated dataset, resumable.

Each epoch draws random crops of the training split, augments them, and takes Adam steps on
Dice + focal (or cross-entropy) loss; the validation split is then segmented whole and
scored by mIoU (background included). The learning rate drops on a validation plateau, the
run stops early when it stops improving, and the best epoch's weights are the model. After
every epoch the full state is saved, so an interrupted run continues where it stopped.
Finally the best model is scored on the test split and its card written.
"""

from __future__ import annotations

from subcell.pipeline.training.loop import TrainResult, train

__all__ = ["TrainResult", "train"]
