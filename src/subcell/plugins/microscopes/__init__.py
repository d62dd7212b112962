"""Microscopes: optics that turn emitters into noise-free images (expected photons).

All render in Fourier space at every emitter's exact 3D position through radial OTFs built
from scalar Gibson–Lanni PSFs (depth-dependent spherical aberration from refractive-index
mismatch); see :mod:`.base` and :mod:`.render`.

``epi``: widefield epifluorescence. ``airyscan``: closed-pinhole confocal with a detector
array and pixel reassignment. ``spinning_disk``: spinning-disk confocal with optical photon
reassignment (SoRa-like) and spectral detection channels.
"""

from __future__ import annotations

from subcell.core.hookspecs import hookimpl
from subcell.plugins.microscopes.airyscan import Airyscan, AiryscanConfig
from subcell.plugins.microscopes.base import FourierMicroscope, OpticsConfig, UndersamplingWarning
from subcell.plugins.microscopes.epi import Epi, EpiConfig
from subcell.plugins.microscopes.psf import GibsonLanni, radial_otf, radial_psf
from subcell.plugins.microscopes.spectra import band_fraction, emission_spectrum
from subcell.plugins.microscopes.spinning_disk import SpinningDisk, SpinningDiskConfig

__all__ = [
    "Airyscan",
    "AiryscanConfig",
    "Epi",
    "EpiConfig",
    "FourierMicroscope",
    "GibsonLanni",
    "OpticsConfig",
    "SpinningDisk",
    "SpinningDiskConfig",
    "UndersamplingWarning",
    "band_fraction",
    "emission_spectrum",
    "radial_otf",
    "radial_psf",
    "register_microscopes",
]


@hookimpl
def register_microscopes(register):
    """Register the built-in microscopes."""
    register(
        "epi",
        EpiConfig,
        Epi,
        "widefield epifluorescence, scalar Gibson-Lanni PSF at each emitter's depth",
    )
    register(
        "airyscan",
        AiryscanConfig,
        Airyscan,
        "Airyscan confocal: excitation x detection PSFs, pixel reassignment over the array",
    )
    register(
        "spinning_disk",
        SpinningDiskConfig,
        SpinningDisk,
        "spinning-disk confocal, optical reassignment (SoRa-like), spectral channels",
    )
