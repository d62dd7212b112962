"""Tracking of objects in label time series, events, and tracking accuracy.

- :mod:`.objects`: centroids (nm), sizes and intensities per frame;
- :mod:`.kalman`: constant-velocity Kalman filters, vectorised over tracks;
- :mod:`.link`: gating, Hungarian assignment and gap closing (:class:`TrackingConfig`);
- :mod:`.tables`: per-detection and per-track tables (speed, displacement, size);
- :mod:`.events`: split/merge from label overlap, contacts between two classes;
- :mod:`.metrics`: HOTA (DetA, AssA, LocA), CLEAR-MOT identity switches and MOTA;
- :mod:`.tracker`: :func:`track_labels`, all of the above on one label series;
- :mod:`.io`, :mod:`.plot`, :mod:`.run`: reading label series, the track overlay, and
  ``subcell track`` as a function (:func:`.run.track_file`).

See ``docs/track.md``.
"""

from subcell.pipeline.tracking.events import contact_events, split_merge_events
from subcell.pipeline.tracking.link import TrackingConfig, link_objects
from subcell.pipeline.tracking.metrics import TrackingScores, score_tracking, tracking_scores
from subcell.pipeline.tracking.objects import FrameObjects, extract_objects, frame_objects
from subcell.pipeline.tracking.tracker import TrackingResult, relabel_by_track, track_labels

__all__ = [
    "FrameObjects",
    "TrackingConfig",
    "TrackingResult",
    "TrackingScores",
    "contact_events",
    "extract_objects",
    "frame_objects",
    "link_objects",
    "relabel_by_track",
    "score_tracking",
    "split_merge_events",
    "track_labels",
    "tracking_scores",
]
