"""Mitochondria morphology: sizes, skeleton graphs, dot / rod / network classes, MiNA.

Every object of a mask (2D or 3D, physical units from ``Masks.voxel_nm``) gets its area
(or volume), its skeleton's branches by type, junction and endpoint counts, width from the
distance transform along the skeleton, tortuosity, and a class:

- ``rule="area"`` (Sekh et al. 2021): *dot* if the object has no junction and no cycle
  (max node degree 1) and at most ``dot_max_area_px`` pixels (``dot_max_volume_voxels``
  voxels in 3D); *rod* if it has no junction or cycle and is larger; *network* otherwise.
- ``rule="length"`` (the group's later code): as above with the skeleton length against
  ``dot_max_length_nm`` in place of the area.

Per image, MiNA's nine network parameters (Valente et al. 2017): individuals (objects
without a junction), networks (objects with one), mean / median / SD branch length, mean /
median / SD network size (branches per network) and the mitochondrial footprint.
The whole image is skeletonised and graphed once (:mod:`.skeleton`); per-object values are
``np.bincount`` reductions over labels.
"""

from __future__ import annotations

from typing import Literal

import attrs
import numpy as np

from subcell.core.labels import label_sizes, object_labels
from subcell.core.model import Masks, Table, Volume
from subcell.plugins.mitochondria.skeleton import BRANCH_TYPES, skeleton_graph

__all__ = ["Morphology", "MorphologyConfig", "MorphologyResult", "mina_parameters"]

CLASSES = ("dot", "rod", "network")


def _nonnegative(instance, attribute, value):
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen(kw_only=True)
class MorphologyConfig:
    """Parameters of the mitochondria morphology analytics.

    Attributes
    ----------
    class_name
        The semantic class measured when the masks hold several (its channel, and the
        instances inside it); a mask with one class is measured whatever its name.
    rule
        How dots and rods are told apart among unbranched objects: ``"area"`` (the paper's,
        pixel count) or ``"length"`` (skeleton length in nm).
    dot_max_area_px
        Largest dot in pixels under the area rule, 2D (the paper: 120 px).
    dot_max_volume_voxels
        Largest dot in voxels under the area rule, 3D (about a sphere of 120 px cross
        section at isotropic voxels).
    dot_max_length_nm
        Longest dot skeleton (nm) under the length rule.
    spur_ratio
        Prune tip–junction branches shorter than this many local radii at their junction
        (skeletonisation spurs inside blunt ends) before measuring; 0 keeps all branches.
    connectivity
        When the masks carry no instance labels, objects are connected components:
        ``"face"`` joins voxels sharing a face, ``"full"`` also edges and corners (as the
        skeleton graph does).
    """

    class_name: str = "mitochondria"
    rule: Literal["area", "length"] = attrs.field(
        default="area", validator=attrs.validators.in_(("area", "length"))
    )
    dot_max_area_px: float = attrs.field(default=120.0, converter=float, validator=_nonnegative)
    dot_max_volume_voxels: float = attrs.field(
        default=1000.0, converter=float, validator=_nonnegative
    )
    dot_max_length_nm: float = attrs.field(default=1500.0, converter=float, validator=_nonnegative)
    spur_ratio: float = attrs.field(default=1.5, converter=float, validator=_nonnegative)
    connectivity: Literal["face", "full"] = attrs.field(
        default="full", validator=attrs.validators.in_(("face", "full"))
    )


@attrs.frozen(eq=False)
class MorphologyResult:
    """Everything one image's analysis gives.

    Attributes
    ----------
    objects
        One row per object (see :meth:`Morphology.measure`).
    branches
        One row per skeleton branch: ``label``, ``type``, ``length_nm``, ``euclidean_nm``,
        ``tortuosity``, ``mean_width_nm``.
    summary
        Per-image values: counts and fractions per class, means, MiNA parameters.
    labels
        The object labels measured, (Z, Y, X).
    skeleton
        The analysed skeleton, (Z, Y, X) bool.
    """

    objects: Table
    branches: Table
    summary: dict
    labels: np.ndarray
    skeleton: np.ndarray


