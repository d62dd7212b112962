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
from subcell.core.placement import centre_boxes, draw_count, numbered_spheres, place_apart
from subcell.core.validators import range_field
from subcell.plugins.vesicles.sizes import VesicleSizes, VesicleSizesConfig

__all__ = [
    "VesicleSizes",
    "VesicleSizesConfig",
    "Vesicles",
    "VesiclesConfig",
    "register_analytics",
    "register_structures",
]


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
    count: tuple[int, int] = range_field((1, 2), integer=True)
    density_per_100um2: float = attrs.field(
        default=0.0, converter=float, validator=attrs.validators.ge(0)
    )
    radius_nm: tuple[float, float] = range_field((50.0, 300.0))
    radius_distribution: Literal["uniform", "log_uniform"] = attrs.field(
        default="uniform", validator=attrs.validators.in_(("uniform", "log_uniform"))
    )
    z_range_nm: tuple[float, float] = range_field((0.0, 1300.0))
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
        n = draw_count(rng, cfg.count, cfg.density_per_100um2, extent)
        radii = np.sort(self._radii(n, rng))[::-1].copy()
        margin = np.zeros(n) if cfg.allow_partial else radii
        low, high = centre_boxes(extent, margin, *cfg.z_range_nm)
        too_big = np.flatnonzero((high < low).any(axis=1))
        if len(too_big):
            raise ConfigError(
                f"vesicles: a vesicle of radius {radii[too_big[0]]:.0f} nm does not fit in the "
                f"{extent[2]:g} x {extent[1]:g} nm field; lower radius_nm or set allow_partial"
            )
        centres = place_apart(
            low,
            high,
            rng,
            radius_nm=radii,
            gap_nm=cfg.min_gap_nm,
            what="vesicles: vesicle",
            hint="lower count, density_per_100um2 or min_gap_nm",
        )
        return numbered_spheres(self.class_names, centres, radii)

    def _radii(self, n: int, rng: np.random.Generator) -> np.ndarray:
        low, high = self.config.radius_nm
        if self.config.radius_distribution == "log_uniform":
            return np.exp(rng.uniform(np.log(low), np.log(high), n))
        return rng.uniform(low, high, n)


@hookimpl
def register_structures(register):
    """Register the ``vesicles`` structure."""
    register(
        "vesicles",
        VesiclesConfig,
        Vesicles,
        "non-overlapping spheres (shells or filled, by labelling), radius distributions",
    )


@hookimpl
def register_analytics(register):
    """Register the ``vesicles`` size analytics."""
    register(
        "vesicles",
        VesicleSizesConfig,
        VesicleSizes,
        "equivalent and fitted circle/sphere radii, intensity, small/large class",
    )
