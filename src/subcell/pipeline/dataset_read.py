"""Reading simulated datasets: :func:`open_dataset` and the group's format marker.

The layout is written by :func:`subcell.pipeline.dataset.write_dataset` (see the notes of
:mod:`subcell.pipeline.dataset`); both names are also importable from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import numpy as np
import zarr

from subcell.core.errors import VolumeError
from subcell.pipeline.tiles import DATA_ARRAYS

__all__ = ["FORMAT", "FORMAT_VERSION", "SPLIT_NAMES", "Dataset", "dataset_attrs", "open_dataset"]

#: ``attrs["format"]`` of a dataset group, and its layout version.
FORMAT = "subcell-simulated-dataset"
FORMAT_VERSION = 1
SPLIT_NAMES = ("train", "val", "test")


def dataset_attrs(out: Path) -> dict | None:
    """The attributes of the subcell dataset at ``out``; None when it is not one."""
    if not (out / "zarr.json").is_file():
        return None
    try:
        attributes = dict(zarr.open_group(out, mode="r").attrs)
    except Exception:  # noqa: BLE001 - anything unreadable is simply not our dataset
        return None
    return attributes if attributes.get("format") == FORMAT else None


@attrs.frozen(eq=False)
class Dataset:
    """A simulated dataset opened for reading (arrays stay lazy zarr arrays).

    Attributes
    ----------
    path
        The group.
    images, clean, masks, instances
        The arrays (see the module notes for shapes and axes).
    tile_stats
        Per-tile photon budget, (N, P, 4), columns ``attrs["tile_stats_columns"]``.
    attrs
        The group attributes (provenance, voxel_nm, axes, class/channel names, split...).
    """

    path: Path
    images: Any
    clean: Any
    masks: Any
    instances: Any
    tile_stats: Any
    attrs: dict

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete"))

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.attrs["class_names"])

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(self.attrs["channel_names"])

    @property
    def voxel_nm(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.attrs["voxel_nm"])

    def split(self, name: str) -> list[int]:
        """Image indices of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {name!r}")
        return list(self.attrs["split"][name])


def open_dataset(path: str | Path, *, allow_incomplete: bool = False) -> Dataset:
    """Open a dataset written by :func:`write_dataset`, read-only.

    Parameters
    ----------
    path
        The group (``DATA.zarr``).
    allow_incomplete
        Open a dataset whose run has not finished (unwritten images read as zeros).

    Raises
    ------
    VolumeError
        Not a subcell dataset, or incomplete and ``allow_incomplete`` is false.
    """
    path = Path(path)
    found = dataset_attrs(path) if path.exists() else None
    if found is None:
        raise VolumeError(f"{path}: not a subcell simulated dataset")
    if not found.get("layout_ready"):
        raise VolumeError(f"{path}: dataset was never laid out; rerun subcell simulate")
    group = zarr.open_group(path, mode="r")
    if not found.get("complete") and not allow_incomplete:
        done = int(np.sum(group["done"][:]))
        raise VolumeError(
            f"{path}: incomplete dataset ({done} of {found['n_images']} images); rerun "
            f"subcell simulate with the same config to finish it"
        )
    arrays = {name: group[name] for name in DATA_ARRAYS}
    return Dataset(path=path, attrs=dict(group.attrs), **arrays)