class Morphology:
    """Measures mitochondria: size, skeleton graph, width, tortuosity and class.

    Parameters
    ----------
    config
        The analytics' parameters.
    """

    def __init__(self, config: MorphologyConfig):
        self.config = config

    def measure(self, masks: Masks, volume: Volume | None = None) -> Table:
        """One row per object of ``masks`` (the ``objects`` of :meth:`analyze`).

        Columns: ``label``, ``class`` (dot / rod / network), ``centroid_y``,
        ``centroid_x`` (and ``centroid_z`` in 3D; voxel index units), ``area_px`` and
        ``area_nm2`` (3D: ``volume_voxels``, ``volume_nm3``), ``skeleton_length_nm``,
        ``n_branches``, ``n_junctions``, ``n_endpoints``, ``max_degree``,
        ``mean_width_nm``, ``max_width_nm``, ``tortuosity``, the summed branch length by
        type ``length_tip_tip_nm``, ``length_tip_junction_nm``,
        ``length_junction_junction_nm``, ``length_cycle_nm``, and the centroid in nm
        (``centroid_{z,y,x}_nm``, voxel ``i`` centred at ``(i + 0.5) * voxel``).
        """
        return self.analyze(masks, volume).objects

    def analyze(self, masks: Masks, volume: Volume | None = None) -> MorphologyResult:
        """Objects, branches and the per-image summary of ``masks``.

        Parameters
        ----------
        masks
            The segmentation: instances (inside the measured class) or, without instances,
            connected components of the class's channel.
        volume
            Unused (morphology needs no intensities); accepted for the common interface.

        Raises
        ------
        VolumeError
            If the instance labels are not integers or are negative.
        """
        labels = object_labels(masks, self.config.class_name, self.config.connectivity)
        flat = labels.shape[0] == 1
        spacing = np.asarray(masks.voxel_nm[1:] if flat else masks.voxel_nm, dtype=float)
        image = labels[0] if flat else labels
        graph = skeleton_graph(image, spacing, spur_ratio=self.config.spur_ratio)
        present, columns = label_sizes(image, spacing)
        columns.update(_graph_columns(graph, present))
        columns["class"] = self._classes(columns, flat)
        objects = Table(_ordered(columns, flat))
        branches = _branch_table(graph)
        skeleton = graph.skeleton[None] if flat else graph.skeleton
        summary = self._summary(objects, branches, flat)
        return MorphologyResult(objects, branches, summary, labels, skeleton)

    def _classes(self, columns: dict, flat: bool) -> np.ndarray:
        cfg = self.config
        linear = (columns["n_junctions"] == 0) & (columns["length_cycle_nm"] == 0)
        if cfg.rule == "area":
            size = columns["area_px"] if flat else columns["volume_voxels"]
            small = size <= (cfg.dot_max_area_px if flat else cfg.dot_max_volume_voxels)
        else:
            small = columns["skeleton_length_nm"] <= cfg.dot_max_length_nm
        out = np.full(linear.size, "network", dtype=object)
        out[linear & small] = "dot"
        out[linear & ~small] = "rod"
        return out.astype(str)

    def _summary(self, objects: Table, branches: Table, flat: bool) -> dict:
        c = objects.columns
        size_key = "area_nm2" if flat else "volume_nm3"
        n = len(objects)
        counts = {k: int((c["class"] == k).sum()) for k in CLASSES}
        return {
            "n_objects": n,
            "counts": counts,
            "fractions": {k: (v / n if n else None) for k, v in counts.items()},
            "means": {
                key: _mean(c[key])
                for key in (size_key, "skeleton_length_nm", "mean_width_nm", "tortuosity")
            },
            "mean_size_by_class": {k: _mean(c[size_key][c["class"] == k]) for k in CLASSES},
            "mina": mina_parameters(objects, branches, flat),
            "rule": self.config.rule,
        }


def mina_parameters(objects: Table, branches: Table, flat: bool) -> dict:
    """MiNA's nine network parameters of one image.

    Parameters
    ----------
    objects, branches
        The tables of :meth:`Morphology.analyze`.
    flat
        True for a 2D image (footprint in µm²), False for 3D (µm³).

    Returns
    -------
    dict
        ``individuals`` (objects without a junction: puncta, rods, rings), ``networks``
        (objects with at least one), ``mean/median/sd_branch_length_nm`` over all branches,
        ``mean/median/sd_network_size_branches`` (branches per network) and
        ``footprint_um2`` (2D) or ``footprint_um3`` (3D), the objects' total size.
        Undefined statistics (no branch, no network) are None; SDs are sample SDs.
    """
    c = objects.columns
    networked = c["n_junctions"] > 0
    lengths = branches.columns["length_nm"]
    sizes = c["n_branches"][networked].astype(float)
    if flat:
        footprint = {"footprint_um2": float(c["area_nm2"].sum()) / 1e6}
    else:
        footprint = {"footprint_um3": float(c["volume_nm3"].sum()) / 1e9}
    return {
        "individuals": int((~networked).sum()),
        "networks": int(networked.sum()),
        "mean_branch_length_nm": _mean(lengths),
        "median_branch_length_nm": _median(lengths),
        "sd_branch_length_nm": _sd(lengths),
        "mean_network_size_branches": _mean(sizes),
        "median_network_size_branches": _median(sizes),
        "sd_network_size_branches": _sd(sizes),
        **footprint,
    }


