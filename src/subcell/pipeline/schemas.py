"""Config schemas of the pipeline steps: frozen attrs classes, one per step.

A step config file names its step (``step: simulate``). Plugin sections are chosen by
name and validated by the plugin's own config class. Each step's bundled defaults
(``defaults/<step>.yaml``) form the bottom config layer.
"""

from __future__ import annotations

from typing import Literal

import attrs

from subcell.core.structuring import spec_type

StructureSpec = spec_type("structure")
LabellingSpec = spec_type("labelling")
PhotophysicsSpec = spec_type("photophysics")
MicroscopeSpec = spec_type("microscope")
NoiseSpec = spec_type("noise")
GroundTruthSpec = spec_type("ground_truth")
SegmenterSpec = spec_type("segmenter")
AnalyticsSpec = spec_type("analytics")


def _positive(instance, attribute, value):
    values = value if isinstance(value, tuple) else (value,)
    if any(v <= 0 for v in values):
        raise ValueError(f"'{attribute.name}' must be positive, got {value}")


@attrs.frozen(kw_only=True)
class StructureEntry:
    """One kind of structure in the field and the labelling that puts dye on it."""

    structure: StructureSpec
    labelling: LabellingSpec


@attrs.frozen(kw_only=True)
class SimulateConfig:
    """Simulate fields of view: structures -> dye -> photophysics -> optics -> noise, plus
    ground truth. The microscope's ``pixel_nm``, ``z_step_nm`` and ``n_z`` set the grid; a
    single plane images a sample slab ``slab_nm`` thick."""

    step: Literal["simulate"] = "simulate"
    seed: int = 0
    tile_px: tuple[int, int] = attrs.field(default=(128, 128), validator=_positive)
    n_tiles: int = attrs.field(default=1, validator=_positive)
    n_frames: int = attrs.field(default=1, validator=_positive)
    #: Sample thickness (nm) holding the structures when the microscope images one plane.
    slab_nm: float = attrs.field(default=1300.0, validator=_positive)
    structures: tuple[StructureEntry, ...] = attrs.field(validator=attrs.validators.min_len(1))
    photophysics: PhotophysicsSpec
    microscope: MicroscopeSpec
    noise: NoiseSpec
    ground_truth: GroundTruthSpec


@attrs.frozen(kw_only=True)
class SegmentConfig:
    """Segment images with one segmenter (a classical baseline or a learned model)."""

    step: Literal["segment"] = "segment"
    segmenter: SegmenterSpec


@attrs.frozen(kw_only=True)
class AnalyzeConfig:
    """Measure segmented objects with one or more analytics plugins."""

    step: Literal["analyze"] = "analyze"
    analytics: tuple[AnalyticsSpec, ...] = attrs.field(validator=attrs.validators.min_len(1))


#: step name -> its config class; the ``step`` key of a config file selects one.
STEP_SCHEMAS: dict[str, type] = {
    "simulate": SimulateConfig,
    "segment": SegmentConfig,
    "analyze": AnalyzeConfig,
}
