"""Tracking: Kalman filter, Hungarian linking with gaps, events, HOTA, a simulated video."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from skimage.draw import disk
from skimage.filters import gaussian, threshold_otsu
from skimage.measure import label

from subcell.core.errors import SubcellError
from subcell.pipeline.tracking import (
    TrackingConfig,
    contact_events,
    frame_objects,
    split_merge_events,
    track_labels,
    tracking_scores,
)
from subcell.pipeline.tracking.events import contact_pairs, overlap_pairs
from subcell.pipeline.tracking.kalman import KalmanBank
from subcell.pipeline.tracking.metrics import distance_frames, score_tracking

PIXEL_NM = 50.0


def draw(positions: np.ndarray, shape=(128, 128), radius=3.0, ids=None) -> np.ndarray:
    """(T, Y, X) labels: disc k (id ``ids[k]``, default k + 1) at ``positions[t, k]``;
    NaN positions are not drawn."""
    video = np.zeros((positions.shape[0], *shape), dtype=np.uint32)
    ids = np.arange(1, positions.shape[1] + 1) if ids is None else ids
    for t, frame in enumerate(positions):
        for k, centre in enumerate(frame):
            if np.all(np.isfinite(centre)):
                video[t][disk(centre, radius, shape=shape)] = ids[k]
    return video


def scramble(video: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each frame's labels permuted (and offset), so no identity carries over."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(video)
    top = int(video.max())
    for t in range(video.shape[0]):
        table = np.r_[0, rng.permutation(top) + 1 + 1000 * t].astype(video.dtype)
        out[t] = table[video[t]]
    return out


def separated_walks(n: int, frames: int, size: int, seed: int, min_gap_px: float) -> np.ndarray:
    """Hard-core random walks with a common drift of (2, 1) px per frame and steps of
    1.5 px sd: a step that would bring an object within ``min_gap_px`` of another is
    drawn again (the object stays put after 20 tries), so discs never touch."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    spacing = (size - 30 - 3.0 * frames) / side
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1)
    start = 15 + spacing * (grid.reshape(-1, 2)[:n] + 0.5)
    walk = np.empty((frames, n, 2))
    walk[0] = start + rng.uniform(-0.2, 0.2, (n, 2)) * spacing
    for t in range(1, frames):
        walk[t] = walk[t - 1]
        for k in range(n):
            others = np.delete(walk[t], k, axis=0)
            for _ in range(20):
                trial = walk[t - 1, k] + [2.0, 1.0] + rng.normal(0.0, 1.5, 2)
                if np.hypot(*(others - trial).T).min() >= min_gap_px:
                    walk[t, k] = trial
                    break
    return walk


def config(**kw) -> TrackingConfig:
    return TrackingConfig(**{"max_distance_nm": 400.0, **kw})


# --- linking -----------------------------------------------------------------------------


def test_moderate_density_random_walks_have_no_identity_switch():
    """40 discs (radius 3 px) in 192 x 192 px, 20 frames, labels scrambled in every
    frame. Measured: nearest neighbour median 12.2 px (min 9.05), steps mean 2.6 px
    (max 6.8): the largest step is over half the typical spacing. Every object is one
    track, identities recovered exactly."""
    walk = separated_walks(40, 20, 192, seed=1, min_gap_px=9.0)
    truth = draw(walk, shape=(192, 192))
    result = track_labels(scramble(truth), (PIXEL_NM, PIXEL_NM), 0.1, config())
    scores = tracking_scores(truth, result.relabel(scramble(truth)))
    assert len(result.summary) == 40
    assert scores.idsw == 0 and scores.hota == pytest.approx(1.0)
    assert set(result.summary.columns["n_detections"]) == {20}


