"""What a model computes from an image's channels before its network sees them.

A model's card names one transform (key ``input``); training and every inference path
apply it through :func:`transform_channels` to the percentile-normalised channels, so the
network always sees the same thing. It lives in ``subcell.core`` because both the pipeline
(training, inference) and the ``nile_red`` plugin (preprocessing of raw images) use it, and
neither may import the other.

Transforms
----------
``channels``
    The selected channels as they are.
``intensity_ratio``
    Two channels ``(a, b)`` give ``intensity = (a + b) / 2`` and ``ratio = b / a`` (Nile
    Red: ``a`` yellow, ``b`` red; Zhanghao et al.).
``intensity``
    The mean of the selected channels only (the paper's ablation without the ratio).

Safe ratio
----------
``ratio = (max(b, 0) + eps) / (max(a, 0) + eps)`` with ``eps > 0``: finite everywhere, no
division by zero where ``a`` is 0; where both channels are dark (``a, b << eps``) the ratio
tends to the neutral value 1 (no spectral shift), and where both are bright (``>> eps``) it
is ``b / a``. Negative values (noise below the background after normalisation) are clipped
to 0 first, so the ratio is never negative. ``eps`` is in the units of the channels: on
percentile-normalised channels (the network's input, bright level 1) it is a fraction of
the bright level, which is what the model card stores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from subcell.core.errors import ConfigError

__all__ = [
    "DEFAULT_RATIO_EPS",
    "TRANSFORMS",
    "check_transform",
    "intensity_ratio",
    "output_names",
    "safe_ratio",
    "transform_channels",
]

TRANSFORMS = ("channels", "intensity_ratio", "intensity")
#: Default ``eps`` of the safe ratio on normalised channels: 5 % of the bright level.
DEFAULT_RATIO_EPS = 0.05


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray, eps: float) -> np.ndarray:
    """``(max(numerator, 0) + eps) / (max(denominator, 0) + eps)`` as float32.

    Parameters
    ----------
    numerator, denominator
        Arrays of the same shape (any real dtype).
    eps
        Positive regulariser, in the units of the arrays.

    Returns
    -------
    numpy.ndarray
        float32, finite, ``> 0``; 1 where both inputs are 0.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    top = np.maximum(np.asarray(numerator, dtype=np.float64), 0.0) + eps
    bottom = np.maximum(np.asarray(denominator, dtype=np.float64), 0.0) + eps
    return (top / bottom).astype(np.float32)


def intensity_ratio(first: np.ndarray, second: np.ndarray, *, eps: float) -> np.ndarray:
    """Intensity (mean) and safe ratio ``second / first`` of two channels, stacked.

    Parameters
    ----------
    first, second
        The two channels, same shape (Nile Red: yellow, red).
    eps
        The safe ratio's regulariser (:func:`safe_ratio`), in the channels' units.

    Returns
    -------
    numpy.ndarray
        (2, *shape) float32: intensity, ratio.
    """
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(f"channels differ in shape: {first.shape} and {second.shape}")
    intensity = ((first + second) / 2.0).astype(np.float32)
    return np.stack([intensity, safe_ratio(second, first, eps)])


def check_transform(transform: str, n_channels: int) -> None:
    """Raise :class:`ConfigError` unless ``transform`` takes ``n_channels`` input channels."""
    if transform not in TRANSFORMS:
        raise ConfigError(
            f"input transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}"
        )
    if n_channels < 1:
        raise ConfigError("the input transform needs at least one channel")
    if transform == "intensity_ratio" and n_channels != 2:
        raise ConfigError(
            f"input transform 'intensity_ratio' takes exactly 2 channels (denominator, "
            f"numerator), got {n_channels}"
        )


def output_names(transform: str, channel_names: Sequence[str]) -> tuple[str, ...]:
    """Names of the network's input channels made from ``channel_names``."""
    check_transform(transform, len(channel_names))
    if transform == "channels":
        return tuple(channel_names)
    if transform == "intensity":
        return ("intensity",)
    return ("intensity", f"ratio {channel_names[1]}/{channel_names[0]}")


def transform_channels(
    image: np.ndarray,
    transform: str = "channels",
    *,
    channels: Sequence[int] | None = None,
    eps: float = DEFAULT_RATIO_EPS,
) -> np.ndarray:
    """The network input made from an image's channels.

    Parameters
    ----------
    image
        (C, ...) channels first, normalised (the network's units).
    transform
        One of :data:`TRANSFORMS`.
    channels
        Indices of the channels the transform takes, in order (``intensity_ratio``:
        denominator, numerator); None: all.
    eps
        The safe ratio's regulariser, in the image's units.

    Returns
    -------
    numpy.ndarray
        (C', ...) float32: C' = len(channels) for ``channels``, 2 for ``intensity_ratio``,
        1 for ``intensity``.
    """
    image = np.asarray(image)
    picked = list(range(image.shape[0])) if channels is None else [int(c) for c in channels]
    if any(not 0 <= c < image.shape[0] for c in picked):
        raise ValueError(f"channels {picked} out of range for {image.shape[0]} image channel(s)")
    check_transform(transform, len(picked))
    selected = image[picked]
    if transform == "channels":
        return selected.astype(np.float32, copy=False)
    if transform == "intensity":
        return selected.astype(np.float64).mean(axis=0, keepdims=True).astype(np.float32)
    return intensity_ratio(selected[0], selected[1], eps=eps)
