"""Classical parts of cellcutter: markers, graph-cut foreground, watershed baseline,
integration of patch probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from subcell_test_phantoms import touching_cells as _touching_cells

from subcell.core.errors import VolumeError
from subcell.plugins.cellcutter.foreground import foreground_mask, min_cut_labels
from subcell.plugins.cellcutter.integrate import integrate_patches, main_components
from subcell.plugins.cellcutter.markers import (
    check_markers,
    detect_markers,
    markers_from_probability,
    pair_markers,
)
from subcell.plugins.cellcutter.watershed import marker_watershed


def _cell_ious(truth, labels, n_cells):
    """IoU of true cell i + 1 with predicted label i + 1 (markers are the true centres)."""
    out = []
    for i in range(1, n_cells + 1):
        t, p = truth == i, labels == i
        out.append((t & p).sum() / (t | p).sum())
    return np.array(out)


# --- markers ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dog_markers_find_every_nucleus_and_nothing_else(seed):
    _, _, nucleus, centres = _touching_cells(seed)
    found = detect_markers(nucleus, nucleus_diameter_px=(4, 10))
    pairing = pair_markers(found, centres, max_distance_px=3.0)
    assert pairing.false_negative_rate == 0.0
    assert pairing.false_positive_rate == 0.0
    # Subpixel refinement: measured mean error 0.12 px, max 0.36 px (seeds 0-5).
    assert pairing.distances_px.mean() < 0.3


def test_dog_markers_are_robust_to_nucleus_brightness():
    missed = extra = 0
    for seed in range(4):
        _, _, nucleus, centres = _touching_cells(seed, nucleus_gain=(0.2, 1.0))
        pairing = pair_markers(detect_markers(nucleus, nucleus_diameter_px=(4, 10)), centres, 3.0)
        missed += len(pairing.false_negatives)
        extra += len(pairing.false_positives)
    assert (missed, extra) == (0, 0)


def test_blank_nucleus_image_gives_no_markers_and_a_clear_error():
    found = detect_markers(np.full((64, 64), 7.0))
    assert found.shape == (0, 2)
    with pytest.raises(VolumeError, match="no nucleus markers found") as error:
        check_markers(found, (64, 64))
    assert "\n" not in str(error.value)


def _disks(centres, radius, shape=(96, 96)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape, dtype=bool)
    for y, x in centres:
        out |= np.hypot(yy - y, xx - x) <= radius
    return out


def test_markers_from_probability_split_touching_nuclei_not_elongated_ones():
    rng = np.random.default_rng(0)
    centres = np.array([[20, 20], [20, 32], [60, 25], [70, 60], [77.2, 69.6], [40, 60]])
    nuclei = _disks(centres, 6.0)
    # An elongated oblique nucleus (14 x 5 px half-axes) must stay one marker.
    yy, xx = np.mgrid[:96, :96]
    u = (yy - 80) * np.cos(0.4) + (xx - 22) * np.sin(0.4)
    v = -(yy - 80) * np.sin(0.4) + (xx - 22) * np.cos(0.4)
    nuclei |= (u / 14) ** 2 + (v / 5) ** 2 <= 1
    truth = np.vstack([centres, [[80, 22]]])
    prob = ndimage.gaussian_filter(nuclei.astype(float), 1.5)
    prob = np.clip(prob + rng.normal(0, 0.05, prob.shape), 0, 1)
    found = markers_from_probability(prob)
    pairing = pair_markers(found, truth, max_distance_px=3.0)
    assert len(found) == 7
    assert pairing.false_negative_rate == 0.0 and pairing.false_positive_rate == 0.0


def test_pair_markers_counts_and_maximises_the_number_of_pairs():
    found = [[0, 0], [10, 10], [50, 50]]
    true = [[1, 0], [10, 12], [30, 30], [31, 30]]
    pairing = pair_markers(found, true, max_distance_px=3.0)
    assert sorted(map(tuple, pairing.pairs)) == [(0, 0), (1, 1)]
    assert pairing.false_negative_rate == 0.5
    assert pairing.false_positive_rate == pytest.approx(1 / 3)
    assert list(pairing.false_positives) == [2]
    # Nearest-first pairing would take (A, T1) and leave B alone; Hungarian pairs both.
    pairing = pair_markers([[0, 0], [0, 3]], [[0, 1], [0, -1.5]], max_distance_px=2.1)
    assert sorted(map(tuple, pairing.pairs)) == [(0, 1), (1, 0)]
    assert pair_markers([], true, 3.0).false_negative_rate == 1.0


@pytest.mark.parametrize(
    ("markers", "message"),
    [
        ([[5, 5], [-1, 3]], "outside the 32x40 image"),
        ([[5, 5], [3, 39.6]], "outside the 32x40 image"),
        ([[31.6, 3]], "outside the 32x40 image"),
        ([[np.nan, 3]], "NaN"),
        ([1, 2, 3], r"\(M, 2\)"),
    ],
)
def test_check_markers_rejects_bad_markers_in_one_line(markers, message):
    with pytest.raises(VolumeError, match=message) as error:
        check_markers(markers, (32, 40))
    assert "\n" not in str(error.value)
    assert check_markers([[0, 0], [31.4, 39.4]], (2, 32, 40)).shape == (2, 2)


# --- foreground graph cut --------------------------------------------------------------


def _brute_force(x, alpha, kappa):
    """Minimum-energy labelling of the paper's MRF on a 4 x 4 image, by all 2**16 labellings."""
    n = x.size
    labellings = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.int8)
    grid = np.arange(n).reshape(x.shape)
    pairs = np.vstack(
        [
            np.column_stack([grid[:, :-1].ravel(), grid[:, 1:].ravel()]),
            np.column_stack([grid[:-1].ravel(), grid[1:].ravel()]),
        ]
    )
    fg, bg = -np.log(alpha * x.ravel()), -np.log((1 - alpha) * (1 - x.ravel()))
    energy = labellings @ fg + (1 - labellings) @ bg
    energy = energy + kappa * np.abs(labellings[:, pairs[:, 0]] - labellings[:, pairs[:, 1]]).sum(1)
    best = np.argmin(energy)
    return labellings[best].reshape(x.shape).astype(bool), energy, labellings


