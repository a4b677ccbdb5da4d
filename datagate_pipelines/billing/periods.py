"""Billing periods and month arithmetic (BILLING.md, Terms).

A month is handled as a *month index*: year × 12 + (month − 1), so consecutive months are
consecutive integers and numpy can do the arithmetic for a million products at once.

- billing period P: a calendar month, given as its first day;
- target service month T = P + a (a = `in_advance_months`);
- first service month F = month(billing_start) + a;
- invoice date = the first day after P; due date = invoice date + payment terms.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cached_property

import numpy as np
import pandas as pd

from datagate_pipelines.billing.errors import BillingInputError

_EPOCH_MONTH = 1970 * 12  # the month index of 1970-01, the placeholder date's month


def as_date(value: object, what: str = "date") -> date:
    """A `datetime.date` from a date, datetime or pandas Timestamp (time of day dropped)."""
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise BillingInputError(f"{what} must be a date, got {value!r}")


def month_start(day: date) -> date:
    """The first day of `day`'s month."""
    return day.replace(day=1)


def month_index(day: date) -> int:
    """year × 12 + (month − 1): the month as an integer."""
    return day.year * 12 + day.month - 1


def month_from_index(index: int) -> date:
    """The first day of the month with this month index."""
    year, month0 = divmod(int(index), 12)
    return date(year, month0 + 1, 1)


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after `day`'s month."""
    return month_from_index(month_index(day) + months)


def days_in_month(day: date) -> int:
    """The number of days in `day`'s month (February in leap years has 29)."""
    return calendar.monthrange(day.year, day.month)[1]


def period_label(period: date) -> str:
    """'YYYY-MM', the period as people and invoice keys write it."""
    return f"{period.year:04d}-{period.month:02d}"


def check_period(period: object) -> date:
    """The billing period as a date; it must be the first day of a month."""
    day = as_date(period, "billing period")
    if day.day != 1:
        raise BillingInputError(f"billing period must be the first day of a month, got {day}")
    return day


def target_month(period: date, in_advance_months: int) -> date:
    """T = P + a: the service month whose monthly charges the invoice for P carries."""
    return add_months(period, in_advance_months)


def first_service_month(billing_start: date, in_advance_months: int) -> date:
    """F = billing_start + a: months before F were billed by the portal's previous system."""
    return add_months(billing_start, in_advance_months)


def invoice_date(period: date) -> date:
    """The first day after the billing period."""
    return add_months(period, 1)


def due_date(period: date, payment_terms_days: int) -> date:
    """Invoice date + payment terms."""
    return invoice_date(period) + timedelta(days=payment_terms_days)


# --- vectorized ---------------------------------------------------------------------------


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


def parse_dates(values: np.ndarray | pd.Series) -> DateColumn:
    """Parse a column of dates (`datetime.date`, datetime, Timestamp, or a datetime64 column)."""
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values.dtype):
        ns = values.to_numpy(dtype="datetime64[ns]")
        missing = np.isnat(ns)
        whole_days = np.where(missing, 0, ns.astype("datetime64[D]").astype(np.int64))
        codes, uniques = pd.factorize(whole_days)
        codes = np.where(missing, -1, codes)
        days = [date(1970, 1, 1) + timedelta(days=int(d)) for d in uniques]
    else:
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


def month_dates(months: np.ndarray) -> np.ndarray:
    """Month indexes as an object array of first-of-month `datetime.date`s; a negative
    index (a line without a service month) gives None."""
    dated = months >= 0
    if dated.all():
        return _per_month(months, month_from_index, object)
    out = np.full(len(months), None, dtype=object)
    out[dated] = _per_month(months[dated], month_from_index, object)
    return out
