"""cellcutter as segmenters: the whole method, and the marker-controlled watershed baseline.

Both read a volume whose channels are whole-cell images plus, optionally, a nuclear stain
(the channel named ``nucleus_channel``). Both use the same markers (nucleus centres by
difference of Gaussians, or markers passed in, e.g. from a synthetic-nucleus model) and the
same foreground (the graph cut of the paper's MRF on the whole-cell image), so they differ
only in how pixels are assigned to cells:

- ``cellcutter`` trains a network on the image itself, with no labels: every marker's
  k x k patch must claim its own cell and no other patch's pixels (Din & Yu 2021), then
  each pixel goes to the patch with the highest probability.
- ``marker_watershed`` floods the whole-cell image from the markers within the mask.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np
import torch

from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Volume
from subcell.core.validators import percentile_pair
from subcell.plugins.cellcutter.foreground import foreground_mask
from subcell.plugins.cellcutter.integrate import integrate_patches
from subcell.plugins.cellcutter.markers import (
    check_markers,
    detect_markers,
    markers_from_probability,
)
from subcell.plugins.cellcutter.training import (
    CellCutterConfig,
    build_network,
    predict_patches,
    train_cellcutter,
)
from subcell.plugins.cellcutter.watershed import marker_watershed

__all__ = [
    "CellCutter",
    "CellCutterMethodConfig",
    "ForegroundConfig",
    "MarkerConfig",
    "MarkerWatershed",
    "MarkerWatershedConfig",
    "split_channels",
]


def _range(instance, attribute, value):
    lo, hi = value
    if not 0 < lo <= hi:
        raise ValueError(f"'{attribute.name}' must be 0 < lo <= hi, got {list(value)}")


@attrs.frozen(kw_only=True)
class MarkerConfig:
    """Nucleus markers by difference of Gaussians (see ``markers.detect_markers``).

    Attributes
    ----------
    nucleus_diameter_px
        ``[lo, hi]`` nucleus diameters in pixels.
    threshold
        Minimum DoG response in normalised intensity.
    min_snr
        Minimum response in robust noise standard deviations (0: off).
    """

    nucleus_diameter_px: tuple[float, float] = attrs.field(default=(8.0, 20.0), validator=_range)
    threshold: float = attrs.field(default=0.05, converter=float, validator=attrs.validators.ge(0))
    min_snr: float = attrs.field(default=6.0, converter=float, validator=attrs.validators.ge(0))


@attrs.frozen(kw_only=True)
class ForegroundConfig:
    """Foreground mask by the graph cut of the paper's MRF (see ``foreground.foreground_mask``).

    Attributes
    ----------
    alpha
        Prior probability of foreground, in (0, 1).
    kappa
        Cut penalty per pair of 4-neighbours with different labels, nats.
    percentiles
        ``[lo, hi]`` percentiles of the whole-cell image mapped to 0 and 1 (then clipped)
        before the MRF. The median as ``hi`` suits a confluent layer whose membranes are
        brighter than its cytoplasm: the cytoplasm, not just the membranes, reaches 1
        (on clumped-cell phantoms: mask IoU 0.97 with [1, 50], 0.26 with [1, 99]).
    smooth_sigma_px
        Gaussian smoothing before normalisation, pixels.
    downsample
        Solve on a block-mean image this many times smaller (1: full resolution).
    """

    alpha: float = attrs.field(
        default=0.5, converter=float, validator=[attrs.validators.gt(0), attrs.validators.lt(1)]
    )
    kappa: float = attrs.field(default=1.0, converter=float, validator=attrs.validators.ge(0))
    percentiles: tuple[float, float] = attrs.field(default=(1.0, 50.0), validator=percentile_pair)
    smooth_sigma_px: float = attrs.field(
        default=1.0, converter=float, validator=attrs.validators.ge(0)
    )
    downsample: int = attrs.field(default=1, converter=int, validator=attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class MarkerWatershedConfig:
    """Marker-controlled watershed on the same markers and mask as cellcutter.

    Attributes
    ----------
    nucleus_channel
        Name of the input channel holding the nuclear stain; the other channels are
        whole-cell images (averaged after percentile normalisation).
    markers, foreground
        As for cellcutter.
    relief
        Landscape flooded from the markers: ``intensity`` (bright membranes between
        cells), ``inverted`` (bright cytoplasm, dim gaps) or ``gradient``.
    smooth_sigma_px
        Gaussian smoothing of the relief, pixels.
    """

    nucleus_channel: str = "nucleus"
    markers: MarkerConfig = attrs.Factory(MarkerConfig)
    foreground: ForegroundConfig = attrs.Factory(ForegroundConfig)
    relief: str = attrs.field(
        default="intensity", validator=attrs.validators.in_(("intensity", "inverted", "gradient"))
    )
    smooth_sigma_px: float = attrs.field(
        default=1.0, converter=float, validator=attrs.validators.ge(0)
    )


@attrs.frozen(kw_only=True)
class CellCutterMethodConfig:
    """cellcutter end to end: markers, foreground, training on the image, integration.

    Attributes
    ----------
    nucleus_channel
        Name of the input channel holding the nuclear stain. The network sees every channel
        (the paper's best input: whole-cell fluorescence plus nuclei).
    markers, foreground
        Marker detection and the foreground graph cut.
    network
        Patches, loss (``lambda_``, ``beta``), network and optimiser
        (``training.CellCutterConfig``).
    threshold
        A pixel where every patch's probability is below it is background.
    keep_main_component
        Drop pixels of a cell that are not connected to its largest piece.
    restrict_to_mask
        Also make every pixel outside the foreground mask background (the paper's
        integration uses the probabilities alone; the mask only enters the loss).
    fill_mask
        Give every pixel inside the foreground mask to its most probable patch, even where all
        patches are below ``threshold``. Where two patches cannot tell whose a pixel is, the
        loss's optimum has both near 0.27, so the paper's rule leaves gaps between touching
        cells.
    """

    nucleus_channel: str = "nucleus"
    markers: MarkerConfig = attrs.Factory(MarkerConfig)
    foreground: ForegroundConfig = attrs.Factory(ForegroundConfig)
    network: CellCutterConfig = attrs.Factory(CellCutterConfig)
    threshold: float = attrs.field(
        default=0.5, converter=float, validator=[attrs.validators.gt(0), attrs.validators.lt(1)]
    )
    keep_main_component: bool = True
    restrict_to_mask: bool = False
    fill_mask: bool = False


def split_channels(volume: Volume, nucleus_channel: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The whole-cell image (mean of the normalised cell channels) and the nucleus image.

    Parameters
    ----------
    volume
        A ``CZYX`` volume with one plane.
    nucleus_channel
        Name of the nuclear-stain channel; absent: no nucleus image.

    Returns
    -------
    cell : numpy.ndarray
        ``(Y, X)`` float32 in about [0, 1].
    nucleus : numpy.ndarray or None
        ``(Y, X)`` float32 raw nucleus channel.

    Raises
    ------
    VolumeError
        Several planes, no whole-cell channel, or NaN/inf values.
    """
    data = np.asarray(volume.data, dtype=np.float32)
    if data.shape[1] != 1:
        raise VolumeError(f"cellcutter segments single planes; got {data.shape[1]} planes")
    if not np.isfinite(data).all():
        raise VolumeError("the image holds NaN or infinite values")
    names = list(volume.channel_names)
    nucleus = data[names.index(nucleus_channel), 0] if nucleus_channel in names else None
    cells = [data[c, 0] for c, name in enumerate(names) if name != nucleus_channel]
    if not cells:
        raise VolumeError(
            f"no whole-cell channel: the only channel is the nucleus channel {nucleus_channel!r}"
        )
    return np.mean([_normalised(c) for c in cells], axis=0).astype(np.float32), nucleus


def _normalised(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1.0, 99.5])
    return np.clip((image - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


class _MarkersAndMask:
    """Markers and foreground shared by both segmenters."""

    config: MarkerWatershedConfig | CellCutterMethodConfig

    def markers(self, volume: Volume) -> np.ndarray:
        """Nucleus markers ``(M, 2)`` (y, x) from the volume's nucleus channel."""
        _, nucleus = split_channels(volume, self.config.nucleus_channel)
        if nucleus is None:
            raise VolumeError(
                f"no {self.config.nucleus_channel!r} channel to find markers in "
                f"(channels: {', '.join(volume.channel_names)}); give a nucleus image or markers"
            )
        m = self.config.markers
        found = detect_markers(
            nucleus,
            nucleus_diameter_px=m.nucleus_diameter_px,
            threshold=m.threshold,
            min_snr=m.min_snr,
        )
        return check_markers(found, nucleus.shape)

    def markers_from_nuclei(self, nucleus_probability: np.ndarray) -> np.ndarray:
        """Markers ``(M, 2)`` from a predicted nucleus probability (synthetic nuclei)."""
        found = markers_from_probability(nucleus_probability)
        return check_markers(found, nucleus_probability.shape)

    def foreground(self, volume: Volume) -> np.ndarray:
        """Foreground mask ``(Y, X)`` bool by the graph cut on the whole-cell image."""
        cell, _ = split_channels(volume, self.config.nucleus_channel)
        f = self.config.foreground
        return foreground_mask(
            cell,
            alpha=f.alpha,
            kappa=f.kappa,
            percentiles=f.percentiles,
            smooth_sigma_px=f.smooth_sigma_px,
            downsample=f.downsample,
        )

    def markers_and_mask(self, volume: Volume, markers=None, mask=None):
        """Markers and mask as given (checked), or found in the volume when None."""
        markers = self.markers(volume) if markers is None else markers
        markers = check_markers(markers, volume.shape[-2:])
        mask = self.foreground(volume) if mask is None else np.asarray(mask, dtype=bool)
        if mask.shape != tuple(volume.shape[-2:]):
            raise VolumeError(
                f"mask shape {mask.shape} differs from the image's {volume.shape[-2:]}"
            )
        return markers, mask


def _masks(labels: np.ndarray, volume: Volume) -> Masks:
    labels = labels.astype(np.uint32)[None]
    return Masks((labels > 0)[None].astype(np.uint8), ("cell",), volume.voxel_nm, labels)


class MarkerWatershed(_MarkersAndMask):
    """Marker-controlled watershed baseline (segmenter ``marker_watershed``)."""

    def __init__(self, config: MarkerWatershedConfig):
        self.config = config

    def segment(self, volume: Volume, *, markers=None, mask=None) -> Masks:
        """Cell instances of a single-plane volume; markers and mask found when not given."""
        markers, mask = self.markers_and_mask(volume, markers, mask)
        cell, _ = split_channels(volume, self.config.nucleus_channel)
        labels = marker_watershed(
            cell,
            markers,
            mask,
            relief=self.config.relief,
            smooth_sigma_px=self.config.smooth_sigma_px,
        )
        return _masks(labels, volume)


class CellCutter(_MarkersAndMask):
    """cellcutter (segmenter ``cellcutter``): trains on the image it segments."""

    def __init__(self, config: CellCutterMethodConfig):
        self.config = config

    def build_network(self, n_channels: int) -> torch.nn.Module:
        """An untrained network for images of ``n_channels`` channels (weights to load)."""
        return build_network(self.config.network, n_channels + 1)

    def network_input(self, volume: Volume) -> np.ndarray:
        """``(C, Y, X)`` float32: every channel of the single plane (z-scored in training)."""
        split_channels(volume, self.config.nucleus_channel)  # checks planes and values
        return np.asarray(volume.data, dtype=np.float32)[:, 0]

    def fit(
        self,
        volume: Volume,
        *,
        markers=None,
        mask=None,
        progress: Callable[[int, float], None] | None = None,
        device: str = "cpu",
    ) -> tuple[torch.nn.Module, list[float]]:
        """Train the network on this image; returns it and the per-epoch loss."""
        markers, mask = self.markers_and_mask(volume, markers, mask)
        return train_cellcutter(
            self.network_input(volume),
            markers,
            mask,
            self.config.network,
            progress=progress,
            device=device,
        )

    def apply(
        self, network: torch.nn.Module, volume: Volume, markers, mask=None, *, device="cpu"
    ) -> Masks:
        """Cell instances from a trained network: patches, then integration."""
        markers = check_markers(markers, volume.shape[-2:])
        probabilities, origins = predict_patches(
            network, self.network_input(volume), markers, self.config.network, device=device
        )
        mask = None if mask is None else np.asarray(mask, bool)
        if mask is not None and self.config.restrict_to_mask:
            probabilities = _outside_mask_zeroed(probabilities, origins, mask)
        labels = integrate_patches(
            probabilities,
            origins,
            volume.shape[-2:],
            threshold=self.config.threshold,
            keep_main_component=self.config.keep_main_component,
            foreground=mask if self.config.fill_mask else None,
        )
        return _masks(labels, volume)

    def segment(self, volume: Volume, *, markers=None, mask=None, progress=None) -> Masks:
        """Train on the volume and segment it (the paper's use: no labels, one image)."""
        markers, mask = self.markers_and_mask(volume, markers, mask)
        network, _ = self.fit(volume, markers=markers, mask=mask, progress=progress)
        return self.apply(network, volume, markers, mask)


def _outside_mask_zeroed(probabilities, origins, mask) -> np.ndarray:
    """Patch probabilities with the pixels outside the foreground set to 0."""
    k = probabilities.shape[-1]
    padded = np.pad(mask, k, constant_values=False)
    out = probabilities.copy()
    for i, (y, x) in enumerate(np.asarray(origins) + k):
        out[i] *= padded[y : y + k, x : x + k]
    return out
