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

__all__ = ["Beads", "BeadsConfig", "register_structures"]

#: Candidates drawn at once per bead, and batches tried, before rejection sampling gives up.
_BATCH = 64
_MAX_BATCHES = 200


def _check_count(instance, attribute, value):
    if len(value) != 2 or not 0 <= value[0] <= value[1]:
        raise ValueError(
            f"{attribute.name} must be an inclusive range (low, high) with 0 <= low <= high, "
            f"got {value}"
        )


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
    count: tuple[int, int] = attrs.field(
        default=(5, 20), converter=lambda v: tuple(int(x) for x in v), validator=_check_count
    )
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
        n = int(rng.integers(cfg.count[0], cfg.count[1] + 1))
        diameters = np.full(n, cfg.diameter_nm)
        if cfg.diameter_sd_nm > 0:
            diameters = np.clip(rng.normal(cfg.diameter_nm, cfg.diameter_sd_nm, n), 0.0, None)
        radii = diameters / 2
        low, high = _centre_bounds(field, radii, cfg)
        centres = _place(low, high, cfg.min_separation_nm, rng)
        if cfg.point_source:
            radii = np.zeros(n)
        return Geometry.spheres(
            self.class_names,
            centres,
            radii,
            np.arange(1, n + 1, dtype=np.int32),
            np.zeros(n, dtype=np.int16),
        )


def _centre_bounds(field: Field, radii: np.ndarray, cfg: BeadsConfig):
    """Per-bead (low, high) corners of the box its centre may occupy, each (n, 3)."""
    extent = field.extent_nm
    low = np.empty((len(radii), 3))
    high = np.empty((len(radii), 3))
    low[:, 1:] = (cfg.margin_nm + radii)[:, None]
    high[:, 1:] = extent[1:] - low[:, 1:]
    if len(radii) and (high[:, 1:] < low[:, 1:]).any():
        raise ConfigError(
            f"beads: margin_nm={cfg.margin_nm:g} and diameters up to {2 * radii.max():g} nm "
            f"leave no room in a {extent[2]:g} x {extent[1]:g} nm field"
        )
    if cfg.z_placement == "uniform":
        # Keep the whole bead inside the depth; a bead deeper than the field sits centred.
        low[:, 0] = np.minimum(radii, extent[0] / 2)
        high[:, 0] = extent[0] - low[:, 0]
    else:
        low[:, 0] = high[:, 0] = extent[0] / 2
    return low, high


def _place(low: np.ndarray, high: np.ndarray, min_sep: float, rng: np.random.Generator):
    """Uniform centres in per-bead boxes, by rejection sampling when ``min_sep`` > 0."""
    n = len(low)
    if min_sep <= 0 or n < 2:
        return low + (high - low) * rng.random((n, 3))
    placed = np.empty((n, 3))
    sep2 = min_sep**2
    for i in range(n):
        for _ in range(_MAX_BATCHES):
            cand = low[i] + (high[i] - low[i]) * rng.random((_BATCH, 3))
            d2 = ((cand[:, None, :] - placed[None, :i, :]) ** 2).sum(-1)
            ok = (d2 >= sep2).all(axis=1)
            if ok.any():
                placed[i] = cand[np.argmax(ok)]
                break
        else:
            raise ConfigError(
                f"beads: could not place bead {i + 1} of {n} at min_separation_nm={min_sep:g} "
                f"after {_BATCH * _MAX_BATCHES} tries; lower count or min_separation_nm"
            )
    return placed


@hookimpl
def register_structures(register):
    """Register the ``beads`` structure."""
    register("beads", BeadsConfig, Beads, "fluorescent beads (spheres) for PSF calibration")
