"""The ``scmos`` noise model: a camera whose every pixel has its own offset, gain and read noise.

An sCMOS sensor reads each pixel through its own amplifier, so offset, gain and read-noise
variance differ from pixel to pixel, the variance with a heavy tail of noisy pixels (Huang et
al. 2013, Nat. Methods 10:653). The maps belong to the camera, not to the tile: they are drawn
once from ``map_seed`` (or loaded from calibration files) and every tile of a dataset sees the
same ones. A tile of shape (Y, X) uses the top-left (Y, X) corner of the sensor, so a small
tile sees the same pixels as the corner of a large one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs
import numpy as np

from subcell.core.errors import VolumeError
from subcell.plugins.physics.noise import (
    QUANTISATION_VAR_ADU2,
    _bit_depth_field,
    _dtype_field,
    _float,
    _qe_field,
    check_photons,
    digitise,
)

__all__ = ["Scmos", "ScmosConfig", "ScmosMaps"]

_ge0 = attrs.validators.ge(0)
_gt0 = attrs.validators.gt(0)
#: Generated gains are kept at or above this fraction of the mean (a pixel always responds).
_MIN_GAIN_FRACTION = 0.05
#: Sensor size used for the population noise of :meth:`Scmos.noise_sd_photons` on scalars.
_REFERENCE_SHAPE = (256, 256)


def _check_npy(instance, attribute, value):
    if value and not value.endswith(".npy"):
        raise ValueError(f"{attribute.name} must name a .npy file (or be empty), got {value!r}")


def _path_field():
    return attrs.field(default="", validator=[attrs.validators.instance_of(str), _check_npy])


@attrs.frozen(kw_only=True)
class ScmosConfig:
    """An sCMOS camera with per-pixel offset, gain and read-noise maps.

    Attributes
    ----------
    qe
        Quantum efficiency: the fraction of photons converted to photo-electrons.
    offset_adu, offset_sd_adu
        Mean and standard deviation (normal) across pixels of the offset (bias), ADU.
    gain_adu_per_e, gain_sd_adu_per_e
        Mean and standard deviation (normal) across pixels of the conversion gain, ADU per
        electron (kept at or above 5 % of the mean).
    read_noise_median_e
        Read noise of the median pixel, rms electrons.
    read_var_log_sd
        Standard deviation of the natural log of the read-noise variance across pixels: the
        variance is log-normal, ``median² · exp(read_var_log_sd · N(0, 1))`` e⁻², whose
        upper tail holds the few very noisy pixels real sensors have (0: every pixel alike).
    map_seed
        Seed of the camera's maps; fixed per camera, independent of the tiles' random draws.
    offset_map_path, gain_map_path, read_var_map_path
        Optional calibration maps (``.npy``, 2-D): offset in ADU, gain in ADU/e⁻ and read
        noise variance in ADU² (the variance of dark frames). Each replaces the generated
        map of its kind; a map larger than the image is cropped at its top-left corner.
    full_well_e
        Full-well capacity, electrons: a pixel holds at most this many photo-electrons.
    bit_depth
        ADC bit depth; counts are rounded and clipped to ``[0, 2**bit_depth - 1]``.
    output_dtype
        ``"float32"`` or ``"uint16"``.
    """

    qe: float = _qe_field()
    offset_adu: float = _float(100.0, _ge0)
    offset_sd_adu: float = _float(2.0, _ge0)
    gain_adu_per_e: float = _float(2.0, _gt0)
    gain_sd_adu_per_e: float = _float(0.05, _ge0)
    read_noise_median_e: float = _float(1.4, _ge0)
    read_var_log_sd: float = _float(0.7, _ge0)
    map_seed: int = attrs.field(default=0, converter=int, validator=_ge0)
    offset_map_path: str = _path_field()
    gain_map_path: str = _path_field()
    read_var_map_path: str = _path_field()
    full_well_e: float = _float(30000.0, _gt0)
    output_dtype: Literal["float32", "uint16"] = _dtype_field()
    bit_depth: int = _bit_depth_field()


@attrs.frozen(eq=False)
class ScmosMaps:
    """Per-pixel camera maps of one (Y, X) window: offset (ADU), gain (ADU/e⁻), read
    noise variance (ADU²)."""

    offset_adu: np.ndarray
    gain_adu_per_e: np.ndarray
    read_var_adu2: np.ndarray


class Scmos:
    """sCMOS camera: ADU_i = g_i·min(Poisson(qe·λ_i), full well) + Normal(0, v_i) + o_i.

    Pixel ``i`` has offset ``o_i`` (ADU), gain ``g_i`` (ADU/e⁻) and read-noise variance
    ``v_i`` (ADU²). Its output has mean ``g_i·qe·λ_i + o_i`` ADU and variance
    ``g_i²·qe·λ_i + v_i + 1/12`` ADU², below saturation. The maps apply to the last two
    axes of the image; every channel and plane is read through the same pixels.

    Parameters
    ----------
    config
        Camera parameters and where its maps come from.
    """

    def __init__(self, config: ScmosConfig):
        self.config = config
        self._loaded: dict[str, np.ndarray] = {}
        self._cache: dict[tuple[int, int], ScmosMaps] = {}

    def maps(self, shape_yx: tuple[int, int]) -> ScmosMaps:
        """The camera's maps for an image of ``shape_yx`` (the sensor's top-left corner).

        Raises
        ------
        VolumeError
            When a calibration map cannot be read, is not 2-D and finite, or is smaller than
            ``shape_yx``.
        """
        shape_yx = (int(shape_yx[0]), int(shape_yx[1]))
        cached = self._cache.get(shape_yx)
        if cached is None:
            cached = self._make_maps(shape_yx)
            self._cache[shape_yx] = cached
        return cached

    def apply(self, expected_photons: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Draw camera counts (ADU) for an image ``(..., Y, X)`` of expected photons."""
        cfg = self.config
        lam = check_photons(expected_photons)
        if lam.ndim < 2:
            raise VolumeError(f"an sCMOS image needs (Y, X) axes, got shape {lam.shape}")
        maps = self.maps(lam.shape[-2:])
        electrons = rng.poisson(cfg.qe * lam).astype(np.float64)
        np.minimum(electrons, cfg.full_well_e, out=electrons)
        adu = maps.gain_adu_per_e * electrons + maps.offset_adu
        adu += rng.standard_normal(adu.shape) * np.sqrt(maps.read_var_adu2)
        return digitise(adu, cfg.bit_depth, cfg.output_dtype)

    def noise_sd_photons(self, expected_photons: np.ndarray) -> np.ndarray:
        """Standard deviation of the counts at each expected photon level, in photons.

        An image ``(..., Y, X)`` gets each pixel's own value,
        ``√(g_i²·qe·λ + v_i + 1/12) / (g_i·qe)``. A scalar or 1-D input has no pixels: it
        gets the sensor's population value, ``√(mean(g²)·qe·λ + mean(v) + 1/12) /
        (mean(g)·qe)`` over a 256 × 256 corner (or the whole calibration map when smaller).
        """
        lam = check_photons(expected_photons)
        qe = self.config.qe
        if lam.ndim >= 2:
            m = self.maps(lam.shape[-2:])
            var = m.gain_adu_per_e**2 * qe * lam + m.read_var_adu2 + QUANTISATION_VAR_ADU2
            return np.sqrt(var) / (m.gain_adu_per_e * qe)
        m = self.maps(self._reference_shape())
        g = m.gain_adu_per_e
        var = np.mean(g**2) * qe * lam + np.mean(m.read_var_adu2) + QUANTISATION_VAR_ADU2
        return np.sqrt(var) / (np.mean(g) * qe)

    def _reference_shape(self) -> tuple[int, int]:
        shape = _REFERENCE_SHAPE
        for name in ("offset", "gain", "read_var"):
            full = self._load(name)
            if full is not None:
                shape = (min(shape[0], full.shape[0]), min(shape[1], full.shape[1]))
        return shape

    def _make_maps(self, shape_yx: tuple[int, int]) -> ScmosMaps:
        cfg = self.config
        z = _sensor_normals(cfg.map_seed, shape_yx)
        offset = self._crop("offset", shape_yx)
        if offset is None:
            offset = np.clip(cfg.offset_adu + cfg.offset_sd_adu * z[..., 0], 0.0, None)
        gain = self._crop("gain", shape_yx)
        if gain is None:
            floor = _MIN_GAIN_FRACTION * cfg.gain_adu_per_e
            gain = np.clip(cfg.gain_adu_per_e + cfg.gain_sd_adu_per_e * z[..., 1], floor, None)
        var = self._crop("read_var", shape_yx)
        if var is None:
            var_e2 = cfg.read_noise_median_e**2 * np.exp(cfg.read_var_log_sd * z[..., 2])
            var = gain**2 * var_e2
        return ScmosMaps(offset, gain, var)

    def _crop(self, name: str, shape_yx: tuple[int, int]) -> np.ndarray | None:
        full = self._load(name)
        if full is None:
            return None
        if full.shape[0] < shape_yx[0] or full.shape[1] < shape_yx[1]:
            path = getattr(self.config, f"{name}_map_path")
            raise VolumeError(
                f"{name}_map_path {path}: map shape {full.shape} is smaller than the image's "
                f"(Y, X) = {shape_yx}"
            )
        return full[: shape_yx[0], : shape_yx[1]]

    def _load(self, name: str) -> np.ndarray | None:
        path = getattr(self.config, f"{name}_map_path")
        if not path:
            return None
        if name not in self._loaded:
            self._loaded[name] = _read_map(name, path)
        return self._loaded[name]


