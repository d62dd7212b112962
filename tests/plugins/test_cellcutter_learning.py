"""cellcutter's learned part: patches, the cross-patch loss, dihedral augmentation, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from subcell.core.dihedral import (
    apply_dihedral,
    apply_dihedral_batch,
    undo_dihedral,
    undo_dihedral_batch,
)
from subcell.core.errors import VolumeError
from subcell.plugins.cellcutter.loss import CellCutterLoss, cross_patch_log_sum
from subcell.plugins.cellcutter.patches import (
    area_batches,
    extract_mask_patches,
    extract_patches,
    zscore_channels,
)
from subcell.plugins.cellcutter.training import (
    CellCutterConfig,
    _DivergenceGuard,
    epoch_learning_rate,
    loss_is_stable,
    predict_patches,
    train_cellcutter,
)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny convolutions: a second OpenMP thread only adds waiting on a shared CPU.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _touching_cells(size: int = 56, radius: float = 22.0, n: int = 3):
    """A disc split into ``n`` touching cells (Voronoi sectors) with bright rims."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    centre = (size - 1) / 2
    angle = 2 * np.pi * np.arange(n) / n + 0.3
    seeds = np.stack(
        [centre + 0.5 * radius * np.sin(angle), centre + 0.5 * radius * np.cos(angle)], axis=1
    )
    distance = (yy[None] - seeds[:, :1, None]) ** 2 + (xx[None] - seeds[:, 1:, None]) ** 2
    disc = (yy - centre) ** 2 + (xx - centre) ** 2 < radius**2
    labels = (np.argmin(distance, axis=0) + 1) * disc
    image = np.where(labels > 0, 0.5, 0.0)
    image[find_boundaries(labels, mode="inner") & disc] = 1.0
    image = image + np.random.default_rng(0).normal(0.0, 0.05, image.shape)
    centroids = np.array(ndi.center_of_mass(disc, labels, np.arange(1, n + 1)))
    return image[None].astype(np.float32), labels, centroids


# ---------------------------------------------------------------- loss


def _brute_force_loss(y, origins, canvas, mask, lambda_, beta, log_base, eps):
    """Eq. 1 with every pair (i, j) placed on the canvas explicitly: O(N^2 k^2)."""
    n, k = y.shape[0], y.shape[-1]
    height, width = canvas

    def on_canvas(patch, origin):
        full = torch.zeros(height + 2 * k, width + 2 * k, dtype=patch.dtype)
        oy, ox = int(origin[0]) + k, int(origin[1]) + k
        full = full.index_put(
            (torch.arange(oy, oy + k)[:, None], torch.arange(ox, ox + k)[None, :]), patch
        )
        return full[k : k + height, k : k + width]

    ys = [on_canvas(y[i], origins[i]) for i in range(n)]
    logs = [on_canvas(torch.log((1 - y[i]).clamp_min(eps)), origins[i]) for i in range(n)]
    total = -y.sum() + beta * (y * (1 - mask)).sum()
    for i in range(n):
        for j in range(n):
            if i != j:
                total = total + lambda_ * (ys[i] * -logs[j]).sum() / math.log(log_base)
    return total / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_brute_force_with_patches_over_the_canvas_edge(seed):
    rng = np.random.default_rng(seed)
    n, k, canvas = 6, 8, (14, 11)
    y = torch.tensor(rng.uniform(0, 1, (n, k, k)), dtype=torch.float64, requires_grad=True)
    origins = torch.tensor(rng.integers(-5, 10, (n, 2)))
    assert (origins < 0).any() and (origins + k > torch.tensor(canvas)).any()
    mask = torch.tensor((rng.uniform(size=(n, k, k)) > 0.4).astype(float))
    for lambda_, beta, base in [(3.32, 15.0, 10.0), (1.0, 20.0, math.e)]:
        fast = CellCutterLoss(lambda_, beta, log_base=base)(
            y[:, None], origins, canvas, mask[:, None]
        )
        (grad_fast,) = torch.autograd.grad(fast, y)
        slow = _brute_force_loss(y, origins, canvas, mask, lambda_, beta, base, 1e-6)
        (grad_slow,) = torch.autograd.grad(slow, y)
        assert fast.item() == pytest.approx(slow.item(), rel=1e-9)
        np.testing.assert_allclose(grad_fast.numpy(), grad_slow.numpy(), rtol=1e-9, atol=1e-12)


