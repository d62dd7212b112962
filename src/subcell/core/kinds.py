"""The kinds of plugin the core knows, and the interface each kind's objects provide.

The core never names a particular organelle or microscope; it names *kinds*. Each kind has
one registration hook (see :mod:`subcell.core.hookspecs`) and one small interface, written
here as a :class:`typing.Protocol` so plugin authors see what a factory must return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import numpy as np

    from subcell.core.model import Emitters, Field, Geometry, Masks, Table, Volume
    from subcell.core.scene import Scene


@attrs.frozen
class Kind:
    """A kind of plugin: its config key, its registration hook and what it does."""

    name: str
    hook: str
    description: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("structure", "register_structures", "geometry of a structure in nm"),
        Kind("labelling", "register_labellings", "fluorophore placement on a geometry"),
        Kind("photophysics", "register_photophysics", "emitter on/off states over frames"),
        Kind("microscope", "register_microscopes", "optics: PSF and detection channels"),
        Kind("noise", "register_noise_models", "photon counting and camera noise"),
        Kind("ground_truth", "register_ground_truth_rules", "masks from geometry/emitters"),
        Kind("network", "register_networks", "a torch network for segmentation"),
        Kind("segmenter", "register_segmenters", "image to masks (classical or learned)"),
        Kind("analytics", "register_analytics", "per-object measurements from masks"),
        Kind("reader", "register_readers", "image file format to Volume"),
        Kind("writer", "register_writers", "Volume (and masks) to a file format"),
        Kind("phantom", "register_phantoms", "a whole scene: dyes and its ground truth"),
        Kind("step", "register_steps", "a pipeline step that `subcell run` can chain"),
    )
}


@runtime_checkable
class Structure(Protocol):
    """Places structures in a field of view."""

    def generate(self, field: Field, rng: np.random.Generator) -> Geometry: ...


@runtime_checkable
class Labelling(Protocol):
    """Places fluorophores on a geometry."""

    def label(self, geometry: Geometry, rng: np.random.Generator) -> Emitters: ...


@runtime_checkable
class Photophysics(Protocol):
    """Sets each emitter's on-fraction per frame."""

    def apply(self, emitters: Emitters, n_frames: int, rng: np.random.Generator) -> Emitters: ...


@runtime_checkable
class Microscope(Protocol):
    """Forms the noise-free image (expected photons per pixel) of emitters on a field."""

    def image(self, emitters: Emitters, field: Field, frame: int = 0) -> np.ndarray: ...

    def psf(self, field: Field) -> np.ndarray: ...


@runtime_checkable
class NoiseModel(Protocol):
    """Turns expected photons into detector counts."""

    def apply(self, expected_photons: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...

    def noise_sd_photons(self, expected_photons: np.ndarray) -> np.ndarray:
        """Standard deviation of the noise at each expected photon level, in photons."""
        ...


@runtime_checkable
class GroundTruthRule(Protocol):
    """Derives masks from what was simulated (never from the noisy image).

    ``clean`` is the noise-free image (C, Z, Y, X) in expected photons, ``noise`` the noise
    model applied to it and ``microscope`` the optics that formed it; rules that threshold
    the clean image or need the PSF use them, the others ignore them.
    """

    def masks(
        self,
        geometry: Geometry,
        emitters: Emitters,
        field: Field,
        *,
        clean: np.ndarray | None = None,
        noise: NoiseModel | None = None,
        microscope: Microscope | None = None,
    ) -> Masks: ...


@runtime_checkable
class Segmenter(Protocol):
    """Segments a volume into masks."""

    def segment(self, volume: Volume) -> Masks: ...


@runtime_checkable
class Analytics(Protocol):
    """Measures the objects of a mask; returns a table with one row per object."""

    def measure(self, masks: Masks, volume: Volume | None = None) -> Table: ...


@runtime_checkable
class Reader(Protocol):
    """Reads one image format."""

    def can_read(self, path: Path) -> bool: ...

    def read(self, path: Path) -> Volume: ...


@runtime_checkable
class Writer(Protocol):
    """Writes a volume, and optionally masks and attributes, in one format."""

    def write(
        self, volume: Volume, path: Path, masks: Masks | None = None, attrs: dict | None = None
    ) -> Path: ...


@runtime_checkable
class Phantom(Protocol):
    """Draws a whole field: the fluorophores of each dye and the ground truth."""

    def draw(self, field: Field, rng: np.random.Generator) -> Scene: ...


@runtime_checkable
class Step(Protocol):
    """A pipeline step: turns its inputs and config into outputs under one folder.

    The factory registered with ``register_steps`` receives the step's config (its attrs
    class, every field defaulted) and returns this object. A config class may hold the
    config file of a command in a field named ``config`` (``subcell run`` loads the step's
    ``config:`` into it), and fields with ``metadata={"hash": False}`` (workers, device)
    do not count when deciding whether an earlier output can be reused.

    Attributes
    ----------
    inputs
        What the step takes: input name -> ``"required"``, ``"optional"`` or ``"many"``
        (several paths by label, e.g. the metrics of several evaluations).
    outputs
        The names of the paths ``run`` returns; the first is the main output.

    ``run(inputs, out)`` receives the input paths by name (a ``"many"`` input as a dict
    label -> path; an optional input that is not given is absent) and the step's own
    folder, writes only inside that folder, and returns the path of every output by name.
    """

    inputs: Mapping[str, str]
    outputs: tuple[str, ...]

    def run(self, inputs: dict[str, Any], out: Path) -> dict[str, Path]: ...


#: The interface each kind's factory must return (networks return a ``torch.nn.Module``).
INTERFACES: dict[str, Any] = {
    "structure": Structure,
    "labelling": Labelling,
    "photophysics": Photophysics,
    "microscope": Microscope,
    "noise": NoiseModel,
    "ground_truth": GroundTruthRule,
    "segmenter": Segmenter,
    "analytics": Analytics,
    "reader": Reader,
    "writer": Writer,
    "phantom": Phantom,
    "step": Step,
}
