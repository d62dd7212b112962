"""Fourier-domain rendering of point emitters through a depth-variant, radially symmetric PSF.

Why Fourier space: the widefield intensity PSF is band-limited (its OTF is zero beyond
``2 NA / λ``), so on a grid finer than ``λ / (4 NA)`` the image of an emitter at *any*
sub-pixel position is exactly the inverse DFT of ``OTF(f) · exp(-2πi f·x)``. Emitters are
therefore never snapped to a grid: each contributes its exact phase ramp, summed for all
emitters of one depth slab with a single matrix product over only the frequencies inside
the OTF support. Pixel integration is exact too (a box filter is a sinc in Fourier space).

Depth: the PSF changes with the emitter's depth (Gibson–Lanni aberration), so depths are
cut into slabs ``depth_step_nm`` thick; an emitter's photons are split linearly between the
two nearest slab depths and each slab is filtered by its own OTF, per image plane.

Edges: the DFT grid is the field padded by the PSF radius on each side, so light from
emitters up to ``psf_radius_nm`` outside the field reaches it and nothing wraps around.
Emitters further out are dropped.
"""

from __future__ import annotations

import attrs
import numpy as np
from scipy import fft

from subcell.plugins.microscopes.psf import GibsonLanni, otf_cutoff_per_nm, radial_otf

__all__ = ["FourierRenderer"]

#: Samples of the radial OTF tables between 0 and the cutoff; linear interpolation on them
#: is accurate to ~1e-5 even for OTFs defocused by several micrometres.
_N_Q = 1024


@attrs.frozen
class _Axis:
    """One lateral axis of the padded DFT grid and the frequencies inside the OTF support."""

    n_out: int  # output pixels
    oversample: int
    step_nm: float  # sample spacing (pixel / oversample)
    pad: int  # samples of padding before the field
    size: int  # DFT length
    freq: np.ndarray  # signed integer frequencies kept (cycles per DFT length)

    @property
    def period_nm(self) -> float:
        return self.size * self.step_nm

    @property
    def origin_nm(self) -> float:
        """Field coordinate of the centre of DFT sample 0."""
        return (0.5 - self.pad) * self.step_nm