def test_cross_term_counts_only_other_patches():
    log_q = torch.ones(3, 4, 4, dtype=torch.float64)
    origins = torch.tensor([[0, 0], [2, 2], [10, 10]])
    others = cross_patch_log_sum(log_q, origins, (12, 12))
    # Patch 0 overlaps patch 1 in its bottom-right 2 x 2; patch 2 is alone and half outside.
    assert others[0].sum().item() == 4.0 and others[0, 2:, 2:].min().item() == 1.0
    assert others[1].sum().item() == 4.0 and others[2].abs().sum().item() == 0.0


def test_logit_path_matches_probability_path():
    rng = np.random.default_rng(3)
    logits = torch.tensor(rng.normal(0, 2, (4, 1, 8, 8)))
    origins = torch.tensor([[0, 0], [3, 1], [5, 6], [1, 7]])
    mask = torch.ones_like(logits)
    loss = CellCutterLoss()
    a = loss(torch.sigmoid(logits), origins, (16, 16), mask)
    b = loss(torch.sigmoid(logits), origins, (16, 16), mask, logits=logits)
    assert a.item() == pytest.approx(b.item(), rel=1e-9)


# ---------------------------------------------------------------- augmentation


def test_dihedral_round_trip_and_all_eight_distinct():
    patch = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(2, 5, 5)
    seen = set()
    for t in range(8):
        moved = apply_dihedral(patch, t)
        assert torch.equal(undo_dihedral(moved, t), patch)
        assert np.array_equal(undo_dihedral(apply_dihedral(patch.numpy(), t), t), patch.numpy())
        seen.add(tuple(moved[0].flatten().tolist()))
    assert len(seen) == 8  # the transposes are really applied
    codes = np.array([0, 1, 2, 3, 4, 5, 6, 7, 5, 4])
    batch = torch.randn(10, 3, 6, 6)
    moved = apply_dihedral_batch(batch, codes)
    assert torch.equal(moved[8], apply_dihedral(batch[8], 5))
    assert torch.equal(undo_dihedral_batch(moved, codes), batch)
    with pytest.raises(ValueError, match="0..7"):
        apply_dihedral(patch, 8)


def test_loss_is_invariant_to_augmentation_undone_before_it():
    # A 1x1 convolution commutes with flips and transposes, so once the augmentation is undone
    # its loss must equal the loss without augmentation; undoing on logits or probabilities
    # is the same. A wrong undo (e.g. a transpose left in) would move pixels on the canvas.
    torch.manual_seed(0)
    network = torch.nn.Conv2d(2, 1, 1).double()
    inputs = torch.randn(5, 2, 8, 8, dtype=torch.float64)
    origins = torch.tensor([[0, 0], [2, 3], [4, 1], [5, 5], [1, 6]])
    mask = (torch.rand(5, 1, 8, 8) > 0.3).double()
    loss = CellCutterLoss()
    plain = loss(torch.sigmoid(network(inputs)), origins, (13, 14), mask)
    codes = np.array([4, 5, 6, 7, 3])
    out = network(apply_dihedral_batch(inputs, codes))
    on_logits = loss(torch.sigmoid(undo_dihedral_batch(out, codes)), origins, (13, 14), mask)
    on_probabilities = loss(undo_dihedral_batch(torch.sigmoid(out), codes), origins, (13, 14), mask)
    not_undone = loss(torch.sigmoid(out), origins, (13, 14), mask)
    assert on_logits.item() == pytest.approx(plain.item(), rel=1e-12)
    assert on_probabilities.item() == pytest.approx(plain.item(), rel=1e-12)
    assert abs(not_undone.item() - plain.item()) > 1e-3


# ---------------------------------------------------------------- patches


