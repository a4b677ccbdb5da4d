"""QBO's per-company throttles (docs/qbo-api.md §8) and per-company request counters.

- ``limit`` requests per rolling ``window`` seconds per company (default 500 per 60 s);
- at most ``max_concurrent`` requests in flight per company (default 10);
- batch requests also count against ``batch_limit`` per ``batch_window`` (default 40 per 60 s).

Refused requests do not count against the window. Time comes from the injectable clock,
so tests shorten or advance windows without sleeping.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque
from typing import Any

from .settings import ThrottleSettings

__all__ = ["RealmStats", "Throttle"]


class Throttle:
    """Decides whether a request for a company may run now; thread-safe."""

    def __init__(self, clock: Any, settings: ThrottleSettings | None = None) -> None:
        self.clock = clock
        self.settings = settings or ThrottleSettings()
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._recent_batches: dict[str, deque[float]] = defaultdict(deque)
        self._in_flight: Counter[str] = Counter()

    def _now(self) -> float:
        return self.clock.now().timestamp()

    @staticmethod
    def _full(times: deque[float], now: float, window: float, limit: int) -> bool:
        while times and times[0] <= now - window:
            times.popleft()
        return len(times) >= limit

    def try_acquire(self, realm_id: str, *, batch: bool = False) -> bool:
        """Admit one request (then call :meth:`release`), or refuse it (429)."""
        s = self.settings
        with self._lock:
            now = self._now()
            if self._in_flight[realm_id] >= s.max_concurrent:
                return False
            if self._full(self._recent[realm_id], now, s.window, s.limit):
                return False
            batches = self._recent_batches[realm_id]
            if batch and self._full(batches, now, s.batch_window, s.batch_limit):
                return False
            self._recent[realm_id].append(now)
            if batch:
                batches.append(now)
            self._in_flight[realm_id] += 1
            return True

    def release(self, realm_id: str) -> None:
        with self._lock:
            self._in_flight[realm_id] = max(0, self._in_flight[realm_id] - 1)

    def in_flight(self, realm_id: str) -> int:
        with self._lock:
            return self._in_flight[realm_id]

    def configure(self, **changes: Any) -> ThrottleSettings:
        """Change limits at runtime (``limit=``, ``window=``, ``max_concurrent=`` …)."""
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.settings, key):
                    raise ValueError(f"unknown throttle setting {key!r}")
                setattr(self.settings, key, type(getattr(self.settings, key))(value))
            return self.settings

    def reset(self) -> None:
        """Forget the windows (in-flight counts stay: those requests are still running)."""
        with self._lock:
            self._recent.clear()
            self._recent_batches.clear()


class RealmStats:
    """Per-company counters: requests, throttled (429), by status, replays, batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, Counter[str]] = defaultdict(Counter)

    def record(self, realm_id: str, status: int | None) -> None:
        """Count one request; ``status`` None means the connection was dropped."""
        with self._lock:
            counts = self._counts[realm_id]
            counts["requests"] += 1
            counts[f"status_{status}" if status is not None else "dropped"] += 1
            if status == 429:
                counts["throttled"] += 1

    def add(self, realm_id: str, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[realm_id][key] += n

    def get(self, realm_id: str, key: str) -> int:
        with self._lock:
            return self._counts[realm_id][key]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            out = {}
            for realm, counts in sorted(self._counts.items()):
                by_status = {k[7:]: v for k, v in sorted(counts.items()) if k.startswith("status_")}
                out[realm] = {
                    "requests": counts["requests"],
                    "throttled": counts["throttled"],
                    "replayed": counts["replayed"],
                    "batches": counts["batches"],
                    "dropped": counts["dropped"],
                    "by_status": by_status,
                }
            return out

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
