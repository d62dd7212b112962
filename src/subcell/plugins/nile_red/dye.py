"""Nile Red emitters of a cell: where the dye sits, how bright, and its emission peak.

Every compartment's emitters are Poisson processes with its labelling's densities
(:class:`~subcell.plugins.nile_red.compartments.LabellingConfig`, times ``scale``):

- membranes on their exact surfaces: plasma membrane (basal, apical, edge wall), nuclear
  envelope (ellipsoid), ER sheets (both faces), Golgi cisternae (both faces of every
  disc); capsule unions (ER tubules, mitochondria, filopodia, nuclear reticulum, round
  organelles) through :class:`~subcell.plugins.physics.labelling.SurfaceLabelling`, which
  counts overlapping parts once;
- volumes inside: lipid droplet cores, mitochondrial cristae, intraluminal membranes of
  endosomes and lysosomes (:class:`~subcell.plugins.physics.labelling.VolumeLabelling`),
  and the diffuse cytosol / nucleoplasm / medium background per voxel of the volume
  layer (uniform inside each voxel).

Where one compartment's shape pokes into another's domain, the dye goes with the domain:
the ER is removed from voxels an organelle won, filopodia emitters inside the cell body are
dropped (the plasma membrane is there), nuclear reticulum ones outside the nucleus too.

Emission peak of an emitter: its compartment's peak, plus an offset per object (instance;
for id-0 compartments one per compartment) with sd ``peak_object_sd_nm`` (organelle to
organelle heterogeneity, Zhanghao et al. 2020), plus an offset per emitter with sd
``peak_emitter_sd_nm``.
"""

from __future__ import annotations

import numpy as np

from subcell.core.model import Emitters, Field, Geometry
from subcell.plugins.nile_red.compartments import BINARY, CLASS_NAMES, LabellingConfig
from subcell.plugins.nile_red.layout import SPHERE_CLASSES, CellLayout
from subcell.plugins.nile_red.masks import CellRasters
from subcell.plugins.nile_red.raster import point_voxels
from subcell.plugins.physics.labelling import (
    SurfaceLabelling,
    SurfaceLabellingConfig,
    VolumeLabelling,
    VolumeLabellingConfig,
)

__all__ = ["emission_peaks", "nile_red_emitters", "to_dye_emitters"]

_NM2 = 1e-6  # µm² per nm²
_NM3 = 1e-9  # µm³ per nm³
#: Classes whose voxels the ER yields to.
_ORGANELLES = BINARY


def _on_capsules(geometry: Geometry, per_um2: float, per_um3: float, rng):
    """Surface then volume emitters of a capsule geometry: positions and instance ids."""
    parts_p, parts_i = [], []
    if per_um2 > 0 and len(geometry):
        em = SurfaceLabelling(SurfaceLabellingConfig(density_per_um2=per_um2)).label(geometry, rng)
        parts_p.append(em.position_nm)
        parts_i.append(em.instance)
    if per_um3 > 0 and len(geometry):
        em = VolumeLabelling(VolumeLabellingConfig(density_per_um3=per_um3)).label(geometry, rng)
        parts_p.append(em.position_nm)
        parts_i.append(em.instance)
    if not parts_p:
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
    return np.concatenate(parts_p), np.concatenate(parts_i).astype(np.int64)


