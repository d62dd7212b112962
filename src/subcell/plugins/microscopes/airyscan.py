"""Airyscan: a closed-pinhole confocal with a detector array and pixel reassignment.

The effective PSF is built from the excitation PSF (at ``excitation_nm``) and the detection
PSF (at ``emission_nm``), both Gibson–Lanni at the emitter's depth, reassigned and summed
over a detector disk of ``detector_diameter_au`` Airy units (Zeiss's 32 elements span
~1.25 AU); see :mod:`~subcell.plugins.microscopes.confocal`. Not the widefield PSF squared:
excitation and emission differ in wavelength, and the elements off axis see shifted,
reassigned products. Raw reassigned images by default; ``processing`` adds Airyscan's
Wiener-like Fourier reweighting.

An in-focus emitter's image sums to its photons; out of focus, the confocal sectioning
makes it dimmer (see the confocal module's photometry notes).
"""

from __future__ import annotations

import attrs

from subcell.plugins.microscopes.base import FourierMicroscope, OpticsConfig, float_field
from subcell.plugins.microscopes.confocal import ReassignedConfocalOTF, sheppard_factor_of

__all__ = ["Airyscan", "AiryscanConfig", "airy_unit_nm"]

_gt0 = attrs.validators.gt(0)
_ge0 = attrs.validators.ge(0)


def airy_unit_nm(na: float, wavelength_nm: float) -> float:
    """One Airy unit: the diameter of the Airy disk's first dark ring, ``1.22 λ / NA``."""
    return 1.22 * wavelength_nm / na


@attrs.frozen(kw_only=True)
class AiryscanConfig(OpticsConfig):
    """Parameters of the Airyscan microscope.

    Attributes
    ----------
    na, emission_nm, pixel_nm, immersion_index, sample_index, coverslip_index,
    coverslip_thickness_um, immersion_design_index, coverslip_design_index,
    coverslip_design_thickness_um, working_distance_um, focus_depth_nm, z_step_nm, n_z,
    depth_step_nm, device
        See :class:`~subcell.plugins.microscopes.base.OpticsConfig`.
    psf_radius_nm
        PSF truncation radius (the confocal PSF's tail is far weaker than widefield's).
    excitation_nm
        Excitation wavelength in vacuum.
    detector_diameter_au
        Diameter of the detector array in Airy units at ``emission_nm`` (0: a closed
        pinhole, i.e. ``h_ex · h_det``).
    reassignment_factor
        Fraction ``α`` of each element's offset its image is shifted back by; default
        ``λ_ex² / (λ_ex² + λ_em²)`` (≈ 0.48 for 488/510 nm), 0 for no reassignment.
    processing
        Apply the Wiener-like Fourier reweighting of Airyscan processing.
    wiener_eps
        Strength of that reweighting, relative to the in-focus OTF at 0 (smaller: sharper,
        more ringing).
    """

    psf_radius_nm: float = float_field(1500.0, _gt0)
    excitation_nm: float = float_field(488.0, _gt0)
    detector_diameter_au: float = float_field(1.25, _ge0)
    reassignment_factor: float = attrs.field(
        default=attrs.Factory(sheppard_factor_of, takes_self=True),
        converter=float,
        validator=[attrs.validators.ge(0), attrs.validators.le(1)],
    )
    processing: bool = False
    wiener_eps: float = float_field(0.02, _gt0)

    def cutoff_per_nm(self) -> float:
        return 2.0 * self.na / self.excitation_nm + 2.0 * self.na / self.emission_nm

    def nyquist_text(self) -> str:
        return (
            f"1 / (4 NA (1/λ_ex + 1/λ_em)) at excitation_nm {self.excitation_nm:g}, "
            f"emission_nm {self.emission_nm:g}, na {self.na:g}"
        )


class Airyscan(FourierMicroscope):
    """Airyscan confocal: noise-free images (expected detected photons) of emitters.

    Parameters
    ----------
    config
        The microscope's parameters.
    """

    channel_names: tuple[str, ...] = ("airyscan",)

    def __init__(self, config: AiryscanConfig):
        super().__init__(config)
        self.excitation = config.optics(config.excitation_nm)

    def _otf(self, channel, focal_depth_nm, nominal_nm) -> ReassignedConfocalOTF:
        c = self.config
        return ReassignedConfocalOTF(
            self.excitation,
            self.optics,
            focal_depth_nm,
            nominal_nm,
            c.detector_diameter_au * airy_unit_nm(c.na, c.emission_nm),
            c.reassignment_factor,
            c.psf_radius_nm,
            c.wiener_eps if c.processing else None,
        )