def _read_map(name: str, path: str) -> np.ndarray:
    """Read and check one calibration map."""
    key = f"{name}_map_path {path}"
    try:
        arr = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VolumeError(f"{key}: cannot read the map: {exc}") from exc
    if arr.ndim != 2 or arr.dtype.kind not in "iuf":
        raise VolumeError(f"{key}: expected a 2-D numeric (Y, X) map, got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise VolumeError(f"{key}: the map holds NaN or inf")
    if name == "gain" and (arr <= 0).any():
        raise VolumeError(f"{key}: gains must be > 0 ADU/e-, found {arr.min():g}")
    if name != "gain" and (arr < 0).any():
        raise VolumeError(f"{key}: values must be >= 0, found {arr.min():g}")
    return arr


def _sensor_normals(seed: int, shape_yx: tuple[int, int]) -> np.ndarray:
    """Three standard normals per pixel, (Y, X, 3), fixed by ``seed`` and the pixel alone.

    Row ``y`` draws from its own stream ``SeedSequence(seed, spawn_key=(y,))``; numpy's
    samplers fill arrays in order, so the first X pixels of a row are the same whatever the
    width asked for: a smaller window is exactly the corner of a larger one.
    """
    n_y, n_x = shape_yx
    rows = [
        np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(y,))).standard_normal(
            (n_x, 3)
        )
        for y in range(n_y)
    ]
    return np.stack(rows) if rows else np.zeros((0, n_x, 3))
