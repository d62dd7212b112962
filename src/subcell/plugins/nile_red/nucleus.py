"""The nucleus: an ellipsoid with its short axis vertical, turned in the plane.

Coordinates are nm in the field, axis order (z, y, x); the nucleus's own frame is
(vertical, along its long axis, along its short axis).
"""

from __future__ import annotations

import attrs
import numpy as np

__all__ = ["Nucleus"]


@attrs.frozen(eq=False)
class Nucleus:
    """An ellipsoid: centre (z, y, x), semi-axes (vertical, long, short), yaw in the plane."""

    centre_nm: np.ndarray
    semi_axes_nm: np.ndarray
    yaw: float

    def local(self, points) -> np.ndarray:
        """Coordinates (vertical, along the long axis, along the short axis), (..., 3)."""
        d = np.asarray(points, dtype=float) - self.centre_nm
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        u = c * d[..., 2] + s * d[..., 1]
        v = -s * d[..., 2] + c * d[..., 1]
        return np.stack([d[..., 0], u, v], axis=-1)

    def level(self, points, inflate_nm: float = 0.0) -> np.ndarray:
        """``Σ (local / (axes + inflate))²``: below 1 inside the (inflated) ellipsoid."""
        inflate = np.asarray(inflate_nm, dtype=float)[..., None]
        q = self.local(points) / (self.semi_axes_nm + inflate)
        return np.einsum("...i,...i->...", q, q)

    def lateral_level(self, y, x, inflate_nm: float = 0.0) -> np.ndarray:
        """The footprint's level ``(u / (a + i))² + (v / (b + i))²`` at (y, x)."""
        pts = np.stack(np.broadcast_arrays(self.centre_nm[0], y, x), axis=-1)
        q = self.local(pts)[..., 1:] / (self.semi_axes_nm[1:] + inflate_nm)
        return np.einsum("...i,...i->...", q, q)

    def to_field(self, local: np.ndarray) -> np.ndarray:
        """Field coordinates of local ones (inverse of :meth:`local`)."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        u, v = local[..., 1], local[..., 2]
        out = np.stack([local[..., 0], s * u + c * v, c * u - s * v], axis=-1)
        return out + self.centre_nm

    def surface(self, density_per_nm2: float, rng: np.random.Generator) -> np.ndarray:
        """Poisson points on the ellipsoid's surface with this density, (N, 3).

        Uniform directions on the unit sphere mapped onto the ellipsoid are thinned by the
        map's area element ``|cof(A) d|`` over its maximum, which leaves a Poisson process
        uniform in area.
        """
        axes = self.semi_axes_nm
        cof = np.array([axes[1] * axes[2], axes[0] * axes[2], axes[0] * axes[1]])
        n = rng.poisson(density_per_nm2 * 4 * np.pi * cof.max())
        d = _unit_vectors(rng, n)
        keep = rng.random(n) * cof.max() < np.linalg.norm(d * cof, axis=1)
        return self.to_field(d[keep] * axes)

    def area_nm2(self) -> float:
        """Surface area (numerical quadrature of the area element over the unit sphere)."""
        axes = self.semi_axes_nm
        cof = np.array([axes[1] * axes[2], axes[0] * axes[2], axes[0] * axes[1]])
        mu, phi = np.meshgrid(
            np.linspace(-1, 1, 801)[:-1] + 1 / 800, np.linspace(0, 2 * np.pi, 801)[:-1]
        )
        ring = np.sqrt(1 - mu * mu)
        d = np.stack([mu, ring * np.cos(phi), ring * np.sin(phi)], axis=-1)
        return float(np.linalg.norm(d * cof, axis=-1).mean() * 4 * np.pi)


def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniform directions (z, y, x)."""
    mu = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    ring = np.sqrt(1 - mu * mu)
    return np.stack([mu, ring * np.cos(phi), ring * np.sin(phi)], axis=1)
