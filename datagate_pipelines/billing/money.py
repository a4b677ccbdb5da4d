"""Money: exact amounts as `Decimal` or integer minor units, and the one rounding rule.

docs/billing.md: amounts are rounded to cents *half away from zero* (Python's ``ROUND_HALF_UP``),
once, at the end, with exact arithmetic throughout — never binary floats. Everything in the
project that rounds money goes through this module:

- scalars: `round_half_away` (Decimal in, Decimal out), `to_minor_units` / `from_minor_units`
  (exact conversions between Decimal and scaled integers);
- vectors: `div_round_half_away` and `mul_div_round_half_away` compute the same rule with
  integer arithmetic on numpy arrays (int64, or object arrays of Python ints when int64
  could overflow), `decimals_to_scaled` / `scaled_to_decimals` convert whole columns.

Floats are refused everywhere (a `TypeError` for scalars, an invalid value in a column): a
float has already lost the cents.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_HALF_UP, Context, Decimal
from itertools import repeat

import numpy as np
import pandas as pd

CENT_PLACES = 2
# A context that never rounds: arithmetic in it is exact (whatever the thread's context).
EXACT_CONTEXT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_UP)
_EXACT = EXACT_CONTEXT
# |values| below this fit int64 with room for the 2 × remainder in the rounding step.
_INT64_SAFE = float(2**62)


def _check_decimal(x: object, what: str = "amount") -> Decimal:
    if isinstance(x, bool) or not isinstance(x, Decimal | int):
        raise TypeError(f"{what} must be a Decimal or int, got {type(x).__name__} {x!r}")
    value = Decimal(x)
    if not value.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value}")
    return value


def _scaled_half_away(value: Decimal, places: int) -> int:
    """value × 10**places rounded to an integer, halves away from zero (the scalar rule)."""
    scaled = value.scaleb(places, context=_EXACT)
    return int(scaled.to_integral_value(rounding=ROUND_HALF_UP, context=_EXACT))


def round_half_away(x: Decimal, places: int = CENT_PLACES) -> Decimal:
    """Round `x` to `places` decimals, halves away from zero (ROUND_HALF_UP): 2.345 → 2.35,
    -2.345 → -2.35, -0.001 → 0.00 (never a negative zero). Exact for any size of `x`; the
    result always has exactly `places` decimals."""
    if places < 0:
        raise ValueError("places must be >= 0")
    return from_minor_units(_scaled_half_away(_check_decimal(x), places), places)


def to_minor_units(x: Decimal, places: int = CENT_PLACES) -> int:
    """`x` × 10**places as an int, exactly. Raises ValueError when `x` has more than `places`
    significant decimals (round first with `round_half_away` if that is what you mean)."""
    value = _check_decimal(x)
    scaled = value.scaleb(places, context=_EXACT)
    if scaled != scaled.to_integral_value(context=_EXACT):
        raise ValueError(f"{value} has more than {places} decimal places")
    return int(scaled)


def scaled_exactly(values: list[Decimal]) -> tuple[int, list[int]]:
    """The fewest decimal places at which every value (finite Decimals) is a whole number,
    and the values × 10**places as ints: exact, with no rounding to check."""
    places = max([0, *(-value.as_tuple().exponent for value in values)])
    return places, [int(value.scaleb(places, context=_EXACT)) for value in values]


def from_minor_units(n: int, places: int = CENT_PLACES) -> Decimal:
    """The Decimal n × 10**-places, exactly, with exactly `places` decimals (1234 → 12.34)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise TypeError(f"minor units must be an int, got {type(n).__name__} {n!r}")
    return Decimal(int(n)).scaleb(-places, context=_EXACT)


