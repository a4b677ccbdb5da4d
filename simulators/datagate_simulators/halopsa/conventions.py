"""HaloPSA's data conventions: sentinels, naive timestamps, loose booleans and numbers.

docs/halopsa-api.md §2 and §6: ``-1`` for an unset id, ``"1899-12-30T00:00:00"`` (the OLE zero
date) for no date, timestamps without a zone suffix and with 0–3 fractional digits.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

#: An unset integer reference (contract_id, site, asset_id, paymentstatus …). [C] REAL-RI
UNSET = -1
#: The "no date" sentinel. [C] REAL-RI
NO_DATE = "1899-12-30T00:00:00"
#: "No end" on schedules. [C] REAL-RI
NO_END = "2099-12-31T00:00:00"

_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off", ""}


def halo_timestamp(value: datetime) -> str:
    """``2025-03-20T18:50:25.057``: naive, milliseconds with trailing zeros dropped. [C] §6"""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    text = value.replace(microsecond=0).isoformat()
    millis = value.microsecond // 1000
    if millis:
        text += "." + f"{millis:03d}".rstrip("0")
    return text


def halo_date(value: date | None) -> str:
    """A date as Halo sends it (midnight, no zone); ``None`` → the 1899-12-30 sentinel."""
    if value is None:
        return NO_DATE
    return f"{value.isoformat()}T00:00:00"


def utc_now_naive(clock_seconds: float) -> datetime:
    return datetime.fromtimestamp(clock_seconds, tz=UTC).replace(tzinfo=None)


def parse_datetime(value: Any) -> datetime | None:
    """Parse what clients send: ISO with or without ``Z``/offset/fraction, or a bare date.

    Returns a naive UTC datetime; ``None`` for empty values and the sentinel. Raises
    ``ValueError`` on garbage.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a date: {value!r}")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    if parsed == datetime(1899, 12, 30):
        return None
    return parsed


def normalize_datetime(value: Any) -> str:
    """Any accepted date input → Halo's stored text (the sentinel for none)."""
    parsed = parse_datetime(value)
    return NO_DATE if parsed is None else halo_timestamp(parsed)


def parse_bool(value: Any, default: bool = False) -> bool:
    """Booleans in query strings and bodies: ``true``/``false`` (any case), 1/0, yes/no."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_int(value: Any) -> int:
    """Ints arrive as 21, 21.0 (Site.client_id) or "21" (Priority ids). Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"not an integer: {value!r}")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            as_float = float(text)
            if not as_float.is_integer():
                raise ValueError(f"not an integer: {value!r}") from None
            return int(as_float)
    raise ValueError(f"not an integer: {value!r}")


def parse_number(value: Any) -> float:
    """Numbers may arrive as strings ("2.5"); booleans and garbage raise ValueError."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        number = float(value.strip())
    else:
        raise ValueError(f"not a number: {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


_CENT = Decimal("0.01")


def money(value: Any) -> Decimal:
    """Exact money from a JSON number (via its text, so 0.1 stays 0.1)."""
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc


def round_money(value: Decimal) -> float:
    """Round half-up to cents and hand back the float Halo's JSON carries."""
    return float(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def add_days(stamp: str, days: int) -> str:
    parsed = parse_datetime(stamp)
    return NO_DATE if parsed is None else halo_timestamp(parsed + timedelta(days=days))
