"""Labellings: fluorophores on membranes (``surface``) or in lumens (``volume``).

Each instance of a :class:`~subcell.core.model.Geometry` is the union of its capsules, and
dye sits uniformly on that union's surface or inside its volume. Every capsule is sampled
in proportion to its own area (cylinder 2πrL, caps 4πr²) or volume (πr²L, 4/3 πr³) with
Poisson counts, then thinned (:func:`subcell.core.capsule_union.surface_owned` /
:func:`~subcell.core.capsule_union.volume_owned`) so that parts shared by overlapping capsules
of one instance (chain joints, branch junctions) are labelled once. Thinning a Poisson
process keeps it Poisson, so the number of emitters on an instance is Poisson with mean
density × the union's true area (or volume).

Parts that thinning would always remove are not drawn at all (the result is the same in
distribution, for less work): caps covered by another capsule ending at the same point
(:func:`~subcell.core.capsule_union.joint_caps`), and, at a joint, the part of a cap inside the
next capsule: only its outer wedge (a lune of area 2r²α for a bend by α) is drawn.

Emitter positions are off-grid floats in nm. A capsule of radius 0 is a point source and
gets exactly one emitter at its centre, whatever the density.
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.capsule_union import joint_caps, surface_owned, volume_owned
from subcell.core.capsules import capsule_frames, same_instance_neighbours
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
    """Emitters uniformly on the surface of each instance (union of its capsules).

    Attributes
    ----------
    density_per_um2
        Mean emitters per µm² of surface; the count per instance is Poisson with mean
        density × the union's area (4πR² for a sphere; zero allowed).
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
    """Emitters uniformly inside each instance (union of its capsules).

    Attributes
    ----------
    density_per_um3
        Mean emitters per µm³ of volume; the count per instance is Poisson with mean
        density × the union's volume (4/3 πR³ for a sphere; zero allowed).
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
    """Places emitters uniformly on the surface of every instance of a geometry (membranes:
    a sphere becomes a shell, a tube a hollow tube with closed ends).

    Parameters
    ----------
    config
        Density and brightness.
    """

    def __init__(self, config: SurfaceLabellingConfig):
        self.config = config

    def label(self, geometry: Geometry, rng: np.random.Generator) -> Emitters:
        """Draw emitters on the surfaces of the instances of ``geometry``.

        Parameters
        ----------
        geometry
            Capsules with instance ids and classes.
        rng
            The only source of randomness.

        Returns
        -------
        Emitters
            Positions (nm), photons, and the instance, class and class names of the
            capsule each emitter sits on, ordered by capsule.
        """
        density = self.config.density_per_um2 / _NM2_PER_UM2
        return _label(geometry, density, _on_surface, self.config, rng)


class VolumeLabelling:
    """Places emitters uniformly inside every instance of a geometry (lumen or matrix: a
    sphere becomes a filled ball).

    Parameters
    ----------
    config
        Density and brightness.
    """

    def __init__(self, config: VolumeLabellingConfig):
        self.config = config

    def label(self, geometry: Geometry, rng: np.random.Generator) -> Emitters:
        """Draw emitters inside the instances of ``geometry``.

        Parameters
        ----------
        geometry
            Capsules with instance ids and classes.
        rng
            The only source of randomness.

        Returns
        -------
        Emitters
            Positions (nm), photons, and the instance, class and class names of the
            capsule each emitter sits in, ordered by capsule.
        """
        density = self.config.density_per_um3 / _NM3_PER_UM3
        return _label(geometry, density, _in_volume, self.config, rng)


def _label(geometry: Geometry, density: float, sample, config, rng) -> Emitters:
    """Emitters on (or in) the union of each instance's capsules, then one emitter at the
    centre of every radius-0 capsule (point source)."""
    position, capsule = sample(geometry, density, rng)
    point = np.flatnonzero(geometry.radius_nm == 0)
    if len(point):
        position = np.concatenate([position, geometry.center_nm[point]])
        capsule = np.concatenate([capsule, point])
    photons = _brightness(len(capsule), config, rng)
    return Emitters(
        position_nm=position,
        photons=photons,
        instance=geometry.instance[capsule],
        klass=geometry.klass[capsule],
        class_names=geometry.class_names,
    )


def _on_cylinders(geometry, frames, counts, draw, radial):
    """Points on (``radial`` = 1) or in (``radial`` = √U) each capsule's cylinder;
    ``counts`` per capsule, ``draw`` (N, 2) uniforms for the axial position and azimuth."""
    u, v, w, length = frames
    capsule = np.repeat(np.arange(len(counts)), counts)
    t = draw[:, 0] * length[capsule]
    phi = 2 * np.pi * draw[:, 1]
    rho = geometry.radius_nm[capsule] * radial
    # Built as (3, N) rows: (N,) x (3, N) products stream, where (N, 1) x (N, 3) ones crawl
    # three numbers at a time. Same products and sums, so the same bytes.
    points = np.take(geometry.start_nm.T, capsule, axis=1)
    points += t * np.take(u.T, capsule, axis=1)
    points += (rho * np.cos(phi)) * np.take(v.T, capsule, axis=1)
    points += (rho * np.sin(phi)) * np.take(w.T, capsule, axis=1)
    return points.T, t


def _on_surface(geometry: Geometry, density_per_nm2: float, rng: np.random.Generator):
    """Points uniform on each instance's union surface, and the capsule each lies on.

    A cap is drawn as a lune: the points ``d`` of the unit sphere with ``d · o >= 0``
    (``o``: the cap's outward axis) and, where a partner capsule continues from the same
    point in direction ``e``, ``d · e <= 0``. That lune has dihedral angle
    ``α = angle(o, e)`` (π: the whole half-sphere) about the axis ``n ∥ o × e``; a uniform
    height along ``n`` and a uniform azimuth in the lune make a uniform point (Archimedes).
    """
    frames = capsule_frames(geometry)
    u, v, _, length = frames
    r = geometry.radius_nm
    caps = joint_caps(geometry)
    outward = np.stack([-u, u], axis=1)  # (M, 2, 3): at the start, at the end
    partner = caps.partner
    cos_a = np.clip(np.einsum("mkc,mkc->mk", outward, partner), -1.0, 1.0)
    cross = np.cross(outward, partner)
    sin_a = np.linalg.norm(cross, axis=-1)
    paired = ~np.isnan(cos_a)
    alpha = np.where(paired, np.arctan2(sin_a, cos_a), np.pi)
    alpha[caps.surface_covered] = 0.0
    tilted = paired & (sin_a > 1e-12)
    axis = np.where(
        tilted[..., None], cross / np.where(tilted, sin_a, 1.0)[..., None], v[:, None, :]
    )
    n_cyl = rng.poisson(density_per_nm2 * 2 * np.pi * r * length)
    n_cap = rng.poisson(density_per_nm2 * 2 * r[:, None] ** 2 * alpha).ravel()
    draw = rng.random((n_cyl.sum() + n_cap.sum(), 2))
    cyl, t = _on_cylinders(geometry, frames, n_cyl, draw[: n_cyl.sum()], 1.0)
    # Caps, flattened to (capsule, side) entries in row order.
    centre = np.stack([geometry.start_nm, geometry.end_nm], axis=1).reshape(-1, 3)
    o, n = outward.reshape(-1, 3), axis.reshape(-1, 3)
    m = np.cross(n, o)
    cap_draw = draw[n_cyl.sum() :]
    h = 2 * cap_draw[:, 0] - 1
    psi = np.repeat(alpha.ravel(), n_cap) * cap_draw[:, 1] - np.pi / 2
    ring = np.sqrt(1 - h * h)
    d = h[:, None] * np.repeat(n, n_cap, axis=0)
    d += (ring * np.cos(psi))[:, None] * np.repeat(o, n_cap, axis=0)
    d += (ring * np.sin(psi))[:, None] * np.repeat(m, n_cap, axis=0)
    cap = np.repeat(centre, n_cap, axis=0) + np.repeat(np.repeat(r, 2), n_cap)[:, None] * d
    points = np.concatenate([cyl, cap])
    entry = np.repeat(np.arange(2 * len(r)), n_cap)
    capsule = np.concatenate([np.repeat(np.arange(len(r)), n_cyl), entry // 2])
    axial = np.concatenate([t, np.full(len(cap), np.nan)])
    neighbours = same_instance_neighbours(geometry)
    keep = surface_owned(points, capsule, geometry, neighbours, axial=axial)
    return np.compress(keep, points, axis=0), capsule[keep]  # compress: 4x faster on (N, 3)


def _in_volume(geometry: Geometry, density_per_nm3: float, rng: np.random.Generator):
    """Points uniform inside each instance's union, and the capsule each lies in: the
    cylinder filled with radii r√U, each half-ball (unless covered) with radii r∛U."""
    frames = capsule_frames(geometry)
    u, v, w, length = frames
    r = geometry.radius_nm
    covered = joint_caps(geometry).volume_covered
    n_cyl = rng.poisson(density_per_nm3 * np.pi * r**2 * length)
    half = np.where(covered, 0.0, (2 / 3 * np.pi * r**3)[:, None])
    n_cap = rng.poisson(density_per_nm3 * half).ravel()
    n_c = n_cyl.sum()
    draw = rng.random((n_c + n_cap.sum(), 3))
    cyl, _ = _on_cylinders(geometry, frames, n_cyl, draw[:n_c, :2], np.sqrt(draw[:n_c, 2]))
    entry = np.repeat(np.arange(2 * len(r)), n_cap)
    capsule_of = entry // 2
    sign = np.where(entry % 2 == 1, 1.0, -1.0)  # end half-ball faces +u, start faces -u
    h = draw[n_c:, 0]
    phi = 2 * np.pi * draw[n_c:, 1]
    rho = r[capsule_of] * np.cbrt(draw[n_c:, 2])
    ring = np.sqrt(1 - h * h)
    d = (sign * h)[:, None] * u[capsule_of]
    d += (ring * np.cos(phi))[:, None] * v[capsule_of]
    d += (ring * np.sin(phi))[:, None] * w[capsule_of]
    centre = np.where(
        (sign > 0)[:, None], geometry.end_nm[capsule_of], geometry.start_nm[capsule_of]
    )
    points = np.concatenate([cyl, centre + rho[:, None] * d])
    capsule = np.concatenate([np.repeat(np.arange(len(r)), n_cyl), capsule_of])
    keep = volume_owned(points, capsule, geometry, same_instance_neighbours(geometry))
    return np.compress(keep, points, axis=0), capsule[keep]  # compress: 4x faster on (N, 3)


def _brightness(n: int, config, rng: np.random.Generator) -> np.ndarray:
    """Photons per emitter: constant, or gamma with the configured mean and relative sd."""
    mean, frac = config.photons_per_emitter, config.photons_sd_fraction
    if frac == 0:
        return np.full(n, mean)
    # Gamma keeps brightness positive; shape 1/f² gives sd/mean = f.
    return rng.gamma(1.0 / frac**2, mean * frac**2, size=n)
