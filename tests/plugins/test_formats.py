"""Format plugins: TIFF, PNG, NumPy, zarr and OME-Zarr readers and writers."""

import json

import attrs
import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from subcell.core.errors import VolumeError
from subcell.core.kinds import Reader, Writer
from subcell.core.model import Masks, Volume
from subcell.core.omezarr import read_labels
from subcell.core.registration import check_registration
from subcell.plugins import formats
from subcell.plugins.formats import (
    NumpyReader,
    NumpyReaderConfig,
    OmeZarrReader,
    OmeZarrReaderConfig,
    OmeZarrWriter,
    OmeZarrWriterConfig,
    PngReader,
    PngReaderConfig,
    TiffReader,
    TiffReaderConfig,
    TiffWriter,
    TiffWriterConfig,
    ZarrReader,
    ZarrReaderConfig,
)
from subcell.plugins.formats import tiff as tiff_module

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 60000, (2, 3, 20, 30)).astype(np.uint16)
VOXEL = (250.0, 65.0, 70.0)


def _tiff(**kw):
    return TiffReader(TiffReaderConfig(**kw))


def _masks():
    semantic = (IMAGE > 30000).astype(np.uint8)
    instances = np.zeros(IMAGE.shape[1:], np.uint32)
    instances[:, 3:9, 4:12] = 9
    return Masks(semantic, ("a", "b"), VOXEL, instances)


# ------------------------------------------------------------------ registration


def test_hooks_register_well_formed_readers_and_writers():
    found = {}
    for hook, kind in ((formats.register_readers, "reader"), (formats.register_writers, "writer")):

        def register(name, config_cls, factory, description, kind=kind):
            check_registration(kind, name, config_cls, factory, description)
            found[(kind, name)] = factory(config_cls())

        hook(register=register)
    assert sorted(found) == [
        ("reader", "numpy"), ("reader", "ome_zarr"), ("reader", "png"), ("reader", "tiff"),
        ("reader", "zarr"), ("writer", "ome_zarr"), ("writer", "tiff"),
    ]  # fmt: skip
    for (kind, _), obj in found.items():
        assert isinstance(obj, Reader if kind == "reader" else Writer)


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (TiffReaderConfig, {"voxel_nm": (1, 0, 1)}, "voxel_nm"),
        (TiffReaderConfig, {"axes": "ZYQ"}, "axes"),
        (NumpyReaderConfig, {"lazy_above_mb": -1}, "lazy_above_mb"),
        (OmeZarrWriterConfig, {"chunk_zyx": (1, 0, 8)}, "chunk_zyx"),
        (OmeZarrWriterConfig, {"n_levels": 0}, "n_levels"),
        (TiffWriterConfig, {"compression": "jpeg"}, "compression"),
    ],
)
def test_config_errors_name_the_field(cls, kwargs, field):
    assert attrs.has(cls) and cls()  # every field has a default
    with pytest.raises((ValueError, TypeError), match=field):
        cls(**kwargs)


def test_can_read_picks_by_suffix_and_zarr_contents(tmp_path):
    ome = OmeZarrWriter(OmeZarrWriterConfig()).write(Volume(IMAGE, VOXEL), tmp_path / "i.zarr")
    plain = tmp_path / "p.zarr"
    zarr.create_array(str(plain), shape=(4, 4), dtype=np.uint8)
    readers = {
        "tiff": _tiff(),
        "png": PngReader(PngReaderConfig()),
        "numpy": NumpyReader(NumpyReaderConfig()),
        "zarr": ZarrReader(ZarrReaderConfig()),
        "ome_zarr": OmeZarrReader(OmeZarrReaderConfig()),
    }
    paths = {
        "tiff": tmp_path / "x.OME.TIF", "png": tmp_path / "x.png", "numpy": tmp_path / "x.npy",
        "zarr": plain, "ome_zarr": ome,
    }  # fmt: skip
    for name, path in paths.items():
        assert [n for n, r in readers.items() if r.can_read(path)] == [name]


# ------------------------------------------------------------------ TIFF


def test_tiff_imagej_round_trip_exact(tmp_path):
    vol = Volume(IMAGE, VOXEL, channel_names=("gfp", "rfp"))
    path = TiffWriter(TiffWriterConfig()).write(vol, tmp_path / "x.tif", attrs={"seed": 4})
    with tifffile.TiffFile(path) as tif:
        ij = tif.imagej_metadata
        assert tif.series[0].axes == "ZCYX"
        assert (ij["channels"], ij["slices"], ij["hyperstack"], ij["unit"]) == (2, 3, True, "um")
        assert ij["spacing"] == pytest.approx(0.25)
        x_res = tif.pages[0].tags["XResolution"].value
        assert x_res[1] / x_res[0] == pytest.approx(0.070)
        assert json.loads(ij["Info"])["subcell"]["attrs"] == {"seed": 4}
    back = _tiff().read(path)
    assert back.axes == "CZYX" and back.voxel_nm == pytest.approx(VOXEL)
    assert back.channel_names == ("gfp", "rfp") and back.data.dtype == np.uint16
    np.testing.assert_array_equal(back.data, IMAGE)


