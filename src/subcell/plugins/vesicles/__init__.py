"""The ``vesicles`` structure: non-overlapping spheres from below the resolution limit to ~1 µm.

Each vesicle is one instance, a sphere (a zero-length capsule). Whether it is imaged as a
membrane shell or a filled sphere is the labelling's choice, not the structure's: the
``surface`` labelling puts the dye on the sphere (a shell, as for a membrane marker) and
the ``volume`` labelling fills it (a lumen marker).

The defaults follow the paper's SimEpi1Vesi data (Sekh et al. 2021: radius 50–300 nm,
centres at z 0–1300 nm, 1–2 vesicles per 128 × 128 tile). Coordinates follow the core
convention: nm from the field's origin, axis order (z, y, x).
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

from subcell.core.errors import ConfigError
from subcell.core.hookspecs import hookimpl
from subcell.core.model import Field, Geometry

__all__ = ["Vesicles", "VesiclesConfig", "register_structures"]

#: Candidates drawn at once per vesicle, and batches tried, before placement gives up.
_BATCH = 64
_MAX_BATCHES = 200
_UM2_PER_100 = 100.0
_NM2_PER_UM2 = 1e6


def _range(integer: bool = False):
    """Validator of an inclusive range ``[low, high]`` with 0 <= low <= high."""
    kind = "integers" if integer else "numbers"

    def check(instance, attribute, value):
        if len(value) != 2 or not 0 <= value[0] <= value[1]:
            raise ValueError(
                f"{attribute.name} must be a range [low, high] of two {kind} with "
                f"0 <= low <= high, got {list(value)}"
            )

    return check


def _floats(value):
    return tuple(float(v) for v in value)


def _ints(value):
    return tuple(int(v) for v in value)


@attrs.frozen(kw_only=True)
class VesiclesConfig:
    """Parameters of the vesicles structure. Ranges are inclusive ``[low, high]``.

    Attributes
    ----------
    class_name
        Name of the structure class in masks and emitters.
    count
        Number of vesicles per field (uniform), used when ``density_per_100um2`` is 0.
    density_per_100um2
        If > 0, the number per field is Poisson with mean this × field area / 100 µm²,
        and ``count`` is ignored.
    radius_nm
        Vesicle radius (nm); 0 is allowed (a point source) with the uniform distribution.
    radius_distribution
        ``"uniform"`` in ``radius_nm``, or ``"log_uniform"`` (uniform in log radius: as
        many 50–100 nm vesicles as 500–1000 nm ones; needs low > 0).
    z_range_nm
        Range of the centres' z (nm, field coordinates).
    min_gap_nm
        Smallest distance between the surfaces of two vesicles (0: they may touch, never
        overlap).
    allow_partial
        Let vesicles leave the field laterally (centres uniform over the field); by
        default every vesicle lies wholly inside.
    """

    class_name: str = attrs.field(default="vesicles", validator=attrs.validators.min_len(1))
    count: tuple[int, int] = attrs.field(
        default=(1, 2), converter=_ints, validator=_range(integer=True)
    )
    density_per_100um2: float = attrs.field(
        default=0.0, converter=float, validator=attrs.validators.ge(0)
    )
    radius_nm: tuple[float, float] = attrs.field(
        default=(50.0, 300.0), converter=_floats, validator=_range()
    )
    radius_distribution: Literal["uniform", "log_uniform"] = attrs.field(
        default="uniform", validator=attrs.validators.in_(("uniform", "log_uniform"))
    )
    z_range_nm: tuple[float, float] = attrs.field(
        default=(0.0, 1300.0), converter=_floats, validator=_range()
    )
    min_gap_nm: float = attrs.field(default=0.0, converter=float, validator=attrs.validators.ge(0))
    allow_partial: bool = False

    def __attrs_post_init__(self):
        if self.radius_distribution == "log_uniform" and self.radius_nm[0] <= 0:
            raise ValueError(
                f"radius_nm must start above 0 for radius_distribution 'log_uniform', "
                f"got {list(self.radius_nm)}"
            )


class Vesicles:
    """Places vesicles (non-overlapping spheres of one class) in a field of view.

    Parameters
    ----------
    config
        The vesicles' parameters.
    """

    def __init__(self, config: VesiclesConfig):
        self.config = config
        self.class_names = (config.class_name,)

    def generate(self, field: Field, rng: np.random.Generator) -> Geometry:
        """Draw a count, radii, then place the vesicles largest first without overlaps.

        Parameters
        ----------
        field
            The imaging grid; vesicles lie inside its lateral extent.
        rng
            The only source of randomness.

        Returns
        -------
        Geometry
            One sphere per vesicle, instance ids ``1..n`` from the largest to the smallest.

        Raises
        ------
        ConfigError
            If a vesicle does not fit in the field, or no free place is found for it.
        """
        cfg = self.config
        extent = field.extent_nm
        if cfg.density_per_100um2 > 0:
            area_100um2 = extent[1] * extent[2] / _NM2_PER_UM2 / _UM2_PER_100
            n = int(rng.poisson(cfg.density_per_100um2 * area_100um2))
        else:
            n = int(rng.integers(cfg.count[0], cfg.count[1] + 1))
        radii = np.sort(self._radii(n, rng))[::-1].copy()
        centres = _place(radii, extent, cfg, rng)
        return Geometry.spheres(
            self.class_names,
            centres,
            radii,
            np.arange(1, n + 1, dtype=np.int32),
            np.zeros(n, dtype=np.int16),
        )

    def _radii(self, n: int, rng: np.random.Generator) -> np.ndarray:
        low, high = self.config.radius_nm
        if self.config.radius_distribution == "log_uniform":
            return np.exp(rng.uniform(np.log(low), np.log(high), n))
        return rng.uniform(low, high, n)


def _place(radii: np.ndarray, extent: np.ndarray, cfg: VesiclesConfig, rng) -> np.ndarray:
    """Centres by sequential rejection sampling: uniform in each vesicle's allowed box, at
    least ``r_i + r_j + min_gap_nm`` from every vesicle placed before."""
    n = len(radii)
    placed = np.empty((n, 3))
    for i, r in enumerate(radii):
        margin = 0.0 if cfg.allow_partial else r
        low = np.array([cfg.z_range_nm[0], margin, margin])
        high = np.array([cfg.z_range_nm[1], extent[1] - margin, extent[2] - margin])
        if (high < low).any():
            raise ConfigError(
                f"vesicles: a vesicle of radius {r:.0f} nm does not fit in the "
                f"{extent[2]:g} x {extent[1]:g} nm field; lower radius_nm or set allow_partial"
            )
        need = radii[:i] + r + cfg.min_gap_nm
        for _ in range(_MAX_BATCHES):
            cand = low + (high - low) * rng.random((_BATCH, 3))
            d2 = ((cand[:, None, :] - placed[None, :i, :]) ** 2).sum(-1)
            ok = (d2 >= need**2).all(axis=1)
            if ok.any():
                placed[i] = cand[np.argmax(ok)]
                break
        else:
            raise ConfigError(
                f"vesicles: no free place for vesicle {i + 1} of {n} (radius {r:.0f} nm) after "
                f"{_BATCH * _MAX_BATCHES} tries; lower count, density_per_100um2 or min_gap_nm"
            )
    return placed


@hookimpl
def register_structures(register):
    """Register the ``vesicles`` structure."""
    register(
        "vesicles",
        VesiclesConfig,
        Vesicles,
        "non-overlapping spheres (shells or filled, by labelling), radius distributions",
    )
