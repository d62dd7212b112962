"""Motion of structures between frames: sample drift plus per-instance Brownian diffusion.

Each instance moves rigidly. Its translation in frame ``t`` (time ``t × frame_interval_s``)
is the drift ``v t Δt`` plus a random walk whose steps are independent normal draws with
standard deviation ``sqrt(2 D Δt)`` per axis (the 3D Brownian motion of diffusion
coefficient ``D``), with ``D`` drawn uniformly per instance from the configured range.
Frame 0 is the reference: every translation is zero there, so frame 0 matches the
geometry as generated. Emitters of no instance (id 0) drift but do not diffuse.
"""

from __future__ import annotations

import numpy as np

from subcell.pipeline.schemas import MotionConfig

__all__ = ["instance_shifts"]

_NM2_PER_UM2 = 1e6


def instance_shifts(
    config: MotionConfig, n_frames: int, n_instances: int, rng: np.random.Generator
) -> np.ndarray:
    """Translations of every instance in every frame.

    Parameters
    ----------
    config
        Frame interval, drift and diffusion range.
    n_frames
        Frames T.
    n_instances
        Instances I (ids 1..I).
    rng
        The only source of randomness.

    Returns
    -------
    numpy.ndarray
        ``shift_nm`` of shape (T, I + 1, 3), (z, y, x) in nm; row 0 is for instance 0,
        ``shift_nm[0]`` is zero.
    """
    dt = config.frame_interval_s
    times = np.arange(n_frames, dtype=np.float64)[:, None, None] * dt
    drift = np.asarray(config.drift_nm_per_s, dtype=np.float64)[None, None, :]
    shift = np.broadcast_to(times * drift, (n_frames, n_instances + 1, 3)).copy()
    lo, hi = config.diffusion_um2_per_s
    diffusion = np.zeros(n_instances + 1)
    diffusion[1:] = rng.uniform(lo, hi, n_instances) * _NM2_PER_UM2
    sd = np.sqrt(2.0 * diffusion * dt)  # nm per axis per frame
    steps = rng.standard_normal((max(n_frames - 1, 0), n_instances + 1, 3)) * sd[None, :, None]
    shift[1:] += np.cumsum(steps, axis=0)
    return shift
