"""The widefield (epifluorescence) microscope: one channel, scalar Gibson–Lanni PSF.

Geometry
--------
The :class:`~subcell.core.model.Field` is a window into the sample. Its lateral
coordinates are nm from the field's corner (pixel ``i`` spans ``[i, i + 1) * pixel``).
Its z axis is centred on the focal plane: field z ``= extent_z / 2`` lies at
``focus_depth_nm`` below the coverslip surface, so an emitter at field z ``z`` sits at
depth ``focus_depth_nm + z − extent_z / 2`` (depths below 0, i.e. inside the glass, are
taken as 0). Plane ``k`` of a ``Z``-plane field is focused on the depth of voxel centre
``k``, so images stay aligned with masks drawn on the same field. "Focused on" means the
stage is where an emitter at that depth is sharpest (highest peak), as a user focuses on a
structure (:func:`~subcell.plugins.microscopes.psf.best_focus_nm`). With index mismatch that
stage position is deeper than the focus (oil into water at NA 1.4: ~1.4× at 650 nm): a real
stack taken in equal stage steps is compressed axially relative to these aligned planes.

Photometry
----------
``Emitters.photons`` are *detected* photons per frame (collection efficiency is not
modelled separately). Every plane of the PSF integrates to 1 over the infinite plane, so an
emitter's image sums to its photons, less the light that falls outside the field or beyond
``psf_radius_nm`` (about 1 % in focus for the default 4 µm, more far out of focus).
"""

from __future__ import annotations

import attrs
import numpy as np

from subcell.core.model import Emitters, Field
from subcell.plugins.microscopes.psf import GibsonLanni, best_focus_nm
from subcell.plugins.microscopes.render import FourierRenderer

__all__ = ["Epi", "EpiConfig"]

_gt0 = attrs.validators.gt(0)
_ge0 = attrs.validators.ge(0)
_index = attrs.validators.ge(1.0)


def _float(default, *validators):
    return attrs.field(default=default, converter=float, validator=list(validators))


@attrs.frozen(kw_only=True)
class EpiConfig:
    """Parameters of the widefield microscope.

    Attributes
    ----------
    na
        Numerical aperture of the objective; below ``immersion_index``.
    emission_nm
        Emission (detection) wavelength in vacuum.
    pixel_nm
        Pixel size in the sample plane. :meth:`Epi.image` renders on the field it is given;
        ``pixel_nm``, ``z_step_nm`` and ``n_z`` are what :meth:`Epi.field` builds it from.
    immersion_index, sample_index
        Refractive indices of the immersion medium (oil 1.515) and the sample (water 1.33).
    coverslip_index, coverslip_thickness_um
        Coverslip refractive index and thickness.
    immersion_design_index, coverslip_design_index, coverslip_design_thickness_um,
    working_distance_um
        The objective's design conditions (Gibson–Lanni ``n_i*``, ``n_g*``, ``t_g*``,
        ``t_i*``); any departure of the actual values from them adds aberration.
    focus_depth_nm
        Depth of the focal plane below the coverslip surface (where a point is sharpest),
        at the field's z centre. The default puts the coverslip at z = 0 of a 1300 nm deep field.
    z_step_nm, n_z
        Plane spacing and number of planes of a z-stack (``n_z = 1``: one plane).
    depth_step_nm
        Depth spacing of the PSFs used; each emitter's PSF is interpolated linearly between
        the two nearest (25 nm is < 1/20 of the axial FWHM at NA 1.4).
    psf_radius_nm
        Lateral radius at which the PSF is truncated (and how far outside the field
        emitters still contribute light).
    """

    na: float = _float(1.4, _gt0)
    emission_nm: float = _float(510.0, _gt0)
    pixel_nm: float = _float(42.0, _gt0)
    immersion_index: float = _float(1.515, _index)
    sample_index: float = _float(1.33, _index)
    coverslip_index: float = _float(1.515, _index)
    coverslip_thickness_um: float = _float(170.0, _ge0)
    immersion_design_index: float = _float(1.515, _index)
    coverslip_design_index: float = _float(1.515, _index)
    coverslip_design_thickness_um: float = _float(170.0, _ge0)
    working_distance_um: float = _float(150.0, _ge0)
    focus_depth_nm: float = _float(650.0, _ge0)
    z_step_nm: float = _float(200.0, _gt0)
    n_z: int = attrs.field(default=1, converter=int, validator=attrs.validators.ge(1))
    depth_step_nm: float = _float(25.0, _gt0)
    psf_radius_nm: float = _float(4000.0, _gt0)

    def __attrs_post_init__(self):
        for name in ("immersion_index", "immersion_design_index"):
            if self.na >= getattr(self, name):
                raise ValueError(f"na ({self.na}) must be below {name} ({getattr(self, name)})")
        if self.psf_radius_nm < 2.0 * self.emission_nm / self.na:
            raise ValueError(
                f"psf_radius_nm ({self.psf_radius_nm}) must be at least 2 emission_nm / na "
                f"({2.0 * self.emission_nm / self.na:.0f} nm): the PSF core would be cut"
            )

    def optics(self) -> GibsonLanni:
        """The Gibson–Lanni optics (lengths in nm) these parameters describe."""
        return GibsonLanni(
            na=self.na,
            wavelength_nm=self.emission_nm,
            immersion_index=self.immersion_index,
            immersion_design_index=self.immersion_design_index,
            sample_index=self.sample_index,
            coverslip_index=self.coverslip_index,
            coverslip_design_index=self.coverslip_design_index,
            coverslip_thickness_nm=self.coverslip_thickness_um * 1e3,
            coverslip_design_thickness_nm=self.coverslip_design_thickness_um * 1e3,
            working_distance_nm=self.working_distance_um * 1e3,
        )


