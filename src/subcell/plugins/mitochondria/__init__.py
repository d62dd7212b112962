"""The ``mitochondria`` structure: closed 3D tubes, curved in x, y and z, some branched.

Each mitochondrion is one instance: a chain of short capsules (each at most one radius
long, so the union is a smooth tube with hemispherical, closed ends) along a random
centreline (see :mod:`subcell.plugins.mitochondria.centreline`: worm-like in the plane,
a smooth random height profile in z). A fraction of instances carry side branches that
start on a vertex of the tube, making junctions of degree 3, so that short dots, rods and
networks all occur.

The defaults follow the paper's SimEpi1Mito data (Sekh et al. 2021: diameters 200–600 nm,
z 100–1200 nm, 1–2 tubes per 128 × 128 tile of 42 nm pixels, 3D length below 5000 nm),
with three improvements: z curves instead of a linear ramp, closed ends, and a few networks.
Coordinates follow the core convention: nm from the field's origin, axis order (z, y, x).
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.errors import ConfigError
from subcell.core.hookspecs import hookimpl
from subcell.core.model import Field, Geometry
from subcell.core.placement import draw_count
from subcell.core.validators import fraction, range_field
from subcell.plugins.mitochondria.centreline import Shape
from subcell.plugins.mitochondria.morphology import Morphology, MorphologyConfig
from subcell.plugins.mitochondria.network import build_instance, fit_laterally, to_capsules

__all__ = [
    "Mitochondria",
    "MitochondriaConfig",
    "Morphology",
    "MorphologyConfig",
    "register_analytics",
    "register_structures",
]

#: Shapes drawn per instance before giving up on fitting it inside the field.
_MAX_TRIES = 200


@attrs.frozen(kw_only=True)
class MitochondriaConfig:
    """Parameters of the mitochondria structure. Ranges are inclusive ``[low, high]`` and
    drawn uniformly per instance (``count``: per field).

    Attributes
    ----------
    class_name
        Name of the structure class in masks and emitters.
    count
        Number of mitochondria per field, used when ``density_per_100um2`` is 0.
    density_per_100um2
        If > 0, the number per field is Poisson with mean this × field area / 100 µm²,
        and ``count`` is ignored (the paper's 1–2 per 5.4 × 5.4 µm tile is ≈ 5).
    diameter_nm
        Tube diameter (nm); branches share their tube's diameter.
    length_nm
        Centreline length of the main tube (nm), caps excluded; a length shorter than the
        diameter gives a dot.
    z_range_nm
        Range of the centreline's z (nm, field coordinates): every vertex lies inside, the
        tube's surface may reach one radius beyond.
    persistence_length_nm
        Bending stiffness (nm): the horizontal heading's correlation decays as
        exp(−s / persistence_length_nm) along the centreline, beyond the one diameter over
        which bends are smoothed (so tubes are slightly straighter than a plain worm-like
        chain at short range).
    z_undulation_nm
        Standard deviation of the centreline's smooth height profile (nm), with correlation
        length persistence_length_nm / 2; reduced where needed to keep z inside
        ``z_range_nm`` and the slope at most 0.8. 0 gives flat tubes.
    network_fraction
        Fraction of instances that are branched networks.
    branches_per_network
        Number of side branches of a network instance (fewer if the tube is too short).
    branch_length_nm
        Centreline length of each side branch (nm).
    allow_partial
        Let tubes leave the field laterally (their bounding box centre is uniform in the
        field); by default every tube lies wholly inside, as in the paper.
    """

    class_name: str = attrs.field(default="mitochondria", validator=attrs.validators.min_len(1))
    count: tuple[int, int] = range_field((1, 2), integer=True)
    density_per_100um2: float = attrs.field(
        default=0.0, converter=float, validator=attrs.validators.ge(0)
    )
    diameter_nm: tuple[float, float] = range_field((200.0, 600.0), positive=True)
    length_nm: tuple[float, float] = range_field((300.0, 5000.0))
    z_range_nm: tuple[float, float] = range_field((100.0, 1200.0))
    persistence_length_nm: float = attrs.field(
        default=2000.0, converter=float, validator=attrs.validators.gt(0)
    )
    z_undulation_nm: float = attrs.field(
        default=250.0, converter=float, validator=attrs.validators.ge(0)
    )
    network_fraction: float = attrs.field(default=0.1, converter=float, validator=fraction)
    branches_per_network: tuple[int, int] = range_field((1, 3), integer=True)
    branch_length_nm: tuple[float, float] = range_field((500.0, 2000.0))
    allow_partial: bool = False


class Mitochondria:
    """Places mitochondria (tubes and branched networks of capsules) in a field of view.

    Parameters
    ----------
    config
        The mitochondria's parameters.
    """

    def __init__(self, config: MitochondriaConfig):
        self.config = config
        self.class_names = (config.class_name,)

    def generate(self, field: Field, rng: np.random.Generator) -> Geometry:
        """Draw a count, then each instance's diameter, length, shape, branches and place.

        Parameters
        ----------
        field
            The imaging grid; tubes lie inside its lateral extent.
        rng
            The only source of randomness.

        Returns
        -------
        Geometry
            Chains of capsules; instance ids ``1..n``, one class.

        Raises
        ------
        ConfigError
            If a tube cannot be fitted inside the field (lower ``length_nm`` or
            ``diameter_nm``, or set ``allow_partial``).
        """
        cfg = self.config
        extent = field.extent_nm
        n = draw_count(rng, cfg.count, cfg.density_per_100um2, extent)
        starts, ends, radii, ids = [], [], [], []
        for k in range(1, n + 1):
            radius = rng.uniform(*cfg.diameter_nm) / 2
            lines = self._instance(radius, extent, rng)
            s, e = to_capsules(lines)
            starts.append(s)
            ends.append(e)
            radii.append(np.full(len(s), radius))
            ids.append(np.full(len(s), k, dtype=np.int32))
        if not n:
            return Geometry.empty(self.class_names)
        total = sum(len(s) for s in starts)
        return Geometry(
            self.class_names,
            np.concatenate(starts),
            np.concatenate(ends),
            np.concatenate(radii),
            np.concatenate(ids),
            np.zeros(total, dtype=np.int16),
        )

    def _instance(self, radius: float, extent: np.ndarray, rng) -> list[np.ndarray]:
        """One instance's polylines, placed; new shapes are drawn until one fits."""
        cfg = self.config
        shape = Shape(
            persistence_nm=cfg.persistence_length_nm,
            smooth_nm=2 * radius,
            z_undulation_nm=cfg.z_undulation_nm,
            z_correlation_nm=cfg.persistence_length_nm / 2,
            z_range_nm=cfg.z_range_nm,
        )
        length = rng.uniform(*cfg.length_nm)
        networked = rng.random() < cfg.network_fraction
        n_branches = draw_count(rng, cfg.branches_per_network)
        for _ in range(_MAX_TRIES):
            lines = build_instance(
                length, radius, shape, n_branches if networked else 0, cfg.branch_length_nm, rng
            )
            placed = fit_laterally(lines, radius, extent[1:], cfg.allow_partial, rng)
            if placed is not None:
                return placed
        raise ConfigError(
            f"mitochondria: could not fit a {length:.0f} nm long, {2 * radius:.0f} nm wide "
            f"tube inside the {extent[2]:g} x {extent[1]:g} nm field in {_MAX_TRIES} tries; "
            "lower length_nm, diameter_nm or branch_length_nm, or set allow_partial"
        )


@hookimpl
def register_structures(register):
    """Register the ``mitochondria`` structure."""
    register(
        "mitochondria",
        MitochondriaConfig,
        Mitochondria,
        "3D tubes curved in x, y and z with closed ends, optionally branched into networks",
    )


@hookimpl
def register_analytics(register):
    """Register the ``mitochondria`` morphology analytics."""
    register(
        "mitochondria",
        MorphologyConfig,
        Morphology,
        "dot/rod/network classes, skeleton branches, widths and MiNA network parameters",
    )
