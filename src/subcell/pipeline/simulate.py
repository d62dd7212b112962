"""Simulate one field of view (tile) through the plugin chain.

structures -> labelling -> photophysics -> motion -> microscope -> background and photon
budget -> noise, and ground truth from the geometry and emitters (never from the noisy
image; rules that threshold the noise-free image get it, and the noise model and optics).
Each tile ``index`` draws from its own ``SeedSequence(seed, spawn_key=(index, stage,
part))``, so tile ``i`` has the same bytes whichever worker makes it and in whatever order.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from subcell.core.errors import ConfigError
from subcell.core.model import Emitters, Field, Geometry, Masks, Volume
from subcell.core.provenance import plugins_in, record
from subcell.pipeline.motion import instance_shifts
from subcell.pipeline.photon_budget import photon_scale_for_snr, snr
from subcell.pipeline.schemas import SimulateConfig
from subcell.registry import Registry, get_registry

# Stage numbers in the spawn key: fixed, so adding a stage never reshuffles the others.
_STRUCTURE, _LABELLING, _PHOTOPHYSICS, _NOISE, _MOTION, _BACKGROUND, _BUDGET = range(7)


@attrs.frozen
class TileStats:
    """What a tile drew for its photon budget.

    Attributes
    ----------
    snr_target
        The SNR drawn from ``snr`` (NaN when no target was set).
    snr
        The tile's SNR as simulated (:mod:`subcell.pipeline.photon_budget`); NaN without
        signal, or when the noise model does not report its standard deviation.
    background_photons
        Uniform background added, photons per pixel per frame.
    photon_scale
        Factor applied to every emitter's photons to reach ``snr_target`` (1 without one).
    """

    snr_target: float
    snr: float
    background_photons: float
    photon_scale: float

    #: Field order of :meth:`as_tuple`, for dataset columns.
    columns = ("snr_target", "snr", "background_photons", "photon_scale")

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.snr_target, self.snr, self.background_photons, self.photon_scale)


@attrs.frozen(eq=False)
class SimulatedField:
    """One simulated tile: the noisy image, its ground truth and what made them.

    ``image`` holds detector counts, (C, Z, Y, X), or (T, C, Z, Y, X) when there are
    several frames; ``clean`` the noise-free image in expected photons, same shape;
    ``frame_masks`` the ground truth of every frame and ``masks`` that of frame 0;
    ``geometry`` is frame 0's and ``emitters`` carry the motion (``shift_nm``) and the
    photon budget.
    """

    image: Volume
    clean: np.ndarray
    masks: Masks
    geometry: Geometry
    emitters: Emitters
    field: Field
    frame_masks: tuple[Masks, ...] = ()
    stats: TileStats = TileStats(math.nan, math.nan, 0.0, 1.0)


def imaging_field(config: SimulateConfig) -> Field:
    """The detector grid: the microscope's ``pixel_nm``, ``z_step_nm``, ``n_z`` and ``tile_px``.

    A single plane (``n_z == 1``) spans the sample slab, ``slab_nm`` thick, centred on focus.
    """
    optics = config.microscope.config
    n_z = int(getattr(optics, "n_z", 1))
    z_nm = float(getattr(optics, "z_step_nm", optics.pixel_nm)) if n_z > 1 else config.slab_nm
    return Field((n_z, *config.tile_px), (z_nm, optics.pixel_nm, optics.pixel_nm))


def _rng(seed: int, index: int, stage: int, part: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stage, part)))


def simulate_field(
    config: SimulateConfig, index: int = 0, registry: Registry | None = None
) -> SimulatedField:
    """Simulate tile ``index`` of a simulate config.

    Parameters
    ----------
    config
        A structured :class:`SimulateConfig` (see :func:`subcell.pipeline.config.load_config`).
    index
        Which tile of the run; with the config's seed it fixes every random draw.
    registry
        Where plugins are looked up; the process-wide registry if None.

    Returns
    -------
    SimulatedField
        Image, noise-free image, masks per frame, geometry, emitters and photon budget.

    Raises
    ------
    ConfigError
        If ``snr`` is set but cannot be reached, or the noise model cannot report its
        standard deviation.
    """
    registry = registry or get_registry()
    field = imaging_field(config)
    geometry, emitters = _structures(config, index, registry, field)
    photophysics = _create(registry, config.photophysics)
    emitters = photophysics.apply(
        emitters, config.n_frames, _rng(config.seed, index, _PHOTOPHYSICS)
    )
    emitters = _move(config, index, geometry, emitters)
    microscope = _create(registry, config.microscope)
    noise = _create(registry, config.noise)

    # Render at the labellings' photons, then scale: images are linear in photons, so one
    # render serves any photon budget.
    structure = np.stack(
        [microscope.image(emitters.at_frame(t), field) for t in range(config.n_frames)]
    ).astype(np.float64)
    stats = _photon_budget(config, index, structure[0], noise)
    clean = (stats.photon_scale * structure + stats.background_photons).astype(np.float32)
    if stats.photon_scale != 1.0:
        emitters = attrs.evolve(emitters, photons=emitters.photons * stats.photon_scale)
    noise_rng = _rng(config.seed, index, _NOISE)
    counts = np.stack([noise.apply(frame, noise_rng) for frame in clean]).astype(np.float32)

    rule = _create(registry, config.ground_truth)
    frame_masks = tuple(
        rule.masks(
            geometry if emitters.shift_nm is None else geometry.shifted(emitters.shift_nm[t]),
            emitters.at_frame(t),
            field,
            clean=clean[t],
            noise=noise,
            microscope=microscope,
        )
        for t in range(config.n_frames)
    )
    names = tuple(getattr(microscope, "channel_names", ()))
    if config.n_frames == 1:
        image = Volume(counts[0], field.voxel_nm, channel_names=names)
        clean = clean[0]
    else:
        image = Volume(
            counts,
            field.voxel_nm,
            axes="TCZYX",
            channel_names=names,
            frame_interval_s=config.motion.frame_interval_s,
        )
    return SimulatedField(
        image, clean, frame_masks[0], geometry, emitters, field, frame_masks, stats
    )


def _structures(config: SimulateConfig, index: int, registry: Registry, field: Field):
    parts = []
    for number, entry in enumerate(config.structures):
        structure = registry.create("structure", entry.structure.plugin, entry.structure.config)
        geometry = structure.generate(field, _rng(config.seed, index, _STRUCTURE, number))
        labelling = registry.create("labelling", entry.labelling.plugin, entry.labelling.config)
        emitters = labelling.label(geometry, _rng(config.seed, index, _LABELLING, number))
        parts.append((geometry, emitters))
    return combine(parts)


def _move(config: SimulateConfig, index: int, geometry: Geometry, emitters: Emitters):
    """Emitters with per-instance motion (``shift_nm``) when frames move, else unchanged."""
    if config.n_frames == 1 or not config.motion.moves:
        return emitters
    n_instances = max(geometry.n_instances, int(emitters.instance.max()) if len(emitters) else 0)
    shift = instance_shifts(
        config.motion, config.n_frames, n_instances, _rng(config.seed, index, _MOTION)
    )
    return attrs.evolve(emitters, shift_nm=shift)


def _photon_budget(config: SimulateConfig, index: int, structure: np.ndarray, noise) -> TileStats:
    """Draw the tile's background and SNR target; solve for the photon scale.

    The four tiles of a montage are one camera frame: they share the background and the SNR
    target, drawn from the montage's first tile, so no seams show between them.
    """
    conditions = 4 * (index // 4) if config.montage else index
    lo, hi = config.background_photons
    background = float(_rng(config.seed, conditions, _BACKGROUND).uniform(lo, hi))
    has_sd = callable(getattr(noise, "noise_sd_photons", None))
    target, scale = math.nan, 1.0
    if config.snr is not None:
        if not has_sd:
            raise ConfigError(
                f"snr: noise plugin {config.noise.plugin!r} does not report noise_sd_photons, "
                f"so no SNR can be set; remove 'snr'"
            )
        target = float(_rng(config.seed, conditions, _BUDGET).uniform(*config.snr))
        scale = photon_scale_for_snr(structure, background, noise, target)
    achieved = snr(structure, background, noise, scale) if has_sd else math.nan
    return TileStats(target, achieved, background, scale)


def simulation_provenance(
    config: SimulateConfig, registry: Registry | None = None, **extra: Any
) -> dict:
    """Provenance of a simulate run: resolved config, seed, every plugin used."""
    registry = registry or get_registry()
    used = [registry.get(kind, name) for kind, name in plugins_in(config)]
    return record(config, seed=config.seed, plugins=used, step="simulate", **extra)


def _create(registry: Registry, spec) -> Any:
    return registry.create(spec.kind, spec.plugin, spec.config)


def combine(parts: list[tuple[Geometry, Emitters]]) -> tuple[Geometry, Emitters]:
    """Join per-structure geometries and their emitters, keeping instance ids unique and
    class indices consistent by class name."""
    geometry = Geometry.concatenate([g for g, _ in parts])
    offsets = np.cumsum([0] + [g.n_instances for g, _ in parts])[:-1].tolist()
    # A labelling that names no classes inherits its geometry's.
    emitters = [
        e if e.class_names else attrs.evolve(e, class_names=g.class_names) for g, e in parts
    ]
    return geometry, Emitters.concatenate(emitters, offsets)
