"""Shared attrs validators and converters: ranges, intervals, fractions."""

import attrs
import pytest

from subcell.core.validators import fraction, range_field, to_floats, to_ints, value_range, within


@attrs.frozen(kw_only=True)
class _Config:
    count: tuple[int, int] = range_field((1, 2), integer=True)
    size_nm: tuple[float, float] = range_field((10.0, 20.0), positive=True)
    snr: tuple[float, float] | None = attrs.field(
        default=None, validator=value_range(positive=True, optional=True)
    )
    share: float = attrs.field(default=0.5, validator=fraction)
    qe: float = attrs.field(default=1.0, validator=within(0, 1, low_open=True))


def test_converters_make_tuples_of_the_right_type():
    assert to_floats([1, "2.5"]) == (1.0, 2.5) and isinstance(to_floats([1])[0], float)
    assert to_ints([3.9, "4"]) == (3, 4)
    cfg = _Config(count=[0, 5], size_nm=[1, 2])
    assert cfg.count == (0, 5) and type(cfg.count[0]) is int
    assert cfg.size_nm == (1.0, 2.0) and type(cfg.size_nm[0]) is float


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": (3, 1)}, "'count' is an empty range (low > high), got [3, 1]"),
        ({"count": (-1, 1)}, "'count' must not be negative, got [-1, 1]"),
        ({"count": (1, 2, 3)}, "'count' must be a range [low, high], got [1, 2, 3]"),
        ({"size_nm": (0, 3)}, "'size_nm' must be positive, got [0.0, 3.0]"),
        ({"snr": (0, 3)}, "'snr' must be positive, got [0, 3]"),
        ({"share": 1.01}, "'share' must be in [0, 1], got 1.01"),
        ({"share": -0.2}, "'share' must be in [0, 1], got -0.2"),
        ({"qe": 0.0}, "'qe' must be in (0, 1], got 0.0"),
    ],
)
def test_bad_values_name_the_field(kwargs, message):
    with pytest.raises(ValueError) as info:
        _Config(**kwargs)
    assert str(info.value) == message


def test_edges_are_accepted():
    cfg = _Config(count=(0, 0), size_nm=(1e-9, 1e-9), snr=(2, 2), share=1.0, qe=1.0)
    assert cfg.count == (0, 0) and cfg.snr == (2, 2)
    assert _Config(share=0.0).share == 0.0


def test_optional_range_lets_none_pass_but_a_plain_one_does_not():
    assert _Config(snr=None).snr is None
    check = value_range()
    with pytest.raises(TypeError):
        check(None, attrs.fields(_Config).count, None)