def test_crossing_paths_keep_identities_through_an_occlusion():
    """Two discs cross at right angles at 5 px per frame; at the crossing only one is
    visible (which one is ambiguous, so that frame is left out of the score). The
    constant-velocity prediction keeps both identities across it; without velocity (a
    nearest-neighbour linker) the coasting track takes the wrong disc."""
    t = np.arange(13.0)
    a = np.stack([np.full(13, 60.0), 30 + 5 * t], 1)  # moving right
    b = np.stack([30 + 5 * t, np.full(13, 60.0)], 1)  # moving down: meets a at t = 6
    positions = np.stack([a, b], 1)
    positions[6, 1] = np.nan  # hidden behind a
    truth = draw(positions)
    labels = scramble(truth, seed=3)
    kalman = track_labels(labels, (PIXEL_NM, PIXEL_NM), 0.1, config(max_gap_frames=1))
    scores = tracking_scores(np.delete(truth, 6, 0), np.delete(kalman.relabel(labels), 6, 0))
    assert len(kalman.summary) == 2 and scores.idsw == 0 and scores.hota == 1.0
    assert sorted(kalman.summary.columns["gap_frames"].tolist()) == [0, 1]
    no_velocity = config(max_gap_frames=1, initial_velocity_nm=0.0, velocity_noise_nm=0.0)
    naive = track_labels(labels, (PIXEL_NM, PIXEL_NM), 0.1, no_velocity)
    naive_scores = tracking_scores(np.delete(truth, 6, 0), np.delete(naive.relabel(labels), 6, 0))
    assert naive_scores.idsw == 2


def test_a_missing_frame_is_closed_only_within_max_gap():
    t = np.arange(8.0)
    positions = np.stack([20 + 3 * t, 40 + 2 * t], 1)[:, None, :]
    positions[4] = np.nan
    labels = draw(positions)
    closed = track_labels(
        labels, (PIXEL_NM, PIXEL_NM), 0.5, config(max_gap_frames=1), intensity=2.5 * labels
    )
    rows = closed.tracks.columns
    np.testing.assert_array_equal(rows["mean_intensity"], 2.5)
    assert set(rows["track_id"]) == {1} and rows["frame"].tolist() == [0, 1, 2, 3, 5, 6, 7]
    assert rows["gap_frames"].tolist() == [0, 0, 0, 0, 1, 0, 0]
    # steps of (3, 2) px = 180.3 nm per frame; the gap's step spans two frames, 1 s
    step = np.hypot(3, 2) * PIXEL_NM
    np.testing.assert_allclose(rows["speed_nm_per_s"][1:], step / 0.5, rtol=1e-9)
    np.testing.assert_allclose(rows["step_nm"][4], 2 * step, rtol=1e-9)
    assert closed.summary.rows()[0]["net_displacement_nm"] == pytest.approx(7 * step)
    broken = track_labels(labels, (PIXEL_NM, PIXEL_NM), 0.5, config(max_gap_frames=0))
    assert len(broken.summary) == 2


def test_gate_and_min_track_frames():
    """A jump beyond the gate starts a new track; one-frame tracks can be dropped."""
    positions = np.array([[[20.0, 20.0]], [[22.0, 20.0]], [[60.0, 60.0]], [[62.0, 60.0]]])
    labels = draw(positions)
    gated = track_labels(labels, (PIXEL_NM, PIXEL_NM), 1.0, config(max_distance_nm=500))
    assert gated.tracks.columns["track_id"].tolist() == [1, 1, 2, 2]
    wide = track_labels(labels, (PIXEL_NM, PIXEL_NM), 1.0, config(max_distance_nm=3000))
    assert set(wide.tracks.columns["track_id"]) == {1}
    single = draw(np.array([[[20.0, 20.0], [80, 80]], [[21.0, 20.0], [np.nan, np.nan]]]))
    kept = track_labels(single, (PIXEL_NM, PIXEL_NM), 1.0, config(min_track_frames=2))
    assert kept.tracks.columns["track_id"].tolist() == [1, 1]


def test_euclidean_cost_tracks_the_walks_too():
    walk = separated_walks(20, 10, 128, seed=2, min_gap_px=9.0)
    truth = draw(walk)
    result = track_labels(scramble(truth), (PIXEL_NM, PIXEL_NM), 0.1, config(cost="euclidean"))
    assert tracking_scores(truth, result.relabel(scramble(truth))).idsw == 0