@pytest.mark.parametrize("seed", range(6))
def test_graph_cut_equals_exhaustive_minimum_energy(seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.05, 0.95, (4, 4))
    alpha, kappa = rng.uniform(0.2, 0.8), rng.uniform(0.1, 1.5)
    expected, energy, labellings = _brute_force(x, alpha, kappa)
    found = foreground_mask(x, alpha=alpha, kappa=kappa, percentiles=None)
    found_energy = energy[np.flatnonzero((labellings == found.ravel()).all(1))[0]]
    # Integer capacities at resolution 1e-3 nats: within 40 terms x 5e-4 of the minimum.
    assert found_energy <= energy.min() + 0.02
    assert np.array_equal(found, expected)


def test_graph_cut_stays_exact_when_the_int32_guard_coarsens_capacities():
    rng = np.random.default_rng(7)
    x = rng.uniform(0.05, 0.95, (4, 4))
    expected, _, _ = _brute_force(x, 0.5, 0.8)
    # resolution 1e-9 would overflow int32: the scale is coarsened instead.
    found = foreground_mask(x, alpha=0.5, kappa=0.8, percentiles=None, resolution=1e-9)
    assert np.array_equal(found, expected)


def test_graph_cut_without_cut_penalty_is_the_per_pixel_decision():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.01, 0.99, (40, 30))
    alpha = 0.3
    found = foreground_mask(x, alpha=alpha, kappa=0.0, percentiles=None)
    assert np.array_equal(found, alpha * x > (1 - alpha) * (1 - x))


def test_cut_penalty_removes_isolated_noise_pixels():
    square = np.zeros((24, 24), dtype=bool)
    square[6:18, 6:18] = True
    image = np.where(square, 0.8, 0.2)
    image[2, 2] = image[20, 3] = 0.95  # bright specks in the background
    image[10, 10] = image[14, 8] = 0.05  # dark specks in the cell
    specks = np.zeros_like(square)
    specks[[2, 20, 10, 14], [2, 3, 10, 8]] = True
    assert np.array_equal(foreground_mask(image, kappa=0.0, percentiles=None), square ^ specks)
    assert np.array_equal(foreground_mask(image, kappa=1.0, percentiles=None), square)
    assert np.array_equal(min_cut_labels(np.where(square, -1.0, 1.0), 0.4), square)


