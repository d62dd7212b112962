"""Labellings: fluorophores on sphere surfaces (membrane dyes) or inside spheres (lumen dyes).

Emitter positions are off-grid floats in nm. A sphere of radius 0 is a point source and
gets exactly one emitter at its centre, whatever the density.
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.model import Emitters, Geometry

__all__ = [
    "SurfaceLabelling",
    "SurfaceLabellingConfig",
    "VolumeLabelling",
    "VolumeLabellingConfig",
]

_NM2_PER_UM2 = 1e6
_NM3_PER_UM3 = 1e9


@attrs.frozen(kw_only=True)
class SurfaceLabellingConfig:
    """Emitters uniformly on sphere surfaces.

    Attributes
    ----------
    density_per_um2
        Mean emitters per µm² of surface; the count per sphere is Poisson with mean
        density × 4πR² (zero allowed).
    photons_per_emitter
        Mean photons detected per emitter per frame while on.
    photons_sd_fraction
        Relative spread of brightness across emitters (gamma distributed, mean
        ``photons_per_emitter``, sd ``photons_sd_fraction`` × mean); 0 gives equal brightness.
    """

    density_per_um2: float = attrs.field(
        default=2000.0, converter=float, validator=attrs.validators.ge(0)
    )
    photons_per_emitter: float = attrs.field(
        default=200.0, converter=float, validator=attrs.validators.gt(0)
    )
    photons_sd_fraction: float = attrs.field(
        default=0.0, converter=float, validator=attrs.validators.ge(0)
    )


@attrs.frozen(kw_only=True)
class VolumeLabellingConfig:
    """Emitters uniformly inside spheres.

    Attributes
    ----------
    density_per_um3
        Mean emitters per µm³ of volume; the count per sphere is Poisson with mean
        density × 4/3 πR³ (zero allowed).
    photons_per_emitter
        Mean photons detected per emitter per frame while on.
    photons_sd_fraction
        Relative spread of brightness across emitters (gamma distributed); 0: all equal.
    """

    density_per_um3: float = attrs.field(
        default=10000.0, converter=float, validator=attrs.validators.ge(0)
    )
    photons_per_emitter: float = attrs.field(
        default=200.0, converter=float, validator=attrs.validators.gt(0)
    )
    photons_sd_fraction: float = attrs.field(
        default=0.0, converter=float, validator=attrs.validators.ge(0)
    )


class SurfaceLabelling:
    """Places emitters uniformly on the surface of every sphere of a geometry.

    Parameters
    ----------
    config
        Density and brightness.
    """

    def __init__(self, config: SurfaceLabellingConfig):
        self.config = config

    def label(self, geometry: Geometry, rng: np.random.Generator) -> Emitters:
        """Draw emitters on the spheres of ``geometry``.

        Parameters
        ----------
        geometry
            Spheres with instance ids and classes.
        rng
            The only source of randomness.

        Returns
        -------
        Emitters
            Positions (nm), photons, and the instance, class and class names of the sphere
            each emitter sits on.
        """
        radius = geometry.radius_nm
        mean = self.config.density_per_um2 * 4 * np.pi * radius**2 / _NM2_PER_UM2
        return _label(geometry, mean, _on_sphere, self.config, rng)


class VolumeLabelling:
    """Places emitters uniformly inside every sphere of a geometry.

    Parameters
    ----------
    config
        Density and brightness.
    """

    def __init__(self, config: VolumeLabellingConfig):
        self.config = config

    def label(self, geometry: Geometry, rng: np.random.Generator) -> Emitters:
        """Draw emitters inside the spheres of ``geometry``.

        Parameters
        ----------
        geometry
            Spheres with instance ids and classes.
        rng
            The only source of randomness.

        Returns
        -------
        Emitters
            Positions (nm), photons, and the instance, class and class names of the sphere
            each emitter sits in.
        """
        radius = geometry.radius_nm
        mean = self.config.density_per_um3 * 4 / 3 * np.pi * radius**3 / _NM3_PER_UM3
        return _label(geometry, mean, _in_ball, self.config, rng)


def _unit_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` directions uniform on the unit sphere (normalised isotropic Gaussians)."""
    v = rng.standard_normal((n, 3))
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    # A zero vector has probability 0, but guard so a freak draw cannot give NaN.
    norm[norm == 0] = 1.0
    return v / norm


def _on_sphere(radius: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _unit_vectors(len(radius), rng) * radius[:, None]


def _in_ball(radius: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # r = R u^(1/3) makes the radial density ∝ r², i.e. uniform in the ball.
    u = rng.random(len(radius))
    return _unit_vectors(len(radius), rng) * (radius * np.cbrt(u))[:, None]


def _label(geometry: Geometry, mean_count, offsets, config, rng) -> Emitters:
    """Poisson counts per sphere (1 for point sources), then vectorised placement."""
    radius = geometry.radius_nm
    counts = rng.poisson(mean_count) if len(radius) else np.zeros(0, dtype=np.int64)
    counts = np.where(radius == 0, 1, counts)
    sphere = np.repeat(np.arange(len(radius)), counts)
    position = geometry.center_nm[sphere] + offsets(radius[sphere], rng)
    photons = _brightness(len(sphere), config, rng)
    return Emitters(
        position_nm=position,
        photons=photons,
        instance=geometry.instance[sphere],
        klass=geometry.klass[sphere],
        class_names=geometry.class_names,
    )


def _brightness(n: int, config, rng: np.random.Generator) -> np.ndarray:
    """Photons per emitter: constant, or gamma with the configured mean and relative sd."""
    mean, frac = config.photons_per_emitter, config.photons_sd_fraction
    if frac == 0:
        return np.full(n, mean)
    # Gamma keeps brightness positive; shape 1/f² gives sd/mean = f.
    return rng.gamma(1.0 / frac**2, mean * frac**2, size=n)
