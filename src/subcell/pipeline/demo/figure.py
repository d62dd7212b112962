"""The demo's overview figure, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

#: Outline colours: ground truth, then one per compared method.
_TRUTH = (0, 220, 0)
_METHODS = ((255, 60, 60), (60, 140, 255), (255, 200, 0))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, [0.5, 99.8])
    scaled = (image - low) / max(high - low, 1e-12)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def _outlined(gray: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    edge = mask & ~ndimage.binary_erosion(mask)
    rgb[edge] = colour
    return rgb


def overview_png(
    image: np.ndarray,
    truth: np.ndarray,
    predicted: list[np.ndarray],
    path: Path,
    scale: int = 2,
) -> Path:
    """Panels side by side: the image, ground-truth outlines, then each method's outlines."""
    gray = _to_uint8(image.astype(float))
    panels = [np.repeat(gray[..., None], 3, axis=-1), _outlined(gray, truth > 0, _TRUTH)]
    panels += [
        _outlined(gray, mask > 0, _METHODS[i % len(_METHODS)]) for i, mask in enumerate(predicted)
    ]
    gap = np.full((gray.shape[0], 4, 3), 255, np.uint8)
    row = [panels[0]]
    for panel in panels[1:]:
        row += [gap, panel]
    canvas = np.concatenate(row, axis=1).repeat(scale, axis=0).repeat(scale, axis=1)
    Image.fromarray(canvas).save(path, optimize=True)
    return path
