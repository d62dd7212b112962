"""OME-Zarr images: 0.5 writing with labels and pyramids, reading 0.5 and 0.4."""

import json

import dask.array as da
import numpy as np
import pytest
import zarr

from subcell.core import omezarr
from subcell.core.errors import VolumeError
from subcell.core.model import Masks, Volume
from subcell.core.omezarr import read_labels, read_ome_zarr, write_ome_zarr


def _attrs(path):
    return json.loads((path / "zarr.json").read_text())["attributes"]


def _volume(shape=(2, 3, 20, 30), dtype=np.uint16, seed=0):
    data = np.random.default_rng(seed).integers(0, 4000, shape).astype(dtype)
    return Volume(data, (300.0, 65.0, 70.0), channel_names=("gfp", "rfp")[: shape[0]])


def _masks(shape=(3, 20, 30)):
    semantic = np.zeros((2,) + shape, np.uint8)
    semantic[0, :, 2:9, 3:11] = 1
    semantic[1, :, 5:14, 8:20] = 1  # overlaps class 0: stored as separate channels
    instances = np.zeros(shape, np.uint32)
    instances[:, 2:9, 3:11] = 7
    instances[:, 12:18, 20:28] = 70000  # beyond uint16
    return Masks(semantic, ("mito", "vesicle"), (300.0, 65.0, 70.0), instances)


# ------------------------------------------------------------------ OME-Zarr writing


