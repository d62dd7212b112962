"""Classical segmentation baselines: Otsu, adaptive threshold, backprop, morphological.

Each segments one channel of a ``CZYX`` volume, 2D (``Z == 1``) or 3D, into one semantic
class with instance labels. They are the references a learned segmenter has to beat
(Sekh et al. 2021, Table 1). A constant (e.g. all-zero) image gives empty masks and a
warning. Arrays are computed in memory with numpy: a dask volume is loaded channel by
channel, so chunk large volumes before calling ``segment``.
"""

from __future__ import annotations

from subcell.core.hookspecs import hookimpl
from subcell.plugins.baselines.backprop import Backprop, BackpropConfig
from subcell.plugins.baselines.morphological import Morphological, MorphologicalConfig
from subcell.plugins.baselines.threshold import Adaptive, AdaptiveConfig, Otsu, OtsuConfig

__all__ = [
    "Adaptive",
    "AdaptiveConfig",
    "Backprop",
    "BackpropConfig",
    "Morphological",
    "MorphologicalConfig",
    "Otsu",
    "OtsuConfig",
    "register_segmenters",
]


@hookimpl
def register_segmenters(register):
    """Register the classical baselines."""
    register(
        "otsu",
        OtsuConfig,
        Otsu,
        "global Otsu threshold of one channel, connected components as instances",
    )
    register(
        "adaptive",
        AdaptiveConfig,
        Adaptive,
        "local Gaussian-weighted threshold of one channel, robust to uneven illumination",
    )
    register(
        "backprop",
        BackpropConfig,
        Backprop,
        "unsupervised CNN clustering with superpixel refinement (Kanezaki 2018), bright clusters",
    )
    register(
        "morphological",
        MorphologicalConfig,
        Morphological,
        "watershed of the morphological gradient from h-minima markers (MorphoLibJ), bright basins",
    )
