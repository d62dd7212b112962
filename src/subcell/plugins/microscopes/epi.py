"""The widefield (epifluorescence) microscope: one channel, scalar Gibson–Lanni PSF.

Geometry and focusing are those of :mod:`~subcell.plugins.microscopes.base`.

Photometry
----------
Every plane of the widefield PSF integrates to 1 over the infinite plane, whatever the
defocus. The renderer needs a PSF of finite support (``psf_radius_nm``), and the scalar
Gibson–Lanni PSF has a long tail: beyond 2 µm lies ~2 % of the light in focus and up to
~12 % for an emitter 550 nm out of focus under oil-to-water mismatch (rays near the critical
angle land far away). That tail is not dropped: its light is spread as a faint, broad
Gaussian haze (σ = radius / 3) centred on the emitter, so an emitter's image sums to its
photons, less only what falls outside the field. The haze is ~1e-4 of the peak per pixel.
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.plugins.microscopes.base import FourierMicroscope, OpticsConfig
from subcell.plugins.microscopes.psf import GibsonLanni, otf_cutoff_per_nm, radial_otf

__all__ = ["Epi", "EpiConfig", "WidefieldOTF", "halo_otf"]


def halo_otf(q_per_nm, radius_nm: float) -> np.ndarray:
    """OTF of the haze that stands in for the light beyond ``radius_nm``: a Gaussian of
    σ = radius / 3 (99 % of it inside the radius), 1 at q = 0."""
    sigma = radius_nm / 3.0
    return np.exp(-2.0 * (np.pi * sigma * np.asarray(q_per_nm, dtype=float)) ** 2)


class WidefieldOTF:
    """Radial widefield OTFs for planes at the given stage positions (see module notes).

    Parameters
    ----------
    optics
        Detection optics.
    nominal_nm
        Stage (nominal) focus of each plane, (Z,).
    radius_nm
        PSF truncation radius; the light beyond becomes a haze within it.
    """

    def __init__(self, optics: GibsonLanni, nominal_nm, radius_nm: float):
        self.optics = optics
        self.nominal_nm = np.atleast_1d(np.asarray(nominal_nm, dtype=float))
        self.radius_nm = float(radius_nm)
        self.cutoff_per_nm = otf_cutoff_per_nm(optics)
        self.n_planes = len(self.nominal_nm)

    def __call__(self, q_per_nm, depth_nm) -> np.ndarray:
        """OTF (S, Z, Q) of emitters at ``depth_nm`` (S,) at frequencies ``q_per_nm`` (Q,)."""
        q = np.append(0.0, np.asarray(q_per_nm, dtype=float))
        otf = radial_otf(
            self.optics,
            q,
            np.asarray(depth_nm, dtype=float)[:, None],
            self.nominal_nm[None, :],
            self.radius_nm,
        )
        within = otf[..., :1]
        return (otf + (1.0 - within) * halo_otf(q, self.radius_nm))[..., 1:]


@attrs.frozen(kw_only=True)
class EpiConfig(OpticsConfig):
    """Parameters of the widefield microscope.

    Attributes
    ----------
    na, emission_nm, pixel_nm, immersion_index, sample_index, coverslip_index,
    coverslip_thickness_um, immersion_design_index, coverslip_design_index,
    coverslip_design_thickness_um, working_distance_um, focus_depth_nm, z_step_nm, n_z,
    depth_step_nm, psf_radius_nm, device
        See :class:`~subcell.plugins.microscopes.base.OpticsConfig`.
    """


class Epi(FourierMicroscope):
    """Widefield microscope: noise-free images (expected detected photons) of emitters.

    Parameters
    ----------
    config
        The microscope's parameters.
    """

    channel_names: tuple[str, ...] = ("widefield",)

    def __init__(self, config: EpiConfig):
        super().__init__(config)

    def _otf(self, channel, focal_depth_nm, nominal_nm) -> WidefieldOTF:
        return WidefieldOTF(self.optics, nominal_nm, self.config.psf_radius_nm)