def test_tiff_writes_dask_time_series_plane_by_plane(tmp_path, monkeypatch):
    monkeypatch.setattr(tiff_module, "_planes", _counting(tiff_module._planes))
    data = RNG.random((2, 2, 3, 16, 16)).astype(np.float32)
    vol = Volume(
        da.from_array(data, chunks=(1, 1, 2, 8, 8)), VOXEL, axes="TCZYX", frame_interval_s=0.5
    )
    path = TiffWriter(TiffWriterConfig(compression="zlib")).write(vol, tmp_path / "t.tif")
    assert _counting.planes == 2 * 3 * 2  # every (t, z, c) plane was yielded once
    back = _tiff().read(path)
    assert back.axes == "TCZYX" and back.frame_interval_s == 0.5
    np.testing.assert_array_equal(back.data, data)


def _counting(planes):
    def wrapper(data):
        _counting.planes = 0
        for plane in planes(data):
            assert plane.shape == data.shape[-2:]
            _counting.planes += 1
            yield plane

    return wrapper


def test_tiff_writer_dtypes_and_masks(tmp_path):
    wide = np.zeros((1, 1, 4, 4), np.uint32)
    wide[0, 0, 0, :] = [0, 1, 70000, 2**24]  # beyond uint16, exact in float32
    path = TiffWriter(TiffWriterConfig()).write(
        Volume(wide, VOXEL),
        tmp_path / "w.tif",
        masks=Masks(np.ones((1, 1, 4, 4), np.uint8), ("m",), VOXEL, wide[0].astype(np.uint32)),
    )
    back = _tiff().read(path)
    assert back.data.dtype == np.float32
    np.testing.assert_array_equal(back.data, wide)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.tif", "w_instances.tif", "w_mask.tif"]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "w_instances.tif"), wide[0, 0])
    with pytest.raises(VolumeError, match="do not fit an ImageJ TIFF"):
        TiffWriter(TiffWriterConfig()).write(
            Volume(wide.astype(np.int64) - 2**40, VOXEL), tmp_path / "n.tif"
        )
    small = Volume(np.array([[[[3.25, 1e-3]]]]), VOXEL)  # float64 -> float32
    np.testing.assert_array_equal(
        _tiff().read(TiffWriter(TiffWriterConfig()).write(small, tmp_path / "f.tif")).data,
        small.data.astype(np.float32),
    )


def test_tiff_writer_masks_round_trip(tmp_path):
    masks = _masks()
    TiffWriter(TiffWriterConfig()).write(Volume(IMAGE, VOXEL), tmp_path / "x.tif", masks=masks)
    semantic = _tiff().read(tmp_path / "x_mask.tif")
    np.testing.assert_array_equal(semantic.data, masks.semantic)
    assert semantic.channel_names == ("a", "b") and semantic.voxel_nm == pytest.approx(VOXEL)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "x_instances.tif"), masks.instances)