def div_round_half_away(numerator, denominator):
    """numerator / denominator rounded to an integer, halves away from zero, integers only.

    `numerator`: an int, an int64 array, or an object array of Python ints; `denominator`:
    a positive int or array of the same kinds. For int64 input the caller guarantees
    |numerator| < 2**62 and denominator < 2**61 (`mul_div_round_half_away` checks this).
    """
    if np.ndim(numerator) == 0 and np.ndim(denominator) == 0:
        numerator, denominator = int(numerator), int(denominator)
        if denominator <= 0:
            raise ValueError("denominator must be positive")
        quotient, remainder = divmod(abs(numerator), denominator)
        quotient += 2 * remainder >= denominator
        return -quotient if numerator < 0 else quotient
    if np.any(np.asarray(denominator) <= 0):
        raise ValueError("denominator must be positive")
    if isinstance(numerator, np.ndarray) and numerator.dtype == np.int64:
        return _div_round_half_away_int64(numerator, denominator)
    negative = numerator < 0
    magnitude = np.where(negative, -numerator, numerator)
    quotient = magnitude // denominator
    remainder = magnitude - quotient * denominator
    quotient = np.where(2 * remainder >= denominator, quotient + 1, quotient)
    result = np.where(negative, -quotient, quotient)
    if result.dtype == object:
        return result
    return result.astype(np.int64, copy=False)


def _div_round_half_away_int64(numerator: np.ndarray, denominator) -> np.ndarray:
    """`div_round_half_away` for int64 arrays, with few temporaries (they are the cost at a
    million rows): |n| // d, plus one where twice the remainder reaches d, signed back."""
    negative = numerator < 0
    magnitude = np.abs(numerator)
    quotient, remainder = np.divmod(magnitude, denominator)
    del magnitude
    remainder *= 2
    quotient += remainder >= denominator
    del remainder
    np.negative(quotient, out=quotient, where=negative)
    return quotient


def _magnitude_bound(values: np.ndarray) -> np.ndarray:
    """|values| as float64, for overflow checks only (inf when a Python int is too big)."""
    try:
        return np.abs(values.astype(np.float64))
    except OverflowError:
        return np.array(
            [abs(float(v)) if abs(v) < 2**1000 else np.inf for v in values], dtype=np.float64
        )


def _largest_magnitude(values: np.ndarray) -> float:
    """The largest |value| of an integer array (no temporary per row)."""
    if len(values) == 0:
        return 0.0
    return float(max(abs(int(values.min())), abs(int(values.max()))))


def as_int64_if_fits(values: np.ndarray) -> np.ndarray:
    """An object array of Python ints as int64 when every value fits, else unchanged."""
    if values.dtype != object:
        return values
    if len(values) == 0 or bool((_magnitude_bound(values) < _INT64_SAFE).all()):
        return values.astype(np.int64)
    return values


def _fits_int64(factors: Sequence[np.ndarray], denominators: np.ndarray) -> bool:
    """True when every row's product and its rounding fit int64, judged from each column's
    largest magnitude (no per-row work: the usual case, quantities and prices of a few
    digits)."""
    arrays = [*factors, denominators]
    if any(a.dtype == object or not np.issubdtype(a.dtype, np.integer) for a in arrays):
        return False
    if len(denominators) == 0:
        return True
    bound = 4.0  # the rounding step doubles a remainder
    for array in arrays:
        bound *= _largest_magnitude(array)
    return bound < _INT64_SAFE


