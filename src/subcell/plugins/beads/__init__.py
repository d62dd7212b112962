"""Fluorescent beads (TetraSpeck-like spheres): PSF calibration targets and test phantoms.

Coordinates follow the core convention: nm from the field's origin, axis order (z, y, x);
voxel ``i`` along an axis spans ``[i * voxel_nm, (i + 1) * voxel_nm)``, so the field covers
``[0, extent_nm)``.
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

__all__ = ["Beads", "BeadsConfig", "register_structures"]


@attrs.frozen(kw_only=True)
class BeadsConfig:
    """Parameters of the beads structure.

    Attributes
    ----------
    diameter_nm
        Mean bead diameter (TetraSpeck beads: 100 nm, 200 nm, 500 nm...).
    diameter_sd_nm
        Standard deviation of the diameter across beads (normal, clipped at 0).
    count
        Inclusive range ``(low, high)``; the number of beads is drawn uniformly per field.
    margin_nm
        Smallest lateral distance between a bead's surface and the field's edge.
    z_placement
        ``"focal_plane"``: every centre at the field's z centre; ``"uniform"``: centres
        uniform over the field depth, the whole bead inside it.
    min_separation_nm
        Smallest centre-to-centre distance between beads; 0 means no constraint.
    point_source
        Give every bead radius 0 so a labelling puts exactly one emitter at its centre
        (a bead well below the resolution). The diameter still sets margins.
    """

    diameter_nm: float = attrs.field(
        default=100.0, converter=float, validator=attrs.validators.gt(0)
    )
    diameter_sd_nm: float = attrs.field(
        default=0.0, converter=float, validator=attrs.validators.ge(0)
    )
    count: tuple[int, int] = range_field((5, 20), integer=True)
    margin_nm: float = attrs.field(default=200.0, converter=float, validator=attrs.validators.ge(0))
    z_placement: Literal["focal_plane", "uniform"] = attrs.field(
        default="focal_plane", validator=attrs.validators.in_(("focal_plane", "uniform"))
    )
    min_separation_nm: float = attrs.field(
        default=0.0, converter=float, validator=attrs.validators.ge(0)
    )
    point_source: bool = False


class Beads:
    """Places fluorescent beads (spheres of class ``"bead"``) in a field of view.

    Parameters
    ----------
    config
        The beads' parameters.
    """

    class_names = ("bead",)

    def __init__(self, config: BeadsConfig):
        self.config = config

    def generate(self, field: Field, rng: np.random.Generator) -> Geometry:
        """Draw a bead count, diameters and positions for ``field``.

        Parameters
        ----------
        field
            The imaging grid; beads lie inside its extent.
        rng
            The only source of randomness.

        Returns
        -------
        Geometry
            One sphere per bead, instance ids ``1..n``, class ``"bead"``.

        Raises
        ------
        ConfigError
            If the margins leave no room, or ``min_separation_nm`` cannot be honoured.
        """
        cfg = self.config
        n = draw_count(rng, cfg.count)
        diameters = np.full(n, cfg.diameter_nm)
        if cfg.diameter_sd_nm > 0:
            diameters = np.clip(rng.normal(cfg.diameter_nm, cfg.diameter_sd_nm, n), 0.0, None)
        radii = diameters / 2
        low, high = _centre_bounds(field, radii, cfg)
        if cfg.min_separation_nm <= 0 or n < 2:
            centres = low + (high - low) * rng.random((n, 3))
        else:
            centres = place_apart(
                low,
                high,
                rng,
                gap_nm=cfg.min_separation_nm,
                what="beads: bead",
                hint="lower count or min_separation_nm",
            )
        if cfg.point_source:
            radii = np.zeros(n)
        return numbered_spheres(self.class_names, centres, radii)


def _centre_bounds(field: Field, radii: np.ndarray, cfg: BeadsConfig):
    """Per-bead (low, high) corners of the box its centre may occupy, each (n, 3)."""
    extent = field.extent_nm
    if cfg.z_placement == "uniform":
        # Keep the whole bead inside the depth; a bead deeper than the field sits centred.
        z_low = np.minimum(radii, extent[0] / 2)
        z_high = extent[0] - z_low
    else:
        z_low = z_high = extent[0] / 2
    low, high = centre_boxes(extent, cfg.margin_nm + radii, z_low, z_high)
    if len(radii) and (high[:, 1:] < low[:, 1:]).any():
        raise ConfigError(
            f"beads: margin_nm={cfg.margin_nm:g} and diameters up to {2 * radii.max():g} nm "
            f"leave no room in a {extent[2]:g} x {extent[1]:g} nm field"
        )
    return low, high


@hookimpl
def register_structures(register):
    """Register the ``beads`` structure."""
    register("beads", BeadsConfig, Beads, "fluorescent beads (spheres) for PSF calibration")
