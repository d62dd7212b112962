"""Config schemas of the pipeline steps: frozen attrs classes, one per step.

A step config file names its step (``step: simulate``). Plugin sections are chosen by
name and validated by the plugin's own config class. Each step's bundled defaults
(``defaults/<step>.yaml``) form the bottom config layer.
"""

from __future__ import annotations

from typing import Literal

import attrs

from subcell.core.structuring import spec_type
from subcell.core.validators import value_range
from subcell.pipeline.train_schema import TrainConfig

StructureSpec = spec_type("structure")
LabellingSpec = spec_type("labelling")
PhotophysicsSpec = spec_type("photophysics")
MicroscopeSpec = spec_type("microscope")
NoiseSpec = spec_type("noise")
GroundTruthSpec = spec_type("ground_truth")
SegmenterSpec = spec_type("segmenter")
AnalyticsSpec = spec_type("analytics")
PhantomSpec = spec_type("phantom")


def _positive(instance, attribute, value):
    values = value if isinstance(value, tuple) else (value,)
    if any(v <= 0 for v in values):
        raise ValueError(f"'{attribute.name}' must be positive, got {value}")


def _range(*, positive: bool = False):
    """Validator of a ``(lo, hi)`` range: two numbers, ``lo <= hi``, none negative (or,
    with ``positive``, none zero or negative); ``None`` (an unset optional range) passes."""
    return value_range(positive=positive, optional=True)


def _split(instance, attribute, value):
    if any(v < 0 for v in value) or abs(sum(value) - 1.0) > 1e-6:
        raise ValueError(
            f"'{attribute.name}' must be three fractions >= 0 summing to 1 (train, val, test), "
            f"got {list(value)}"
        )


@attrs.frozen(kw_only=True)
class StructureEntry:
    """One kind of structure in the field and the labelling that puts dye on it."""

    structure: StructureSpec
    labelling: LabellingSpec


@attrs.frozen(kw_only=True)
class MotionConfig:
    """Rigid motion of structures between frames (used when ``n_frames > 1``).

    Attributes
    ----------
    frame_interval_s
        Time between the starts of consecutive frames, s.
    drift_nm_per_s
        Constant drift (z, y, x) of the whole sample (every instance, and emitters of no
        instance), nm/s: a stage or sample drift.
    diffusion_um2_per_s
        Range ``[lo, hi]`` of the translational diffusion coefficient, µm²/s, drawn
        uniformly per instance; each instance then takes independent Brownian steps with
        standard deviation ``sqrt(2 D frame_interval_s)`` per axis per frame. ``[0, 0]``: none.
    """

    frame_interval_s: float = attrs.field(default=0.1, converter=float, validator=_positive)
    drift_nm_per_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    diffusion_um2_per_s: tuple[float, float] = attrs.field(default=(0.0, 0.0), validator=_range())

    @property
    def moves(self) -> bool:
        """Whether anything moves at all."""
        return any(v != 0 for v in self.drift_nm_per_s) or self.diffusion_um2_per_s[1] > 0


@attrs.frozen(kw_only=True)
class SimulateConfig:
    """Simulate fields of view: structures -> dye -> photophysics -> motion -> optics ->
    background and photon budget -> noise, plus ground truth.

    The microscope's ``pixel_nm``, ``z_step_nm`` and ``n_z`` set the grid; a single plane
    images a sample slab ``slab_nm`` thick.

    Attributes
    ----------
    seed
        Root seed of the run; tile ``i`` draws from ``SeedSequence(seed, spawn_key=(i, ...))``.
    tile_px
        Size (Y, X) of one simulated tile, pixels.
    n_tiles
        Number of images in a dataset (``subcell simulate --n``); with ``montage`` each image
        is made of four tiles.
    n_frames
        Frames per tile; more than one makes a video (T axis).
    slab_nm
        Sample thickness holding the structures when the microscope images one plane, nm.
    background_photons
        Range ``[lo, hi]`` of a uniform background (autofluorescence, out-of-focus haze) in
        expected photons per pixel per frame, drawn uniformly per dataset image (the four
        tiles of a montage share it) and added to every channel of the clean image.
    snr
        Optional range ``[lo, hi]`` of the target signal-to-noise ratio (Sekh et al.: 2-4).
        When set, a target is drawn uniformly per dataset image (shared by a montage's
        tiles) and each tile's emitter photons are scaled
        so the tile's SNR equals it (definition: :mod:`subcell.pipeline.photon_budget`).
        ``null``: the labellings' photons are used as they are.
    motion
        Drift and diffusion of structures between frames (:class:`MotionConfig`).
    montage
        Assemble each dataset image from 2 x 2 independent tiles (``tile_px`` each), as the
        paper's 256 x 256 images from 128 x 128 tiles.
    split
        Fractions (train, val, test) of the dataset's images, assigned at random from the
        seed.
    step
        Always ``simulate``: names the schema of the file.
    structures
        What is in the field: a list of ``{structure: {plugin: ...}, labelling: {plugin:
        ...}}``, one entry per kind of structure (``subcell plugins --kind structure``).
    photophysics, microscope, noise, ground_truth
        The plugin of each stage, ``{plugin: NAME, key: value, ...}``; ``subcell plugins
        --kind KIND --params`` lists the names and their parameters.
    """

    step: Literal["simulate"] = "simulate"
    seed: int = 0
    tile_px: tuple[int, int] = attrs.field(default=(128, 128), validator=_positive)
    n_tiles: int = attrs.field(default=1, validator=_positive)
    n_frames: int = attrs.field(default=1, validator=_positive)
    #: Sample thickness (nm) holding the structures when the microscope images one plane.
    slab_nm: float = attrs.field(default=1300.0, validator=_positive)
    background_photons: tuple[float, float] = attrs.field(default=(0.0, 0.0), validator=_range())
    snr: tuple[float, float] | None = attrs.field(default=None, validator=_range(positive=True))
    motion: MotionConfig = attrs.Factory(MotionConfig)
    montage: bool = False
    split: tuple[float, float, float] = attrs.field(default=(0.6, 0.2, 0.2), validator=_split)
    structures: tuple[StructureEntry, ...] = attrs.field(validator=attrs.validators.min_len(1))
    photophysics: PhotophysicsSpec
    microscope: MicroscopeSpec
    noise: NoiseSpec
    ground_truth: GroundTruthSpec


