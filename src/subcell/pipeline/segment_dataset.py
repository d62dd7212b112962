"""Segment every image of a simulated dataset into a prediction group.

``prediction.zarr`` holds ``mask`` (N, [T,] K, Z, Y, X) uint8 (and ``instances`` with
``--instances``), laid out like the dataset's ``masks`` so that ``subcell evaluate`` scores it
against the dataset directly. The group says ``complete: false`` until its last image is
written, so an interrupted run is never read as a finished one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from subcell.core.errors import VolumeError

__all__ = ["is_dataset", "prediction_group", "segment_dataset"]

SPLITS = ("all", "train", "val", "test")


def segment_dataset(
    path: str | Path,
    method,
    out: str | Path,
    *,
    split: str = "all",
    instances: bool = False,
    pixel_nm: float | None = None,
    device: str | None = None,
    registry=None,
    progress: bool | None = None,
    tta: bool = False,
) -> Path:
    """Segment one split (or all) of a simulated dataset into ``out`` (a prediction group).

    Parameters
    ----------
    path
        A dataset written by ``subcell simulate``.
    method
        What segments: a :class:`~subcell.pipeline.segment.Method`, a model directory, a
        bundled model's name or a segmenter's name.
    out
        The prediction group to write (replaced if it exists).
    split
        ``all``, ``train``, ``val`` or ``test``.
    instances
        Also write instance labels.
    pixel_nm, device, registry, tta
        As for :func:`subcell.pipeline.segment.run_segment`.
    progress
        Show a progress bar (None: only on a terminal).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    VolumeError
        If ``path`` is not a dataset or the split holds no images.
    """
    from subcell.core.model import Volume
    from subcell.pipeline.dataset import open_dataset
    from subcell.pipeline.segment import check_tta, resolve_method, run_segment

    path, out = Path(path), Path(out)
    if split not in SPLITS:
        raise VolumeError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    if not is_dataset(path):
        raise VolumeError(f"{path}: not a dataset written by subcell simulate")
    data = open_dataset(path)
    chosen = list(range(len(data))) if split == "all" else data.split(split)
    if not chosen:
        raise VolumeError(f"{path}: the {split} split holds no images")
    method = resolve_method(method, device=device, registry=registry)
    check_tta(method, tta)
    lead = tuple(data.images.shape[1:-4])  # (T,) for videos, else ()
    items = [(row, index, frame) for row, index in enumerate(chosen) for frame in np.ndindex(*lead)]
    group = None
    with _progress(len(items), progress) as advance:
        for row, index, frame in items:
            volume = Volume(
                np.asarray(data.images[(index, *frame)]),
                data.voxel_nm,
                channel_names=data.channel_names,
            )
            masks = run_segment(
                volume,
                method,
                pixel_nm=pixel_nm,
                instances=instances,
                device=device,
                registry=registry,
                tta=tta,
            ).masks
            if group is None:
                group = prediction_group(
                    out,
                    (len(chosen), *lead),
                    masks,
                    source=path,
                    split=split,
                    images=chosen,
                    instances=instances,
                    attributes={
                        "complete": False,
                        "method": f"{method.kind} {method.name}",
                        "tta": tta,
                    },
                )
            group["mask"][(row, *frame)] = masks.semantic
            if instances:
                group["instances"][(row, *frame)] = masks.instances
            advance()
    group.attrs["complete"] = True
    return out


def _progress(total: int, enabled: bool | None):
    from subcell.pipeline.workers import progress_bar

    return progress_bar(total, 0, enabled, label="segment")


def prediction_group(
    out: Path,
    lead: tuple[int, ...],
    masks,
    *,
    source: Path,
    split: str,
    images,
    instances: bool,
    attributes: dict | None = None,
):
    """Create ``prediction.zarr`` laid out like a dataset's masks (one chunk per item).

    Parameters
    ----------
    out
        The group's path.
    lead
        (N,) or (N, T): images (and frames) it holds.
    masks
        The first item's :class:`~subcell.core.model.Masks`: class names, voxel size and
        the (K, Z, Y, X) shape of every item.
    source, split, images
        The dataset, the split and the dataset indices of the N images (attributes).
    instances
        Also create the ``instances`` array (N, [T,] Z, Y, X) uint32.
    attributes
        More attributes of the group.

    Returns
    -------
    zarr.Group
        With ``mask`` (N, [T,] K, Z, Y, X) uint8 and, with ``instances``, ``instances``.
    """
    import zarr

    group = zarr.open_group(str(out), mode="w")
    spatial = tuple(masks.semantic.shape[1:])
    k = masks.semantic.shape[0]
    ones = (1,) * (len(lead) - 1)
    group.create_array(
        "mask", shape=(*lead, k, *spatial), chunks=(1, *ones, k, *spatial), dtype="uint8"
    )
    if instances:
        group.create_array(
            "instances", shape=(*lead, *spatial), chunks=(1, *ones, *spatial), dtype="uint32"
        )
    group.attrs.update(
        {
            "format": "subcell-prediction",
            "class_names": list(masks.class_names),
            "voxel_nm": list(masks.voxel_nm),
            "source": str(source),
            "split": split,
            "images": [int(i) for i in images],
            **(attributes or {}),
        }
    )
    return group


def is_dataset(path: Path) -> bool:
    """Whether ``path`` is a simulated dataset (``subcell simulate``)."""
    from subcell.pipeline.dataset import FORMAT

    if not (path / "zarr.json").is_file():
        return False
    import zarr

    try:
        return zarr.open_group(str(path), mode="r").attrs.get("format") == FORMAT
    except Exception:  # noqa: BLE001 - any zarr that is not a readable group is no dataset
        return False