def test_empty_frames_do_not_crash_and_are_gaps():
    positions = np.array([[[30.0, 30.0]], [[np.nan, np.nan]], [[32.0, 31.0]]])
    labels = draw(positions)
    result = track_labels(labels, (PIXEL_NM, PIXEL_NM), 1.0, config(max_gap_frames=1))
    assert result.tracks.columns["track_id"].tolist() == [1, 1]
    empty = track_labels(np.zeros((3, 16, 16), np.uint16), (PIXEL_NM, PIXEL_NM), 1.0)
    assert len(empty.tracks) == 0 and len(empty.summary) == 0
    empty_3d = track_labels(np.zeros((2, 2, 8, 8), np.uint16), (PIXEL_NM,) * 3, 1.0)
    assert "volume_nm3" in empty_3d.tracks.columns and len(empty_3d.tracks) == 0
    assert len(split_merge_events(np.zeros((3, 16, 16), int), empty.frames)) == 0


def test_tracks_in_3d_report_z_and_volume():
    video = np.zeros((4, 12, 40, 40), dtype=np.uint16)
    zz, yy, xx = np.mgrid[:12, :40, :40]
    for t in range(4):
        video[t][(zz - 3 - 2 * t) ** 2 + (yy - 10 - t) ** 2 + (xx - 20) ** 2 <= 4] = 7 + t
    result = track_labels(video, (200.0, 100.0, 100.0), 2.0, config(max_distance_nm=1000))
    rows = result.tracks.columns
    assert set(rows["track_id"]) == {1} and "volume_nm3" in rows and "centroid_z_nm" in rows
    np.testing.assert_allclose(rows["centroid_z"], [3, 5, 7, 9])
    step = np.hypot(2 * 200.0, 100.0)
    np.testing.assert_allclose(rows["speed_nm_per_s"][1:], step / 2.0)
    assert rows["volume_nm3"][0] == (video[0] > 0).sum() * 200.0 * 100.0 * 100.0


def test_wrong_units_are_user_errors():
    video = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(SubcellError, match="2 positive sizes"):
        track_labels(video, (1.0, 1.0, 1.0), 1.0)
    with pytest.raises(SubcellError, match="frame interval"):
        track_labels(video, (1.0, 1.0), 0.0)


# --- Kalman filter and object features ---------------------------------------------------


def test_kalman_filter_learns_velocity_and_beats_the_measurement_noise():
    """A straight track at 40 nm per frame measured with 30 nm noise: the filtered
    positions are closer to the truth than the measurements (RMS), and the velocity is
    recovered; a coasting (unmeasured) filter's uncertainty grows."""
    rng = np.random.default_rng(5)
    n, frames = 200, 30
    truth = np.arange(frames)[:, None, None] * np.array([40.0, -25.0]) + rng.uniform(
        0, 1e4, (1, n, 2)
    )
    measured = truth + rng.normal(0, 30.0, truth.shape)
    bank = KalmanBank(
        2,
        measurement_noise_nm=30.0,
        motion_noise_nm=1.0,
        velocity_noise_nm=1.0,
        initial_velocity_nm=100.0,
    )
    bank.append(measured[0])
    errors = []
    for t in range(1, frames):
        bank.predict()
        bank.update(np.arange(n), measured[t])
        errors.append(bank.position - truth[t])
    late = np.concatenate(errors[10:])
    assert np.sqrt((late**2).mean()) < 0.6 * 30.0
    np.testing.assert_allclose(bank.velocity.mean(0), [40.0, -25.0], atol=2.0)
    before = bank.innovation_variance()
    bank.predict()
    assert np.all(bank.innovation_variance() > before)


def test_frame_objects_centroids_sizes_and_intensity():
    frame = np.zeros((10, 12), np.uint16)
    frame[2:4, 3:7] = 5  # 2 x 4 block
    frame[8, 10] = 9
    image = np.arange(120.0).reshape(10, 12)
    obj = frame_objects(frame, (100.0, 50.0), image)
    assert obj.labels.tolist() == [5, 9] and obj.size_px.tolist() == [8, 1]
    np.testing.assert_allclose(obj.centroid_px, [[2.5, 4.5], [8, 10]])
    np.testing.assert_allclose(obj.centroid_nm, [[300, 250], [850, 525]])
    np.testing.assert_allclose(obj.size_nm, [8 * 5000, 5000])
    np.testing.assert_allclose(obj.mean_intensity, [image[2:4, 3:7].mean(), image[8, 10]])