def test_interrupted_tiff_write_leaves_nothing(tmp_path, monkeypatch):
    def partial_write(path, *args, **kwargs):
        path.write_bytes(b"II*\x00 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(tiff_module.tifffile, "imwrite", partial_write)
    with pytest.raises(KeyboardInterrupt):
        TiffWriter(TiffWriterConfig()).write(Volume(IMAGE, VOXEL), tmp_path / "x.tif")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_large_tiff_reads_lazily(tmp_path, compression):
    path = tmp_path / "big.tif"
    tifffile.imwrite(
        path, IMAGE, photometric="minisblack", compression=compression, metadata={"axes": "CZYX"}
    )
    vol = _tiff(lazy_above_mb=0).read(path)
    assert isinstance(vol.data, da.Array) and vol.axes == "CZYX"
    np.testing.assert_array_equal(vol.data.compute(), IMAGE)
    assert vol.voxel_nm == (1.0, 1.0, 1.0)  # no physical size in the file


def test_ome_tiff_physical_sizes_and_channel_names(tmp_path):
    path = tmp_path / "x.ome.tif"
    data = np.stack([IMAGE, IMAGE // 2], axis=2)  # (C, Z, T, Y, X)
    tifffile.imwrite(path, data, photometric="minisblack", ome=True, metadata={
        "axes": "CZTYX", "PhysicalSizeX": 0.07, "PhysicalSizeY": 0.065, "PhysicalSizeZ": 250,
        "PhysicalSizeZUnit": "nm", "Channel": {"Name": ["dapi", "gfp"]}, "TimeIncrement": 1.5,
    })  # fmt: skip
    vol = _tiff().read(path)
    assert vol.axes == "TCZYX" and vol.shape == (2, 2, 3, 20, 30)
    assert vol.voxel_nm == pytest.approx((250.0, 65.0, 70.0))
    assert vol.channel_names == ("dapi", "gfp") and vol.frame_interval_s == 1.5
    np.testing.assert_array_equal(vol.data, np.moveaxis(data, 2, 0))


def test_plain_tiff_resolution_units(tmp_path):
    cm, inch = tmp_path / "cm.tif", tmp_path / "inch.tif"
    tifffile.imwrite(
        cm, IMAGE[0], photometric="minisblack", resolution=(1e5, 2e5), resolutionunit="CENTIMETER"
    )
    tifffile.imwrite(inch, IMAGE[0, 0], resolution=(72, 72), resolutionunit="INCH")
    vol = _tiff(voxel_nm=(500, 40, 40)).read(cm)
    assert vol.axes == "CZYX" and vol.shape == (1, 3, 20, 30)  # the unnamed stack is z
    assert vol.voxel_nm == pytest.approx((500.0, 50.0, 100.0))
    assert _tiff(voxel_nm=(500, 40, 40)).read(inch).voxel_nm == (
        500.0,
        40.0,
        40.0,
    )  # dpi: not physical


def test_tiff_rgb_and_axes_override(tmp_path):
    rgb = np.stack([IMAGE[0, 0] % 256, IMAGE[1, 0] % 256, IMAGE[0, 1] % 256], -1).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    vol = _tiff().read(tmp_path / "rgb.tif")
    assert vol.shape == (3, 1, 20, 30)
    np.testing.assert_array_equal(vol.data[:, 0], np.moveaxis(rgb, -1, 0))
    tifffile.imwrite(tmp_path / "stack.tif", IMAGE[0], photometric="minisblack")
    assert _tiff(axes="TYX").read(tmp_path / "stack.tif").shape == (3, 1, 1, 20, 30)
    with pytest.raises(VolumeError, match="stack.tif: cannot use an array of shape"):
        _tiff(axes="YX").read(tmp_path / "stack.tif")


def test_tiff_bad_files_raise_volume_errors(tmp_path):
    nan = IMAGE[0].astype(np.float32)
    nan[1, 2, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan, photometric="minisblack")
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, IMAGE, photometric="minisblack")
    (tmp_path / "trunc.tif").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "garbage.tif").write_bytes(b"definitely not a tiff" * 10)
    cases = {
        "nan.tif": "NaN or infinite",
        "trunc.tif": "truncated",
        "garbage.tif": "cannot read TIFF",
        "missing.tif": "no such file",
    }
    for name, message in cases.items():
        for reader in (_tiff(), _tiff(lazy_above_mb=0)):
            with pytest.raises(VolumeError, match=message) as info:
                reader.read(tmp_path / name)
            assert name in str(info.value) and "\n" not in str(info.value)
    assert _tiff(check_finite=False).read(tmp_path / "nan.tif").shape == (1, 3, 20, 30)


# ------------------------------------------------------------------ PNG


def test_png_8_and_16_bit_grey_exact(tmp_path):
    for dtype in (np.uint8, np.uint16):
        data = (IMAGE[0, 0] % np.iinfo(dtype).max).astype(dtype)
        Image.fromarray(data).save(tmp_path / "g.png")
        vol = PngReader(PngReaderConfig(voxel_nm=(1, 80, 80))).read(tmp_path / "g.png")
        assert vol.shape == (1, 1, 20, 30) and vol.data.dtype == dtype
        assert vol.voxel_nm == (1.0, 80.0, 80.0)
        np.testing.assert_array_equal(vol.data[0, 0], data)


def test_png_rgb_identical_channels_become_one(tmp_path):
    grey = (IMAGE[0, 0] % 256).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "same.png")
    Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 255)], -1)).save(
        tmp_path / "rgba.png"
    )
    for name in ("same.png", "rgba.png"):
        vol = PngReader(PngReaderConfig()).read(tmp_path / name)
        assert vol.shape == (1, 1, 20, 30)
        np.testing.assert_array_equal(vol.data[0, 0], grey)
    kept = PngReader(PngReaderConfig(merge_identical_rgb=False)).read(tmp_path / "same.png")
    assert kept.shape == (3, 1, 20, 30)
    colour = np.stack([grey, 255 - grey, grey // 2], -1)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    vol = PngReader(PngReaderConfig()).read(tmp_path / "colour.png")
    np.testing.assert_array_equal(vol.data[:, 0], np.moveaxis(colour, -1, 0))


def test_png_bad_files(tmp_path):
    Image.fromarray(IMAGE[0, 0]).save(tmp_path / "g.png")
    data = (tmp_path / "g.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG not really")
    tifffile.imwrite(tmp_path / "tiff.png", IMAGE[0, 0])
    for name in ("trunc.png", "garbage.png", "tiff.png", "missing.png"):
        with pytest.raises(VolumeError, match=name):
            PngReader(PngReaderConfig()).read(tmp_path / name)


# ------------------------------------------------------------------ NumPy


def test_npy_round_trip_axes_and_laziness(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, IMAGE)
    vol = NumpyReader(NumpyReaderConfig(voxel_nm=VOXEL)).read(path)
    assert type(vol.data) is np.ndarray and vol.axes == "CZYX" and vol.voxel_nm == VOXEL
    np.testing.assert_array_equal(vol.data, IMAGE)
    lazy = NumpyReader(NumpyReaderConfig(lazy_above_mb=0)).read(path)
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_array_equal(lazy.data.compute(), IMAGE)
    np.save(path, IMAGE[0].transpose(1, 2, 0))  # (Y, X, C)
    vol = NumpyReader(NumpyReaderConfig(axes="YXC")).read(path)
    np.testing.assert_array_equal(vol.data[:, 0], IMAGE[0])


def test_npy_bad_files(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    nan = np.zeros((4, 4))
    nan[2, 2] = np.inf
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "good.npy", IMAGE)
    data = (tmp_path / "good.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(data[: len(data) // 2])
    (tmp_path / "six.npy").write_bytes(b"")
    np.save(tmp_path / "6d.npy", np.zeros((1,) * 6))
    cases = {
        "obj.npy": "cannot read",
        "nan.npy": "NaN",
        "trunc.npy": "cannot read",
        "six.npy": "cannot read",
        "6d.npy": "accepted layouts",
        "missing.npy": "no such file",
    }
    for name, message in cases.items():
        with pytest.raises(VolumeError, match=message) as info:
            NumpyReader(NumpyReaderConfig()).read(tmp_path / name)
        assert name in str(info.value)


# ------------------------------------------------------------------ zarr and OME-Zarr


def test_zarr_reader_plain_array(tmp_path):
    path = tmp_path / "a.zarr"
    zarr.create_array(str(path), shape=IMAGE.shape, chunks=(1, 1, 10, 10), dtype=IMAGE.dtype)[:] = (
        IMAGE
    )
    vol = ZarrReader(ZarrReaderConfig(voxel_nm=VOXEL)).read(path)
    assert isinstance(vol.data, da.Array) and vol.axes == "CZYX" and vol.voxel_nm == VOXEL
    np.testing.assert_array_equal(vol.data.compute(), IMAGE)
    nan = tmp_path / "nan.zarr"
    zarr.create_array(str(nan), shape=(4, 4), dtype=np.float32, fill_value=np.nan)
    with pytest.raises(VolumeError, match="nan.zarr: holds NaN"):
        ZarrReader(ZarrReaderConfig()).read(nan)
    with pytest.raises(VolumeError, match="no such file"):
        ZarrReader(ZarrReaderConfig()).read(tmp_path / "missing.zarr")


def test_ome_zarr_writer_and_reader_plugins(tmp_path):
    masks = _masks()
    vol = Volume(da.from_array(IMAGE, chunks=(1, 3, 10, 10)), VOXEL, channel_names=("x", "y"))
    writer = OmeZarrWriter(OmeZarrWriterConfig(n_levels=2, chunk_zyx=(2, 8, 16)))
    path = writer.write(vol, tmp_path / "o.ome.zarr", masks=masks, attrs={"run": "r1"})
    assert zarr.open_array(str(path / "0"), mode="r").chunks == (1, 2, 8, 16)
    back = OmeZarrReader(OmeZarrReaderConfig()).read(path)
    np.testing.assert_array_equal(back.data.compute(), IMAGE)
    assert back.voxel_nm == VOXEL and back.channel_names == ("x", "y")
    coarse = OmeZarrReader(OmeZarrReaderConfig(level=1)).read(path)
    assert coarse.shape == (2, 3, 10, 15) and coarse.voxel_nm == (250.0, 130.0, 140.0)
    got = read_labels(path)
    np.testing.assert_array_equal(got.semantic, masks.semantic)
    np.testing.assert_array_equal(got.instances, masks.instances)