def test_ome_zarr_metadata_follows_0_5(tmp_path):
    path = write_ome_zarr(_volume(), tmp_path / "img.ome.zarr", masks=_masks(), n_levels=2)
    root = json.loads((path / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    ome = root["attributes"]["ome"]
    assert ome["version"] == "0.5"
    (ms,) = ome["multiscales"]
    assert ms["axes"] == [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "nanometer"},
        {"name": "y", "type": "space", "unit": "nanometer"},
        {"name": "x", "type": "space", "unit": "nanometer"},
    ]
    assert [d["path"] for d in ms["datasets"]] == ["0", "1"]
    scales = [d["coordinateTransformations"] for d in ms["datasets"]]
    assert scales[0] == [{"type": "scale", "scale": [1.0, 300.0, 65.0, 70.0]}]
    assert scales[1] == [
        {"type": "scale", "scale": [1.0, 300.0, 130.0, 140.0]},
        # the 2x2 mean's centre lies half a level-0 pixel from its first pixel
        {"type": "translation", "translation": [0.0, 0.0, 32.5, 35.0]},
    ]
    assert [c["label"] for c in ome["omero"]["channels"]] == ["gfp", "rfp"]
    level0 = json.loads((path / "0" / "zarr.json").read_text())
    assert level0["dimension_names"] == ["c", "z", "y", "x"] and level0["shape"] == [2, 3, 20, 30]
    assert json.loads((path / "1" / "zarr.json").read_text())["shape"] == [2, 3, 10, 15]
    labels = _attrs(path / "labels")["ome"]
    assert labels == {"version": "0.5", "labels": ["mask", "instances"]}
    for name, dims in (("mask", ["c", "z", "y", "x"]), ("instances", ["z", "y", "x"])):
        label = _attrs(path / "labels" / name)["ome"]
        assert label["version"] == "0.5"
        assert label["image-label"]["source"] == {"image": "../../"}
        assert {"label-value": 0, "rgba": [0, 0, 0, 0]} in label["image-label"]["colors"]
        assert [a["name"] for a in label["multiscales"][0]["axes"]] == dims
        assert len(label["multiscales"][0]["datasets"]) == 2  # as many levels as the image
        assert (
            json.loads((path / "labels" / name / "0" / "zarr.json").read_text())["dimension_names"]
            == dims
        )


def test_ome_zarr_round_trip_exact_with_labels_and_attrs(tmp_path):
    vol, masks = _volume(), _masks()
    attrs = {"seed": np.int64(3), "config": {"pixel_nm": 65.0}, "where": tmp_path}
    path = write_ome_zarr(vol, tmp_path / "img.ome.zarr", masks=masks, attrs=attrs)
    back = read_ome_zarr(path)
    assert isinstance(back.data, da.Array)  # lazy
    np.testing.assert_array_equal(back.data.compute(), vol.data)
    assert back.data.dtype == np.uint16
    assert (back.axes, back.voxel_nm, back.channel_names) == ("CZYX", vol.voxel_nm, ("gfp", "rfp"))
    assert _attrs(path)["subcell"] == {
        "seed": 3,
        "config": {"pixel_nm": 65.0},
        "where": str(tmp_path),
    }
    got = read_labels(path)
    np.testing.assert_array_equal(got.semantic, masks.semantic)
    np.testing.assert_array_equal(got.instances, masks.instances)
    assert got.instances.dtype == np.uint32 and got.instances.max() == 70000
    assert got.class_names == ("mito", "vesicle") and got.voxel_nm == masks.voxel_nm


def test_time_series_round_trip_keeps_frame_interval(tmp_path):
    data = np.random.default_rng(1).random((3, 1, 2, 8, 8)).astype(np.float32)
    vol = Volume(data, (200, 50, 50), axes="TCZYX", frame_interval_s=0.25)
    path = write_ome_zarr(vol, tmp_path / "t.ome.zarr")
    axes = _attrs(path)["ome"]["multiscales"][0]["axes"]
    assert axes[0] == {"name": "t", "type": "time", "unit": "second"}
    back = read_ome_zarr(path)
    assert back.axes == "TCZYX" and back.frame_interval_s == 0.25
    np.testing.assert_array_equal(back.data.compute(), data)


def test_pyramid_levels_are_2x2_means(tmp_path):
    data = np.arange(2 * 9 * 11, dtype=np.uint16).reshape(1, 2, 9, 11) * 3
    path = write_ome_zarr(Volume(data, (100, 10, 10)), tmp_path / "p.ome.zarr", n_levels=3)
    level1 = read_ome_zarr(path, level=1)
    expected = data[..., :8, :10].reshape(1, 2, 4, 2, 5, 2).mean(axis=(3, 5))
    np.testing.assert_array_equal(level1.data.compute(), np.round(expected).astype(np.uint16))
    assert level1.voxel_nm == (100.0, 20.0, 20.0)
    level2 = read_ome_zarr(path, level=2)
    assert level2.shape == (1, 2, 2, 2) and level2.voxel_nm == (100.0, 40.0, 40.0)
    with pytest.raises(VolumeError, match="level 3 requested, the image has 3"):
        read_ome_zarr(path, level=3)


def test_dask_volume_larger_than_a_chunk_is_written_chunk_by_chunk(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.random((2, 5, 40, 36)).astype(np.float32)
    lazy = da.from_array(data, chunks=(1, 2, 16, 16))
    path = write_ome_zarr(Volume(lazy, (1, 1, 1)), tmp_path / "big.ome.zarr")
    array = zarr.open_array(str(path / "0"), mode="r")
    # One zarr chunk per dask chunk: no two tasks ever write into the same chunk.
    assert array.chunks == (1, 2, 16, 16)
    assert array.nchunks_initialized == 2 * 3 * 3 * 3
    np.testing.assert_array_equal(array[:], data)


def test_irregular_dask_chunks_are_made_regular(tmp_path):
    data = np.arange(1 * 1 * 10 * 12, dtype=np.int32).reshape(1, 1, 10, 12)
    lazy = da.from_array(data, chunks=((1,), (1,), (3, 5, 2), (4, 8)))
    path = write_ome_zarr(Volume(lazy, (1, 1, 1)), tmp_path / "irr.ome.zarr")
    array = zarr.open_array(str(path / "0"), mode="r")
    assert array.chunks == (1, 1, 5, 8)
    np.testing.assert_array_equal(array[:], data)


def test_explicit_chunks_are_capped_by_shape(tmp_path):
    path = write_ome_zarr(_volume(), tmp_path / "c.ome.zarr", chunks=(2, 8, 64))
    assert zarr.open_array(str(path / "0"), mode="r").chunks == (1, 2, 8, 30)


def test_nan_volume_is_refused_and_leaves_nothing(tmp_path):
    data = np.zeros((1, 1, 4, 4), np.float32)
    data[0, 0, 1, 1] = np.nan
    with pytest.raises(VolumeError, match="NaN"):
        write_ome_zarr(Volume(data, (1, 1, 1)), tmp_path / "nan.ome.zarr")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_no_final_path(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-write

    monkeypatch.setattr(omezarr, "_write_labels", boom)
    with pytest.raises(KeyboardInterrupt):
        write_ome_zarr(_volume(), tmp_path / "out.ome.zarr", masks=_masks())
    assert list(tmp_path.iterdir()) == []  # neither the output nor the temporary


def test_overwrite_replaces_only_zarr_outputs(tmp_path):
    path = write_ome_zarr(_volume(seed=1), tmp_path / "o.ome.zarr")
    second = _volume(seed=2)
    write_ome_zarr(second, path)
    np.testing.assert_array_equal(read_ome_zarr(path).data.compute(), second.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ome.zarr"]
    with pytest.raises(VolumeError, match="already exists"):
        write_ome_zarr(second, path, overwrite=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("precious")
    with pytest.raises(VolumeError, match="not a zarr hierarchy"):
        write_ome_zarr(second, other)
    assert (other / "keep.txt").read_text() == "precious"


def test_write_argument_errors(tmp_path):
    with pytest.raises(VolumeError, match="masks shape"):
        write_ome_zarr(_volume(), tmp_path / "m.ome.zarr", masks=_masks((3, 20, 29)))
    with pytest.raises(VolumeError, match="levels need Y and X >= 32"):
        write_ome_zarr(_volume(), tmp_path / "l.ome.zarr", n_levels=6)
    with pytest.raises(VolumeError, match="JSON"):
        write_ome_zarr(_volume(), tmp_path / "a.ome.zarr", attrs={"f": object()})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ reading others' files


def test_read_ome_zarr_0_4_on_zarr_v2_in_micrometres(tmp_path):
    path = tmp_path / "v04.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    data = np.arange(3 * 8 * 8, dtype=np.uint8).reshape(3, 8, 8)
    group.create_array("0", shape=data.shape, chunks=(1, 8, 8), dtype=data.dtype)[:] = data
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "z", "type": "space", "unit": "micrometer"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space"},  # no unit: micrometres by convention
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.1, 0.1]}],
                }
            ],
        }
    ]
    vol = read_ome_zarr(path)
    assert vol.axes == "CZYX" and vol.shape == (1, 3, 8, 8)
    assert vol.voxel_nm == pytest.approx((500.0, 100.0, 100.0))
    np.testing.assert_array_equal(vol.data.compute()[0], data)
    assert read_labels(path) is None


