"""``subcell track`` as a function: read, track, find events, score, write the outputs."""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import numpy as np

from subcell.core.errors import SubcellError
from subcell.pipeline.tracking.events import concat_events, contact_events, split_merge_events
from subcell.pipeline.tracking.io import LabelVideo, read_label_video, write_json
from subcell.pipeline.tracking.link import TrackingConfig
from subcell.pipeline.tracking.metrics import tracking_scores
from subcell.pipeline.tracking.plot import track_overlay
from subcell.pipeline.tracking.tracker import TrackingResult, track_labels

__all__ = ["track_file"]


def track_file(
    labels: str | Path,
    out: str | Path,
    *,
    pixel_nm: float | None = None,
    z_step_nm: float | None = None,
    frame_s: float | None = None,
    config: TrackingConfig | None = None,
    index: int = 0,
    class_name: str | None = None,
    components: bool = False,
    contacts: str | Path | None = None,
    contacts_class: str | None = None,
    contact_nm: float | None = None,
    truth: str | Path | None = None,
    min_overlap_fraction: float = 0.2,
    overlay: bool = True,
) -> dict:
    """Track a label series file and write ``out/``: tracks.csv, track_summary.csv,
    events.csv, summary.json and tracks.png (plus contact_tracks.csv with ``contacts``).

    Parameters
    ----------
    labels
        TIFF, NumPy or simulated dataset (see :func:`.io.read_label_video`).
    out
        Output folder (created).
    pixel_nm, z_step_nm, frame_s
        Pixel size (y, x), z step (3D series) in nm and frame interval in s; required
        unless the file states them (datasets), and used over the file's values.
    config
        Tracker parameters.
    index, class_name, components
        Dataset image, class restriction, connected-component labelling.
    contacts, contacts_class, contact_nm
        A second label series (class B) of the same shape, tracked with the same
        parameters, and the contact distance in nm.
    truth
        A label series whose values are true identities: adds HOTA and identity switches
        (pixel-IoU similarity) to the summary.
    min_overlap_fraction
        Overlap needed for split/merge events (see :mod:`~subcell.pipeline.tracking.events`).
    overlay
        Write tracks.png.

    Returns
    -------
    dict
        The summary (also written to ``out/summary.json``).
    """
    start = time.perf_counter()
    config = config or TrackingConfig()
    if not 0 < min_overlap_fraction <= 1:
        raise SubcellError(f"--min-overlap must be in (0, 1], got {min_overlap_fraction}")
    video = read_label_video(labels, index=index, class_name=class_name, components=components)
    voxel, interval = _units(video, pixel_nm, z_step_nm, frame_s)
    other = true = None
    if contacts is not None:
        if contact_nm is None or not contact_nm >= 0:
            raise SubcellError("--contacts needs --contact-nm, a distance >= 0 in nm")
        other = read_label_video(
            contacts, index=index, class_name=contacts_class, components=components
        )
        _same_shape(other, video, "--contacts")
    if truth is not None:
        true = read_label_video(truth, index=index, class_name=class_name)
        _same_shape(true, video, "--truth")
    result = track_labels(video.labels, voxel, interval, config)
    events_start = time.perf_counter()
    events = split_merge_events(
        video.labels, result.frames, result.track_ids, min_overlap_fraction=min_overlap_fraction
    )
    other_result = None
    if other is not None:
        other_result = track_labels(other.labels, voxel, interval, config)
        events = concat_events(events, _contacts(video, other, result, other_result, contact_nm))
    events_s = time.perf_counter() - events_start
    scores = None
    if true is not None:
        scores = tracking_scores(true.labels, result.relabel(video.labels)).as_dict()
    written = _write(Path(out), video, result, other_result, events, overlay)
    summary = _summary(video, other, result, events, config, scores)
    summary["contact_nm"] = contact_nm if other is not None else None
    summary["seconds"] = {
        "extract": result.extract_s,
        "link": result.link_s,
        "events": events_s,
        "total": time.perf_counter() - start,
    }
    summary["outputs"] = [p.name for p in written] + ["summary.json"]
    write_json(summary, Path(out) / "summary.json")
    return summary