def _axis(n_out: int, pixel_nm: float, cutoff: float, radius_nm: float, half: bool) -> _Axis:
    # sample finer than λ/(4 NA) so the band-limited PSF is not aliased
    oversample = max(1, int(np.ceil(2.0 * cutoff * pixel_nm - 1e-9)))
    step = pixel_nm / oversample
    pad = int(np.ceil(radius_nm / step))
    size = fft.next_fast_len(n_out * oversample + 2 * pad, real=True)
    m = int(np.floor(cutoff * size * step))
    m = min(m, size // 2 - (0 if half else 1))
    freq = np.arange(m + 1) if half else np.concatenate([np.arange(m + 1), np.arange(-m, 0)])
    return _Axis(n_out, oversample, step, pad, size, freq)


def _box(axis: _Axis) -> np.ndarray:
    """Transfer function of integrating over one DFT sample (a box of width ``step_nm``)."""
    return np.sinc(axis.freq / axis.size)


class FourierRenderer:
    """Renders emitters onto the planes of one field for one set of optics.

    Parameters
    ----------
    optics
        The Gibson–Lanni optics.
    shape_yx
        Output pixels (Y, X).
    pixel_nm
        Pixel size (y, x) in nm.
    nominal_focus_nm
        Nominal (stage) focus depth of each output plane, shape (Z,).
    depth_step_nm
        Depth spacing of the PSFs between which emitter depths are interpolated.
    psf_radius_nm
        Lateral radius beyond which the PSF is truncated.

    Notes
    -----
    OTF tables are computed lazily per depth slab and kept, so rendering many tiles on
    the same field pays for the PSF once.
    """

    def __init__(
        self,
        optics: GibsonLanni,
        shape_yx,
        pixel_nm,
        nominal_focus_nm,
        depth_step_nm: float,
        psf_radius_nm: float,
    ):
        self.optics = optics
        self.nominal_focus_nm = np.atleast_1d(np.asarray(nominal_focus_nm, dtype=float))
        self.depth_step_nm = float(depth_step_nm)
        self.psf_radius_nm = float(psf_radius_nm)
        cutoff = otf_cutoff_per_nm(optics)
        self._y = _axis(int(shape_yx[0]), float(pixel_nm[0]), cutoff, psf_radius_nm, False)
        self._x = _axis(int(shape_yx[1]), float(pixel_nm[1]), cutoff, psf_radius_nm, True)
        fy = self._y.freq / self._y.period_nm
        fx = self._x.freq / self._x.period_nm
        radius = np.hypot(fy[:, None], fx[None, :]).ravel()
        self._q = np.linspace(0.0, cutoff, _N_Q)
        pos = np.clip(radius / cutoff * (_N_Q - 1), 0.0, _N_Q - 1 - 1e-9)
        self._qi = pos.astype(np.intp)
        self._qw = pos - self._qi
        self._box = (_box(self._y)[:, None] * _box(self._x)[None, :]).ravel()
        self._tables: dict[int, np.ndarray] = {}  # slab index -> (Z, _N_Q) radial OTFs

    @property
    def n_planes(self) -> int:
        """Number of output planes (Z)."""
        return len(self.nominal_focus_nm)

    def _otf_tables(self, slabs: np.ndarray) -> np.ndarray:
        """Radial OTF per requested slab and plane, shape (len(slabs), Z, _N_Q)."""
        missing = np.array([s for s in slabs if s not in self._tables], dtype=np.intp)
        if len(missing):
            depth = missing * self.depth_step_nm
            tables = radial_otf(
                self.optics,
                self._q,
                depth[:, None],
                self.nominal_focus_nm[None, :],
                self.psf_radius_nm,
            )
            for s, table in zip(missing, tables, strict=True):
                self._tables[int(s)] = table
        return np.stack([self._tables[int(s)] for s in slabs])

    def _phases(self, coord_nm: np.ndarray, axis: _Axis) -> np.ndarray:
        """exp(-2πi f u) for every emitter (rows) and kept frequency (columns), complex64."""
        u = (coord_nm - axis.origin_nm) / axis.period_nm
        return np.exp(-2j * np.pi * np.outer(u, axis.freq)).astype(np.complex64)

    def _keep(self, yx_nm: np.ndarray) -> np.ndarray:
        """Emitters close enough to the field for their light to reach it."""
        r = self.psf_radius_nm
        extent = (
            self._y.n_out * self._y.oversample * self._y.step_nm,
            self._x.n_out * self._x.oversample * self._x.step_nm,
        )
        return (
            (yx_nm[:, 0] >= -r)
            & (yx_nm[:, 0] < extent[0] + r)
            & (yx_nm[:, 1] >= -r)
            & (yx_nm[:, 1] < extent[1] + r)
        )

    def render(self, yx_nm: np.ndarray, depth_nm: np.ndarray, photons: np.ndarray) -> np.ndarray:
        """Expected photons per pixel, shape (Z, Y, X) float32.

        Parameters
        ----------
        yx_nm
            Lateral positions (N, 2) in nm, field coordinates (pixel ``i`` spans
            ``[i, i + 1) * pixel``).
        depth_nm
            Depth below the coverslip surface (N,); negative depths are taken as 0.
        photons
            Expected detected photons (N,).
        """
        yx_nm = np.asarray(yx_nm, dtype=float).reshape(-1, 2)
        depth_nm = np.asarray(depth_nm, dtype=float).ravel()
        photons = np.asarray(photons, dtype=float).ravel()
        keep = self._keep(yx_nm) & (photons > 0)
        spectrum = self._spectrum(yx_nm[keep], depth_nm[keep], photons[keep])
        return self._to_image(spectrum)

    def _spectrum(self, yx_nm, depth_nm, photons) -> np.ndarray:
        """Sum over slabs of (emitter spectrum × OTF), shape (Z, n_fy * n_fx)."""
        n_box = len(self._box)
        out = np.zeros((self.n_planes, n_box), dtype=np.complex128)
        if len(photons) == 0:
            return out
        t = np.maximum(depth_nm, 0.0) / self.depth_step_nm
        lower = np.floor(t).astype(np.intp)
        frac = t - lower
        rows = np.concatenate([np.arange(len(t)), np.arange(len(t))])
        slab = np.concatenate([lower, lower + 1])
        weight = np.concatenate([(1.0 - frac) * photons, frac * photons])
        nonzero = weight > 0
        rows, slab, weight = rows[nonzero], slab[nonzero], weight[nonzero]
        order = np.argsort(slab, kind="stable")
        rows, slab, weight = rows[order], slab[order], weight[order]
        slabs, starts = np.unique(slab, return_index=True)
        bounds = np.append(starts, len(slab))
        ey = self._phases(yx_nm[:, 0], self._y)
        ex = self._phases(yx_nm[:, 1], self._x)
        tables = self._otf_tables(slabs)
        for i in range(len(slabs)):
            sel = rows[bounds[i] : bounds[i + 1]]
            w = weight[bounds[i] : bounds[i + 1]].astype(np.float32)
            spec = ((ey[sel] * w[:, None]).T @ ex[sel]).ravel()
            table = tables[i]
            otf = table[:, self._qi] * (1.0 - self._qw) + table[:, self._qi + 1] * self._qw
            out += otf * spec
        return out

    def _to_image(self, spectrum: np.ndarray) -> np.ndarray:
        """Inverse DFT of the kept frequencies, cropped to the field and binned to pixels."""
        y, x = self._y, self._x
        full = np.zeros((self.n_planes, y.size, x.size // 2 + 1), dtype=np.complex128)
        full[:, y.freq[:, None] % y.size, x.freq[None, :]] = (spectrum * self._box).reshape(
            self.n_planes, len(y.freq), len(x.freq)
        )
        image = fft.irfft2(full, s=(y.size, x.size), axes=(-2, -1))
        image = image[
            :, y.pad : y.pad + y.n_out * y.oversample, x.pad : x.pad + x.n_out * x.oversample
        ]
        if y.oversample > 1 or x.oversample > 1:
            image = image.reshape(self.n_planes, y.n_out, y.oversample, x.n_out, x.oversample).sum(
                axis=(2, 4)
            )
        # band-limited reconstruction rings by ~1e-6 of the peak around zero; expected
        # photons must not be negative for the noise models downstream
        return np.maximum(image, 0.0).astype(np.float32)