def mul_div_round_half_away(factors: Sequence[np.ndarray], denominator) -> np.ndarray:
    """Row by row, round_half_away(product(factors) / denominator) to an integer, exactly.

    Rows whose product could overflow int64 are computed with Python ints (object arrays);
    the result is int64 when every value fits, else an object array of Python ints.
    """
    n = len(factors[0])
    denominators = np.broadcast_to(np.asarray(denominator), (n,))
    if _fits_int64(factors, denominators):
        product = factors[0].astype(np.int64)  # a copy: multiplied in place below
        for factor in factors[1:]:
            product *= factor
        return div_round_half_away(product, denominators.astype(np.int64, copy=False))
    bound = _magnitude_bound(denominators) * 4  # the rounding step doubles a remainder
    product_bound = np.ones(n, dtype=np.float64)
    safe = bound < _INT64_SAFE
    for factor in factors:
        factor_bound = _magnitude_bound(factor)
        safe &= factor_bound < _INT64_SAFE  # a zero factor must not hide a huge one
        product_bound *= factor_bound
    safe &= product_bound < _INT64_SAFE
    if safe.all() and all(f.dtype != object for f in factors) and denominators.dtype != object:
        product = np.ones(n, dtype=np.int64)
        for factor in factors:
            product = product * factor.astype(np.int64, copy=False)
        return div_round_half_away(product, denominators.astype(np.int64, copy=False))
    result = np.empty(n, dtype=object)
    if safe.any():
        product = np.ones(int(safe.sum()), dtype=np.int64)
        for factor in factors:
            product = product * factor[safe].astype(np.int64)
        quotient = div_round_half_away(product, denominators[safe].astype(np.int64))
        result[safe] = quotient.astype(object)
    unsafe = ~safe
    if unsafe.any():
        product = np.ones(int(unsafe.sum()), dtype=object)
        for factor in factors:
            product = product * factor[unsafe].astype(object)
        quotient = div_round_half_away(product, denominators[unsafe].astype(object))
        result[unsafe] = [int(q) for q in quotient]
    return as_int64_if_fits(result)


