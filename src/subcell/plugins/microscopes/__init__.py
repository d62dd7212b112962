"""Microscopes: optics that turn emitters into noise-free images (expected photons).

``epi``: widefield epifluorescence with a scalar Gibson–Lanni PSF (depth-dependent
spherical aberration from refractive-index mismatch), rendered in Fourier space at every
emitter's exact 3D position.
"""

from __future__ import annotations

from subcell.core.hookspecs import hookimpl
from subcell.plugins.microscopes.epi import Epi, EpiConfig
from subcell.plugins.microscopes.psf import GibsonLanni, radial_otf, radial_psf

__all__ = ["Epi", "EpiConfig", "GibsonLanni", "radial_otf", "radial_psf", "register_microscopes"]


@hookimpl
def register_microscopes(register):
    """Register the built-in microscopes."""
    register(
        "epi",
        EpiConfig,
        Epi,
        "widefield epifluorescence, scalar Gibson-Lanni PSF at each emitter's depth",
    )