def _golgi_faces(layout: CellLayout, per_nm2: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Both faces of every cisterna (10 nm either side of its plane)."""
    stacks = layout.golgi
    radius = np.repeat(stacks.radius_nm, stacks.cisternae)
    stack = np.repeat(np.arange(len(stacks)), stacks.cisternae)
    k = np.arange(len(stack)) - np.repeat(
        np.cumsum(stacks.cisternae) - stacks.cisternae, stacks.cisternae
    )
    axial = (k - 0.5 * (stacks.cisternae[stack] - 1)) * stacks.pitch_nm
    counts = rng.poisson(per_nm2 * 2 * np.pi * radius**2)
    disc = np.repeat(np.arange(len(radius)), counts)
    s = stack[disc]
    u = rng.random((len(disc), 3))
    rho = radius[disc] * np.sqrt(u[:, 0])
    phi = 2 * np.pi * u[:, 1]
    side = np.where(u[:, 2] < 0.5, -10.0, 10.0)
    n = stacks.normal[s]
    e1 = np.broadcast_to([1.0, 0.0, 0.0], n.shape)  # vertical: the normal is horizontal
    e2 = np.cross(n, e1)
    pos = stacks.centre_nm[s] + (axial[disc] + side)[:, None] * n
    pos += (rho * np.cos(phi))[:, None] * e1 + (rho * np.sin(phi))[:, None] * e2
    return pos, layout.golgi_ids[s]


def _diffuse(field: Field, volume: np.ndarray, per_um3: float, rng) -> np.ndarray:
    """Poisson emitters uniform in every voxel of a (Z, Y, X) mask."""
    if per_um3 <= 0:
        return np.zeros((0, 3))
    voxel = np.asarray(field.voxel_nm)
    counts = rng.poisson(per_um3 * voxel.prod() * _NM3, size=int(volume.sum()))
    where = np.argwhere(volume)
    idx = np.repeat(where, counts, axis=0)
    return (idx + rng.random(idx.shape)) * voxel


def nile_red_emitters(
    layout: CellLayout,
    rasters: CellRasters,
    field: Field,
    labelling: LabellingConfig,
    rng: np.random.Generator,
    *,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (N, 3) nm, class index (N,) and instance id (N,) of every emitter, in
    :data:`CLASS_NAMES` order of compartments (see the module notes)."""
    shape = layout.shape
    lab = {name: labelling.of(name) for name in CLASS_NAMES}
    area = {name: lab[name].surface_per_um2 * scale * _NM2 for name in CLASS_NAMES}
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def none(points):
        return points, np.zeros(len(points), dtype=np.int64)

    semantic = rasters.masks.semantic
    for name in ("nucleus", "cytosol", "ecs"):
        volume = semantic[CLASS_NAMES.index(name)].astype(bool)
        parts[name] = none(_diffuse(field, volume, lab[name].volume_per_um3 * scale, rng))
    # ER: tubules and sheets in the cytoplasm, then out of organelles' voxels.
    tub, _ = _on_capsules(layout.er, lab["er"].surface_per_um2 * scale, 0.0, rng)
    sheets = layout.sheets.faces(area["er"], rng)
    er = np.concatenate([tub, sheets[shape.in_cytoplasm(sheets)]])
    flat, inside = point_voxels(field, er)
    codes = [CLASS_NAMES.index(n) + 1 for n in _ORGANELLES]
    blocked = np.zeros(len(er), dtype=bool)
    blocked[inside] = np.isin(rasters.structure.ravel()[flat], codes)
    parts["er"] = none(er[~blocked])
    envelope = shape.nucleus.surface(area["nuclear_membrane"], rng)
    parts["nuclear_membrane"] = none(envelope)
    parts["plasma_membrane"] = none(shape.plasma_membrane(area["plasma_membrane"], rng))
    parts["golgi"] = _golgi_faces(layout, area["golgi"], rng)
    for name in ("mitochondria", *SPHERE_CLASSES, "nuclear_reticulum", "filopodia"):
        pos, ids = _on_capsules(
            layout.objects[name],
            lab[name].surface_per_um2 * scale,
            lab[name].volume_per_um3 * scale,
            rng,
        )
        if name == "nuclear_reticulum":
            keep = shape.nucleus.level(pos) < 1
        elif name == "filopodia":
            keep = ~shape.in_body(pos)
        else:
            keep = np.ones(len(pos), dtype=bool)
        parts[name] = (pos[keep], ids[keep])
    position = np.concatenate([parts[n][0] for n in CLASS_NAMES])
    instance = np.concatenate([parts[n][1] for n in CLASS_NAMES])
    klass = np.repeat(np.arange(len(CLASS_NAMES)), [len(parts[n][1]) for n in CLASS_NAMES])
    return position, klass.astype(np.int16), instance.astype(np.int32)


def to_dye_emitters(
    position, klass, instance, labelling: LabellingConfig, photons_per_emitter: float
) -> Emitters:
    """Emitters with photons ``photons_per_emitter × brightness`` of their compartment."""
    brightness = np.array([labelling.of(n).brightness for n in CLASS_NAMES])
    return Emitters(
        position_nm=position,
        photons=photons_per_emitter * brightness[klass],
        instance=instance,
        klass=klass,
        class_names=CLASS_NAMES,
    )


def emission_peaks(
    klass, instance, labelling: LabellingConfig, object_sd_nm: float, emitter_sd_nm: float, rng
) -> np.ndarray:
    """Per-emitter emission peaks (nm): compartment peak + object offset + emitter offset."""
    base = np.array([labelling.of(n).emission_peak_nm for n in CLASS_NAMES])
    per_class = object_sd_nm * rng.standard_normal(len(CLASS_NAMES))
    n_ids = int(instance.max()) + 1 if len(instance) else 1
    per_object = object_sd_nm * rng.standard_normal(n_ids)
    offset = np.where(instance > 0, per_object[instance], per_class[klass])
    return base[klass] + offset + emitter_sd_nm * rng.standard_normal(len(klass))