def sum_segments(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Exact sums of consecutive segments of `values` beginning at `starts` (int64 when the
    sums cannot overflow, else Python ints)."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    if values.dtype != object and _largest_magnitude(values) * len(values) < _INT64_SAFE:
        # No partial sum can exceed n × the largest magnitude: int64 is exact.
        return np.add.reduceat(values.astype(np.int64, copy=False), starts)
    sums = np.add.reduceat(values.astype(object), starts)
    return as_int64_if_fits(np.array([int(s) for s in sums], dtype=object))


def decimals_to_scaled(
    values: np.ndarray | pd.Series, places: int, *, rounding: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Convert a column of Decimals (ints allowed) to integers × 10**places.

    Returns (scaled, invalid): `invalid` marks missing values, non-numbers (floats
    included) and — unless `rounding` — values with more than `places` decimals; their
    scaled value is 0. With `rounding`, values are rounded half away from zero first.
    Equal values are converted once (see `_equal_values`).
    """
    array = np.asarray(values, dtype=object)
    if len(array) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    if pd.api.types.infer_dtype(array, skipna=True) in ("decimal", "integer"):
        codes, uniques = _equal_values(array)
    else:  # mixed types: floats compare equal to Decimals, so never let them share a code
        codes, uniques = np.arange(len(array)), array
    scaled_uniques, invalid_uniques = _scale_values(uniques.tolist(), places, rounding)
    # A last slot for code -1 (missing): 0, invalid.
    scaled = as_int64_if_fits(np.append(scaled_uniques, 0).astype(object))[codes]
    invalid = np.append(invalid_uniques, True)[codes]
    return scaled, invalid


def _equal_values(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group a column of Decimals (or ints) by value: a code per row (-1: missing) and one
    of the group's objects per code. Values with one code are equal.

    Hashing a Decimal costs several times more than using it (the first time: the hash is
    then cached on the object). A column that shares a few objects among its rows (a cache
    of prices) is grouped by hash, each object hashed once. A column of distinct objects
    (as read from the database) is grouped by float value instead, each row then checked
    to equal its group's object exactly; a row that does not (two values closer than a
    float can tell) gets a group of its own.
    """
    n = len(array)
    if _shares_objects(array):
        try:
            return pd.factorize(array)
        except TypeError:  # a signalling NaN cannot be hashed
            return np.arange(n), array
    approx = _approximate(array)
    if approx is None:
        return np.arange(n), array  # each row on its own: slow, exact
    codes, uniques = pd.factorize(approx)  # NaN (missing) → -1
    objects = array[_a_row_of_each(codes, len(uniques))]
    exact = codes < 0
    if len(objects):
        exact |= array == objects[np.maximum(codes, 0)]
    if exact.all():
        return codes, objects
    loose = np.flatnonzero(~exact)
    codes = codes.copy()
    codes[loose] = len(objects) + np.arange(len(loose))
    return codes, np.concatenate([objects, array[loose]])


def _shares_objects(array: np.ndarray, sample: int = 16384) -> bool:
    """True when the first rows hold at most half as many objects as rows."""
    head = array[:sample].tolist()
    return 2 * len(set(map(id, head))) <= len(head)


def _a_row_of_each(codes: np.ndarray, count: int) -> np.ndarray:
    """For each code 0..count-1, a row that has it."""
    rows = np.zeros(count, dtype=np.int64)
    present = codes >= 0
    rows[codes[present]] = np.flatnonzero(present)
    return rows


def _approximate(array: np.ndarray) -> np.ndarray | None:
    """The values as floats (NaN where missing), or None when some cannot be (a signalling
    NaN, an int beyond float range)."""
    try:
        return array.astype(np.float64)
    except TypeError:  # None among the numbers?
        present = ~pd.isna(array)
        inner = None if present.all() else _approximate(array[present])
        if inner is None:
            return None
        approx = np.full(len(array), np.nan)
        approx[present] = inner
        return approx
    except (ValueError, OverflowError):
        return None


def _scale_values(values: list, places: int, rounding: bool) -> tuple[np.ndarray, np.ndarray]:
    """`decimals_to_scaled` for distinct values: (scaled Python ints, invalid)."""
    n = len(values)
    if set(map(type, values)) == {Decimal} and all(map(Decimal.is_finite, values)):
        # The usual case, with no Python-level loop (usage amounts are mostly distinct).
        scaled = list(map(_EXACT.scaleb, values, repeat(places)))
        if rounding:  # the exact context rounds half away from zero
            whole = list(map(int, map(_EXACT.to_integral_value, scaled)))
            invalid = np.zeros(n, dtype=bool)
        else:  # int() truncates: it equals `scaled` only if no decimal was left
            whole = list(map(int, scaled))
            invalid = np.fromiter(map(operator.ne, whole, scaled), dtype=bool, count=n)
        out = np.fromiter(whole, dtype=object, count=n)
        out[invalid] = 0  # more decimals than allowed: refused, not rounded
        return out, invalid
    out = np.zeros(n, dtype=object)
    invalid = np.zeros(n, dtype=bool)
    for i, value in enumerate(values):
        if type(value) is int:
            out[i] = value * 10**places
        elif type(value) is not Decimal or not value.is_finite():
            invalid[i] = True
        elif rounding:
            out[i] = _scaled_half_away(value, places)
        else:
            scaled = value.scaleb(places, context=_EXACT)
            invalid[i] = int(scaled) != scaled
            out[i] = 0 if invalid[i] else int(scaled)
    return out, invalid


def scaled_to_decimals(values: np.ndarray, places: int = CENT_PLACES) -> np.ndarray:
    """Integers × 10**-places as an object array of Decimals with exactly `places` decimals."""
    return scaled_columns_to_decimals([values], places)[0]


def scaled_columns_to_decimals(
    columns: Sequence[np.ndarray], places: int = CENT_PLACES
) -> list[np.ndarray]:
    """`scaled_to_decimals` for several columns at once. Equal values share one Decimal
    object, built once: building Decimals is the costly part, and amounts, taxes and
    subtotals repeat each other's values."""
    sizes = [len(column) for column in columns]
    joined = np.concatenate([np.asarray(column) for column in columns])
    if len(joined) == 0:
        return [np.empty(0, dtype=object) for _ in columns]
    codes, uniques = pd.factorize(joined)
    unit = Decimal((0, (1,), -places))
    # n × 0.01 in the exact context: the fastest exact way to build each Decimal.
    made = map(_EXACT.multiply, uniques.tolist(), repeat(unit))
    decimals = np.fromiter(made, dtype=object, count=len(uniques))[codes]
    return np.split(decimals, np.cumsum(sizes)[:-1])
