"""Unsupervised segmentation by backpropagation (Kanezaki, ICASSP 2018).

A small CNN is trained on the image alone: its response maps are clustered by argmax, the
clusters are made uniform within SLIC superpixels, and the network is trained with
cross-entropy to reproduce these refined clusters, until only a few clusters remain. The
clusters are then split into bright (foreground) and dark (background) ones. A ``(Z, Y, X)``
volume is segmented plane by plane (2D networks, the paper's setting); the foreground
decision and the connected components are taken over the whole volume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import numpy as np
from skimage.segmentation import slic

from subcell.plugins.baselines._common import (
    BaselineSegmenter,
    bright_regions,
    components,
    non_empty,
)

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Backprop", "BackpropConfig"]


def _at_least(minimum):
    def check(instance, attribute, value):
        if value < minimum:
            raise ValueError(f"{attribute.name} must be >= {minimum}, got {value}")

    return check


@attrs.frozen(kw_only=True)
class BackpropConfig:
    """Parameters of Kanezaki's unsupervised segmentation by backpropagation.

    Defaults follow the paper and its reference code (github.com/kanezaki/
    pytorch-unsupervised-segmentation) except where CPU time forbids: the paper uses
    ``n_features=100`` response maps and up to ``max_iter=1000`` iterations, about 1 s per
    iteration on a 256 x 256 image on 2 CPU cores (some 15 minutes per image). With 32
    maps an iteration takes about 0.08 s, and 50 iterations keep an image under ~5 s.
    Fewer maps also means fewer initial clusters, so the ``min_labels`` stopping rule is
    reached in fewer iterations: on 16 simulated 256 x 256 epi images training reached 3
    labels after 20-48 iterations, and hit the cap of 50 once. The paper sets superpixels
    by count (10000 per image, about 15 pixels each on its 481 x 321 photographs); here
    they are set by mean area (default 16 pixels) so that they stay smaller than the
    structures whatever the image size. The same seed gives the same bytes for the same
    torch build and thread count (float sums in the convolutions depend on the thread
    count).

    Attributes
    ----------
    channel
        Index of the channel to segment.
    n_features
        Number ``q`` of response maps (and so the most clusters); paper: 100.
    n_conv
        Number ``M`` of 3x3 convolution + ReLU + BatchNorm layers before the 1x1
        convolution (reference code's default: 2).
    max_iter
        Most training iterations (SGD updates) ``T``; paper: 1000.
    min_labels
        Training stops once the argmax takes at most this many distinct labels (paper: 3).
    learning_rate
        SGD learning rate (paper: 0.1).
    momentum
        SGD momentum (paper: 0.9).
    superpixel_size_px
        Mean area of a SLIC superpixel, in pixels.
    compactness
        SLIC compactness for intensities scaled to [0, 1] (by the 0.5 and 99.5 percentiles,
        clipped): larger values give more regular, less intensity-driven superpixels. The
        paper's 100 is in Lab units, whose lightness spans 0-100, so 1.0 would be the same
        balance; on blurred noisy discs 2-8 pixels in radius superpixels follow the discs
        best at 0.3 (foreground IoU of the superpixels' majority labels 0.27/0.66/0.83 at
        radius 2/4/8, against 0.16/0.59/0.80 at 1.0 and 0.08/0.46/0.72 at 0.1).
    seed
        Seed of the network's initial weights: the same seed gives the same masks.
    min_size_px
        Connected components with fewer voxels are removed from masks and instances.
    class_name
        Name of the single foreground class in the returned masks.
    """

    channel: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    n_features: int = attrs.field(default=32, converter=int, validator=_at_least(2))
    n_conv: int = attrs.field(default=2, converter=int, validator=_at_least(1))
    max_iter: int = attrs.field(default=50, converter=int, validator=_at_least(1))
    min_labels: int = attrs.field(default=3, converter=int, validator=_at_least(2))
    learning_rate: float = attrs.field(
        default=0.1, converter=float, validator=attrs.validators.gt(0)
    )
    momentum: float = attrs.field(
        default=0.9, converter=float, validator=[attrs.validators.ge(0), attrs.validators.lt(1)]
    )
    superpixel_size_px: float = attrs.field(
        default=16.0, converter=float, validator=attrs.validators.ge(1)
    )
    compactness: float = attrs.field(default=0.3, converter=float, validator=attrs.validators.gt(0))
    seed: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    min_size_px: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
    class_name: str = attrs.field(default="foreground", validator=non_empty)


class Backprop(BaselineSegmenter):
    """Kanezaki's CNN clustering with superpixel refinement; bright clusters as foreground.

    Each plane gets its own network, trained on the CPU from the same seeded initial
    weights; its clusters are the argmax labels of the forward pass at which training
    stops (after ``max_iter`` updates, or earlier once at most ``min_labels`` remain). The
    foreground is the set of clusters whose mean (raw) intensity exceeds Otsu's threshold
    over all planes' cluster means weighted by cluster size (constant planes are
    background and left out); its connected components (full 3D connectivity) are the
    instances.

    Parameters
    ----------
    config
        The segmenter's parameters.
    """

    def __init__(self, config: BackpropConfig):
        super().__init__(config)

    def _label(self, image, voxel_nm):
        # Constant planes (padding, say) are background and take no part in the decision:
        # their mean would drag Otsu's threshold down to them.
        planes = image.min(axis=(1, 2)) < image.max(axis=(1, 2))
        clusters = np.zeros(image.shape, dtype=np.int64)
        offset = 0
        for z in np.flatnonzero(planes):
            labels = self.clusters(image[z])
            clusters[z] = labels + offset
            offset += int(labels.max()) + 1
        bright = bright_regions(clusters[planes], image[planes])
        foreground = np.zeros(image.shape, dtype=bool)
        foreground[planes] = bright[clusters[planes]]
        return components(foreground)

    def clusters(self, plane: np.ndarray) -> np.ndarray:
        """Cluster labels ``0..k-1`` (Y, X) of one non-constant plane."""
        import torch  # deferred: loading the plugin should not import torch

        cfg = self.config
        superpixels = slic(
            _unit_range(plane),
            n_segments=max(1, int(round(plane.size / cfg.superpixel_size_px))),
            compactness=cfg.compactness,
            channel_axis=None,
            start_label=0,
        ).ravel()
        # Gradients on even when the caller runs under no_grad or inference_mode.
        with torch.inference_mode(False), torch.enable_grad():
            labels = _train(plane, superpixels, cfg)
        _, dense = np.unique(labels, return_inverse=True)
        return dense.reshape(plane.shape)


def _train(plane: np.ndarray, superpixels: np.ndarray, cfg: BackpropConfig) -> np.ndarray:
    """Train a seeded network on one plane; the argmax labels (pixels,) where it stops."""
    import torch

    x = torch.from_numpy(((plane - plane.mean()) / plane.std()).astype(np.float32))[None, None]
    # A local RNG state: the seed fixes the initial weights without touching the caller's
    # global torch random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        network = _network(cfg.n_features, cfg.n_conv)
    optimiser = torch.optim.SGD(network.parameters(), lr=cfg.learning_rate, momentum=cfg.momentum)
    network.train()  # BatchNorm on the image's own statistics, as in the paper
    for iteration in range(cfg.max_iter + 1):
        scores = network(x)[0].reshape(cfg.n_features, -1).T  # (pixels, q)
        labels = scores.argmax(dim=1).numpy()
        if iteration == cfg.max_iter or len(np.unique(labels)) <= cfg.min_labels:
            return labels
        target = torch.from_numpy(_refine(labels, superpixels, cfg.n_features))
        loss = torch.nn.functional.cross_entropy(scores, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    raise AssertionError("unreachable: the last iteration returns")


def _network(n_features: int, n_conv: int) -> nn.Sequential:
    """M x (3x3 conv, ReLU, BatchNorm), then 1x1 conv and BatchNorm (Kanezaki 2018)."""
    from torch import nn

    layers: list[nn.Module] = []
    channels = 1
    for _ in range(n_conv):
        layers += [
            nn.Conv2d(channels, n_features, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(n_features),
        ]
        channels = n_features
    layers += [nn.Conv2d(n_features, n_features, kernel_size=1), nn.BatchNorm2d(n_features)]
    return nn.Sequential(*layers)


def _refine(labels: np.ndarray, superpixels: np.ndarray, n_labels: int) -> np.ndarray:
    """Give every pixel the most frequent label of its superpixel (ties: the lowest label)."""
    counts = np.bincount(
        superpixels * n_labels + labels, minlength=(superpixels.max() + 1) * n_labels
    ).reshape(-1, n_labels)
    return counts.argmax(axis=1)[superpixels]


def _unit_range(plane: np.ndarray) -> np.ndarray:
    """Intensities scaled to [0, 1] by the 0.5 and 99.5 percentiles, clipped."""
    low, high = np.percentile(plane, [0.5, 99.5])
    if high <= low:
        low, high = plane.min(), plane.max()
    return np.clip((plane - low) / (high - low), 0.0, 1.0)