def test_border_markers_get_full_patches():
    rng = np.random.default_rng(0)
    image = rng.normal(5.0, 2.0, (2, 20, 24)).astype(np.float32)
    markers = np.array([[0.0, 0.0], [19.0, 23.0], [10.2, 11.7]])
    patches, origins = extract_patches(image, markers, 32, sigma_px=8.0)
    assert patches.shape == (3, 3, 32, 32) and patches.dtype == np.float32
    np.testing.assert_array_equal(origins, [[-16, -16], [3, 7], [-6, -4]])
    normalised = zscore_channels(image)
    np.testing.assert_allclose(normalised.mean(axis=(1, 2)), 0.0, atol=1e-5)
    # The marker's pixel sits at patch pixel (16, 16); outside the image is zero (the mean).
    np.testing.assert_array_equal(patches[0, :2, 16:, 16:], normalised[:, :16, :16])
    assert np.all(patches[0, :2, :16, :] == 0.0)
    np.testing.assert_array_equal(patches[1, :2, :17, :17], normalised[:, 3:, 7:])
    # The position channel peaks at 1 on the marker itself.
    assert patches[0, 2, 16, 16] == pytest.approx(1.0)
    assert np.unravel_index(np.argmax(patches[2, 2]), (32, 32)) == (16, 16)
    mask = extract_mask_patches(np.ones((20, 24), bool), origins, 32)
    assert mask[0, 0].sum() == 16 * 16 and mask[0, 0, 16:, 16:].all()
    reflected, _ = extract_patches(image, markers, 32, pad_mode="reflect")
    np.testing.assert_array_equal(reflected[0, :2, 15, 16:], normalised[:, 1, :16])


def test_image_smaller_than_a_patch_and_bad_markers():
    image = np.ones((1, 5, 7), np.float32)
    patches, origins = extract_patches(image, np.array([[2.0, 3.0]]), 32)
    assert patches.shape == (1, 2, 32, 32) and np.all(patches[:, 0] == 0.0)
    with pytest.raises(VolumeError, match="outside"):
        extract_patches(image, np.array([[2.0, 7.0]]), 32)
    with pytest.raises(VolumeError, match="finite"):
        extract_patches(image, np.array([[np.nan, 1.0]]), 32)


def test_area_batches_cover_each_marker_once_within_one_window():
    rng = np.random.default_rng(4)
    markers = rng.uniform(0, 300, (200, 2))
    area = (100, 120)
    epochs = []
    for _ in range(3):
        batches = list(area_batches(markers, (300, 300), area, rng))
        seen = np.sort(np.concatenate(batches))
        np.testing.assert_array_equal(seen, np.arange(200))
        for batch in batches:
            span = np.ptp(np.rint(markers[batch]), axis=0) if batch.size > 1 else np.zeros(2)
            assert np.all(span < area)
        epochs.append(sorted(tuple(b) for b in batches))
    assert epochs[0] != epochs[1]  # the tiling moves between epochs
    again = list(area_batches(markers, (300, 300), area, np.random.default_rng(4)))
    first = list(area_batches(markers, (300, 300), area, np.random.default_rng(4)))
    assert all(np.array_equal(a, b) for a, b in zip(again, first, strict=True))


# ---------------------------------------------------------------- training


def _tiny_config(**overrides) -> CellCutterConfig:
    values = dict(
        patch_px=32,
        position_sigma_px=8.0,
        channels=(4, 8, 16),
        strides=(2, 2),
        num_res_units=0,
        epochs=10,
        stable_window_epochs=0,
        seed=3,
    )
    values.update(overrides)
    return CellCutterConfig(**values)


def test_training_reduces_the_loss_and_is_reproducible():
    image, labels, markers = _touching_cells()
    config = _tiny_config()
    seen = []
    net_a, history = train_cellcutter(
        image, markers, labels > 0, config, progress=lambda epoch, loss: seen.append(epoch)
    )
    net_b, history_b = train_cellcutter(image, markers, labels > 0, config)
    assert seen == list(range(1, 11)) and len(history) == 10
    assert history[-1] < 0.5 * history[0]
    assert history == history_b
    for (name, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values(), strict=True):
        assert a.numpy().tobytes() == b.numpy().tobytes(), name
    net_c, _ = train_cellcutter(image, markers, labels > 0, _tiny_config(seed=4))
    net_last, history_last = train_cellcutter(
        image, markers, labels > 0, _tiny_config(weight_average_decay=0.0)
    )
    # The same steps; only the returned weights differ (last instead of their moving average).
    assert history_last == history
    assert any(
        not torch.equal(a, b)
        for a, b in zip(net_a.parameters(), net_last.parameters(), strict=True)
    )
    assert any(
        not torch.equal(a, c) for a, c in zip(net_a.parameters(), net_c.parameters(), strict=True)
    )


