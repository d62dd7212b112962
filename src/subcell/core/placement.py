"""Placing objects in a field of view: how many, where their centres may go, centres kept
apart by rejection sampling, and the placed spheres as a geometry.

Coordinates follow the core convention: nm from the field's origin, axis order (z, y, x).
Every draw comes from the ``rng`` passed in, in a fixed order, so the same seed gives the
same bytes.
"""

from __future__ import annotations

import numpy as np

from subcell.core.errors import ConfigError
from subcell.core.model import Geometry

__all__ = ["centre_boxes", "draw_count", "numbered_spheres", "place_apart"]

#: Candidates drawn at once per object, and batches tried, before placement gives up.
_BATCH = 64
_MAX_BATCHES = 200
_UM2_PER_100 = 100.0
_NM2_PER_UM2 = 1e6


def draw_count(
    rng: np.random.Generator,
    count: tuple[int, int],
    density_per_100um2: float = 0.0,
    extent_nm=None,
) -> int:
    """The number of objects in a field.

    Parameters
    ----------
    rng
        The only source of randomness.
    count
        Inclusive range ``(low, high)``: the number is uniform in it when
        ``density_per_100um2`` is 0.
    density_per_100um2
        If > 0, the number is Poisson with mean this × the field's lateral area / 100 µm²,
        and ``count`` is ignored.
    extent_nm
        The field's extent (z, y, x) in nm; needed with a density.

    Returns
    -------
    int
    """
    if density_per_100um2 > 0:
        area_100um2 = extent_nm[1] * extent_nm[2] / _NM2_PER_UM2 / _UM2_PER_100
        return int(rng.poisson(density_per_100um2 * area_100um2))
    return int(rng.integers(count[0], count[1] + 1))


def centre_boxes(extent_nm, margin_nm, z_low, z_high) -> tuple[np.ndarray, np.ndarray]:
    """Per-object boxes ``[low, high]`` (each (n, 3)) that the objects' centres may occupy.

    Parameters
    ----------
    extent_nm
        The field's extent (z, y, x), nm.
    margin_nm
        (n,) smallest lateral distance from each centre to the field's edges, nm.
    z_low, z_high
        Scalars or (n,) bounds of each centre's z, nm.

    Returns
    -------
    low, high
        Where ``high < low`` laterally, the object does not fit in the field.
    """
    margin = np.asarray(margin_nm, dtype=float)
    low = np.empty((len(margin), 3))
    high = np.empty((len(margin), 3))
    low[:, 1:] = margin[:, None]
    high[:, 1:] = np.asarray(extent_nm)[1:] - low[:, 1:]
    low[:, 0] = z_low
    high[:, 0] = z_high
    return low, high


def place_apart(
    low: np.ndarray,
    high: np.ndarray,
    rng: np.random.Generator,
    *,
    radius_nm: np.ndarray | None = None,
    gap_nm: float = 0.0,
    what: str = "object",
    hint: str = "lower the count",
) -> np.ndarray:
    """Centres placed one by one, each uniform in its box and clear of those before it.

    Object ``i`` goes at least ``radius_nm[i] + radius_nm[j] + gap_nm`` from every
    earlier object ``j``: points ``gap_nm`` apart without radii, spheres ``gap_nm`` clear
    of each other with them. Candidates are drawn in batches of 64 and the first free one
    is taken, up to 200 batches per object.

    Parameters
    ----------
    low, high
        (n, 3) corners of each object's box, nm.
    rng
        The only source of randomness.
    radius_nm
        (n,) object radii, nm; None: points.
    gap_nm
        Clearance between objects (surface to surface), nm.
    what
        The objects, for the error message (e.g. ``"beads: bead"``).
    hint
        What to change when placement fails, for the error message.

    Returns
    -------
    numpy.ndarray
        (n, 3) centres, nm.

    Raises
    ------
    ConfigError
        When no free place is found for an object.
    """
    n = len(low)
    radius = np.zeros(n) if radius_nm is None else np.asarray(radius_nm, dtype=float)
    placed = np.empty((n, 3))
    for i in range(n):
        need = radius[:i] + radius[i] + gap_nm
        for _ in range(_MAX_BATCHES):
            cand = low[i] + (high[i] - low[i]) * rng.random((_BATCH, 3))
            d2 = ((cand[:, None, :] - placed[None, :i, :]) ** 2).sum(-1)
            ok = (d2 >= need**2).all(axis=1)
            if ok.any():
                placed[i] = cand[np.argmax(ok)]
                break
        else:
            size = f" (radius {radius[i]:.0f} nm)" if radius_nm is not None else ""
            clear = f"{gap_nm:g} nm clear of" if gap_nm > 0 else "clear of"
            raise ConfigError(
                f"{what} {i + 1} of {n}{size}: no free place {clear} the others after "
                f"{_BATCH * _MAX_BATCHES} tries; {hint}"
            )
    return placed


def numbered_spheres(class_names, centre_nm, radius_nm) -> Geometry:
    """Spheres as a :class:`~subcell.core.model.Geometry` of one class, one instance each.

    Parameters
    ----------
    class_names
        The geometry's class names; every sphere is of the first.
    centre_nm
        (n, 3) centres, nm.
    radius_nm
        (n,) radii, nm.

    Returns
    -------
    Geometry
        Instance ids ``1..n`` in the order given, class index 0.
    """
    n = len(radius_nm)
    return Geometry.spheres(
        class_names,
        centre_nm,
        radius_nm,
        np.arange(1, n + 1, dtype=np.int32),
        np.zeros(n, dtype=np.int16),
    )
