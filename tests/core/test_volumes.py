"""Volume mechanics: data checks, axis layouts, plain zarr arrays."""

import dask.array as da
import numpy as np
import pytest
import zarr

from subcell.core import volumes
from subcell.core.errors import VolumeError
from subcell.core.model import Volume
from subcell.core.volumes import check_volume, read_zarr_array, to_czyx

# ------------------------------------------------------------------ check_volume / to_czyx


def test_check_volume_rejects_nan_inf_and_empty():
    good = np.ones((1, 2, 4, 4), np.float32)
    assert check_volume(good, name="x") is good
    for bad in (np.nan, np.inf, -np.inf):
        arr = good.copy()
        arr[0, 1, 3, 2] = bad
        with pytest.raises(VolumeError, match="x: holds NaN or infinite"):
            check_volume(arr, name="x")
        lazy = da.from_array(arr, chunks=(1, 1, 2, 2))
        with pytest.raises(VolumeError, match="NaN"):
            check_volume(Volume(lazy, (1, 1, 1)), name="y")
    with pytest.raises(VolumeError, match="empty image, shape \\(0, 4\\)"):
        check_volume(np.zeros((0, 4)), name="e")
    check_volume(np.full((3, 3), 7, np.int64), name="ints are always finite")


def test_check_volume_scans_large_arrays_slab_by_slab(monkeypatch):
    monkeypatch.setattr(volumes, "_CHECK_BYTES", 64)  # 2 rows of 8 float32 per slab
    arr = np.zeros((9, 8), np.float32)
    check_volume(arr, name="ok")
    arr[8, 7] = np.nan  # in the last, partial slab
    with pytest.raises(VolumeError):
        check_volume(arr, name="last")


@pytest.mark.parametrize(
    ("axes", "shape", "expected_axes", "expected_shape"),
    [
        ("YX", (5, 6), "CZYX", (1, 1, 5, 6)),
        ("ZYX", (4, 5, 6), "CZYX", (1, 4, 5, 6)),
        ("CYX", (3, 5, 6), "CZYX", (3, 1, 5, 6)),
        ("YXC", (5, 6, 3), "CZYX", (3, 1, 5, 6)),
        ("ZCYX", (4, 3, 5, 6), "CZYX", (3, 4, 5, 6)),
        ("TZYX", (2, 4, 5, 6), "TCZYX", (2, 1, 4, 5, 6)),
        ("tczyx", (2, 3, 4, 5, 6), "TCZYX", (2, 3, 4, 5, 6)),
    ],
)
def test_to_czyx_layouts(axes, shape, expected_axes, expected_shape):
    arr = np.arange(np.prod(shape)).reshape(shape)
    out, layout = to_czyx(arr, axes)
    assert layout == expected_axes and out.shape == expected_shape
    lazy, _ = to_czyx(da.from_array(arr, chunks=2), axes)
    np.testing.assert_array_equal(lazy.compute(), out)


def test_to_czyx_moves_values_not_just_shape():
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[1, 2] = (10, 20, 30)
    out, _ = to_czyx(rgb, "YXC")
    assert [out[c, 0, 1, 2] for c in range(3)] == [10, 20, 30]


@pytest.mark.parametrize(
    ("axes", "shape"), [("YX", (2, 3, 4)), ("ZZX", (2, 3, 4)), ("ZYQ", (2, 3, 4))]
)
def test_to_czyx_errors_name_shape_and_layouts(axes, shape):
    with pytest.raises(VolumeError) as info:
        to_czyx(np.zeros(shape), axes)
    message = str(info.value)
    assert str(shape) in message and "TCZYX" in message and "\n" not in message


# ------------------------------------------------------------------ plain zarr arrays


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_read_zarr_array_plain(tmp_path, zarr_format):
    data = np.random.default_rng(3).random((4, 10, 12)).astype(np.float32)
    path = tmp_path / "plain.zarr"
    array = zarr.create_array(
        str(path), shape=data.shape, chunks=(2, 5, 6), dtype=data.dtype, zarr_format=zarr_format
    )
    array[:] = data
    vol = read_zarr_array(path, voxel_nm=(200, 40, 40))
    assert vol.axes == "CZYX" and vol.shape == (1, 4, 10, 12) and vol.voxel_nm == (200, 40, 40)
    assert isinstance(vol.data, da.Array)
    np.testing.assert_array_equal(vol.data.compute()[0], data)
    assert read_zarr_array(path, axes="CYX").shape == (4, 1, 10, 12)
    with pytest.raises(
        VolumeError, match=r"plain.zarr: cannot use an array of shape \(4, 10, 12\)"
    ):
        read_zarr_array(path, axes="YX")


def test_read_zarr_array_uses_dimension_names(tmp_path):
    path = tmp_path / "named.zarr"
    array = zarr.create_array(
        str(path), shape=(6, 7, 2), dtype=np.uint8, dimension_names=["y", "x", "c"]
    )
    array[:] = np.arange(84, dtype=np.uint8).reshape(6, 7, 2)
    vol = read_zarr_array(path)
    assert vol.shape == (2, 1, 6, 7) and vol.voxel_nm == (1.0, 1.0, 1.0)
    assert int(vol.data[1, 0, 0, 1].compute()) == 3
