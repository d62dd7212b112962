"""Track the objects of a label time series: objects per frame, linking, tables."""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs
import numpy as np

from subcell.core.errors import SubcellError
from subcell.core.model import Table
from subcell.pipeline.tracking.link import TrackingConfig, link_objects
from subcell.pipeline.tracking.objects import FrameObjects, extract_objects
from subcell.pipeline.tracking.tables import track_summary, track_table

__all__ = ["TrackingResult", "relabel_by_track", "track_labels"]


@attrs.frozen(eq=False)
class TrackingResult:
    """What :func:`track_labels` found.

    Attributes
    ----------
    frames
        The objects of each frame.
    track_ids
        Per frame, the track id of each object of ``frames[t]`` (0: in no kept track).
    tracks
        One row per tracked object per frame (:func:`.tables.track_table`).
    summary
        One row per track (:func:`.tables.track_summary`).
    voxel_nm
        Voxel size per spatial axis, nm.
    frame_s
        Frame interval, s.
    extract_s, link_s
        Seconds spent finding the objects and linking them.
    """

    frames: list[FrameObjects]
    track_ids: list[np.ndarray]
    tracks: Table
    summary: Table
    voxel_nm: tuple[float, ...]
    frame_s: float
    extract_s: float
    link_s: float

    def relabel(self, video: np.ndarray) -> np.ndarray:
        """``video`` with each object's label replaced by its track id (0: untracked)."""
        return relabel_by_track(video, self.frames, self.track_ids)


def track_labels(
    video: np.ndarray,
    voxel_nm: Sequence[float],
    frame_s: float,
    config: TrackingConfig | None = None,
    *,
    intensity: np.ndarray | None = None,
) -> TrackingResult:
    """Track every object of a (T, Y, X) or (T, Z, Y, X) label series.

    Labels need not be consistent between frames: identities come from the tracker.

    Parameters
    ----------
    video
        Non-negative integer labels, 0 background.
    voxel_nm
        Voxel size per spatial axis of ``video`` ((y, x) or (z, y, x)), nm.
    frame_s
        Time between frames, s.
    config
        Tracker parameters; defaults when None.
    intensity
        Optional image series of the same shape, for per-object mean intensity.

    Returns
    -------
    TrackingResult

    Raises
    ------
    SubcellError
        Wrong number of voxel sizes, non-positive sizes or interval.
    """
    voxel = tuple(float(v) for v in voxel_nm)
    if len(voxel) != video.ndim - 1 or not all(v > 0 for v in voxel):
        raise SubcellError(
            f"voxel_nm must be {video.ndim - 1} positive sizes for a {video.ndim}D label "
            f"series, got {voxel_nm!r}"
        )
    if not float(frame_s) > 0:
        raise SubcellError(f"the frame interval must be positive seconds, got {frame_s!r}")
    if intensity is not None and tuple(intensity.shape) != tuple(video.shape):
        raise SubcellError(f"intensity {intensity.shape} and labels {video.shape} differ")
    start = time.perf_counter()
    frames = extract_objects(video, voxel, intensity)
    middle = time.perf_counter()
    ids = link_objects(frames, config)
    end = time.perf_counter()
    tracks = track_table(frames, ids, frame_s)
    return TrackingResult(
        frames=frames,
        track_ids=ids,
        tracks=tracks,
        summary=track_summary(tracks),
        voxel_nm=voxel,
        frame_s=float(frame_s),
        extract_s=middle - start,
        link_s=end - middle,
    )


def relabel_by_track(
    video: np.ndarray, frames: Sequence[FrameObjects], track_ids: Sequence[np.ndarray]
) -> np.ndarray:
    """A (T, ...) uint32 video whose labels are the track ids of ``frames``' objects."""
    out = np.zeros(video.shape, dtype=np.uint32)
    for t, (objects, ids) in enumerate(zip(frames, track_ids, strict=True)):
        frame = np.asarray(video[t]).ravel()
        where = np.flatnonzero(frame)
        if len(where) == 0 or len(objects) == 0:
            continue
        index = np.searchsorted(objects.labels, frame[where])
        out[t].ravel()[where] = ids[index]
    return out
