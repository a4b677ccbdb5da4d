"""The one rounding rule (datagate_pipelines/money.py): half away from zero, exact."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from datagate_pipelines.billing.money import (
    decimals_to_scaled,
    div_round_half_away,
    from_minor_units,
    mul_div_round_half_away,
    round_half_away,
    scaled_exactly,
    scaled_to_decimals,
    sum_segments,
    to_minor_units,
)

D = Decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2.345", "2.35"),
        ("-2.345", "-2.35"),
        ("2.3449999", "2.34"),
        ("0.005", "0.01"),
        ("-0.005", "-0.01"),
        ("-0.001", "0.00"),  # never a negative zero
        ("1E+3", "1000.00"),
        ("7", "7.00"),
        ("123456789012345678901234567890.125", "123456789012345678901234567890.13"),
    ],
)
def test_round_half_away(value, expected):
    assert str(round_half_away(D(value))) == expected


def test_floats_are_refused():
    with pytest.raises(TypeError):
        round_half_away(0.1)
    with pytest.raises(TypeError):
        to_minor_units(1.5)
    scaled, invalid = decimals_to_scaled(np.array([D("1.50"), 1.5, None, True], dtype=object), 2)
    assert scaled.tolist()[0] == 150 and invalid.tolist() == [False, True, True, True]


def test_minor_units_are_exact():
    assert to_minor_units(D("12.34")) == 1234
    assert to_minor_units(D("-0.5")) == -50
    assert to_minor_units(D("1.2345"), 4) == 12345
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        to_minor_units(D("1.234"))
    assert str(from_minor_units(-5)) == "-0.05"
    assert str(from_minor_units(10**30)) == "1" + "0" * 28 + ".00"


def test_integer_rounding_on_arrays():
    numerator = np.array([5, -5, 15, -15, 14, 0], dtype=np.int64)
    assert div_round_half_away(numerator, 10).tolist() == [1, -1, 2, -2, 1, 0]
    assert div_round_half_away(7, 2) == 4 and div_round_half_away(-7, 2) == -4
    with pytest.raises(ValueError):
        div_round_half_away(numerator, 0)


def test_products_that_overflow_int64_fall_back_to_python_ints():
    huge = np.array([10**15, 3], dtype=np.int64)
    out = mul_div_round_half_away([huge, huge, np.array([31, 31])], np.array([31, 31]) * 10**6)
    assert out.dtype == object and out.tolist() == [10**24, 0]
    small = mul_div_round_half_away([np.array([3]), np.array([5])], 2)
    assert small.dtype == np.int64 and small.tolist() == [8]


def test_segment_sums_and_decimal_columns():
    values = np.array([1, 2, 3, -4], dtype=np.int64)
    assert sum_segments(values, np.array([0, 2])).tolist() == [3, -1]
    assert sum_segments(np.array([2**62, 2**62], dtype=object), np.array([0])).tolist() == [2**63]
    assert [str(d) for d in scaled_to_decimals(np.array([1234, 0, -1]))] == [
        "12.34",
        "0.00",
        "-0.01",
    ]
    scaled, invalid = decimals_to_scaled(
        np.array([D("1.005"), D("-1.005")], dtype=object), 2, rounding=True
    )
    assert scaled.tolist() == [101, -101] and not invalid.any()


def test_scaled_exactly_uses_the_fewest_places_that_keep_every_value_whole():
    places, scaled = scaled_exactly([D("0.075"), D("1"), D("0.000600"), D("1E+2"), D("-0.5")])
    assert places == 6
    assert scaled == [75_000, 1_000_000, 600, 100_000_000, -500_000]
    assert [from_minor_units(n, places) for n in scaled] == [
        D("0.075"),
        D("1"),
        D("0.0006"),
        D("100"),
        D("-0.5"),
    ]
    assert scaled_exactly([D("12"), D("1E+3")]) == (0, [12, 1000])
    assert scaled_exactly([]) == (0, [])
