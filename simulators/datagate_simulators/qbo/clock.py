"""Time for the QBO simulator: the real clock, a fake one tests move by hand, Intuit's format."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

from .settings import QBOSettings

__all__ = ["Clock", "FakeClock", "SystemClock", "format_time", "stamp"]


class Clock(Protocol):
    """Anything with ``now()`` returning an aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that stands still until told to move; thread-safe.

    >>> clock = FakeClock(datetime(2025, 1, 1, tzinfo=UTC))
    >>> clock.advance(hours=25)
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0, **kwargs: float) -> datetime:
        """Move forward by ``seconds`` plus any ``timedelta`` keywords (hours=, days=, …)."""
        step = timedelta(seconds=seconds, **kwargs)
        if step < timedelta(0):
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += step
            return self._now

    def set(self, moment: datetime) -> None:
        """Jump to ``moment`` (must not be in the past)."""
        with self._lock:
            if moment < self._now:
                raise ValueError("a clock does not go backwards")
            self._now = moment


def format_time(moment: datetime, tz: timezone, *, millis: bool = False) -> str:
    """``2024-05-29T23:22:07-07:00`` (``.957`` milliseconds for the envelope's ``time``)."""
    local = moment.astimezone(tz)
    return local.isoformat(timespec="milliseconds" if millis else "seconds")


def stamp(moment: datetime, settings: QBOSettings) -> str:
    """The envelope's ``time``: ``2015-08-10T11:44:02.957-07:00``."""
    return format_time(moment, timezone(timedelta(hours=settings.utc_offset_hours)), millis=True)
