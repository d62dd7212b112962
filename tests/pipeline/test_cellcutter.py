"""The cellcutter step and command: markers, mask, training on the image, saved models,
the watershed baseline, and refusals of bad input."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
import tifffile
import torch
from subcell_test_phantoms import touching_cells

from subcell.cli import main
from subcell.core.errors import ConfigError, VolumeError
from subcell.core.metrics import instance_scores
from subcell.core.model import Volume
from subcell.pipeline.cellcutter import load_model, run_cellcutter
from subcell.plugins.cellcutter.markers import pair_markers
from subcell.registry import get_registry

VOXEL = (1000.0, 500.0, 500.0)
_CONVOLUTION = torch.nn.modules.conv._ConvNd
TINY_NETWORK = {
    "patch_px": 32,
    "position_sigma_px": 8,
    "channels": (4, 8),
    "strides": (2,),
    "epochs": 3,
    "batch_area_px": (96, 96),
}


@pytest.fixture(scope="module")
def cells():
    truth, cell, nucleus, centres = touching_cells(0, size=96, n_cells=8)
    return truth, cell.astype(np.float32), nucleus.astype(np.float32), centres


def _volume(cell, nucleus=None):
    data = cell[None, None] if nucleus is None else np.stack([cell, nucleus])[:, None]
    names = ["cell"] if nucleus is None else ["cell", "nucleus"]
    return Volume(data, VOXEL, channel_names=names)


def _method(name="cellcutter", **network):
    registry = get_registry()
    cls = registry.config_class("segmenter", name)
    markers = {"nucleus_diameter_px": (4.0, 10.0)}
    config = cls(markers=registry.config_class("segmenter", name)().markers.__class__(**markers))
    if name == "cellcutter":
        net = attrs.evolve(config.network, **(TINY_NETWORK | network))
        config = attrs.evolve(config, network=net)
    return config


def test_watershed_baseline_finds_every_cell(cells):
    truth, cell, nucleus, centres = cells
    result = run_cellcutter(
        _volume(cell), nuclei=_volume(nucleus), method_config=_method("marker_watershed")
    )
    assert len(result.markers) == len(centres)
    scores = instance_scores(truth[None], result.masks.instances)
    assert scores["n_predicted"] == len(centres)
    assert scores["mean_matched_iou"] >= 0.85
    assert scores["ap"]["0.50"] >= 0.8


def test_training_is_byte_identical_and_a_saved_model_reproduces_it(cells, tmp_path):
    _, cell, nucleus, _ = cells
    volume, nuclei = _volume(cell), _volume(nucleus)
    first = run_cellcutter(
        volume,
        tmp_path / "a.tif",
        nuclei=nuclei,
        method_config=_method(),
        save_model_to=tmp_path / "model",
    )
    second = run_cellcutter(volume, tmp_path / "b.tif", nuclei=nuclei, method_config=_method())
    assert first.history == second.history and len(first.history) == 3
    a, b = tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "b.tif")
    assert a.dtype == np.uint32 and np.array_equal(a, b)
    loaded = load_model(tmp_path / "model", get_registry())
    assert loaded.card["channel_names"] == ["cell", "nucleus"]
    assert loaded.card["method"]["network"]["patch_px"] == 32
    applied = run_cellcutter(volume, tmp_path / "c.tif", nuclei=nuclei, model=tmp_path / "model")
    assert applied.history == []
    assert np.array_equal(tifffile.imread(tmp_path / "c.tif"), a)
    provenance = json.loads((tmp_path / "c.tif.provenance.json").read_text())
    assert provenance["step"] == "cellcutter" and provenance["model"] == str(tmp_path / "model")


def test_an_image_smaller_than_a_patch_is_padded_not_refused(cells):
    _, cell, nucleus, _ = cells
    result = run_cellcutter(
        _volume(cell[:24, :24]),
        nuclei=_volume(nucleus[:24, :24]),
        markers=np.array([[12.0, 12.0]]),
        mask=np.ones((24, 24), bool),
        method_config=_method(),
    )
    assert result.masks.instances.shape == (1, 24, 24)


def test_bad_input_is_refused_with_one_line(cells, tmp_path):
    _, cell, nucleus, _ = cells
    with pytest.raises(VolumeError, match="same shape"):
        run_cellcutter(_volume(cell), nuclei=_volume(nucleus[:50]), method_config=_method())
    with pytest.raises(VolumeError, match="no nucleus markers found"):
        run_cellcutter(
            _volume(cell), nuclei=_volume(np.zeros_like(nucleus)), method_config=_method()
        )
    with pytest.raises(VolumeError, match="outside"):
        run_cellcutter(_volume(cell), markers=np.array([[10.0, 500.0]]), method_config=_method())
    with pytest.raises(ConfigError, match="with --model none is"):
        run_cellcutter(_volume(cell), model=tmp_path, save_model_to=tmp_path / "m")


def test_command_writes_labels_and_refuses_what_it_cannot_do(cells, tmp_path, capsys):
    _, cell, nucleus, centres = cells
    tifffile.imwrite(tmp_path / "cell.tif", cell)
    tifffile.imwrite(tmp_path / "nuclei.tif", nucleus)
    tifffile.imwrite(tmp_path / "small.tif", nucleus[:40])
    config = tmp_path / "method.yaml"
    config.write_text(
        "step: cellcutter\nmethod: {plugin: cellcutter, markers: {nucleus_diameter_px: [4, 10]},\n"
        "  network: {patch_px: 32, position_sigma_px: 8, channels: [4, 8], strides: [2],\n"
        "            batch_area_px: [96, 96]}}\n"
    )
    out = tmp_path / "labels.tif"
    args = [str(tmp_path / "cell.tif"), "--nuclei", str(tmp_path / "nuclei.tif")]
    status = main(
        ["cellcutter", *args, "--out", str(out), "--config", str(config), "--epochs", "2"]
    )
    assert status == 0
    assert f"from {len(centres)} markers" in capsys.readouterr().out
    assert tifffile.imread(out).shape == (96, 96)
    status = main(["cellcutter", *args, "--out", str(out), "--config", str(config), "--baseline"])
    assert status == 2 and "exists" in capsys.readouterr().err
    base = tmp_path / "base.tif"
    status = main(["cellcutter", *args, "--out", str(base), "--config", str(config), "--baseline"])
    assert status == 0 and len(np.unique(tifffile.imread(base))) - 1 == len(centres)
    status = main(["cellcutter", str(tmp_path / "cell.tif"), "--out", str(tmp_path / "x.tif")])
    err = capsys.readouterr().err
    assert status == 2 and "--nuclei" in err and "Traceback" not in err
    small = ["--nuclei", str(tmp_path / "small.tif"), "--out", str(tmp_path / "y.tif")]
    status = main(["cellcutter", str(tmp_path / "cell.tif"), *small])
    err = capsys.readouterr().err
    assert status == 2 and "same shape" in err and len(err.strip().splitlines()) == 1
    status = main(
        ["cellcutter", *args, "--out", str(tmp_path / "z.tif"), "--set", "method.lambda=1"]
    )
    assert status == 2 and "lambda" in capsys.readouterr().err


def test_synthetic_nuclei_give_markers_from_a_segmentation_of_the_cell_channels(cells):
    """Any segmentation method stands in for the synthetic-nucleus model: here Otsu on an
    image whose only whole-cell channel shows the nuclei, so the markers must be the
    centres of the true nuclei."""
    _, _, nucleus, centres = cells
    result = run_cellcutter(
        _volume(nucleus), synthetic_nuclei="otsu", method_config=_method("marker_watershed")
    )
    pairing = pair_markers(result.markers, centres, max_distance_px=3.0)
    assert pairing.false_negative_rate == 0 and pairing.false_positive_rate == 0


def test_fill_mask_gives_the_mask_to_patches_below_the_threshold(cells):
    # A network that says 0.3 everywhere: the paper's rule finds no cell at all, while
    # fill_mask hands the mask pixels to the patches and leaves the rest background.
    truth, cell, nucleus, centres = cells
    registry = get_registry()
    volume = _volume(cell, nucleus)
    mask = truth > 0
    labels = {}
    for fill in (False, True):
        segmenter = registry.create(
            "segmenter", "cellcutter", attrs.evolve(_method(), fill_mask=fill)
        )
        network = segmenter.build_network(2)
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.zero_()
            convolutions = [m for m in network.modules() if isinstance(m, _CONVOLUTION)]
            convolutions[-1].bias.fill_(float(np.log(0.3 / 0.7)))
        labels[fill] = segmenter.apply(network, volume, centres, mask).instances[0]
    assert not labels[False].any()
    # Mask pixels that no 32 px patch covers, or stray pieces of a cell, stay background.
    assert not (labels[True] > 0)[~mask].any()
    assert (labels[True] > 0).sum() >= 0.9 * mask.sum()
    assert len(np.unique(labels[True])) - 1 == len(centres)
