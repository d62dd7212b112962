"""Simulate one field of view through the plugin chain.

structures -> labelling -> photophysics -> microscope -> noise, and ground truth from the
geometry and emitters (never from the noisy image). Each field ``index`` draws from its own
``SeedSequence(seed, spawn_key=(index, stage))``, so field ``i`` has the same bytes
whichever worker makes it and in whatever order.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from subcell.core.model import Emitters, Field, Geometry, Masks, Volume
from subcell.core.provenance import plugins_in, record
from subcell.pipeline.schemas import SimulateConfig
from subcell.registry import Registry, get_registry

# Stage numbers in the spawn key: fixed, so adding a stage never reshuffles the others.
_STRUCTURE, _LABELLING, _PHOTOPHYSICS, _NOISE = 0, 1, 2, 3


@attrs.frozen(eq=False)
class SimulatedField:
    """One simulated field: the noisy image, its ground truth and what made them."""

    image: Volume
    clean: np.ndarray
    masks: Masks
    geometry: Geometry
    emitters: Emitters
    field: Field


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
    """Simulate field ``index`` of a simulate config.

    Parameters
    ----------
    config
        A structured :class:`SimulateConfig` (see :func:`subcell.pipeline.config.load_config`).
    index
        Which field (tile) of the run; with the config's seed it fixes every random draw.
    registry
        Where plugins are looked up; the process-wide registry if None.

    Returns
    -------
    SimulatedField
        ``image`` holds detector counts, (C, Z, Y, X), or (T, C, Z, Y, X) when
        ``n_frames > 1``; ``masks`` the ground truth for the first frame.
    """
    registry = registry or get_registry()
    field = imaging_field(config)
    parts = []
    for number, entry in enumerate(config.structures):
        structure = registry.create("structure", entry.structure.plugin, entry.structure.config)
        geometry = structure.generate(field, _rng(config.seed, index, _STRUCTURE, number))
        labelling = registry.create("labelling", entry.labelling.plugin, entry.labelling.config)
        emitters = labelling.label(geometry, _rng(config.seed, index, _LABELLING, number))
        parts.append((geometry, emitters))
    geometry, emitters = combine(parts)

    photophysics = _create(registry, config.photophysics)
    emitters = photophysics.apply(
        emitters, config.n_frames, _rng(config.seed, index, _PHOTOPHYSICS)
    )
    microscope = _create(registry, config.microscope)
    noise = _create(registry, config.noise)
    noise_rng = _rng(config.seed, index, _NOISE)
    clean = np.stack([microscope.image(emitters, field, frame=t) for t in range(config.n_frames)])
    counts = np.stack([noise.apply(frame, noise_rng) for frame in clean]).astype(np.float32)
    masks = _create(registry, config.ground_truth).masks(geometry, emitters, field)
    if config.n_frames == 1:
        image = Volume(counts[0], field.voxel_nm)
    else:
        image = Volume(counts, field.voxel_nm, axes="TCZYX")
    return SimulatedField(image, clean, masks, geometry, emitters, field)


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