# --- events --------------------------------------------------------------------------------


def fission_fusion_video() -> np.ndarray:
    """A rod (rows 20-25, cols 20-49) that splits at frame 3 and fuses again at frame 6;
    a disc drifting next to it by 2 px per frame is in neither event."""
    video = np.zeros((8, 64, 80), dtype=np.uint16)
    for t in range(8):
        if t < 3 or t >= 6:
            video[t, 20:26, 20:50] = 1
        else:
            video[t, 20:26, 20:33] = 1
            video[t, 20:26, 37:50] = 2
        video[t][disk((40, 20 + 2 * t), 4, shape=(64, 80))] = 3
    return scramble(video, seed=7)


def test_split_and_merge_are_found_where_drawn():
    video = fission_fusion_video()
    result = track_labels(video, (PIXEL_NM, PIXEL_NM), 1.0, config(max_distance_nm=1000))
    events = split_merge_events(video, result.frames, result.track_ids).columns
    assert events["kind"].tolist() == ["split", "merge"]
    assert events["frame"].tolist() == [3, 6]
    parent = events["track_ids"][0]
    children = events["other_track_ids"][0].split(";")
    # the rod's track continues into one half; the other half is a new track
    assert parent in children and len(set(children)) == 2
    assert sorted(events["track_ids"][1].split(";")) == sorted(children)
    # the labels are those of the drawn objects in the right frames
    split_labels = [int(v) for v in events["other_labels"][0].split(";")]
    assert sorted(np.unique(video[3])[1:].tolist()) == sorted([*split_labels, video[3, 40, 26]])


def test_neighbours_moving_past_each_other_are_not_events():
    """Objects moving less than their size each frame overlap only themselves."""
    walk = separated_walks(12, 8, 96, seed=4, min_gap_px=10.0)
    video = draw(walk, shape=(96, 96))
    result = track_labels(video, (PIXEL_NM, PIXEL_NM), 1.0, config())
    assert len(split_merge_events(video, result.frames, result.track_ids)) == 0


def test_overlap_pairs_count_shared_voxels_whatever_the_label_values():
    before = np.array([[1, 1, 0], [2, 2, 2]], dtype=np.uint64)
    after = np.array([[5, 7, 7], [7, 0, 5]], dtype=np.uint64)
    expected = [(1, 5, 1), (1, 7, 1), (2, 5, 1), (2, 7, 1)]
    assert list(zip(*(x.tolist() for x in overlap_pairs(before, after)), strict=True)) == expected
    huge = np.uint64(2**40)  # too large for one int64 key per pair: the 2D path
    pairs = overlap_pairs(before * huge, after * huge)
    assert pairs[0].tolist() == [2**40, 2**40, 2**41, 2**41] and pairs[2].tolist() == [1] * 4


def test_contact_events_where_drawn():
    """Disc B (radius 3) approaches disc A (radius 5) by 3 px per frame along a row,
    touches it and leaves again; contact at 200 nm (4 px) is whenever the nearest pixel
    centres are <= 4 px apart: found frame for frame, with distances equal to a
    brute-force check."""
    centres_b = [60 - 3 * t if t <= 8 else 36 + 3 * (t - 8) for t in range(16)]
    a = np.zeros((16, 64, 96), np.uint16)
    b = np.zeros_like(a)
    for t, x in enumerate(centres_b):
        a[t][disk((30, 30), 5, shape=a.shape[1:])] = 4
        b[t][disk((30, x), 3, shape=a.shape[1:])] = 9
    events = contact_events(a, b, (PIXEL_NM, PIXEL_NM), 200.0).columns
    expected = []
    for t in range(16):
        pa, pb = np.argwhere(a[t]), np.argwhere(b[t])
        gap = cdist(pa, pb).min() * PIXEL_NM if not np.any(a[t] & b[t]) else 0.0
        if gap <= 200.0:
            expected.append((t, gap))
    assert [t for t, _ in expected] == [7, 8, 9] and expected[1][1] == 0.0
    assert events["frame"].tolist() == [t for t, _ in expected]
    np.testing.assert_allclose(events["distance_nm"], [g for _, g in expected])
    assert set(events["labels"]) == {"4"} and set(events["other_labels"]) == {"9"}


