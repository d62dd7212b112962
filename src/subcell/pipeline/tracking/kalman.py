"""Constant-velocity Kalman filters of many tracks at once (numpy, vectorised over tracks).

State per track and spatial axis: position ``p`` (nm) and velocity ``v`` (nm per frame);
one step is one frame::

    p' = p + v + w_p,    v' = v + w_v,    measured  z = p + e

with independent zero-mean normal ``w_p`` (sd ``motion_noise_nm``: the random, e.g.
diffusive, part of a step), ``w_v`` (sd ``velocity_noise_nm``: how fast the directed
motion changes) and ``e`` (sd ``measurement_noise_nm``: centroid error). The axes share
one model and so one 2 × 2 covariance per track, which keeps every operation a few array
expressions over all tracks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KalmanBank"]


class KalmanBank:
    """The filters of the live tracks: positions (N, D), velocities (N, D), covariances (N, 2, 2).

    Parameters
    ----------
    ndim
        Spatial dimensions D.
    measurement_noise_nm, motion_noise_nm, velocity_noise_nm
        Standard deviations of the model (see the module notes), nm per axis.
    initial_velocity_nm
        Prior standard deviation of a new track's velocity, nm per frame per axis.
    """

    def __init__(
        self,
        ndim: int,
        *,
        measurement_noise_nm: float,
        motion_noise_nm: float,
        velocity_noise_nm: float,
        initial_velocity_nm: float,
    ):
        self.ndim = ndim
        self._r = float(measurement_noise_nm) ** 2
        self._q = np.diag([float(motion_noise_nm) ** 2, float(velocity_noise_nm) ** 2])
        self._p0 = np.diag([self._r, float(initial_velocity_nm) ** 2])
        self.position = np.zeros((0, ndim))
        self.velocity = np.zeros((0, ndim))
        self.covariance = np.zeros((0, 2, 2))

    def __len__(self) -> int:
        return int(self.position.shape[0])

    def append(self, measured: np.ndarray) -> None:
        """Start a filter at each measured position (M, D), at rest with the prior covariance."""
        measured = np.asarray(measured, dtype=np.float64).reshape(-1, self.ndim)
        self.position = np.concatenate([self.position, measured])
        self.velocity = np.concatenate([self.velocity, np.zeros_like(measured)])
        prior = np.broadcast_to(self._p0, (len(measured), 2, 2))
        self.covariance = np.concatenate([self.covariance, prior])

    def keep(self, mask: np.ndarray) -> None:
        """Drop the filters where ``mask`` is false."""
        self.position = self.position[mask]
        self.velocity = self.velocity[mask]
        self.covariance = self.covariance[mask]

    def predict(self) -> None:
        """Advance every filter one frame: ``x = F x``, ``P = F P Fᵀ + Q``, F = [[1, 1], [0, 1]]."""
        self.position = self.position + self.velocity
        p = self.covariance
        p00 = p[:, 0, 0] + 2 * p[:, 0, 1] + p[:, 1, 1]
        p01 = p[:, 0, 1] + p[:, 1, 1]
        out = np.empty_like(p)
        out[:, 0, 0] = p00 + self._q[0, 0]
        out[:, 0, 1] = out[:, 1, 0] = p01
        out[:, 1, 1] = p[:, 1, 1] + self._q[1, 1]
        self.covariance = out

    def innovation_variance(self) -> np.ndarray:
        """(N,) variance per axis of ``z - p``: ``S = P₀₀ + R``."""
        return self.covariance[:, 0, 0] + self._r

    def update(self, index: np.ndarray, measured: np.ndarray) -> None:
        """Correct the filters ``index`` with their measured positions (len(index), D)."""
        if len(index) == 0:
            return
        p = self.covariance[index]
        s = p[:, 0, 0] + self._r
        gain = p[:, :, 0] / s[:, None]  # (K, 2): position and velocity gains
        residual = np.asarray(measured, dtype=np.float64) - self.position[index]
        self.position[index] += gain[:, :1] * residual
        self.velocity[index] += gain[:, 1:] * residual
        # P - K H P: H P is P's first row
        self.covariance[index] = p - gain[:, :, None] * p[:, None, 0, :]
