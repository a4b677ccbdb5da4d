"""Billing periods and month arithmetic (docs/billing.md, Terms).

A month is handled as a *month index*: year × 12 + (month − 1), so consecutive months are
consecutive integers; month_columns.py does the same arithmetic on whole columns with numpy.
This module needs only the standard library, so the command line can use it cheaply.

- billing period P: a calendar month, given as its first day;
- target service month T = P + a (a = `in_advance_months`);
- first service month F = month(billing_start) + a;
- invoice date = the first day after P; due date = invoice date + payment terms.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

from datagate_pipelines.billing.errors import BillingInputError


def as_date(value: object, what: str = "date") -> date:
    """A `datetime.date` from a date, datetime or pandas Timestamp (time of day dropped)."""
    if isinstance(value, datetime):  # a pandas Timestamp is a datetime
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