def test_contact_distances_equal_brute_force_on_random_labels():
    rng = np.random.default_rng(11)
    a = label(rng.random((40, 40)) > 0.93)
    b = label(rng.random((40, 40)) > 0.95)
    la, lb, dist = contact_pairs(a, b, (30.0, 70.0), 250.0)
    found = {(int(x), int(y)): d for x, y, d in zip(la, lb, dist, strict=True)}
    expected = {}
    for i in range(1, a.max() + 1):
        for j in range(1, b.max() + 1):
            d = cdist(np.argwhere(a == i) * [30, 70], np.argwhere(b == j) * [30, 70]).min()
            if d <= 250.0:
                expected[(i, j)] = d
    assert found.keys() == expected.keys() and len(found) > 5
    np.testing.assert_allclose([found[k] for k in expected], list(expected.values()))


# --- HOTA ----------------------------------------------------------------------------------


def two_objects(frames: int = 10) -> np.ndarray:
    positions = np.zeros((frames, 2, 2))
    positions[:, 0] = [20, 20]
    positions[:, 1] = [20, 50]
    positions[:, :, 1] += np.arange(frames)[:, None]
    return draw(positions, shape=(48, 80))


def test_hota_is_one_for_perfect_tracks_whatever_the_ids():
    truth = two_objects()
    renamed = np.where(truth > 0, truth + 40, 0)
    scores = tracking_scores(truth, renamed)
    assert scores.hota == scores.deta == scores.assa == scores.loca == 1.0
    assert scores.idsw == 0 and scores.mota == 1.0


def test_hota_of_a_swap_halfway():
    """Identities swapped after frame 4 of 10: every TP has TPA 5, FNA 5, FPA 5, so
    AssA = 1/3 and HOTA = sqrt(1/3); two identity switches, MOTA = 1 - 2/20."""
    truth = two_objects()
    swapped = truth.copy()
    swapped[5:] = np.array([0, 2, 1], dtype=truth.dtype)[truth[5:]]
    scores = tracking_scores(truth, swapped)
    assert scores.deta == 1.0
    assert scores.assa == pytest.approx(1 / 3)
    assert scores.hota == pytest.approx(np.sqrt(1 / 3))
    assert scores.idsw == 2 and scores.mota == pytest.approx(0.9)


def test_hota_with_missed_detections():
    """Object 2 missed in 5 of 10 frames: DetA = 15/20; AssA = (10·1 + 5·(5/10)) / 15."""
    truth = two_objects()
    predicted = truth.copy()
    predicted[5:][predicted[5:] == 2] = 0
    scores = tracking_scores(truth, predicted)
    assert scores.deta == pytest.approx(0.75)
    assert scores.assa == pytest.approx(12.5 / 15)
    assert scores.hota == pytest.approx(np.sqrt(0.75 * 12.5 / 15))
    assert scores.idsw == 0


def test_hota_distance_similarity_localisation():
    """Point tracks off by 30 nm with zero_distance 100 nm: similarity 0.7, so the TPs
    count for α <= 0.7 (14 of 19 thresholds); LocA is 0.7 there and, as in TrackEval,
    1 where nothing matched."""
    ids = np.array([1, 2])
    where = np.array([[0.0, 0.0], [1000.0, 0.0]])
    truth = [(ids, where)] * 4
    predicted = [(ids + 10, where + [30.0, 0.0])] * 4
    scores = score_tracking(distance_frames(truth, predicted, 100.0), similarity="distance")
    assert scores.loca == pytest.approx((14 * 0.7 + 5) / 19)
    assert scores.deta == pytest.approx(14 / 19)
    assert scores.hota == pytest.approx(14 / 19)