def _graph_columns(graph, present: np.ndarray) -> dict[str, np.ndarray]:
    """Per-object skeleton values: bincounts over node and branch labels."""
    n = int(present.max()) + 1 if present.size else 1
    b = graph.branches
    real = ~b["internal"]

    def per(label, weights=None):
        counts = np.bincount(label, weights=weights, minlength=n)[present]
        return counts if weights is None else counts.astype(float)

    out = {"skeleton_length_nm": per(b["label"], b["length_nm"])}
    out["n_branches"] = per(b["label"][real]).astype(np.int64)
    ends_key = np.concatenate([b["src_key"][real], b["dst_key"][real]])
    ends_label = np.concatenate([b["label"][real], b["label"][real]])
    keys, first, degree = np.unique(ends_key, return_index=True, return_counts=True)
    key_label = ends_label[first]
    n_nodes = len(graph.node_label)
    out["n_junctions"] = per(key_label[(keys >= n_nodes) & (degree >= 3)]).astype(np.int64)
    out["n_endpoints"] = per(graph.node_label[graph.node_degree == 1]).astype(np.int64)
    max_degree = np.zeros(n, dtype=np.int64)
    np.maximum.at(max_degree, key_label, degree)
    out["max_degree"] = max_degree[present]
    finite = np.isfinite(graph.node_width_nm)
    label, width = graph.node_label[finite], graph.node_width_nm[finite]
    core = graph.node_core[finite]
    nodes, n_core = per(label), per(label[core])
    with np.errstate(invalid="ignore", divide="ignore"):
        # Widths away from the rounded ends; an object that is all end (a dot) uses all.
        out["mean_width_nm"] = np.where(
            n_core > 0,
            per(label[core], width[core]) / n_core,
            np.where(nodes > 0, per(label, width) / nodes, np.nan),
        )
        widest = np.full(n, -np.inf)
        np.maximum.at(widest, label, width)
        out["max_width_nm"] = np.where(np.isfinite(widest[present]), widest[present], np.nan)
        open_ = real & (b["type"] != 3)
        chord = per(b["label"][open_], b["euclidean_nm"][open_])
        path = per(b["label"][open_], b["length_nm"][open_])
        out["tortuosity"] = np.where(chord > 0, path / chord, np.nan)
    for code, name in enumerate(BRANCH_TYPES):
        sel = real & (b["type"] == code)
        out[f"length_{name}_nm"] = per(b["label"][sel], b["length_nm"][sel])
    return out


def _ordered(columns: dict, flat: bool) -> dict:
    """Columns in the documented order."""
    axes = "yx" if flat else "zyx"
    size = ("area_px", "area_nm2") if flat else ("volume_voxels", "volume_nm3")
    order = (
        ["label", "class", *(f"centroid_{a}" for a in axes), *size]
        + ["skeleton_length_nm", "n_branches", "n_junctions", "n_endpoints", "max_degree"]
        + ["mean_width_nm", "max_width_nm", "tortuosity"]
        + [f"length_{name}_nm" for name in BRANCH_TYPES]
        + [f"centroid_{a}_nm" for a in axes]
    )
    return {k: columns[k] for k in order}


def _branch_table(graph) -> Table:
    b = graph.branches
    real = ~b["internal"]
    length, chord = b["length_nm"][real], b["euclidean_nm"][real]
    kind = b["type"][real]
    with np.errstate(invalid="ignore", divide="ignore"):
        tortuosity = np.where((kind != 3) & (chord > 0), length / chord, np.nan)
    return Table(
        {
            "label": b["label"][real],
            "type": np.asarray(BRANCH_TYPES, dtype=str)[kind] if kind.size else np.zeros(0, str),
            "length_nm": length,
            "euclidean_nm": chord,
            "tortuosity": tortuosity,
            "mean_width_nm": b["mean_width_nm"][real],
        }
    )


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def _mean(values) -> float | None:
    v = _finite(values)
    return float(v.mean()) if v.size else None


def _median(values) -> float | None:
    v = _finite(values)
    return float(np.median(v)) if v.size else None


def _sd(values) -> float | None:
    v = _finite(values)
    return float(v.std(ddof=1)) if v.size > 1 else None