def test_read_labels_of_a_foreign_label_image(tmp_path):
    path = write_ome_zarr(_volume(), tmp_path / "f.ome.zarr")
    assert read_labels(path) is None
    labels = zarr.open_group(str(path), mode="a").create_group("labels")
    labels.attrs["ome"] = {"version": "0.5", "labels": ["cells"]}
    cells = labels.create_group("cells")
    values = np.zeros((3, 20, 30), np.uint16)
    values[:, 4:9, 4:9] = 5
    cells.create_array("0", shape=values.shape, chunks=values.shape, dtype=values.dtype)[:] = values
    cells.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
                "datasets": [
                    {
                        "path": "0",
                        "coordinateTransformations": [{"type": "scale", "scale": [300, 65, 70]}],
                    }
                ],
            }
        ],
        "image-label": {},
    }
    got = read_labels(path)
    assert got.class_names == ("cells",) and got.voxel_nm == (300.0, 65.0, 70.0)
    np.testing.assert_array_equal(got.instances, values)
    assert int(got.semantic.sum()) == 3 * 5 * 5


def test_read_errors_are_one_line_volume_errors(tmp_path):
    with pytest.raises(VolumeError, match="no such file"):
        read_ome_zarr(tmp_path / "missing.ome.zarr")
    (tmp_path / "junk.ome.zarr").mkdir()
    (tmp_path / "junk.ome.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(VolumeError, match="junk.ome.zarr") as info:
        read_ome_zarr(tmp_path / "junk.ome.zarr")
    assert "\n" not in str(info.value)
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(VolumeError, match="not an OME-Zarr image"):
        read_ome_zarr(tmp_path / "plain.zarr")
    assert plain is not None


def test_output_validates_with_ome_zarr_models_when_installed(tmp_path):
    models = pytest.importorskip("ome_zarr_models.v05.image")
    labels = pytest.importorskip("ome_zarr_models.v05.image_label")
    path = write_ome_zarr(_volume(), tmp_path / "v.ome.zarr", masks=_masks(), n_levels=2)
    models.Image.from_zarr(zarr.open_group(str(path), mode="r"))
    labels.ImageLabel.from_zarr(zarr.open_group(str(path / "labels" / "mask"), mode="r"))
