"""Smooth random centrelines in 3D: worm-like in the plane, undulating in z.

A centreline is a polyline of ``n`` equal steps whose 3D arc length is exactly the length
asked for. Its height ``z(s)`` is a smooth Gaussian random profile (white noise filtered by
a Gaussian of width ``z_correlation_nm``), scaled so that it stays inside the allowed z
range and never climbs steeper than :data:`MAX_SLOPE`. Its horizontal heading ``θ(s)`` is a
worm-like chain: ``cos(θ(s) − θ(0))`` decays on average as ``exp(−s / persistence_nm)``,
with the heading increments smoothed over ``smooth_nm`` so the curvature has no kinks
finer than the tube's width (a unit-sum smoothing keeps the long-range decay; it delays
it by about 1.1 ``smooth_nm``). Each step then goes ``dz`` up and ``√(ds² − dz²)`` along the
heading.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy.ndimage import gaussian_filter1d

__all__ = ["MAX_SLOPE", "Shape", "centreline"]

#: Steepest climb of a centreline, dz/ds (≈ 53° from the horizontal).
MAX_SLOPE = 0.8
#: Gaussian filters are cut at this many sigmas.
_TRUNCATE = 4.0
#: Widest filter in samples: over a few samples a wider one changes nothing visible, and
#: it bounds the noise drawn for very short tubes.
_MAX_SIGMA = 200.0


@attrs.frozen
class Shape:
    """How a centreline bends.

    Attributes
    ----------
    persistence_nm
        Decay length of the horizontal heading's correlation.
    smooth_nm
        Width over which heading changes are smoothed (no sharper bends).
    z_undulation_nm
        Standard deviation of the height profile before it is fitted into ``z_range_nm``.
    z_correlation_nm
        Correlation length of the height profile.
    z_range_nm
        ``(low, high)``: every vertex's z stays inside.
    """

    persistence_nm: float
    smooth_nm: float
    z_undulation_nm: float
    z_correlation_nm: float
    z_range_nm: tuple[float, float]


def _smooth_noise(n: int, sigma_samples: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of stationary white noise filtered by a unit-sum Gaussian.

    The noise is drawn with a margin of the filter's reach on both sides, so the ends are
    as random as the middle (no edge effects from padding).
    """
    if sigma_samples <= 0:
        return rng.standard_normal(n)
    pad = int(np.ceil(_TRUNCATE * sigma_samples))
    noise = rng.standard_normal(n + 2 * pad)
    return gaussian_filter1d(noise, sigma_samples, mode="constant", truncate=_TRUNCATE)[
        pad : pad + n
    ]


def _unit_profile(n: int, step: float, corr_nm: float, rng: np.random.Generator) -> np.ndarray:
    """A height profile at ``n`` vertices with unit standard deviation (in expectation)."""
    sigma = min(corr_nm / step, _MAX_SIGMA)
    raw = _smooth_noise(n, sigma, rng)
    # sd of unit white noise filtered by a unit-sum Gaussian of width σ: (2σ√π)^(-1/2).
    sd = 1.0 if sigma <= 0 else (2 * sigma * np.sqrt(np.pi)) ** -0.5
    return raw / sd


def _heights(
    n: int, step: float, shape: Shape, z0: float | None, rng: np.random.Generator
) -> np.ndarray:
    """Vertex heights: the scaled profile, inside the z range, slope at most MAX_SLOPE.

    With ``z0`` the first vertex sits at ``z0`` (a branch leaving a junction); otherwise the
    profile's offset is uniform over the positions that keep it inside the range.
    """
    low, high = shape.z_range_nm
    g = _unit_profile(n + 1, step, shape.z_correlation_nm, rng)
    if z0 is not None:
        g = g - g[0]
    amp = shape.z_undulation_nm
    steepest = np.abs(np.diff(g)).max() / step if n else 0.0
    if steepest > 0:
        amp = min(amp, MAX_SLOPE / steepest)
    if z0 is None:
        spread = g.max() - g.min()
        if spread > 0:
            amp = min(amp, (high - low) / spread)
        lowest, highest = low - amp * g.min(), high - amp * g.max()
        # amp was capped so that lowest <= highest; rounding may still swap them by an ulp.
        offset = rng.uniform(lowest, max(lowest, highest))
        return offset + amp * g
    # A branch: keep z0 + amp * g inside [low, high] on both sides.
    if g.max() > 0:
        amp = min(amp, (high - z0) / g.max())
    if g.min() < 0:
        amp = min(amp, (z0 - low) / -g.min())
    return z0 + max(amp, 0.0) * g


def centreline(
    length_nm: float,
    max_step_nm: float,
    shape: Shape,
    rng: np.random.Generator,
    *,
    heading: float | None = None,
    start_nm: np.ndarray | None = None,
) -> np.ndarray:
    """A random centreline of 3D arc length ``length_nm``.

    Parameters
    ----------
    length_nm
        Arc length (0 gives a single vertex, repeated: a sphere's zero-length segment).
    max_step_nm
        Longest step; the polyline has ``ceil(length / max_step)`` equal steps.
    shape
        How it bends.
    rng
        The only source of randomness.
    heading
        Initial horizontal direction (radians, from +x towards +y); uniform if None.
    start_nm
        First vertex ``(z, y, x)``; its z is kept, so a branch starts on its junction.
        Default: the origin laterally, z drawn inside the range.

    Returns
    -------
    numpy.ndarray
        ``(n + 1, 3)`` vertices ``(z, y, x)`` in nm.
    """
    z0 = None if start_nm is None else float(start_nm[0])
    if length_nm <= 0:
        z = rng.uniform(*shape.z_range_nm) if z0 is None else z0
        vertex = np.array([z, 0.0, 0.0]) if start_nm is None else np.asarray(start_nm, float)
        return np.stack([vertex, vertex])
    n = max(1, int(np.ceil(length_nm / max_step_nm)))
    step = length_nm / n
    z = _heights(n, step, shape, z0, rng)
    if heading is None:
        heading = rng.uniform(0, 2 * np.pi)
    # Heading increments with variance 2 ds / Lp give <cos Δθ> = exp(-s / Lp); smoothing
    # them with a unit-sum kernel keeps that long-range decay and removes sharp bends.
    sigma = min(shape.smooth_nm / step, _MAX_SIGMA)
    kicks = _smooth_noise(n, sigma, rng) * np.sqrt(2 * step / shape.persistence_nm)
    theta = heading + np.concatenate([[0.0], np.cumsum(kicks[:-1])])
    dz = np.diff(z)
    flat = np.sqrt(np.clip(step**2 - dz**2, 0.0, None))
    vertices = np.zeros((n + 1, 3))
    vertices[:, 0] = z
    vertices[1:, 1] = np.cumsum(flat * np.sin(theta))
    vertices[1:, 2] = np.cumsum(flat * np.cos(theta))
    if start_nm is not None:
        vertices[:, 1:] += np.asarray(start_nm, dtype=float)[1:]
        vertices[0] = start_nm  # the very same point as the junction, bit for bit
    return vertices
