"""The data model that flows between stages, in physical units (nm, s).

Arrays use the axis order ``(C, Z, Y, X)`` for images and ``(z, y, x)`` for coordinates
and voxel sizes. Every class checks its arrays on construction so that a stage fails at
its edge, not three stages later.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from subcell.core.errors import VolumeError

AXES_4D = "CZYX"
AXES_5D = "TCZYX"


def _positive_triple(instance, attribute, value):
    if len(value) != 3 or not all(float(v) > 0 for v in value):
        raise ValueError(f"{attribute.name} must be three positive numbers (z, y, x), got {value}")


def _as_float_triple(value) -> tuple[float, float, float]:
    return tuple(float(v) for v in value)


@attrs.frozen
class Field:
    """The imaging grid: ``shape`` in voxels (Z, Y, X) and ``voxel_nm`` (z, y, x).

    Structures are placed inside ``extent_nm``; microscopes render onto this grid.
    A single plane has ``shape[0] == 1``; its z voxel size is then the focal slab thickness.
    """

    shape: tuple[int, int, int] = attrs.field(converter=lambda s: tuple(int(v) for v in s))
    voxel_nm: tuple[float, float, float] = attrs.field(
        converter=_as_float_triple, validator=_positive_triple
    )

    @shape.validator
    def _check_shape(self, attribute, value):
        if len(value) != 3 or min(value) < 1:
            raise ValueError(f"shape must be three positive sizes (Z, Y, X), got {value}")

    @property
    def extent_nm(self) -> np.ndarray:
        """Physical size of the field, (z, y, x) in nm."""
        return np.asarray(self.shape, dtype=float) * np.asarray(self.voxel_nm)


def _array(dtype, ndim: int | None = None, last: int | None = None):
    def convert(value):
        arr = np.asarray(value, dtype=dtype)
        if ndim is not None and arr.ndim != ndim:
            if arr.size == 0:
                arr = arr.reshape((0,) * (ndim - 1) + ((last,) if last else (0,)))
            else:
                raise ValueError(f"expected a {ndim}-D array, got shape {arr.shape}")
        if last is not None and arr.shape[-1] != last:
            raise ValueError(f"expected last axis of length {last}, got shape {arr.shape}")
        return arr

    return attrs.field(converter=convert)


@attrs.frozen(eq=False)
class Geometry:
    """Structures as capsules in nm, each with an instance id (1..n) and a class index.

    A capsule is the set of points within ``radius_nm`` of the segment from ``start_nm`` to
    ``end_nm``: a cylinder with hemispherical (closed) ends. A sphere is a capsule whose
    start and end coincide; a point source is a sphere of radius 0. An instance is the union
    of all capsules carrying its id, so a curved or branched tube is a chain of short
    capsules. ``class_names[k]`` names class ``k``. A labelling decides whether the surface
    (membrane) or the volume (lumen) of the union carries dye.
    """

    class_names: tuple[str, ...] = attrs.field(converter=tuple)
    start_nm: np.ndarray = _array(np.float64, 2, 3)
    end_nm: np.ndarray = _array(np.float64, 2, 3)
    radius_nm: np.ndarray = _array(np.float64, 1)
    instance: np.ndarray = _array(np.int32, 1)
    klass: np.ndarray = _array(np.int16, 1)

    def __attrs_post_init__(self):
        n = len(self.start_nm)
        for name in ("end_nm", "radius_nm", "instance", "klass"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected {n}")
        if n and (self.radius_nm < 0).any():
            raise ValueError("capsule radii must be >= 0 nm")
        if n and (self.klass.max() >= len(self.class_names) or self.klass.min() < 0):
            raise ValueError("a capsule class index has no entry in class_names")

    def __len__(self) -> int:
        return len(self.start_nm)

    @classmethod
    def spheres(cls, class_names, center_nm, radius_nm, instance, klass) -> Geometry:
        """Spheres (zero-length capsules) at ``center_nm`` (M, 3) with ``radius_nm`` (M,)."""
        center = np.asarray(center_nm, dtype=np.float64).reshape(-1, 3)
        return cls(class_names, center, center.copy(), radius_nm, instance, klass)

    @property
    def center_nm(self) -> np.ndarray:
        """Midpoint of each capsule (the centre of a sphere), (M, 3)."""
        return 0.5 * (self.start_nm + self.end_nm)

    @property
    def length_nm(self) -> np.ndarray:
        """Length of each capsule's axis segment (0 for a sphere), (M,)."""
        return np.linalg.norm(self.end_nm - self.start_nm, axis=1)

    @property
    def n_instances(self) -> int:
        return int(self.instance.max()) if len(self.instance) else 0

    @classmethod
    def empty(cls, class_names=()) -> Geometry:
        return cls(class_names, np.zeros((0, 3)), np.zeros((0, 3)), [], [], [])

    def shifted(self, shift_nm: np.ndarray) -> Geometry:
        """The geometry with instance ``i`` translated by ``shift_nm[i]`` ((I + 1, 3), nm)."""
        offset = np.asarray(shift_nm, dtype=np.float64)[self.instance]
        return attrs.evolve(self, start_nm=self.start_nm + offset, end_nm=self.end_nm + offset)

    @classmethod
    def concatenate(cls, parts: list[Geometry]) -> Geometry:
        """Join geometries; instance ids are renumbered to stay unique, classes merged by name."""
        if not parts:
            return cls.empty()
        names: list[str] = []
        inst, klass = [], []
        offset = 0
        for g in parts:
            ids, classes = _relabel(g.instance, g.klass, g.class_names, names, offset)
            inst.append(ids)
            klass.append(classes)
            offset += g.n_instances
        return cls(
            names,
            np.concatenate([g.start_nm for g in parts]),
            np.concatenate([g.end_nm for g in parts]),
            np.concatenate([g.radius_nm for g in parts]),
            np.concatenate(inst),
            np.concatenate(klass),
        )