def test_graph_cut_mask_of_noisy_cells_matches_the_colony():
    instances, cell, _, _ = _touching_cells(0)
    colony = instances > 0
    mask = foreground_mask(cell, alpha=0.5, kappa=1.0, percentiles=(1, 50))
    iou = (mask & colony).sum() / (mask | colony).sum()
    assert iou >= 0.93  # measured 0.947-0.952 over seeds 0-5 (the membrane blur widens it)
    coarse = foreground_mask(cell, alpha=0.5, kappa=1.0, percentiles=(1, 50), downsample=2)
    assert coarse.shape == cell.shape
    assert (coarse == mask).mean() >= 0.98  # measured 0.988-0.989


def test_foreground_rejects_bad_input():
    with pytest.raises(VolumeError, match="2D"):
        foreground_mask(np.zeros((2, 8, 8)))
    with pytest.raises(VolumeError, match="NaN"):
        foreground_mask(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="alpha"):
        foreground_mask(np.zeros((8, 8)), alpha=1.0)
    with pytest.raises(ValueError, match="kappa"):
        foreground_mask(np.zeros((8, 8)), kappa=-1.0)


# --- watershed baseline ----------------------------------------------------------------


def test_watershed_segments_touching_cells_from_their_markers():
    ious, ious_cut, by_relief = [], [], {"intensity": [], "gradient": [], "inverted": []}
    for seed in range(3):
        instances, cell, _, centres = _touching_cells(seed)
        n = len(centres)
        labels = marker_watershed(cell, centres, instances > 0)
        assert labels.dtype == np.uint32 and set(np.unique(labels)) == set(range(n + 1))
        ious.append(_cell_ious(instances, labels, n))
        mask = foreground_mask(cell, kappa=1.0, percentiles=(1, 50))
        ious_cut.append(_cell_ious(instances, marker_watershed(cell, centres, mask), n))
        for relief, values in by_relief.items():
            values.append(
                _cell_ious(
                    instances, marker_watershed(cell, centres, relief=relief, mask=instances > 0), n
                ).mean()
            )
    ious, ious_cut = np.concatenate(ious), np.concatenate(ious_cut)
    # Measured (seeds 0-5): true mask mean 0.988 min 0.97; graph-cut mask mean 0.925 min 0.79.
    assert ious.mean() >= 0.95 and ious.min() >= 0.9
    assert ious_cut.mean() >= 0.88
    # Bright membranes: flooding the intensity beats its gradient (0.76) and its negative (0.03).
    means = {relief: np.mean(values) for relief, values in by_relief.items()}
    assert means["intensity"] >= means["gradient"] + 0.1 >= means["inverted"] + 0.2


def test_watershed_marker_outside_mask_is_absent_and_bad_input_is_refused():
    image = np.ones((20, 20))
    mask = np.zeros((20, 20), dtype=bool)
    mask[:, :10] = True
    labels = marker_watershed(image, [[5, 5], [5, 15]], mask)
    assert set(np.unique(labels)) == {0, 1}
    assert np.array_equal(labels > 0, mask)
    with pytest.raises(VolumeError, match="different shapes"):
        marker_watershed(image, [[5, 5]], mask[:10])
    with pytest.raises(VolumeError, match="no nucleus markers"):
        marker_watershed(image, np.zeros((0, 2)), mask)
    with pytest.raises(VolumeError, match="outside"):
        marker_watershed(image, [[5, 25]], mask)


# --- integration -----------------------------------------------------------------------


def _reference_integration(probabilities, origins, shape, threshold):
    """Per-pixel definition: every patch pasted on its own padded canvas, argmax over them."""
    n, ky, kx = probabilities.shape
    pad = max(ky, kx) + int(np.abs(origins).max())
    stack = np.full((n, shape[0] + 2 * pad, shape[1] + 2 * pad), -np.inf)
    for i, ((y0, x0), patch) in enumerate(zip(origins, probabilities, strict=True)):
        stack[i, y0 + pad : y0 + pad + ky, x0 + pad : x0 + pad + kx] = patch
    stack = stack[:, pad : pad + shape[0], pad : pad + shape[1]]
    best = stack.max(0)
    return np.where(best >= threshold, stack.argmax(0) + 1, 0)