def test_each_patch_prefers_its_own_cell():
    image, labels, markers = _touching_cells()
    config = _tiny_config(epochs=100, test_time_augmentation=False)
    network, history = train_cellcutter(image, markers, labels > 0, config)
    probabilities, origins = predict_patches(network, image, markers, config)
    tta, _ = predict_patches(
        network, image, markers, _tiny_config(epochs=100, test_time_augmentation=True)
    )
    assert not np.array_equal(tta, probabilities)
    assert probabilities.shape == (3, 32, 32) and probabilities.dtype == np.float32
    for predicted in (probabilities, tta):
        for i, (patch, (oy, ox)) in enumerate(zip(predicted, origins, strict=True)):
            window = np.pad(labels, 32)[oy + 32 : oy + 64, ox + 32 : ox + 64]
            own = patch[window == i + 1].mean()
            neighbours = patch[(window > 0) & (window != i + 1)].mean()
            background = patch[window == 0].mean()
            assert own > 0.4 and own > 3 * neighbours and background < 0.05, (i, own, neighbours)


def test_bad_inputs_and_config():
    image, labels, markers = _touching_cells()
    with pytest.raises(VolumeError, match="no markers"):
        train_cellcutter(image, np.zeros((0, 2)), labels > 0, _tiny_config())
    with pytest.raises(VolumeError, match="mask shape"):
        train_cellcutter(image, markers, labels[:-1] > 0, _tiny_config())
    with pytest.raises(ValueError, match="patch_px"):
        CellCutterConfig(patch_px=60)
    with pytest.raises(ValueError, match="strides"):
        CellCutterConfig(channels=(4, 8), strides=(2, 2))
    with pytest.raises(ValueError, match="weight_average_decay"):
        CellCutterConfig(weight_average_decay=1.0)
    with pytest.raises(ValueError, match="lambda_"):
        CellCutterConfig(lambda_=-1)
    assert CellCutterConfig(batch_area_px=320).batch_area_px == (320, 320)


def test_stable_loss_stops_training_early():
    assert not loss_is_stable([10.0, 9.0, 8.0, 7.0], 2, 0.01)
    assert loss_is_stable([-100.0, -100.0, -100.5, -100.4], 2, 0.01)
    assert not loss_is_stable([-100.0, -100.0, -100.5], 2, 0.01)
    image, labels, markers = _touching_cells()
    _, history = train_cellcutter(
        image,
        markers,
        labels > 0,
        _tiny_config(epochs=50, stable_window_epochs=2, stable_rel_tol=10.0),
    )
    assert len(history) == 4


def test_cosine_schedule_falls_from_the_rate_to_its_final_fraction():
    constant = CellCutterConfig(epochs=11, learning_rate=0.005)
    assert {epoch_learning_rate(constant, e) for e in range(1, 12)} == {0.005}
    cosine = CellCutterConfig(
        epochs=11, learning_rate=0.005, lr_schedule="cosine", final_lr_fraction=0.1
    )
    rates = [epoch_learning_rate(cosine, e) for e in range(1, 12)]
    assert rates[0] == pytest.approx(0.005) and rates[-1] == pytest.approx(0.0005)
    assert rates[5] == pytest.approx(0.5 * (0.005 + 0.0005))  # halfway down the half cosine
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    with pytest.raises(ValueError, match="lr_schedule"):
        CellCutterConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="final_lr_fraction"):
        CellCutterConfig(final_lr_fraction=1.5)


def test_divergence_guard_restores_the_best_epoch_at_half_the_rate(caplog):
    network = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(network.parameters(), lr=0.1)
    guard = _DivergenceGuard(0.25, (network, optimizer))
    starts, steps = [], []

    def epoch(loss: float) -> None:
        guard.before_epoch()
        starts.append(network.weight.detach().clone())
        step = optimizer.state_dict()["state"].get(0, {}).get("step")
        steps.append(None if step is None else float(step))  # the live tensor moves on
        network.weight.data.normal_()
        network(torch.ones(1, 2)).sum().backward()
        optimizer.step()
        guard.after_epoch(len(starts), loss)

    epoch(20.0)
    epoch(-20.0)  # best: the weights it started from are kept
    epoch(-12.0)  # back up by 20 % of the fall from 20 to -20: noise, training goes on
    assert guard.lr_scale == 1.0 and not torch.equal(network.weight, starts[1])
    with caplog.at_level("INFO", logger="subcell.plugins.cellcutter.training"):
        epoch(-8.0)  # 30 %: diverged
    assert guard.lr_scale == 0.5
    assert torch.equal(network.weight, starts[1])
    assert float(optimizer.state_dict()["state"][0]["step"]) == steps[1] == 1
    assert "weights epoch 2 started from" in caplog.text
    off = _DivergenceGuard(0.0, (network,))
    off.before_epoch()
    off.after_epoch(1, -20.0)
    off.after_epoch(2, 100.0)
    assert off.lr_scale == 1.0 and off.snapshot is None


