"""Physics of image formation shared by every structure.

Labellings (``surface``, ``volume``), photophysics (``always_on``, ``blinking``,
``bleaching``), noise models (``poisson``, ``poisson_gaussian``, ``emccd``) and ground-truth
rules (``physics_projection``, ``geometry_projection``).
"""

from __future__ import annotations

from subcell.core.hookspecs import hookimpl
from subcell.plugins.physics.ground_truth import (
    GeometryProjection,
    GeometryProjectionConfig,
    PhysicsProjection,
    PhysicsProjectionConfig,
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
    "PhysicsProjection",
    "PhysicsProjectionConfig",
    "Poisson",
    "PoissonConfig",
    "PoissonGaussian",
    "PoissonGaussianConfig",
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
        "emitters uniformly on sphere surfaces (membrane dye)",
    )
    register(
        "volume",
        VolumeLabellingConfig,
        VolumeLabelling,
        "emitters uniformly inside spheres (lumen dye)",
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
    """Register ``poisson``, ``poisson_gaussian`` and ``emccd``."""
    register("poisson", PoissonConfig, Poisson, "photon shot noise only")
    register(
        "poisson_gaussian",
        PoissonGaussianConfig,
        PoissonGaussian,
        "sCMOS/CCD camera: shot noise, read noise, gain, offset, bit depth",
    )
    register(
        "emccd", EmccdConfig, Emccd, "EMCCD camera: shot noise, gamma EM gain, read noise, offset"
    )


@hookimpl
def register_ground_truth_rules(register):
    """Register ``physics_projection`` and ``geometry_projection``."""
    register(
        "physics_projection",
        PhysicsProjectionConfig,
        PhysicsProjection,
        "pixels holding emitters, projected along z, holes filled (Sekh et al. 2021)",
    )
    register(
        "geometry_projection",
        GeometryProjectionConfig,
        GeometryProjection,
        "exact sphere discs or cross-sections from the geometry",
    )
