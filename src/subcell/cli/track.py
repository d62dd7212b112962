"""``subcell track``: tracks, events and accuracy of a label time series."""

from __future__ import annotations

from subcell.cli._common import command


def add_commands(commands) -> None:
    """Add the track command."""
    track = command(
        commands,
        "track",
        "track the objects of a label time series (Kalman filter + Hungarian assignment); "
        "split, merge and contact events",
        _cmd_track,
    )
    track.add_argument(
        "labels",
        metavar="LABELS_TIME_SERIES",
        help="labels (T, Y, X) or (T, Z, Y, X): TIFF, .npy, or a simulated video dataset (.zarr)",
    )
    track.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _add_units(track)
    _add_tracker(track)
    _add_events(track)
    _add_inputs(track)
    track.add_argument("--no-overlay", action="store_true", help="skip tracks.png")


def _add_units(track) -> None:
    units = track.add_argument_group("units (required unless the file states them)")
    units.add_argument("--pixel-nm", type=float, metavar="P", help="pixel size (y, x), nm")
    units.add_argument("--z-step-nm", type=float, metavar="Z", help="z step of a 3D series, nm")
    units.add_argument("--frame-s", type=float, metavar="T", help="time between frames, s")


def _add_tracker(track) -> None:
    tracker = track.add_argument_group("tracker")
    tracker.add_argument(
        "--max-distance-nm",
        type=float,
        default=1000.0,
        metavar="D",
        help="gate: largest distance from a track's predicted position (default 1000)",
    )
    tracker.add_argument(
        "--max-gap-frames",
        type=int,
        default=2,
        metavar="G",
        help="frames a track may be missing and still continue (default 2)",
    )
    tracker.add_argument(
        "--cost",
        choices=("mahalanobis", "euclidean"),
        default="mahalanobis",
        help="assignment cost (default mahalanobis)",
    )
    tracker.add_argument(
        "--motion-noise-nm",
        type=float,
        default=150.0,
        metavar="S",
        help="sd of the random part of one frame's step, per axis (default 150)",
    )
    tracker.add_argument(
        "--measurement-noise-nm",
        type=float,
        default=50.0,
        metavar="S",
        help="sd of a centroid's error, per axis (default 50)",
    )
    tracker.add_argument(
        "--min-track-frames",
        type=int,
        default=1,
        metavar="N",
        help="drop tracks detected in fewer frames (default 1)",
    )


def _add_events(track) -> None:
    events = track.add_argument_group("events")
    events.add_argument(
        "--min-overlap",
        type=float,
        default=0.2,
        metavar="F",
        help="split/merge: shared voxels as a fraction of the smaller object (default 0.2)",
    )
    events.add_argument(
        "--contacts", metavar="OTHER_LABELS", help="labels of a second class, same shape"
    )
    events.add_argument(
        "--contact-nm", type=float, metavar="C", help="contact: nearest voxel centres within C nm"
    )


def _add_inputs(track) -> None:
    inputs = track.add_argument_group("inputs")
    inputs.add_argument("--index", type=int, default=0, help="dataset image (default 0)")
    inputs.add_argument("--class", dest="class_name", metavar="NAME", help="dataset class to track")
    inputs.add_argument("--contacts-class", metavar="NAME", help="dataset class of --contacts")
    inputs.add_argument(
        "--components",
        action="store_true",
        help="label the connected components of each frame (binary masks, class maps)",
    )
    inputs.add_argument(
        "--truth",
        metavar="TRUE_LABELS",
        help="labels holding true identities: adds HOTA and identity switches to summary.json",
    )


def _cmd_track(args) -> int:
    from subcell.core.errors import ConfigError
    from subcell.pipeline.tracking.link import TrackingConfig
    from subcell.pipeline.tracking.run import track_file

    try:
        config = TrackingConfig(
            max_distance_nm=args.max_distance_nm,
            max_gap_frames=args.max_gap_frames,
            cost=args.cost,
            motion_noise_nm=args.motion_noise_nm,
            measurement_noise_nm=args.measurement_noise_nm,
            min_track_frames=args.min_track_frames,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"tracker option: {exc}") from None
    summary = track_file(
        args.labels,
        args.out,
        pixel_nm=args.pixel_nm,
        z_step_nm=args.z_step_nm,
        frame_s=args.frame_s,
        config=config,
        index=args.index,
        class_name=args.class_name,
        components=args.components,
        contacts=args.contacts,
        contacts_class=args.contacts_class,
        contact_nm=args.contact_nm,
        truth=args.truth,
        min_overlap_fraction=args.min_overlap,
        overlay=not args.no_overlay,
    )
    print(_line(args.out, summary))
    return 0


def _line(out, summary: dict) -> str:
    """One line: tracks, frames, events, score and time."""
    events = summary["events"]
    text = (
        f"{out}: {summary['n_tracks']} tracks of {summary['n_objects']} objects over "
        f"{summary['n_frames']} frames; {events['split']} splits, {events['merge']} merges"
    )
    if summary["contacts_input"] is not None:
        text += f", {events['contact']} contacts"
    if summary["scores"] is not None:
        text += f"; HOTA {summary['scores']['hota']:.3f}, {summary['scores']['idsw']} ID switches"
    return text + f" ({summary['seconds']['total']:.1f} s)"
