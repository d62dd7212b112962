"""What every microscope shares: the Gibson–Lanni optics fields, the field geometry, rendering.

Geometry
--------
The :class:`~subcell.core.model.Field` is a window into the sample. Its lateral
coordinates are nm from the field's corner (pixel ``i`` spans ``[i, i + 1) * pixel``).
Its z axis is centred on the focal plane: field z ``= extent_z / 2`` lies at
``focus_depth_nm`` below the coverslip surface, so an emitter at field z ``z`` sits at
depth ``focus_depth_nm + z − extent_z / 2`` (depths below 0, i.e. inside the glass, are
taken as 0). Plane ``k`` of a ``Z``-plane field is focused on the depth of voxel centre
``k``, so images stay aligned with masks drawn on the same field. "Focused on" means the
stage is where an emitter at that depth is sharpest (highest peak) at the detection
wavelength ``emission_nm``, as a user focuses on a structure
(:func:`~subcell.plugins.microscopes.psf.best_focus_nm`); every channel shares that stage
position. With index mismatch the stage position is deeper than the focus (oil into water
at NA 1.4: ~1.4× at 650 nm): a real stack taken in equal stage steps is compressed axially
relative to these aligned planes.

Photometry
----------
``Emitters.photons`` are *detected* photons per frame of an emitter in focus (collection
efficiency is not modelled separately). How out-of-focus emitters and the PSF's far tail
count is each microscope's business (see their modules).
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from typing import Literal

import attrs
import numpy as np

from subcell.core.model import Emitters, Field
from subcell.plugins.microscopes.psf import GibsonLanni, best_focus_nm
from subcell.plugins.microscopes.render import FourierRenderer, RadialOTF, resolve_device

__all__ = ["FourierMicroscope", "OpticsConfig", "UndersamplingWarning", "float_field"]

#: A pixel this many times the Nyquist pixel ``1 / (2 × OTF cutoff)`` draws a warning.
UNDERSAMPLING_FACTOR = 1.5
#: Renderers kept per thread, shared by microscopes with equal configs (a pipeline makes a
#: new microscope per tile; its OTF tables cost 0.1–1 s, rendering a tile milliseconds).
_RENDERERS_KEPT = 4
_cache = threading.local()

_gt0 = attrs.validators.gt(0)
_ge0 = attrs.validators.ge(0)
_index = attrs.validators.ge(1.0)


class UndersamplingWarning(UserWarning):
    """The pixel size is well above the Nyquist pixel of the microscope's OTF."""


def float_field(default: float, *validators):
    """A float config field (converted from int) with validators."""
    return attrs.field(default=default, converter=float, validator=list(validators))


