"""Column types for exact numbers.

Money, quantities and rates are stored as scaled integers on every database: SQLite has no
exact NUMERIC (it keeps REAL), and one representation everywhere keeps the SQL models
identical on SQLite and PostgreSQL. Python code always sees `Decimal`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.types import TypeDecorator


class ScaledDecimal(TypeDecorator[Decimal]):
    """A Decimal with a fixed number of places, stored as an integer × 10**places.

    A value with more places than the column holds is refused rather than rounded: the
    caller decides how to round (billing rounds once, half away from zero).
    """

    impl = BigInteger
    cache_ok = True

    def __init__(self, places: int):
        super().__init__()
        self.places = places
        self._quantum = Decimal(1).scaleb(-places)
        self._factor = 10**places

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("floats are not accepted for exact columns; pass a Decimal or str")
        number = Decimal(value) if not isinstance(value, Decimal) else value
        scaled = number.scaleb(self.places)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{number} has more than {self.places} decimal places")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(int(value)) / self._factor).quantize(self._quantum)


def Money() -> ScaledDecimal:
    """Currency amount in minor units (cents)."""
    return ScaledDecimal(2)


def Quantity() -> ScaledDecimal:
    """Quantities and unit prices: up to 4 decimal places (docs/billing.md)."""
    return ScaledDecimal(4)


def Rate() -> ScaledDecimal:
    """Tax rates as fractions (0.0725), up to 8 places."""
    return ScaledDecimal(8)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are UTC and timezone-aware in Python on every database (SQLite drops the
    offset; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