@attrs.frozen(kw_only=True)
class SegmentConfig:
    """Segment images with one segmenter (a classical baseline or a learned model).

    Attributes
    ----------
    step
        Always ``segment``.
    segmenter
        The segmenter, ``{plugin: NAME, ...}`` (``subcell plugins --kind segmenter``).
    """

    step: Literal["segment"] = "segment"
    segmenter: SegmenterSpec


@attrs.frozen(kw_only=True)
class CellCutterStepConfig:
    """Single-cell segmentation without annotation (``subcell cellcutter``).

    Attributes
    ----------
    step
        Always ``cellcutter``.
    method
        ``{plugin: cellcutter, ...}`` (markers, foreground, network, loss) or
        ``{plugin: marker_watershed, ...}``, the baseline on the same markers and mask.
    """

    step: Literal["cellcutter"] = "cellcutter"
    method: SegmenterSpec


@attrs.frozen(kw_only=True)
class AnalyzeConfig:
    """Measure segmented objects with one or more analytics plugins.

    Attributes
    ----------
    step
        Always ``analyze``.
    analytics
        A list of analytics plugins, ``{plugin: NAME, ...}`` each.
    """

    step: Literal["analyze"] = "analyze"
    analytics: tuple[AnalyticsSpec, ...] = attrs.field(validator=attrs.validators.min_len(1))


@attrs.frozen(kw_only=True)
class PhantomConfig:
    """Image whole scenes drawn by a phantom plugin: phantom -> optics -> background and
    photon budget -> noise; the ground truth is the phantom's own masks.

    The microscope's ``pixel_nm``, ``z_step_nm`` and ``n_z`` set the grid; a single plane
    images a sample slab ``slab_nm`` thick. A spectral microscope (one with
    ``band_fractions``, e.g. ``spinning_disk``) images all dyes at once and its detection
    bands are the channels; any other microscope images each dye on its own (sequential
    acquisition) and channel ``c`` is dye ``c``. See ``docs/phantoms.md``.

    Attributes
    ----------
    seed
        Root seed of the run; image ``i`` draws from ``SeedSequence(seed, spawn_key=(i,
        stage))``.
    tile_px
        Size (Y, X) of one image, pixels.
    n_tiles
        Number of images in a dataset (``subcell simulate --n``).
    slab_nm
        Sample thickness holding the scene when the microscope images one plane, nm.
    background_photons
        Range ``[lo, hi]`` of a uniform background in expected photons per pixel, drawn
        uniformly per image and added to every channel of the clean image.
    snr
        Optional range ``[lo, hi]`` of the target signal-to-noise ratio; a target is drawn
        uniformly per image and the photons of every dye are multiplied by one factor so
        the image's SNR (all channels; :mod:`subcell.pipeline.photon_budget`) equals it.
        ``null``: the phantom's photons are used as they are.
    split
        Fractions (train, val, test) of the dataset's images, assigned at random from the
        seed.
    step
        Always ``phantom``: names the schema of the file.
    phantom
        The phantom, ``{plugin: NAME, key: value, ...}`` (``subcell plugins --kind
        phantom``).
    microscope, noise
        The optics and the noise model, ``{plugin: NAME, key: value, ...}``.
    """

    step: Literal["phantom"] = "phantom"
    seed: int = 0
    tile_px: tuple[int, int] = attrs.field(default=(128, 128), validator=_positive)
    n_tiles: int = attrs.field(default=1, validator=_positive)
    slab_nm: float = attrs.field(default=1300.0, validator=_positive)
    background_photons: tuple[float, float] = attrs.field(default=(0.0, 0.0), validator=_range())
    snr: tuple[float, float] | None = attrs.field(default=None, validator=_range(positive=True))
    split: tuple[float, float, float] = attrs.field(default=(0.6, 0.2, 0.2), validator=_split)
    phantom: PhantomSpec
    microscope: MicroscopeSpec
    noise: NoiseSpec

    @property
    def n_frames(self) -> int:
        """Always 1: a phantom image is one frame (dataset code treats both configs alike)."""
        return 1

    @property
    def montage(self) -> bool:
        """Always false: a phantom image is one tile."""
        return False


#: step name -> its config class; the ``step`` key of a config file selects one.
STEP_SCHEMAS: dict[str, type] = {
    "simulate": SimulateConfig,
    "train": TrainConfig,
    "segment": SegmentConfig,
    "analyze": AnalyzeConfig,
    "cellcutter": CellCutterStepConfig,
    "phantom": PhantomConfig,
}