def test_training_rolls_back_when_the_loss_diverges(caplog):
    image, labels, markers = _touching_cells()
    # A rate far too high for Adam: the loss leaves its best and the guard must step in.
    config = _tiny_config(epochs=20, learning_rate=0.5, rollback_rise=0.1)
    with caplog.at_level("INFO", logger="subcell.plugins.cellcutter.training"):
        network, history = train_cellcutter(image, markers, labels > 0, config)
    rollbacks = caplog.text.count("back to the weights")
    assert rollbacks >= 1 and len(history) == 20
    # Each rollback halves the rate: the message reports the running factor.
    assert f"at {0.5**rollbacks:.3g} x the learning rate" in caplog.text
    assert all(torch.isfinite(p).all() for p in network.parameters())


def _clumped_cells(size: int = 192, spacing: float = 30.0, seed: int = 0):
    """Jittered-grid Voronoi cells inside a disc, bright rims, noise; centroids as markers."""
    rng = np.random.default_rng(seed)
    grid = np.arange(spacing / 2, size, spacing)
    seeds = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    seeds = seeds + rng.uniform(-0.25, 0.25, seeds.shape) * spacing
    yy, xx = np.mgrid[:size, :size].astype(float)
    distance = (yy[None] - seeds[:, :1, None]) ** 2 + (xx[None] - seeds[:, 1:, None]) ** 2
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.42 * size) ** 2
    labels = (np.argmin(distance, axis=0) + 1) * disc
    present = [i for i in range(1, len(seeds) + 1) if (labels == i).sum() > 150]
    labels = np.where(np.isin(labels, present), labels, 0)
    labels = np.searchsorted([0, *present], labels)  # 1..n
    level = np.r_[0.0, rng.uniform(0.4, 0.8, len(present))]
    image = level[labels]
    image[find_boundaries(labels, mode="inner") & (labels > 0)] = 1.3
    image = ndi.gaussian_filter(image, 1.0) + rng.normal(0.0, 0.15, image.shape)
    centroids = np.array(ndi.center_of_mass(labels > 0, labels, np.arange(1, len(present) + 1)))
    return image[None].astype(np.float32), labels, centroids


def _argmax_labels(probabilities, origins, shape):
    """Each pixel to the patch with the highest probability; background below 0.5."""
    k = probabilities.shape[-1]
    best = np.full(shape, 0.5, np.float32)
    labels = np.zeros(shape, np.int32)
    padded_best, padded_labels = np.pad(best, k), np.pad(labels, k)
    for i, (patch, (oy, ox)) in enumerate(zip(probabilities, origins, strict=True), 1):
        window = np.s_[oy + k : oy + 2 * k, ox + k : ox + 2 * k]
        wins = patch > padded_best[window]
        padded_best[window][wins] = patch[wins]
        padded_labels[window][wins] = i
    return padded_labels[k:-k, k:-k]


@pytest.mark.slow
def test_clumped_cells_are_segmented():
    image, truth, markers = _clumped_cells()
    config = CellCutterConfig(epochs=400, batch_area_px=(256, 256), stable_window_epochs=0, seed=0)
    network, history = train_cellcutter(image, markers, truth > 0, config)
    labels = _argmax_labels(*predict_patches(network, image, markers, config), truth.shape)
    ious = []
    for cell in range(1, truth.max() + 1):
        inside = truth == cell
        overlap = labels == cell  # patch i belongs to marker i, which sits in cell i
        ious.append((inside & overlap).sum() / (inside | overlap).sum())
    assert history[-1] < -400 and np.mean(ious) > 0.8, (history[-1], np.mean(ious))