@attrs.frozen(kw_only=True)
class OpticsConfig:
    """Parameters every microscope shares (the canonical keys first).

    Attributes
    ----------
    na
        Numerical aperture of the objective; below ``immersion_index``.
    emission_nm
        Emission (detection) wavelength in vacuum.
    pixel_nm
        Pixel size in the sample plane. ``image`` renders on the field it is given;
        ``pixel_nm``, ``z_step_nm`` and ``n_z`` are what ``field()`` builds it from.
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
        Lateral radius at which the PSF is truncated (widefield keeps the light beyond as
        a faint haze inside it), and how far outside the field emitters still contribute
        light. Rendering time hardly depends on it.
    device
        Where the renderer runs: ``auto`` (CUDA when torch sees it), ``cpu`` or ``cuda``.
    """

    na: float = float_field(1.4, _gt0)
    emission_nm: float = float_field(510.0, _gt0)
    pixel_nm: float = float_field(42.0, _gt0)
    immersion_index: float = float_field(1.515, _index)
    sample_index: float = float_field(1.33, _index)
    coverslip_index: float = float_field(1.515, _index)
    coverslip_thickness_um: float = float_field(170.0, _ge0)
    immersion_design_index: float = float_field(1.515, _index)
    coverslip_design_index: float = float_field(1.515, _index)
    coverslip_design_thickness_um: float = float_field(170.0, _ge0)
    working_distance_um: float = float_field(150.0, _ge0)
    focus_depth_nm: float = float_field(650.0, _ge0)
    z_step_nm: float = float_field(200.0, _gt0)
    n_z: int = attrs.field(default=1, converter=int, validator=attrs.validators.ge(1))
    depth_step_nm: float = float_field(25.0, _gt0)
    psf_radius_nm: float = float_field(2000.0, _gt0)
    device: Literal["auto", "cpu", "cuda"] = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "cpu", "cuda"))
    )

    def __attrs_post_init__(self):
        for name in ("immersion_index", "immersion_design_index"):
            if self.na >= getattr(self, name):
                raise ValueError(f"na ({self.na}) must be below {name} ({getattr(self, name)})")
        longest = self.longest_wavelength_nm()
        if self.psf_radius_nm < 2.0 * longest / self.na:
            raise ValueError(
                f"psf_radius_nm ({self.psf_radius_nm}) must be at least 2 λ / na "
                f"({2.0 * longest / self.na:.0f} nm at λ = {longest:.0f} nm): the PSF core "
                "would be cut"
            )
        if self.device == "cuda":
            resolve_device("cuda")  # a clear error now rather than at the first image
        nyquist = self.nyquist_pixel_nm()
        if self.pixel_nm > UNDERSAMPLING_FACTOR * nyquist:
            warnings.warn(
                UndersamplingWarning(
                    f"pixel_nm ({self.pixel_nm:g}) is {self.pixel_nm / nyquist:.1f}× the "
                    f"Nyquist pixel {nyquist:.1f} nm of this microscope ({self.nyquist_text()}); "
                    f"above {UNDERSAMPLING_FACTOR}× it the images are undersampled"
                ),
                stacklevel=3,
            )

    def optics(self, wavelength_nm: float | None = None) -> GibsonLanni:
        """The Gibson–Lanni optics (lengths in nm) at ``wavelength_nm`` (default emission)."""
        return GibsonLanni(
            na=self.na,
            wavelength_nm=self.emission_nm if wavelength_nm is None else float(wavelength_nm),
            immersion_index=self.immersion_index,
            immersion_design_index=self.immersion_design_index,
            sample_index=self.sample_index,
            coverslip_index=self.coverslip_index,
            coverslip_design_index=self.coverslip_design_index,
            coverslip_thickness_nm=self.coverslip_thickness_um * 1e3,
            coverslip_design_thickness_nm=self.coverslip_design_thickness_um * 1e3,
            working_distance_nm=self.working_distance_um * 1e3,
        )

    def longest_wavelength_nm(self) -> float:
        """The longest detection wavelength (sets the widest PSF)."""
        return self.emission_nm

    def cutoff_per_nm(self) -> float:
        """Highest spatial frequency the microscope transmits (cycles/nm)."""
        return 2.0 * self.na / self.emission_nm

    def nyquist_pixel_nm(self) -> float:
        """Largest pixel that samples the OTF without aliasing: ``1 / (2 × cutoff)``."""
        return 0.5 / self.cutoff_per_nm()

    def nyquist_text(self) -> str:
        """How the Nyquist pixel follows from the optics, for messages."""
        return f"λ / (4 NA) at emission_nm {self.emission_nm:g}, na {self.na:g}"


