"""Tracks as tables: one row per detection of a track, and one row per track."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from subcell.core.model import Table
from subcell.pipeline.tracking.objects import FrameObjects

__all__ = ["track_summary", "track_table"]

_AXES = ("z", "y", "x")


def track_table(
    frames: Sequence[FrameObjects], track_ids: Sequence[np.ndarray], frame_s: float
) -> Table:
    """One row per tracked object per frame, sorted by track then frame.

    Columns: ``track_id``, ``frame``, ``time_s``, ``label``, ``centroid_[z,]y,x`` (voxel
    indices, for overlays), ``centroid_[z_,]y_nm, x_nm``, ``area_nm2`` (2D) or
    ``volume_nm3`` (3D), ``mean_intensity`` (with an image), ``gap_frames`` (frames
    missed just before this one), ``step_nm`` (distance from the track's previous
    detection), ``speed_nm_per_s`` (``step_nm`` over the time between the two),
    ``displacement_nm`` (distance from the track's first position). The first row of a
    track has NaN step and speed.
    """
    ndim = frames[0].ndim if frames else 2
    axes = _AXES[-ndim:]
    parts = [(t, f, ids > 0) for t, (f, ids) in enumerate(zip(frames, track_ids, strict=True))]
    track = _cat([ids[keep] for (_, _, keep), ids in zip(parts, track_ids, strict=True)], np.int64)
    frame = _cat([np.full(int(keep.sum()), t) for t, _, keep in parts], np.int64)
    label = _cat([f.labels[keep] for _, f, keep in parts], np.int64)
    px = _cat([f.centroid_px[keep] for _, f, keep in parts], np.float64, ndim)
    nm = _cat([f.centroid_nm[keep] for _, f, keep in parts], np.float64, ndim)
    size = _cat([f.size_nm[keep] for _, f, keep in parts], np.float64)
    intensity = None
    if any(f.mean_intensity is not None for f in frames):
        intensity = _cat([f.mean_intensity[keep] for _, f, keep in parts], np.float64)
    order = np.lexsort((frame, track))
    track, frame, label, px, nm, size = (a[order] for a in (track, frame, label, px, nm, size))
    same = np.zeros(len(track), dtype=bool)
    same[1:] = track[1:] == track[:-1]
    dframe = np.where(same, frame - np.roll(frame, 1), 0)
    step = np.where(same, np.linalg.norm(nm - np.roll(nm, 1, axis=0), axis=1), np.nan)
    first = np.maximum.accumulate(np.where(same, 0, np.arange(len(track))))
    columns = {
        "track_id": track,
        "frame": frame,
        "time_s": frame * float(frame_s),
        "label": label,
    }
    columns |= {f"centroid_{a}": px[:, k] for k, a in enumerate(axes)}
    columns |= {f"centroid_{a}_nm": nm[:, k] for k, a in enumerate(axes)}
    columns["area_nm2" if ndim == 2 else "volume_nm3"] = size
    if intensity is not None:
        columns["mean_intensity"] = intensity[order]
    columns["gap_frames"] = np.maximum(dframe - 1, 0)
    columns["step_nm"] = step
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["speed_nm_per_s"] = np.where(same, step / (dframe * float(frame_s)), np.nan)
    columns["displacement_nm"] = np.linalg.norm(nm - nm[first], axis=1)
    return Table(columns)


def track_summary(table: Table) -> Table:
    """One row per track, from :func:`track_table`'s rows.

    Columns: ``track_id``, ``first_frame``, ``last_frame``, ``n_detections``,
    ``gap_frames`` (frames missed inside the track), ``duration_s``, ``path_length_nm``
    (sum of steps), ``net_displacement_nm`` (first to last position),
    ``mean_speed_nm_per_s`` (path length over duration; NaN for one detection),
    ``max_speed_nm_per_s``, ``mean_size`` and ``sd_size`` (of ``area_nm2`` or
    ``volume_nm3``, named after it).
    """
    c = table.columns
    size_name = "area_nm2" if "area_nm2" in c else "volume_nm3"
    track = c["track_id"]
    if len(track) == 0:
        names = ("track_id", "first_frame", "last_frame", "n_detections", "gap_frames")
        names += ("duration_s", "path_length_nm", "net_displacement_nm")
        names += ("mean_speed_nm_per_s", "max_speed_nm_per_s")
        names += (f"mean_{size_name}", f"sd_{size_name}")
        return Table({n: np.zeros(0) for n in names})
    starts = np.flatnonzero(np.r_[True, track[1:] != track[:-1]])
    ends = np.r_[starts[1:], len(track)] - 1
    n = ends - starts + 1
    steps = np.nan_to_num(c["step_nm"])
    path = np.add.reduceat(steps, starts)
    duration = c["time_s"][ends] - c["time_s"][starts]
    speed = np.nan_to_num(c["speed_nm_per_s"], nan=-np.inf)
    max_speed = np.maximum.reduceat(speed, starts)
    size = c[size_name]
    mean_size = np.add.reduceat(size, starts) / n
    var = np.add.reduceat(size**2, starts) / n - mean_size**2
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_speed = np.where(duration > 0, path / duration, np.nan)
    return Table(
        {
            "track_id": track[starts],
            "first_frame": c["frame"][starts],
            "last_frame": c["frame"][ends],
            "n_detections": n,
            "gap_frames": np.add.reduceat(c["gap_frames"], starts),
            "duration_s": duration,
            "path_length_nm": path,
            "net_displacement_nm": c["displacement_nm"][ends],
            "mean_speed_nm_per_s": mean_speed,
            "max_speed_nm_per_s": np.where(np.isfinite(max_speed), max_speed, np.nan),
            f"mean_{size_name}": mean_size,
            f"sd_{size_name}": np.sqrt(np.maximum(var, 0)),
        }
    )


def _cat(arrays: list[np.ndarray], dtype, ndim: int | None = None) -> np.ndarray:
    if not arrays:
        return np.zeros((0, ndim) if ndim else 0, dtype=dtype)
    return np.concatenate(arrays).astype(dtype, copy=False)
