"""The per-array steps of segmentation, shared by the in-memory and the chunked paths.

Pixel sizes (which one is in use, when to rescale), the channel check, prediction on the
input's grid through the model's pixel size, instance labelling and object counts. Each takes
plain arrays, so a block of a larger-than-memory volume goes through exactly the same code as
a whole image.

Pixel size rules
----------------
The pixel size *in use* is ``pixel_nm`` when given, else the image's own metadata. Readers
fill a size the file does not state with 1 nm (the project's "pixel units" convention), so a
y/x size of exactly 1 nm counts as unstated; the model's size is then assumed, with a warning.
When the size in use differs from the model card's ``pixel_nm`` by more than 2 %, the image is
rescaled to the model's pixel size (linear interpolation, anti-aliased when shrinking),
segmented, and the probabilities mapped back to the input grid before thresholding, so the
mask always has the input's shape. 2D models rescale y and x; 3D models also z.

Channels
--------
The image must have the model's ``in_channels`` (all the channels it was trained on, in
order). A model with an ``input`` transform in its card (Nile Red: intensity and ratio from
the yellow and red channels) computes its network input from the normalised channels inside
:func:`~subcell.models.predict.predict_probabilities`, after any rescaling, exactly as
training did.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import attrs
import numpy as np

from subcell.core.errors import VolumeError
from subcell.core.model import Masks
from subcell.models.predict import class_index_map, predict_probabilities

if TYPE_CHECKING:
    from subcell.models import LoadedModel

__all__ = [
    "RESCALE_TOLERANCE",
    "UNSTATED_NM",
    "PixelSizes",
    "check_channels",
    "count_objects",
    "grid_shape",
    "label_instances",
    "pixel_sizes",
    "probabilities_on_grid",
    "resample",
]

#: A pixel size the reader filled in because the file states none ("pixel units").
UNSTATED_NM = 1.0
#: Relative pixel-size difference below which the image is not rescaled.
RESCALE_TOLERANCE = 0.02


@attrs.frozen
class PixelSizes:
    """The pixel sizes a segmentation used, all (z, y, x) in nm.

    Attributes
    ----------
    image_nm
        What the image's metadata states; None for a size it does not state.
    used_nm
        The sizes in use (``pixel_nm``, the metadata, or the model's when unstated).
    model_nm
        The model's voxel size; None for a classical segmenter.
    scale
        Input pixels to model pixels per axis (``used / model``); 1 where not rescaled.
    """

    image_nm: tuple[float | None, float | None, float | None]
    used_nm: tuple[float, float, float]
    model_nm: tuple[float, float, float] | None = None
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def as_dict(self) -> dict:
        return {
            "image_nm": list(self.image_nm),
            "used_nm": list(self.used_nm),
            "model_nm": None if self.model_nm is None else list(self.model_nm),
            "scale": list(self.scale),
        }


def check_channels(card: dict, n_channels: int) -> None:
    """Raise :class:`VolumeError` naming both counts unless the image has the model's channels."""
    expected = int(card["in_channels"])
    if n_channels == expected:
        return
    hint = (
        "; it is a colour image with differing channels, convert it to grey"
        if n_channels in (3, 4) and expected == 1
        else ""
    )
    names = card.get("channel_names") or []
    named = f" ({', '.join(map(str, names))})" if len(names) == expected and expected > 1 else ""
    transform = (card.get("input") or {}).get("transform", "channels")
    if transform != "channels" and not hint:
        hint = f"; its network input is computed from them ({transform})"
    raise VolumeError(
        f"model {card['name']!r} expects {expected} input channel(s){named}; the image has "
        f"{n_channels}{hint}"
    )


def _stated(value: float) -> float | None:
    return None if float(value) == UNSTATED_NM else float(value)


def _fmt_yx(y: float, x: float) -> str:
    return f"{y:g} nm" if y == x else f"{y:g} x {x:g} nm (y x)"


def pixel_sizes(
    voxel_nm: tuple[float, float, float],
    *,
    pixel_nm: float | None = None,
    card: dict | None = None,
) -> PixelSizes:
    """The pixel sizes to segment with, warning when they are assumed or need rescaling.

    Parameters
    ----------
    voxel_nm
        The image's (z, y, x) voxel size as read (1 nm = not stated by the file).
    pixel_nm
        The in-plane pixel size the user gave (``--pixel-nm``); overrides the metadata.
    card
        The model card; None for a classical segmenter (nothing is rescaled).

    Returns
    -------
    PixelSizes
        Including the per-axis ``scale`` from the input grid to the model's grid.
    """
    image = tuple(_stated(v) for v in voxel_nm)
    z_img = float(voxel_nm[0])
    if pixel_nm is not None:
        used_yx = (float(pixel_nm), float(pixel_nm))
    elif image[1] is not None and image[2] is not None:
        used_yx = (image[1], image[2])
    else:
        used_yx = None
    if card is None:
        y, x = used_yx if used_yx is not None else (float(voxel_nm[1]), float(voxel_nm[2]))
        return PixelSizes(image, (z_img, y, x))
    name, model_px = card["name"], float(card["pixel_nm"])
    model_nm = (float(card["voxel_nm"][0]), model_px, model_px)
    if used_yx is None:
        warnings.warn(
            f"the image states no pixel size; assuming the model's, {model_px:g} nm "
            f"(model {name!r}; give --pixel-nm / pixel_nm to set it)",
            stacklevel=3,
        )
        used_yx = (model_px, model_px)
    elif pixel_nm is None and _differs(used_yx, (model_px, model_px)):
        warnings.warn(
            f"image pixel size {_fmt_yx(*used_yx)} (from its metadata) differs from the "
            f"model's {model_px:g} nm (model {name!r}); rescaling the image to the model's "
            f"pixel size (give --pixel-nm / pixel_nm if the metadata is wrong)",
            stacklevel=3,
        )
    three_d = int(card["network"]["config"].get("spatial_dims", 2)) == 3
    z_used = image[0] if image[0] is not None else (model_nm[0] if three_d else z_img)
    if three_d and image[0] is not None and _differs((z_used,), (model_nm[0],)):
        warnings.warn(
            f"image z step {z_used:g} nm differs from the model's {model_nm[0]:g} nm "
            f"(model {name!r}); rescaling the stack along z",
            stacklevel=3,
        )
    used = (z_used, *used_yx)
    scale = tuple(
        u / m if _differs((u,), (m,)) and (axis > 0 or three_d) else 1.0
        for axis, (u, m) in enumerate(zip(used, model_nm, strict=True))
    )
    return PixelSizes(image, used, model_nm, scale)


def _differs(a, b) -> bool:
    return any(abs(u / m - 1.0) > RESCALE_TOLERANCE for u, m in zip(a, b, strict=True))


def grid_shape(shape: tuple[int, ...], scale: tuple[float, ...]) -> tuple[int, ...]:
    """The spatial shape of an input grid ``shape`` resampled by ``scale`` (at least 1)."""
    return tuple(
        s if f == 1.0 else max(1, int(round(s * f))) for s, f in zip(shape, scale, strict=True)
    )


def resample(array: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """Linear resampling of (C, Z, Y, X) ``array`` to spatial shape ``spatial``, float32.

    Anti-aliasing (a Gaussian matched to the shrink factor) is applied along each shrunk axis.
    """
    from skimage.transform import resize

    if tuple(array.shape[1:]) == tuple(spatial):
        return array.astype(np.float32, copy=False)
    shrinking = any(t < s for t, s in zip(spatial, array.shape[1:], strict=True))
    out = resize(
        array,
        (array.shape[0], *spatial),
        order=1,
        mode="edge",
        anti_aliasing=shrinking,
        preserve_range=True,
    )
    return out.astype(np.float32, copy=False)


def probabilities_on_grid(
    model: LoadedModel,
    normalized: np.ndarray,
    scale: tuple[float, float, float],
    *,
    device: str | None = None,
    tta: bool = False,
) -> np.ndarray:
    """Class probabilities (K, Z, Y, X) on the input's grid of a normalised (C, Z, Y, X) image.

    The image is resampled to the model's pixel size (``scale`` per axis), predicted with
    Gaussian-blended sliding windows (averaged over flipped and turned views with ``tta``),
    and the probabilities resampled back.
    """
    spatial = tuple(normalized.shape[1:])
    target = grid_shape(spatial, scale)
    probs = predict_probabilities(model, resample(normalized, target), device=device, tta=tta)
    return resample(probs, spatial)


def label_instances(semantic: np.ndarray) -> np.ndarray:
    """Instance labels (Z, Y, X) uint32 from masks (K, Z, Y, X): connected components per class.

    Components are numbered class by class (all of class 1 first), in raster order, with
    full connectivity; background is 0. Where classes overlap, the first class wins.
    """
    from skimage.measure import label

    index = class_index_map(semantic)
    out = np.zeros(index.shape, dtype=np.uint32)
    offset = 0
    for k in range(1, semantic.shape[0] + 1):
        labels, n = label(index == k, connectivity=index.ndim, return_num=True)
        out[labels > 0] = labels[labels > 0].astype(np.uint32) + np.uint32(offset)
        offset += n
    return out


def count_objects(masks: Masks) -> dict[str, int]:
    """Connected components (full connectivity) of each class mask, by class name."""
    from skimage.measure import label

    return {
        name: int(label(masks.semantic[k], connectivity=3, return_num=True)[1])
        for k, name in enumerate(masks.class_names)
    }