# --- a simulated video ----------------------------------------------------------------------

SIM = """\
step: simulate
seed: {seed}
tile_px: [64, 64]
n_frames: 6
motion: {{frame_interval_s: 0.5, drift_nm_per_s: [0, 120, 80], diffusion_um2_per_s: [0.005, 0.02]}}
structures:
  - structure: {{plugin: beads, count: [7, 7], diameter_nm: 300, min_separation_nm: 850,
                 margin_nm: 500}}
    labelling: {{plugin: surface, density_per_um2: 3000, photons_per_emitter: 50}}
microscope: {{plugin: epi, pixel_nm: 60, psf_radius_nm: 1500}}
ground_truth: {{plugin: physics}}
"""


def simulated_video(tmp_path, seed: int):
    from subcell.pipeline.config import load_config
    from subcell.pipeline.dataset import open_dataset, write_dataset

    path = tmp_path / "sim.yaml"
    path.write_text(SIM.format(seed=seed))
    write_dataset(load_config(path, ["n_tiles=1"]).config, tmp_path / "v.zarr")
    data = open_dataset(tmp_path / "v.zarr")
    return np.asarray(data.instances[0])[:, 0], np.asarray(data.images[0])[:, 0, 0], data


def otsu_labels(images: np.ndarray) -> np.ndarray:
    smooth = [gaussian(frame, 1.0) for frame in images]
    return np.stack([label(s > threshold_otsu(s)) for s in smooth]).astype(np.uint32)


def best_overlap_identities(truth: np.ndarray, segmented: np.ndarray) -> np.ndarray:
    """An oracle linker: each segmented object takes the true id it overlaps most."""
    out = np.zeros_like(segmented)
    for t in range(len(segmented)):
        seg_ids, true_ids, shared = overlap_pairs(segmented[t], truth[t])
        table = np.zeros(int(segmented[t].max()) + 1, dtype=np.uint32)
        for k in np.argsort(shared, kind="stable"):  # the largest overlap is written last
            table[seg_ids[k]] = true_ids[k]
        out[t] = table[segmented[t]]
    return out


def test_simulated_video_is_tracked(tmp_path):
    """7 beads (300 nm, 60 nm pixels, >= 850 nm apart at frame 0) drifting (60, 40) nm
    per frame and diffusing (D 0.005-0.02 µm²/s: 70-140 nm sd per axis per frame),
    6 frames, 0.5 s apart.

    On the true instances with identities scrambled per frame the detections are exact,
    so any association error would show: HOTA must be 1 with no identity switch
    (measured on seeds 1-12: 1.0 on all). On an Otsu segmentation of the noisy images,
    HOTA is bounded by detection (Otsu objects are larger than the physics-based truth,
    pixel IoU about 0.6-0.8, and close beads merge), so it is compared with an oracle
    that gives each segmented object the true id it overlaps most. Measured on seeds
    1-12: HOTA 0.36-0.62, oracle minus ours at most 0.043; seed 1: 0.622, equal to the
    oracle, 0 switches. Bounds: HOTA >= 0.55 and within 0.05 of the oracle."""
    truth, images, data = simulated_video(tmp_path, seed=1)
    assert data.attrs["frame_interval_s"] == 0.5 and truth.shape == (6, 64, 64)
    voxel = data.voxel_nm[1:]
    tracker = config(max_distance_nm=600.0)
    scrambled = scramble(truth, seed=5)
    exact = track_labels(scrambled, voxel, 0.5, tracker)
    scores = tracking_scores(truth, exact.relabel(scrambled))
    assert scores.hota == pytest.approx(1.0) and scores.idsw == 0
    assert len(exact.summary) == len(np.unique(truth)) - 1 == 7
    segmented = otsu_labels(images)
    found = track_labels(segmented, voxel, 0.5, tracker)
    seg_scores = tracking_scores(truth, found.relabel(segmented))
    oracle = tracking_scores(truth, best_overlap_identities(truth, segmented))
    assert seg_scores.hota >= 0.55 and seg_scores.hota >= oracle.hota - 0.05
    assert seg_scores.idsw == 0
