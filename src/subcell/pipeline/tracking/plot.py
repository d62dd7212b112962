"""Track overlay: every track's path drawn over the objects, events marked (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from subcell.core.errors import SubcellError
from subcell.core.model import Table

__all__ = ["track_overlay"]

_MARKERS = {"split": ("^", "tab:red"), "merge": ("s", "tab:blue"), "contact": ("x", "black")}


def track_overlay(
    video: np.ndarray, tracks: Table, events: Table | None, path: str | Path, *, title: str = ""
) -> Path:
    """Draw the tracks of a (T, [Z,] Y, X) label series onto its projection and save a PNG.

    The background shows in light grey where objects were in any frame and darker the
    objects of the last frame (3D series projected along Z); each track is a coloured line
    through its centroids, ending in a dot; events sit at the centroids of their objects.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection
    except ImportError as exc:  # pragma: no cover - matplotlib ships with the analytics extra
        raise SubcellError("track overlays need matplotlib (pip install matplotlib)") from exc
    ever = np.zeros(video.shape[-2:], dtype=bool)
    for t in range(video.shape[0]):
        ever |= _projected(video[t])
    # light grey: covered in some frame; darker: the objects of the last frame
    cover = 0.25 * ever + 0.35 * _projected(video[-1]) if len(video) else ever * 0.0
    height, width = cover.shape
    size = 8.0
    fig, ax = plt.subplots(figsize=(size, size * height / width + 0.4), dpi=120)
    ax.imshow(cover, cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    c = tracks.columns
    ids, y, x = c["track_id"], c["centroid_y"], c["centroid_x"]
    if len(ids):
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        colours = plt.get_cmap("tab20")(np.arange(len(starts)) % 20)
        lines = [
            np.stack([x[s:e], y[s:e]], 1)
            for s, e in zip(starts, np.r_[starts[1:], len(ids)], strict=True)
        ]
        ax.add_collection(LineCollection(lines, colors=colours, linewidths=1.0))
        ends = np.r_[starts[1:], len(ids)] - 1
        ax.scatter(x[ends], y[ends], s=6, c=colours, zorder=3)
    if events is not None and len(events):
        _mark_events(ax, events, tracks)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_title(title or f"{len(np.unique(ids))} tracks, {video.shape[0]} frames", fontsize=9)
    ax.set_axis_off()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _projected(frame) -> np.ndarray:
    frame = np.asarray(frame) != 0
    return frame.any(axis=0) if frame.ndim == 3 else frame


def _mark_events(ax, events: Table, tracks: Table) -> None:
    """A marker per event kind, at the centroid of its (first) track in that frame."""
    c = tracks.columns
    where = {
        (int(t), int(f)): i for i, (t, f) in enumerate(zip(c["track_id"], c["frame"], strict=True))
    }
    e = events.columns
    for kind, (marker, colour) in _MARKERS.items():
        points = []
        for frame, k, ids, other in zip(
            e["frame"], e["kind"], e["track_ids"], e["other_track_ids"], strict=True
        ):
            if k != kind:
                continue
            # split/merge: the object after the event; contact: the class-A object
            track = int((ids if kind == "contact" else other).split(";")[0] or 0)
            row = where.get((track, int(frame)))
            if row is not None:
                points.append((c["centroid_x"][row], c["centroid_y"][row]))
        if points:
            px, py = np.asarray(points).T
            ax.scatter(px, py, marker=marker, s=30, c=colour, label=kind, zorder=4)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=7)