def _relabel(instance, klass, part_names, names: list[str], offset: int):
    """Shift instance ids (0 stays 0) by ``offset`` and map class indices from
    ``part_names`` into ``names`` (which grows with names not seen before)."""
    for name in part_names:
        if name not in names:
            names.append(name)
    remap = np.array([names.index(n) for n in part_names], dtype=np.int16)
    shifted = np.where(instance > 0, instance + offset, 0)
    return shifted, (remap[klass] if len(klass) else klass)


@attrs.frozen(eq=False)
class Emitters:
    """Fluorophores: positions (nm), photons per frame while on, ids, on-fraction per frame.

    ``on_fraction`` has shape (T, N): the fraction of frame ``t`` that emitter ``n`` spent
    in its emitting state (1 everywhere for an always-on dye, T = 1 for a single frame).
    ``shift_nm``, when set, has shape (T, I + 1, 3): the rigid translation of instance ``i``
    in frame ``t`` (structures moving between frames); row 0 is for instance 0.
    """

    position_nm: np.ndarray = _array(np.float64, 2, 3)
    photons: np.ndarray = _array(np.float64, 1)
    instance: np.ndarray = _array(np.int32, 1)
    klass: np.ndarray = _array(np.int16, 1)
    class_names: tuple[str, ...] = attrs.field(converter=tuple, default=())
    on_fraction: np.ndarray | None = attrs.field(default=None)
    shift_nm: np.ndarray | None = attrs.field(default=None)

    def __attrs_post_init__(self):
        n = len(self.position_nm)
        for name in ("photons", "instance", "klass"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, expected {n}")
        if self.on_fraction is None:
            object.__setattr__(self, "on_fraction", np.ones((1, n), dtype=np.float32))
        elif self.on_fraction.ndim != 2 or self.on_fraction.shape[1] != n:
            raise ValueError(f"on_fraction must have shape (T, {n}), got {self.on_fraction.shape}")
        if self.shift_nm is not None:
            need = int(self.instance.max()) + 1 if n else 1
            shape = self.shift_nm.shape
            if len(shape) != 3 or shape[0] != self.n_frames or shape[1] < need or shape[2] != 3:
                raise ValueError(
                    f"shift_nm must have shape ({self.n_frames}, >={need}, 3), got {shape}"
                )

    def __len__(self) -> int:
        return len(self.position_nm)

    @classmethod
    def concatenate(cls, parts: list[Emitters], instance_offsets: list[int]) -> Emitters:
        """Join emitter sets, shifting part ``i``'s instance ids by ``instance_offsets[i]``
        and merging classes by name; all parts must have the same number of frames and no
        motion yet (motion is applied to the joined set)."""
        if not parts:
            return cls(np.zeros((0, 3)), [], [], [], ())
        if any(p.shift_nm is not None for p in parts):
            raise ValueError("join emitters before applying motion (shift_nm is set)")
        names: list[str] = []
        inst, klass = [], []
        for part, offset in zip(parts, instance_offsets, strict=True):
            ids, classes = _relabel(part.instance, part.klass, part.class_names, names, offset)
            inst.append(ids)
            klass.append(classes)
        return cls(
            np.concatenate([p.position_nm for p in parts]),
            np.concatenate([p.photons for p in parts]),
            np.concatenate(inst),
            np.concatenate(klass),
            tuple(names),
            np.concatenate([p.on_fraction for p in parts], axis=1),
        )

    @property
    def n_frames(self) -> int:
        return int(self.on_fraction.shape[0])

    def frame_photons(self, frame: int) -> np.ndarray:
        """Mean photons each emitter gives in ``frame``."""
        return self.photons * self.on_fraction[frame]

    def positions(self, frame: int = 0) -> np.ndarray:
        """Emitter positions (N, 3) in nm in ``frame``, with their instance's motion."""
        if self.shift_nm is None:
            return self.position_nm
        return self.position_nm + self.shift_nm[frame][self.instance]

    def at_frame(self, frame: int) -> Emitters:
        """A single-frame, motionless copy: positions, and on-fraction, of ``frame``."""
        return attrs.evolve(
            self,
            position_nm=self.positions(frame),
            on_fraction=self.on_fraction[frame : frame + 1],
            shift_nm=None,
        )


@attrs.frozen(eq=False)
class Volume:
    """An image or volume: array (numpy or dask), axes ``CZYX`` or ``TCZYX``, voxel size in nm."""

    data: Any
    voxel_nm: tuple[float, float, float] = attrs.field(
        converter=_as_float_triple, validator=_positive_triple
    )
    axes: str = AXES_4D
    channel_names: tuple[str, ...] = attrs.field(converter=tuple, default=())
    frame_interval_s: float | None = None

    def __attrs_post_init__(self):
        if self.axes not in (AXES_4D, AXES_5D):
            raise VolumeError(f"axes must be {AXES_4D!r} or {AXES_5D!r}, got {self.axes!r}")
        if self.data.ndim != len(self.axes):
            raise VolumeError(
                f"a {self.axes} volume needs {len(self.axes)} dimensions, got shape "
                f"{tuple(self.data.shape)}"
            )
        n_c = self.data.shape[self.axes.index("C")]
        if self.channel_names and len(self.channel_names) != n_c:
            raise VolumeError(f"{len(self.channel_names)} channel names for {n_c} channels")
        if not self.channel_names:
            object.__setattr__(self, "channel_names", tuple(f"c{i}" for i in range(n_c)))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def field(self) -> Field:
        return Field(self.shape[-3:], self.voxel_nm)


@attrs.frozen(eq=False)
class Masks:
    """Segmentation: ``semantic`` (K, Z, Y, X) uint8, one binary channel per class, and
    optional ``instances`` (Z, Y, X) uint32 with 0 as background."""

    semantic: np.ndarray
    class_names: tuple[str, ...] = attrs.field(converter=tuple)
    voxel_nm: tuple[float, float, float] = attrs.field(
        converter=_as_float_triple, validator=_positive_triple
    )
    instances: np.ndarray | None = None

    def __attrs_post_init__(self):
        if self.semantic.ndim != 4:
            raise VolumeError(f"semantic masks must be (K, Z, Y, X), got {self.semantic.shape}")
        if len(self.class_names) != self.semantic.shape[0]:
            raise VolumeError(
                f"{len(self.class_names)} class names for {self.semantic.shape[0]} mask channels"
            )
        if self.instances is not None and self.instances.shape != self.semantic.shape[1:]:
            raise VolumeError(
                f"instances shape {self.instances.shape} does not match masks "
                f"{self.semantic.shape[1:]}"
            )


@attrs.frozen(eq=False)
class Table:
    """Columns of equal length: one row per measured object."""

    columns: dict[str, np.ndarray] = attrs.field(
        converter=lambda c: {str(k): np.asarray(v) for k, v in c.items()}
    )

    def __attrs_post_init__(self):
        lengths = {k: len(v) for k, v in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"table columns differ in length: {lengths}")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def rows(self) -> list[dict[str, Any]]:
        """The table as a list of plain-Python rows."""
        names = list(self.columns)
        return [{n: self.columns[n][i].item() for n in names} for i in range(len(self))]

    def to_csv(self, path: str | Path) -> Path:
        """Write the table as CSV with a header row."""
        path = Path(path)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(self.columns))
            writer.writeheader()
            writer.writerows(self.rows())
        return path
