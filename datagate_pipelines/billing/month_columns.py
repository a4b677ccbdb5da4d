"""Columns of dates as month indexes and days, for a million products at once (numpy).

The per-value arithmetic (month index, days in a month) is periods.py's; this module applies
it to whole columns, converting each distinct value once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import pandas as pd

from datagate_pipelines.billing.periods import (
    as_date,
    days_in_month,
    month_from_index,
    month_index,
)

_EPOCH_MONTH = 1970 * 12  # the month index of 1970-01, the placeholder date's month


@dataclass(frozen=True)
class DateColumn:
    """A column of dates, each distinct value converted once (columns repeat few dates).

    Per row, computed when first asked for: the month index and day of month (1970-01-01
    where the value is missing or not a date), and whether it is missing (None/NaT) or
    invalid (not a date).
    """

    codes: np.ndarray  # row → distinct value; -1: missing
    days: list[date | None]  # each distinct value as a date (None: not a date)

    @cached_property
    def month(self) -> np.ndarray:
        return self._per_value([month_index(d) for d in self._dates()], _EPOCH_MONTH)

    @cached_property
    def day(self) -> np.ndarray:
        return self._per_value([d.day for d in self._dates()], 1)

    @cached_property
    def missing(self) -> np.ndarray:
        return self.codes < 0

    @cached_property
    def invalid(self) -> np.ndarray:
        bad = np.array([d is None for d in self.days] + [False], dtype=bool)
        return bad[self.codes]

    @property
    def day_key(self) -> np.ndarray:
        """An integer per row that orders rows like their dates."""
        return self.month * 32 + self.day

    def in_month(self, index: int) -> np.ndarray:
        """Which rows fall in the month with this month index."""
        return self.month == index

    def complete(self) -> bool:
        """Every row holds a date (none missing or invalid)."""
        return not (self.missing.any() or self.invalid.any())

    def month_range(self) -> tuple[int, int]:
        """The month indexes of the earliest and the latest date (the column is complete
        and not empty)."""
        months = [month_index(d) for d in self.days]
        return min(months), max(months)

    def date(self, row: int) -> date | None:
        """Row `row` as a `datetime.date` (None when missing or not a date)."""
        code = self.codes[row]
        return None if code < 0 else self.days[code]

    def _dates(self) -> list[date]:
        placeholder = date(1970, 1, 1)
        return [placeholder if d is None else d for d in self.days]

    def _per_value(self, values: list[int], placeholder: int) -> np.ndarray:
        # One slot per distinct value, then the placeholder that code -1 (missing) picks.
        return np.array([*values, placeholder], dtype=np.int64)[self.codes]


class Datetime64Column:
    """A datetime64 column (`DateColumn`'s interface; no value can be invalid, NaT is
    missing), read as day numbers. The month and day of every day in the column's range are
    computed once and looked up per row. Fresh memory is costly at a million rows (each new
    page is a fault), so temporaries are few and reused."""

    def __init__(self, values: np.ndarray):
        unit, count = np.datetime_data(values.dtype)
        self._ticks = values.view(np.int64)
        self._ticks_per_day = int(np.timedelta64(1, "D") // np.timedelta64(count, unit))
        self._offsets: np.ndarray | None = None  # day number - self._first_day, per row
        self._first_day = 0

    def _day_offsets(self) -> np.ndarray:
        if self._offsets is None:
            offsets = self._ticks // self._ticks_per_day
            if self.missing.any():
                offsets[self.missing] = 0  # 1970-01-01, as DateColumn's placeholder
            self._first_day = int(offsets.min()) if len(offsets) else 0
            offsets -= self._first_day
            self._offsets = offsets
        return self._offsets

    def _per_day(self, of_day) -> np.ndarray:
        """of_day(datetime64[D] array) for each row, computed once per day of the range."""
        offsets = self._day_offsets()
        if len(offsets) == 0:
            return np.zeros(0, dtype=np.int64)
        span = int(offsets.max()) + 1
        # int32 per row (months and days fit): half the fresh memory of int64.
        if span > 4 * len(offsets) + 100_000:  # sparse: once per distinct day
            codes, distinct = pd.factorize(offsets)
            days = (distinct + self._first_day).astype("datetime64[D]")
            return of_day(days).astype(np.int32)[codes]
        each_day = np.arange(self._first_day, self._first_day + span).astype("datetime64[D]")
        return of_day(each_day).astype(np.int32)[offsets]

    @cached_property
    def missing(self) -> np.ndarray:
        return self._ticks == _NAT

    @cached_property
    def invalid(self) -> np.ndarray:
        return np.zeros(len(self._ticks), dtype=bool)

    def complete(self) -> bool:
        """No NaT (the smallest int64: one pass, no per-row temporary)."""
        return len(self._ticks) == 0 or int(self._ticks.min()) != _NAT

    def month_range(self) -> tuple[int, int]:
        """The month indexes of the earliest and the latest date (the column is complete
        and not empty)."""
        first, last = int(self._ticks.min()), int(self._ticks.max())
        return month_index(self._as_date(first)), month_index(self._as_date(last))

    @cached_property
    def month(self) -> np.ndarray:
        return self._per_day(_months_of)

    @cached_property
    def day(self) -> np.ndarray:
        return self._per_day(_days_of_month)

    @property
    def day_key(self) -> np.ndarray:
        return self.month * 32 + self.day

    def in_month(self, index: int) -> np.ndarray:
        """Which rows fall in the month with this month index (compared as ticks: no
        per-row temporary)."""
        start = np.datetime64(month_from_index(index), "D")
        end = np.datetime64(month_from_index(index + 1), "D")
        low, high = (int(day.astype(np.int64)) * self._ticks_per_day for day in (start, end))
        return (self._ticks >= low) & (self._ticks < high)

    def date(self, row: int) -> date | None:
        ticks = int(self._ticks[row])
        return None if ticks == _NAT else self._as_date(ticks)

    def _as_date(self, ticks: int) -> date:
        return date.fromordinal(_EPOCH_ORDINAL + ticks // self._ticks_per_day)


_NAT = np.iinfo(np.int64).min  # NaT's integer value
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _months_of(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[M]").astype(np.int64) + _EPOCH_MONTH


def _days_of_month(days: np.ndarray) -> np.ndarray:
    return (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1


def parse_dates(values: np.ndarray | pd.Series) -> DateColumn | Datetime64Column:
    """Parse a column of dates (`datetime.date`, datetime, Timestamp, or a datetime64 column)."""
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values.dtype):
        if isinstance(values.dtype, pd.DatetimeTZDtype):  # the local calendar day
            values = values.dt.tz_localize(None)
        return Datetime64Column(values.to_numpy())
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    days = [as_date(v) if isinstance(v, date) else None for v in uniques]
    return DateColumn(codes, days)


def _per_month(months: np.ndarray, compute, dtype) -> np.ndarray:
    """compute(month index) for each element, computed once per month in the range."""
    if len(months) == 0:
        return np.zeros(0, dtype=dtype)
    low, high = int(months.min()), int(months.max())
    if high - low > 4 * len(months) + 1000:  # sparse: look up the distinct months only
        codes, uniques = pd.factorize(months)
        table = np.empty(len(uniques), dtype=dtype)
        table[:] = [compute(int(m)) for m in uniques]
        return table[codes]
    table = np.empty(high - low + 1, dtype=dtype)
    table[:] = [compute(m) for m in range(low, high + 1)]
    return table[months - low]


def days_in_month_array(months: np.ndarray) -> np.ndarray:
    """Days in each month of an array of month indexes."""
    return _per_month(months, lambda m: days_in_month(month_from_index(m)), np.int64)


def month_categorical(months: np.ndarray) -> pd.Categorical:
    """Month indexes as a Categorical of first-of-month `datetime.date`s, one category per
    month of their range; a negative index (no service month) is missing. No object per
    row, unlike `month_dates`."""
    dated = months >= 0
    if not dated.any():
        return pd.Categorical.from_codes(
            np.full(len(months), -1), categories=pd.Index([], dtype=object)
        )
    low = int(months.min()) if dated.all() else int(months[dated].min())
    categories = [month_from_index(m) for m in range(low, int(months.max()) + 1)]
    return pd.Categorical.from_codes(
        np.where(dated, months - low, -1), categories=pd.Index(categories, dtype=object)
    )


def month_dates(months: np.ndarray) -> np.ndarray:
    """Month indexes as an object array of first-of-month `datetime.date`s; a negative
    index (a line without a service month) gives None."""
    dated = months >= 0
    if dated.all():
        return _per_month(months, month_from_index, object)
    out = np.full(len(months), None, dtype=object)
    out[dated] = _per_month(months[dated], month_from_index, object)
    return out
