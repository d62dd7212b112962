"""Photophysics: how much of each exposure every emitter spends emitting.

Frame ``t`` is exposed during ``[t * frame_interval_s, t * frame_interval_s + exposure_s)``;
``on_fraction[t, n]`` is the fraction of that exposure emitter ``n`` was on. All three models
return a new :class:`~subcell.core.model.Emitters` with ``on_fraction`` of shape (T, N).
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.model import Emitters

__all__ = [
    "AlwaysOn",
    "AlwaysOnConfig",
    "Bleaching",
    "BleachingConfig",
    "Blinking",
    "BlinkingConfig",
]


def _check_frame_interval(instance, attribute, value):
    if value < instance.exposure_s:
        raise ValueError(
            f"{attribute.name} ({value:g} s) must be >= exposure_s ({instance.exposure_s:g} s)"
        )


def _check_frames(n_frames: int) -> int:
    n_frames = int(n_frames)
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    return n_frames


@attrs.frozen(kw_only=True)
class AlwaysOnConfig:
    """An always-on dye: no parameters."""


class AlwaysOn:
    """Every emitter is on for the whole of every frame.

    Parameters
    ----------
    config
        Unused; present so every photophysics model is built the same way.
    """

    def __init__(self, config: AlwaysOnConfig):
        self.config = config

    def apply(self, emitters: Emitters, n_frames: int, rng: np.random.Generator) -> Emitters:
        """Return ``emitters`` with ``on_fraction`` all ones, shape (n_frames, N)."""
        n_frames = _check_frames(n_frames)
        return attrs.evolve(
            emitters, on_fraction=np.ones((n_frames, len(emitters)), dtype=np.float32)
        )


@attrs.frozen(kw_only=True)
class BlinkingConfig:
    """Two-state (on/off) blinking with exponential dwell times.

    Attributes
    ----------
    t_on_s
        Mean time spent on per visit.
    t_off_s
        Mean time spent off per visit.
    exposure_s
        Exposure time of each frame.
    frame_interval_s
        Time from the start of one frame to the start of the next (>= exposure_s).
    """

    t_on_s: float = attrs.field(default=0.1, converter=float, validator=attrs.validators.gt(0))
    t_off_s: float = attrs.field(default=0.3, converter=float, validator=attrs.validators.gt(0))
    exposure_s: float = attrs.field(default=0.05, converter=float, validator=attrs.validators.gt(0))
    frame_interval_s: float = attrs.field(
        default=0.05, converter=float, validator=_check_frame_interval
    )


class Blinking:
    """Telegraph-process blinking, simulated exactly in continuous time.

    Each emitter starts in the steady state (on with probability t_on / (t_on + t_off)).
    Within an exposure, dwell times are drawn until the exposure ends, so the on-fraction is
    exact; across the dead time between exposures the state is drawn from the closed-form
    two-state transition probability, which the memoryless dwells make exact too.

    Parameters
    ----------
    config
        Dwell times and frame timing.
    """

    def __init__(self, config: BlinkingConfig):
        self.config = config

    def apply(self, emitters: Emitters, n_frames: int, rng: np.random.Generator) -> Emitters:
        """Return ``emitters`` with blinking on-fractions, shape (n_frames, N) float32."""
        n_frames = _check_frames(n_frames)
        cfg = self.config
        p_on = cfg.t_on_s / (cfg.t_on_s + cfg.t_off_s)
        # Relaxation time of the two-state chain: 1 / (k_on + k_off).
        tau = 1.0 / (1.0 / cfg.t_on_s + 1.0 / cfg.t_off_s)
        gap = cfg.frame_interval_s - cfg.exposure_s
        relax = np.exp(-gap / tau)
        on = rng.random(len(emitters)) < p_on
        out = np.empty((n_frames, len(emitters)), dtype=np.float32)
        for frame in range(n_frames):
            if frame and gap > 0:
                p_next = p_on + (on - p_on) * relax
                on = rng.random(len(emitters)) < p_next
            out[frame], on = _expose(on, cfg.exposure_s, cfg.t_on_s, cfg.t_off_s, rng)
        return attrs.evolve(emitters, on_fraction=out)


def _expose(on: np.ndarray, exposure: float, t_on: float, t_off: float, rng):
    """Run the telegraph process through one exposure, vectorised over emitters.

    Returns the fraction of the exposure each emitter was on and its state at the end.
    """
    on = on.copy()
    on_time = np.zeros(len(on))
    remaining = np.full(len(on), exposure)
    active = np.arange(len(on))
    while len(active):
        state = on[active]
        # Memoryless dwells: a fresh exponential is exact even mid-visit.
        dwell = rng.exponential(np.where(state, t_on, t_off))
        used = np.minimum(dwell, remaining[active])
        on_time[active] += used * state
        remaining[active] -= dwell
        switched = remaining[active] > 0
        on[active[switched]] = ~state[switched]
        active = active[switched]
    return on_time / exposure, on


@attrs.frozen(kw_only=True)
class BleachingConfig:
    """Irreversible exponential photobleaching.

    Attributes
    ----------
    t_bleach_s
        Mean time to bleach (the bleaching rate is 1 / t_bleach_s).
    exposure_s
        Exposure time of each frame.
    frame_interval_s
        Time from the start of one frame to the start of the next (>= exposure_s).
    """

    t_bleach_s: float = attrs.field(default=10.0, converter=float, validator=attrs.validators.gt(0))
    exposure_s: float = attrs.field(default=0.05, converter=float, validator=attrs.validators.gt(0))
    frame_interval_s: float = attrs.field(
        default=0.05, converter=float, validator=_check_frame_interval
    )


class Bleaching:
    """Each emitter emits until an exponential bleaching time, then never again.

    The clock starts at the beginning of frame 0; a frame's on-fraction is the part of its
    exposure before the emitter bleached.

    Parameters
    ----------
    config
        Mean bleaching time and frame timing.
    """

    def __init__(self, config: BleachingConfig):
        self.config = config

    def apply(self, emitters: Emitters, n_frames: int, rng: np.random.Generator) -> Emitters:
        """Return ``emitters`` with bleaching on-fractions, shape (n_frames, N) float32."""
        n_frames = _check_frames(n_frames)
        cfg = self.config
        t_bleach = rng.exponential(cfg.t_bleach_s, len(emitters))
        start = np.arange(n_frames)[:, None] * cfg.frame_interval_s
        fraction = np.clip((t_bleach[None, :] - start) / cfg.exposure_s, 0.0, 1.0)
        return attrs.evolve(emitters, on_fraction=fraction.astype(np.float32))
