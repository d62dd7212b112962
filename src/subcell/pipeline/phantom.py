"""Image one scene drawn by a phantom plugin: phantom -> optics -> background and photon
budget -> noise; the ground truth is the scene's own masks.

Imaging rule (``docs/phantoms.md``): a *spectral* microscope, one with ``band_fractions``
(``spinning_disk``), images every dye at once, splitting each emitter's photons between its
detection bands by the emitter's emission peak (a dye without ``emission_peak_nm`` has the
microscope's configured ``emission_nm``); the channels are the microscope's
``channel_names``. Any other microscope images each dye on its own (sequential
acquisition, one exposure per dye): channel ``c`` is dye ``c``, named after it. The uniform
background is added to every channel, then the noise.

Image ``index`` draws from ``SeedSequence(seed, spawn_key=(index, stage))`` for each stage,
so it has the same bytes whichever worker makes it and in whatever order.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

from subcell.core.errors import ConfigError, PluginError, VolumeError
from subcell.core.model import Emitters, Field, Masks, Volume
from subcell.core.provenance import plugins_in, record
from subcell.core.scene import Dye, Scene
from subcell.pipeline.photon_budget import photon_scale_for_snr, snr
from subcell.pipeline.schemas import PhantomConfig
from subcell.pipeline.simulate import TileStats, imaging_field
from subcell.registry import Registry, get_registry

__all__ = [
    "PhantomField",
    "check_scene",
    "is_spectral",
    "phantom_attrs",
    "phantom_provenance",
    "render_scene",
    "simulate_phantom",
]

# Stage numbers in the spawn key: fixed, so adding a stage never reshuffles the others.
_PHANTOM, _NOISE, _BACKGROUND, _BUDGET = range(4)


@attrs.frozen(eq=False)
class PhantomField:
    """One imaged phantom scene: the noisy image, its ground truth and what made them.

    Attributes
    ----------
    image
        Detector counts (C, Z, Y, X), channels named (dye names, or the microscope's bands).
    clean
        The noise-free image in expected photons, same shape, float32.
    masks
        The scene's ground truth (semantic masks and instance ids).
    scene
        The scene as imaged: every dye's photons multiplied by ``stats.photon_scale``.
    field
        The imaging grid.
    stats
        The image's photon budget.
    """

    image: Volume
    clean: np.ndarray
    masks: Masks
    scene: Scene
    field: Field
    stats: TileStats


def _rng(seed: int, index: int, stage: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stage)))


def simulate_phantom(
    config: PhantomConfig, index: int = 0, registry: Registry | None = None
) -> PhantomField:
    """Draw and image image ``index`` of a phantom config.

    Parameters
    ----------
    config
        A structured :class:`PhantomConfig` (see :func:`subcell.pipeline.config.load_config`).
    index
        Which image of the run; with the config's seed it fixes every random draw.
    registry
        Where plugins are looked up; the process-wide registry if None.

    Returns
    -------
    PhantomField

    Raises
    ------
    VolumeError
        If the scene's masks are not on the field the phantom was asked to draw.
    PluginError
        If the phantom returns no :class:`~subcell.core.scene.Scene`, or a non-spectral
        microscope gives more than one channel per dye.
    ConfigError
        If ``snr`` is set but cannot be reached, or the noise model cannot report its
        standard deviation.
    """
    registry = registry or get_registry()
    field = imaging_field(config)
    phantom = _create(registry, config.phantom)
    scene = phantom.draw(field, _rng(config.seed, index, _PHANTOM))
    check_scene(scene, field, config.phantom.plugin)
    microscope = _create(registry, config.microscope)
    noise = _create(registry, config.noise)

    # Render at the phantom's photons, then scale: images are linear in photons.
    structure, names = render_scene(scene, field, microscope)
    stats = _photon_budget(config, index, structure, noise)
    clean = (stats.photon_scale * structure + stats.background_photons).astype(np.float32)
    counts = np.asarray(noise.apply(clean, _rng(config.seed, index, _NOISE)), dtype=np.float32)
    if stats.photon_scale != 1.0:
        scene = _scaled(scene, stats.photon_scale)
    image = Volume(counts, field.voxel_nm, channel_names=names)
    return PhantomField(image, clean, scene.masks, scene, field, stats)


def is_spectral(microscope: Any) -> bool:
    """Whether a microscope splits photons between detection bands by emission peak."""
    return callable(getattr(microscope, "band_fractions", None))


def render_scene(scene: Scene, field: Field, microscope: Any) -> tuple[np.ndarray, tuple]:
    """The noise-free image of a scene's dyes, (C, Z, Y, X) float64, and its channel names.

    A spectral microscope images all dyes at once (channels: its ``channel_names``); any
    other images each dye on its own (channel ``c``: dye ``c``, named after it).

    Raises
    ------
    PluginError
        A non-spectral microscope with several channels, or a spectral one with no
        ``config.emission_nm`` for a dye without emission peaks.
    """
    if is_spectral(microscope):
        emitters = Emitters.concatenate([d.emitters for d in scene.dyes], [0] * len(scene.dyes))
        peaks = _emission_peaks(scene.dyes, microscope)
        if peaks is None:
            image = microscope.image(emitters, field)
        else:
            image = microscope.image(emitters, field, emission_peak_nm=peaks)
        return np.asarray(image, dtype=np.float64), tuple(microscope.channel_names)
    channels = []
    for dye in scene.dyes:
        image = np.asarray(microscope.image(dye.emitters, field), dtype=np.float64)
        if image.shape[0] != 1:
            raise PluginError(
                f"microscope {type(microscope).__name__} gives {image.shape[0]} channels per "
                f"dye; sequential acquisition needs one, and a multi-channel microscope needs "
                f"band_fractions to image several dyes at once"
            )
        channels.append(image[0])
    return np.stack(channels), tuple(dye.name for dye in scene.dyes)


def _emission_peaks(dyes: tuple[Dye, ...], microscope: Any) -> np.ndarray | None:
    """Per-emitter peaks of all dyes in order; None when no dye sets its own."""
    if all(dye.emission_peak_nm is None for dye in dyes):
        return None
    default = getattr(getattr(microscope, "config", None), "emission_nm", None)
    parts = []
    for dye in dyes:
        if dye.emission_peak_nm is not None:
            parts.append(np.asarray(dye.emission_peak_nm, dtype=np.float64))
            continue
        if default is None:
            raise PluginError(
                f"dye {dye.name!r} has no emission_peak_nm and microscope "
                f"{type(microscope).__name__} has no config.emission_nm to use instead"
            )
        parts.append(np.full(len(dye.emitters), float(default)))
    return np.concatenate(parts)


def check_scene(scene: Any, field: Field, plugin: str) -> None:
    """Check that a phantom drew a :class:`Scene` whose truth lies on ``field``.

    Raises
    ------
    PluginError
        Not a Scene.
    VolumeError
        Masks (or instance ids) of another shape, or another voxel size, than the field.
    """
    if not isinstance(scene, Scene):
        raise PluginError(
            f"phantom {plugin!r}: draw() returned {type(scene).__name__}, expected a Scene"
        )
    masks = scene.masks
    where = f"phantom {plugin!r}: the scene's"
    if masks.semantic.ndim != 4 or masks.semantic.shape[1:] != field.shape:
        raise VolumeError(
            f"{where} masks have shape {masks.semantic.shape}, expected (K, *{field.shape}) "
            f"(K classes on the field passed to draw)"
        )
    if masks.instances is not None and masks.instances.shape != field.shape:
        raise VolumeError(
            f"{where} instance ids have shape {masks.instances.shape}, expected {field.shape}"
        )
    if not np.allclose(masks.voxel_nm, field.voxel_nm, rtol=1e-6):
        raise VolumeError(
            f"{where} masks have voxel_nm {tuple(masks.voxel_nm)}, but the field's is "
            f"{field.voxel_nm}"
        )


def _photon_budget(config: PhantomConfig, index: int, structure: np.ndarray, noise) -> TileStats:
    """Draw the image's background and SNR target; solve for the photon scale."""
    lo, hi = config.background_photons
    background = float(_rng(config.seed, index, _BACKGROUND).uniform(lo, hi))
    has_sd = callable(getattr(noise, "noise_sd_photons", None))
    target, scale = math.nan, 1.0
    if config.snr is not None:
        if not has_sd:
            raise ConfigError(
                f"snr: noise plugin {config.noise.plugin!r} does not report noise_sd_photons, "
                f"so no SNR can be set; remove 'snr'"
            )
        target = float(_rng(config.seed, index, _BUDGET).uniform(*config.snr))
        scale = photon_scale_for_snr(structure, background, noise, target)
    achieved = snr(structure, background, noise, scale) if has_sd else math.nan
    return TileStats(target, achieved, background, scale)


def _scaled(scene: Scene, scale: float) -> Scene:
    dyes = [
        attrs.evolve(d, emitters=attrs.evolve(d.emitters, photons=d.emitters.photons * scale))
        for d in scene.dyes
    ]
    return attrs.evolve(scene, dyes=dyes)


def phantom_provenance(
    config: PhantomConfig, registry: Registry | None = None, **extra: Any
) -> dict:
    """Provenance of a phantom run: resolved config, seed, every plugin used."""
    registry = registry or get_registry()
    used = [registry.get(kind, name) for kind, name in plugins_in(config)]
    return record(config, seed=config.seed, plugins=used, step="phantom", **extra)


def phantom_attrs(config: PhantomConfig, registry: Registry | None = None) -> dict:
    """Dataset attributes of a phantom run: ``{"phantom": {"plugin": NAME, "acquisition":
    "spectral" | "sequential"}}`` (spectral: one exposure, the microscope's bands as
    channels; sequential: one exposure and channel per dye)."""
    registry = registry or get_registry()
    spectral = is_spectral(_create(registry, config.microscope))
    mode = "spectral" if spectral else "sequential"
    return {"phantom": {"plugin": config.phantom.plugin, "acquisition": mode}}


def _create(registry: Registry, spec) -> Any:
    return registry.create(spec.kind, spec.plugin, spec.config)
