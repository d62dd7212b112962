"""An example subcell plugin package: one structure and one analytics plugin."""

from __future__ import annotations

import attrs
import numpy as np
from scipy.spatial import cKDTree

from subcell.core.hookspecs import hookimpl
from subcell.core.model import Geometry, Table


def _range(instance, attribute, value):
    if len(value) != 2 or not 0 <= value[0] <= value[1]:
        raise ValueError(f"'{attribute.name}' must be [low, high] with 0 <= low <= high")


@attrs.frozen(kw_only=True)
class LipidDropletsConfig:
    """Lipid droplets: filled spheres, log-normal radii, no two closer than touching."""

    count: tuple[int, int] = attrs.field(default=(3, 10), validator=_range)
    median_radius_nm: float = attrs.field(default=250.0, validator=attrs.validators.gt(0))
    radius_log_sd: float = attrs.field(default=0.3, validator=attrs.validators.ge(0))
    max_radius_nm: float = attrs.field(default=1000.0, validator=attrs.validators.gt(0))


class LipidDroplets:
    """Places non-overlapping droplets in the field's central plane."""

    def __init__(self, config: LipidDropletsConfig):
        self.config = config

    def generate(self, field, rng: np.random.Generator) -> Geometry:
        cfg = self.config
        extent = field.extent_nm
        n = int(rng.integers(cfg.count[0], cfg.count[1] + 1))
        radii = np.minimum(
            cfg.median_radius_nm * np.exp(cfg.radius_log_sd * rng.standard_normal(n)),
            cfg.max_radius_nm,
        )
        centers: list[np.ndarray] = []
        kept: list[float] = []
        for radius in radii:
            # Rejection sampling: a droplet that cannot be placed in 100 tries is left out.
            for _ in range(100):
                yx = rng.uniform(radius, np.maximum(extent[1:] - radius, radius + 1e-9))
                center = np.array([extent[0] / 2, *yx])
                if all(
                    np.linalg.norm(center - c) >= radius + r
                    for c, r in zip(centers, kept, strict=True)
                ):
                    centers.append(center)
                    kept.append(float(radius))
                    break
        n = len(kept)
        return Geometry.spheres(
            ("lipid_droplet",),
            np.reshape(centers, (n, 3)),
            kept,
            np.arange(1, n + 1),
            np.zeros(n),
        )


@attrs.frozen(kw_only=True)
class NearestNeighbourConfig:
    """Distance from each object's centroid to the nearest other object's centroid."""


class NearestNeighbour:
    """Per-object nearest-neighbour distance in nm (NaN when an image has one object)."""

    def __init__(self, config: NearestNeighbourConfig):
        self.config = config

    def measure(self, masks, volume=None) -> Table:
        labels = masks.instances
        if labels is None:
            from scipy import ndimage

            labels, _ = ndimage.label(masks.semantic[0] > 0)
        ids = np.unique(labels)
        ids = ids[ids > 0]
        if len(ids) == 0:
            return Table({"label": np.zeros(0, int), "nearest_nm": np.zeros(0)})
        from scipy import ndimage

        centroids = np.array(ndimage.center_of_mass(np.ones_like(labels), labels, ids))
        centroids_nm = centroids * np.asarray(masks.voxel_nm)
        if len(ids) == 1:
            return Table({"label": ids, "nearest_nm": [np.nan]})
        distances, _ = cKDTree(centroids_nm).query(centroids_nm, k=2)
        return Table({"label": ids, "nearest_nm": distances[:, 1]})


@hookimpl
def register_structures(register):
    register(
        "lipid_droplets",
        LipidDropletsConfig,
        LipidDroplets,
        "lipid droplets: filled spheres with log-normal radii",
    )


@hookimpl
def register_analytics(register):
    register(
        "nearest_neighbour",
        NearestNeighbourConfig,
        NearestNeighbour,
        "distance from each object to its nearest neighbour (nm)",
    )
