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
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from datagate_pipelines.billing.errors import BillingInputError

_EPOCH_MONTH = 1970 * 12  # numpy's datetime64[M] counts months from 1970-01


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


def month_index_array(days: np.ndarray) -> np.ndarray:
    """Month indexes of a datetime64[D] array."""
    return days.astype("datetime64[M]").astype(np.int64) + _EPOCH_MONTH


def day_of_month_array(days: np.ndarray) -> np.ndarray:
    """Day of month (1–31) of a datetime64[D] array."""
    first = days.astype("datetime64[M]").astype("datetime64[D]")
    return (days - first).astype(np.int64) + 1


def days_in_month_array(months: np.ndarray) -> np.ndarray:
    """Days in each month of an array of month indexes."""
    start = (months - _EPOCH_MONTH).astype("datetime64[M]")
    return ((start + 1).astype("datetime64[D]") - start.astype("datetime64[D]")).astype(np.int64)


def month_dates(months: np.ndarray) -> np.ndarray:
    """Month indexes as an object array of `datetime.date` (first of month)."""
    if len(months) == 0:
        return np.empty(0, dtype=object)
    codes, uniques = pd.factorize(months)
    dates = np.empty(len(uniques), dtype=object)
    dates[:] = [month_from_index(int(m)) for m in uniques]
    return dates[codes]


def dates_to_datetime64(
    values: np.ndarray | pd.Series,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column of dates as datetime64[D].

    Returns (days, missing, invalid): `missing` marks None/NaT, `invalid` marks values that
    are not dates (strings, numbers); both hold 1970-01-01 as a placeholder.
    """
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values.dtype):
        array = values.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
        missing = np.isnat(array)
        array[missing] = np.datetime64(0, "D")
        return array, missing, np.zeros(len(array), dtype=bool)
    array = np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(array)
    converted = np.zeros(len(uniques), dtype="datetime64[D]")
    bad = np.zeros(len(uniques), dtype=bool)
    for i, value in enumerate(uniques):
        if isinstance(value, date):  # datetime and Timestamp are dates too
            converted[i] = np.datetime64(as_date(value), "D")
        else:
            bad[i] = True
    missing = codes < 0
    days = converted[codes] if len(uniques) else np.zeros(len(array), dtype="datetime64[D]")
    days[missing] = np.datetime64(0, "D")
    invalid = np.where(missing, False, bad[codes] if len(uniques) else False)
    return days, missing, invalid
