"""The demo's overview figure, drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


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
    image: np.ndarray, truth: np.ndarray, predicted: np.ndarray, path: Path, scale: int = 3
) -> Path:
    """Three panels side by side: the image, ground-truth outlines, predicted outlines."""
    gray = _to_uint8(image.astype(float))
    panels = [
        np.repeat(gray[..., None], 3, axis=-1),
        _outlined(gray, truth > 0, (0, 220, 0)),
        _outlined(gray, predicted > 0, (255, 60, 60)),
    ]
    gap = np.full((gray.shape[0], 4, 3), 255, np.uint8)
    canvas = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    canvas = canvas.repeat(scale, axis=0).repeat(scale, axis=1)
    Image.fromarray(canvas).save(path)
    return path