class Epi:
    """Widefield microscope: noise-free images (expected detected photons) of emitters.

    Parameters
    ----------
    config
        The microscope's parameters.
    """

    channel_names: tuple[str, ...] = ("widefield",)

    def __init__(self, config: EpiConfig):
        self.config = config
        self.optics = config.optics()
        self._renderers: dict[Field, FourierRenderer] = {}

    def field(self, shape_yx: tuple[int, int], slab_nm: float = 1300.0) -> Field:
        """The field this microscope samples: ``n_z`` planes ``z_step_nm`` apart, or one
        plane whose z voxel is ``slab_nm`` (the depth structures are placed in)."""
        dz = self.config.z_step_nm if self.config.n_z > 1 else float(slab_nm)
        pixel = self.config.pixel_nm
        return Field((self.config.n_z, *shape_yx), (dz, pixel, pixel))

    def depth_nm(self, z_nm, field: Field) -> np.ndarray:
        """Depth below the coverslip surface of field z coordinates (see module notes)."""
        return self.config.focus_depth_nm + np.asarray(z_nm, dtype=float) - field.extent_nm[0] / 2

    def _renderer(self, field: Field) -> FourierRenderer:
        renderer = self._renderers.get(field)
        if renderer is None:
            planes = (np.arange(field.shape[0]) + 0.5) * field.voxel_nm[0]
            renderer = FourierRenderer(
                self.optics,
                field.shape[1:],
                field.voxel_nm[1:],
                best_focus_nm(self.optics, self.depth_nm(planes, field)),
                self.config.depth_step_nm,
                self.config.psf_radius_nm,
            )
            self._renderers[field] = renderer
        return renderer

    def image(self, emitters: Emitters, field: Field, frame: int = 0) -> np.ndarray:
        """Expected detected photons per voxel for one frame.

        Parameters
        ----------
        emitters
            Emitters at their exact (off-grid) 3D positions; frame ``frame`` of their
            ``on_fraction`` scales their photons.
        field
            The grid rendered on (its own voxel size, whatever ``pixel_nm`` says).
        frame
            Which frame of ``emitters.on_fraction``.

        Returns
        -------
        numpy.ndarray
            ``(1, Z, Y, X)`` float32.
        """
        if not -emitters.n_frames <= frame < emitters.n_frames:
            raise IndexError(f"frame {frame} out of range for {emitters.n_frames} frame(s)")
        pos = emitters.position_nm
        image = self._renderer(field).render(
            pos[:, 1:], self.depth_nm(pos[:, 0], field), emitters.frame_photons(frame)
        )
        return image[None]

    def psf(self, field: Field) -> np.ndarray:
        """Image of one emitter of 1 photon at the centre of voxel (Z//2, Y//2, X//2).

        Returns
        -------
        numpy.ndarray
            ``(1, Z, Y, X)`` float32; each plane sums to the light it catches (≈ 1 in focus
            on a field much wider than the PSF).
        """
        centre = (np.asarray(field.shape) // 2 + 0.5) * np.asarray(field.voxel_nm)
        point = Emitters(
            position_nm=centre[None],
            photons=[1.0],
            instance=[1],
            klass=[0],
            class_names=("point",),
        )
        return self.image(point, field)