class FourierMicroscope:
    """Base of the microscopes that render through radial OTFs (see the module notes).

    Subclasses set ``channel_names`` and implement :meth:`_otf`; multi-channel ones
    override :meth:`_channel_photons`.

    Parameters
    ----------
    config
        The microscope's parameters.
    """

    channel_names: tuple[str, ...] = ("widefield",)

    def __init__(self, config: OpticsConfig):
        self.config = config
        self.optics = config.optics()
        self.device = resolve_device(config.device)
        self._renderers: dict[tuple[Field, int], FourierRenderer] = {}

    # -------------------------------------------------------------- what subclasses define

    def _otf(self, channel: int, focal_depth_nm: np.ndarray, nominal_nm: np.ndarray) -> RadialOTF:
        """OTF tables of ``channel`` for planes focused on ``focal_depth_nm`` (stage at
        ``nominal_nm``)."""
        raise NotImplementedError

    def _channel_photons(self, photons: np.ndarray) -> np.ndarray:
        """Photons each channel receives from each emitter, (C, N)."""
        return photons[None]

    # -------------------------------------------------------------- shared behaviour

    def field(self, shape_yx: tuple[int, int], slab_nm: float = 1300.0) -> Field:
        """The field this microscope samples: ``n_z`` planes ``z_step_nm`` apart, or one
        plane whose z voxel is ``slab_nm`` (the depth structures are placed in)."""
        dz = self.config.z_step_nm if self.config.n_z > 1 else float(slab_nm)
        pixel = self.config.pixel_nm
        return Field((self.config.n_z, *shape_yx), (dz, pixel, pixel))

    def depth_nm(self, z_nm, field: Field) -> np.ndarray:
        """Depth below the coverslip surface of field z coordinates (see module notes)."""
        return self.config.focus_depth_nm + np.asarray(z_nm, dtype=float) - field.extent_nm[0] / 2

    def plane_depths_nm(self, field: Field) -> tuple[np.ndarray, np.ndarray]:
        """Focal depth of each plane and the stage (nominal) focus that puts it in focus."""
        planes = (np.arange(field.shape[0]) + 0.5) * field.voxel_nm[0]
        focal = self.depth_nm(planes, field)
        return focal, best_focus_nm(self.optics, focal)

    def renderer(self, field: Field, channel: int = 0) -> FourierRenderer:
        """The renderer of ``channel`` on ``field``.

        Renderers (with their OTF tables) are cached per thread and shared by microscopes
        of the same class and equal config: they hold work buffers, so one renderer never
        serves two threads at once.
        """
        key = (field, channel)
        renderer = self._renderers.get(key)
        if renderer is None:
            shared = getattr(_cache, "renderers", None)
            if shared is None:
                shared = _cache.renderers = OrderedDict()
            full_key = (type(self), self.config, self.device, field, channel)
            renderer = shared.get(full_key)
            if renderer is None:
                renderer = FourierRenderer(
                    self._otf(channel, *self.plane_depths_nm(field)),
                    field.shape[1:],
                    field.voxel_nm[1:],
                    self.config.depth_step_nm,
                    self.config.psf_radius_nm,
                    device=self.device,
                )
                shared[full_key] = renderer
                while len(shared) > _RENDERERS_KEPT:
                    shared.popitem(last=False)
            shared.move_to_end(full_key)
            self._renderers[key] = renderer
        return renderer

    def image(self, emitters: Emitters, field: Field, frame: int = 0, *, exact=False):
        """Expected detected photons per voxel for one frame.

        Parameters
        ----------
        emitters
            Emitters at their exact (off-grid) 3D positions in ``frame`` (with their
            instance's motion); frame ``frame`` of their ``on_fraction`` scales their photons.
        field
            The grid rendered on (its own voxel size, whatever ``pixel_nm`` says).
        frame
            Which frame.
        exact
            Render with the float64 reference sums instead of the fast path (slow).

        Returns
        -------
        numpy.ndarray
            ``(C, Z, Y, X)`` float32, ``C = len(channel_names)``.
        """
        return self._render(emitters, field, frame, self._channel_photons, exact)

    def _render(self, emitters: Emitters, field: Field, frame: int, split, exact: bool):
        """Render every channel; ``split(photons)`` gives the (C, N) photons per channel."""
        if not -emitters.n_frames <= frame < emitters.n_frames:
            raise IndexError(f"frame {frame} out of range for {emitters.n_frames} frame(s)")
        pos = emitters.positions(frame)
        depth = self.depth_nm(pos[:, 0], field)
        photons = split(emitters.frame_photons(frame))
        return np.stack(
            [
                self.renderer(field, c).render(pos[:, 1:], depth, photons[c], exact=exact)
                for c in range(len(self.channel_names))
            ]
        )

    def psf(self, field: Field) -> np.ndarray:
        """Image of one emitter of 1 photon at the centre of voxel (Z//2, Y//2, X//2).

        Returns
        -------
        numpy.ndarray
            ``(C, Z, Y, X)`` float32.
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