def _same_shape(video: LabelVideo, tracked: LabelVideo, option: str) -> None:
    if video.labels.shape != tracked.labels.shape:
        raise SubcellError(
            f"{option} labels {video.labels.shape} differ in shape from the tracked labels "
            f"{tracked.labels.shape}"
        )


def _contacts(video, other, result: TrackingResult, other_result: TrackingResult, contact_nm):
    return contact_events(
        video.labels,
        other.labels,
        result.voxel_nm,
        contact_nm,
        frames_a=result.frames,
        track_ids_a=result.track_ids,
        frames_b=other_result.frames,
        track_ids_b=other_result.track_ids,
    )


def _write(out: Path, video, result, other_result, events, overlay: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [
        result.tracks.to_csv(out / "tracks.csv"),
        result.summary.to_csv(out / "track_summary.csv"),
        events.to_csv(out / "events.csv"),
    ]
    if other_result is not None:
        written.append(other_result.tracks.to_csv(out / "contact_tracks.csv"))
    if overlay:
        written.append(track_overlay(video.labels, result.tracks, events, out / "tracks.png"))
    return written


def _units(video: LabelVideo, pixel_nm, z_step_nm, frame_s) -> tuple[tuple[float, ...], float]:
    """Voxel size per spatial axis and frame interval: given values over the file's."""
    ndim = video.labels.ndim - 1
    voxel = list(video.voxel_nm) if video.voxel_nm is not None else [None] * ndim
    if pixel_nm is not None:
        voxel[-2:] = [pixel_nm, pixel_nm]
    if z_step_nm is not None and ndim == 3:
        voxel[0] = z_step_nm
    if voxel[-1] is None:
        raise SubcellError(
            f"{video.source}: no pixel size; give --pixel-nm (tracks are in physical units)"
        )
    if voxel[0] is None:
        raise SubcellError(f"{video.source}: a 3D series needs --z-step-nm")
    interval = frame_s if frame_s is not None else video.frame_s
    if interval is None:
        raise SubcellError(f"{video.source}: no frame interval; give --frame-s (speeds in nm/s)")
    if not all(float(v) > 0 for v in voxel) or not float(interval) > 0:
        raise SubcellError("--pixel-nm, --z-step-nm and --frame-s must be positive")
    return tuple(float(v) for v in voxel), float(interval)


def _summary(video, other, result: TrackingResult, events, config, scores) -> dict:
    per_frame = np.array([len(f) for f in result.frames])
    lengths = result.summary.columns["n_detections"]
    speed = result.tracks.columns["speed_nm_per_s"]
    speed = speed[np.isfinite(speed)]
    kinds = events.columns["kind"]
    contact_pairs = {
        (a, b)
        for k, a, b in zip(
            kinds, events.columns["track_ids"], events.columns["other_track_ids"], strict=True
        )
        if k == "contact"
    }
    return {
        "input": video.source,
        "contacts_input": other.source if other is not None else None,
        "shape": list(video.labels.shape),
        "voxel_nm": list(result.voxel_nm),
        "frame_s": result.frame_s,
        "config": attrs.asdict(config),
        "n_frames": int(video.labels.shape[0]),
        "n_objects": int(per_frame.sum()),
        "objects_per_frame": _stats(per_frame),
        "n_tracks": len(result.summary),
        "track_length_frames": _stats(lengths),
        "speed_nm_per_s": _stats(speed),
        "events": {
            "split": int(np.sum(kinds == "split")),
            "merge": int(np.sum(kinds == "merge")),
            "contact": int(np.sum(kinds == "contact")),
            "contact_track_pairs": len(contact_pairs),
        },
        "scores": scores,
    }


def _stats(values) -> dict:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return {"mean": None, "median": None, "min": None, "max": None}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "min": float(values.min()),
        "max": float(values.max()),
    }
