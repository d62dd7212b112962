"""Physics of image formation shared by every structure.

Labellings (``surface``, ``volume``), photophysics (``always_on``, ``blinking``,
``bleaching``), noise models (``poisson``, ``poisson_gaussian``, ``emccd``, ``scmos``) and
ground-truth rules (``physics``, ``geometry_projection``, ``otsu_clean``, ``otsu_erode``,
``noise_level``).
"""

from __future__ import annotations

from subcell.core.hookspecs import hookimpl
from subcell.plugins.physics.gt_geometry import GeometryProjection, GeometryProjectionConfig
from subcell.plugins.physics.gt_physics import Physics, PhysicsConfig
from subcell.plugins.physics.gt_threshold import (
    NoiseLevel,
    NoiseLevelConfig,
    OtsuClean,
    OtsuCleanConfig,
    OtsuErode,
    OtsuErodeConfig,
)
from subcell.plugins.physics.labelling import (
    SurfaceLabelling,
    SurfaceLabellingConfig,
    VolumeLabelling,
    VolumeLabellingConfig,
)
from subcell.plugins.physics.noise import (
    Emccd,
    EmccdConfig,
    Poisson,
    PoissonConfig,
    PoissonGaussian,
    PoissonGaussianConfig,
)
from subcell.plugins.physics.photophysics import (
    AlwaysOn,
    AlwaysOnConfig,
    Bleaching,
    BleachingConfig,
    Blinking,
    BlinkingConfig,
)
from subcell.plugins.physics.scmos import Scmos, ScmosConfig

__all__ = [
    "AlwaysOn",
    "AlwaysOnConfig",
    "Bleaching",
    "BleachingConfig",
    "Blinking",
    "BlinkingConfig",
    "Emccd",
    "EmccdConfig",
    "GeometryProjection",
    "GeometryProjectionConfig",
    "NoiseLevel",
    "NoiseLevelConfig",
    "OtsuClean",
    "OtsuCleanConfig",
    "OtsuErode",
    "OtsuErodeConfig",
    "Physics",
    "PhysicsConfig",
    "Poisson",
    "PoissonConfig",
    "PoissonGaussian",
    "PoissonGaussianConfig",
    "Scmos",
    "ScmosConfig",
    "SurfaceLabelling",
    "SurfaceLabellingConfig",
    "VolumeLabelling",
    "VolumeLabellingConfig",
]


@hookimpl
def register_labellings(register):
    """Register the ``surface`` and ``volume`` labellings."""
    register(
        "surface",
        SurfaceLabellingConfig,
        SurfaceLabelling,
        "emitters uniformly on the surface of each instance (union of capsules): membrane dye",
    )
    register(
        "volume",
        VolumeLabellingConfig,
        VolumeLabelling,
        "emitters uniformly inside each instance (union of capsules): lumen dye",
    )


@hookimpl
def register_photophysics(register):
    """Register ``always_on``, ``blinking`` and ``bleaching``."""
    register("always_on", AlwaysOnConfig, AlwaysOn, "every emitter on in every frame")
    register(
        "blinking",
        BlinkingConfig,
        Blinking,
        "two-state blinking with exponential dwells, exact per exposure",
    )
    register("bleaching", BleachingConfig, Bleaching, "irreversible exponential photobleaching")


@hookimpl
def register_noise_models(register):
    """Register ``poisson``, ``poisson_gaussian``, ``emccd`` and ``scmos``."""
    register("poisson", PoissonConfig, Poisson, "photon shot noise only")
    register(
        "poisson_gaussian",
        PoissonGaussianConfig,
        PoissonGaussian,
        "CCD/sCMOS camera, sensor-wide: shot and read noise, gain, offset, full well, bit depth",
    )
    register(
        "emccd", EmccdConfig, Emccd, "EMCCD camera: shot noise, gamma EM gain, read noise, offset"
    )
    register(
        "scmos",
        ScmosConfig,
        Scmos,
        "sCMOS camera with per-pixel offset, gain and read-noise maps (drawn or loaded)",
    )


@hookimpl
def register_ground_truth_rules(register):
    """Register ``physics``, ``geometry_projection``, ``otsu_clean``, ``otsu_erode`` and
    ``noise_level``."""
    register(
        "physics",
        PhysicsConfig,
        Physics,
        "pixels holding emitters, projected along z (or per plane), holes filled (Sekh 2021)",
    )
    register(
        "geometry_projection",
        GeometryProjectionConfig,
        GeometryProjection,
        "exact capsule projections (stadiums) or cross-sections from the geometry",
    )
    register("otsu_clean", OtsuCleanConfig, OtsuClean, "Otsu threshold of the noise-free image")
    register(
        "otsu_erode",
        OtsuErodeConfig,
        OtsuErode,
        "Otsu threshold of the noise-free image, eroded by the PSF's half-maximum footprint",
    )
    register(
        "noise_level",
        NoiseLevelConfig,
        NoiseLevel,
        "noise-free image above background + k noise standard deviations",
    )