def test_integration_matches_the_per_pixel_definition_with_border_patches():
    rng = np.random.default_rng(0)
    shape, k, n = (30, 25), 8, 40
    probabilities = rng.random((n, k, k)).astype(np.float32)
    origins = np.column_stack([rng.integers(-6, 29, n), rng.integers(-6, 24, n)])
    origins[:4] = [[-7, -7], [29, 24], [-7, 24], [29, -7]]  # one pixel in each corner
    labels = integrate_patches(probabilities, origins, shape, threshold=0.5)
    expected = _reference_integration(probabilities, origins, shape, 0.5)
    assert labels.dtype == np.uint32 and labels.shape == shape
    assert np.array_equal(labels, expected)
    # Patches hanging off every side still own the pixels they win.
    assert set(np.unique(labels)) == set(np.unique(expected)) and len(np.unique(labels)) > 20


def test_integration_picks_the_most_probable_patch_and_respects_the_threshold():
    probabilities = np.zeros((3, 4, 4), dtype=np.float32)
    probabilities[0] = 0.6
    probabilities[1] = 0.9
    probabilities[1, :, 2:] = 0.4
    probabilities[2] = 0.45  # below threshold everywhere: absent
    origins = [[0, 0], [0, 2], [4, 4]]
    labels = integrate_patches(probabilities, origins, (8, 8))
    assert np.array_equal(labels[:4, :6], np.tile([1, 1, 2, 2, 0, 0], (4, 1)))
    assert not (labels == 3).any() and not labels[4:].any()
    # A patch hanging off the image keeps its visible part: a border cell is never dropped.
    edge = integrate_patches(np.ones((1, 4, 4)), [[-2, 6]], (8, 8))
    assert edge.sum() == 2 * 2 and edge[0, 6] == 1


def test_integration_fills_the_foreground_mask_below_the_threshold():
    # Two touching cells that both say 0.27 on their shared column (the loss's optimum when
    # neither can tell whose a pixel is): the plain threshold leaves a gap there.
    probabilities = np.zeros((2, 4, 4), dtype=np.float32)
    probabilities[0, :, :2] = 0.9
    probabilities[0, :, 2] = 0.3
    probabilities[1, :, 1:] = 0.9
    probabilities[1, :, 0] = 0.27
    origins = [[0, 0], [0, 2]]  # patch 1 covers columns 2-5; its column 0 is image column 2
    plain = integrate_patches(probabilities, origins, (4, 7))
    assert np.array_equal(plain[0], [1, 1, 0, 2, 2, 2, 0])
    foreground = np.ones((4, 7), dtype=bool)
    foreground[:, 6] = False
    foreground[0, 2] = False  # outside the mask the threshold still rules
    filled = integrate_patches(probabilities, origins, (4, 7), foreground=foreground)
    assert np.array_equal(filled[1], [1, 1, 1, 2, 2, 2, 0])  # 0.3 beats 0.27
    assert filled[0, 2] == 0
    with pytest.raises(VolumeError, match="foreground mask shape"):
        integrate_patches(probabilities, origins, (4, 7), foreground=foreground[:, :5])


def test_integration_can_keep_only_each_cells_main_piece():
    probabilities = np.zeros((2, 6, 6), dtype=np.float32)
    probabilities[0, :3, :3] = 0.9  # main piece, 9 px
    probabilities[0, 5, 5] = 0.9  # stray pixel
    probabilities[1, 3:, 3:] = 0.8
    probabilities[1, 5, 5] = 0.1
    labels = integrate_patches(probabilities, [[0, 0], [0, 0]], (6, 6))
    assert labels[5, 5] == 1
    tidy = integrate_patches(probabilities, [[0, 0], [0, 0]], (6, 6), keep_main_component=True)
    assert tidy[5, 5] == 0 and (tidy == 1).sum() == 9 and (tidy == 2).sum() == 8
    assert not main_components(np.zeros((3, 3), dtype=np.uint32)).any()


def test_integration_rejects_bad_input():
    with pytest.raises(VolumeError, match=r"\(N, ky, kx\)"):
        integrate_patches(np.zeros((4, 4)), [[0, 0]], (8, 8))
    with pytest.raises(VolumeError, match="origins"):
        integrate_patches(np.zeros((2, 4, 4)), [[0, 0]], (8, 8))
    with pytest.raises(VolumeError, match="integer"):
        integrate_patches(np.zeros((1, 4, 4)), [[0.5, 0]], (8, 8))
    with pytest.raises(VolumeError, match="NaN"):
        integrate_patches(np.full((1, 4, 4), np.nan), [[0, 0]], (8, 8))
