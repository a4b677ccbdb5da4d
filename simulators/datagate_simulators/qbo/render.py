"""Rendering stored records as the API shows them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

__all__ = ["format_time", "public"]


def format_time(moment: datetime, tz: timezone, *, millis: bool = False) -> str:
    """``2024-05-29T23:22:07-07:00`` (``.957`` milliseconds for the envelope's ``time``)."""
    local = moment.astimezone(tz)
    return local.isoformat(timespec="milliseconds" if millis else "seconds")


def public(value: Any, tz: timezone) -> Any:
    """A deep copy for the API: private keys dropped, datetimes formatted."""
    if isinstance(value, dict):
        return {k: public(v, tz) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [public(v, tz) for v in value]
    if isinstance(value, datetime):
        return format_time(value, tz)
    return value
