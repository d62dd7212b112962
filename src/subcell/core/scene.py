"""Scenes: a whole field drawn by a phantom plugin, with several dyes and its own truth.

A :class:`~subcell.core.kinds.Structure` gives capsule geometry that the simulate step
labels, images and rasterises with separate plugins. Some samples are not capsules: tightly
packed cells (a power diagram), or a whole cell whose compartments fill its volume. A
*phantom* draws such a field at once: the fluorophores of each dye, where they are, and the
ground truth on the imaging grid. The phantom step then images each dye through the chosen
microscope and noise model, as the simulate step does.
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.errors import VolumeError
from subcell.core.model import Emitters, Masks

__all__ = ["Dye", "Scene"]


@attrs.frozen(eq=False)
class Dye:
    """The fluorophores of one dye in a scene.

    Attributes
    ----------
    name
        The dye's name. A microscope with one detection channel images each dye on its own
        (sequential acquisition), and the image's channel takes this name.
    emitters
        Positions (nm), photons and ids of the dye's fluorophores.
    emission_peak_nm
        Per-emitter emission peak (N,), for a dye whose spectrum shifts with its
        environment (Nile Red and membrane polarity); a spectral microscope splits each
        emitter's photons between its detection bands by it. ``None``: the microscope's
        configured emission.
    """

    name: str
    emitters: Emitters
    emission_peak_nm: np.ndarray | None = None

    def __attrs_post_init__(self):
        peaks = self.emission_peak_nm
        if peaks is not None and np.shape(peaks) != (len(self.emitters),):
            raise VolumeError(
                f"dye {self.name!r}: emission_peak_nm has shape {np.shape(peaks)}, "
                f"expected ({len(self.emitters)},)"
            )


@attrs.frozen(eq=False)
class Scene:
    """What a phantom draws: its dyes and the ground truth on the imaging grid.

    Attributes
    ----------
    dyes
        One entry per dye, in channel order for single-channel microscopes.
    masks
        Semantic masks (K, Z, Y, X) with class names, and instance ids (Z, Y, X), on the
        field the phantom was drawn for.
    """

    dyes: tuple[Dye, ...] = attrs.field(converter=tuple)
    masks: Masks

    def __attrs_post_init__(self):
        if not self.dyes:
            raise VolumeError("a scene needs at least one dye")
        names = [dye.name for dye in self.dyes]
        if len(set(names)) != len(names):
            raise VolumeError(f"a scene's dyes need distinct names, got {names}")
