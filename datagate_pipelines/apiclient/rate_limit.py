"""One portal's request budget: requests per rolling window and requests in flight."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class RateLimiter:
    """At most `max_requests` per rolling `per_seconds`, and optionally at most
    `max_concurrency` requests in flight. Thread-safe; callers block until they may go.

    One limiter is shared by every request of one portal's client (or clients: pass the
    same instance). A request occupies the window from the moment it is let through until
    `per_seconds` after it *finished*: the server counts a request when it arrives, which is
    somewhere between those two moments, so counting from the end can never let through
    more than the server allows, whatever the latency.
    """

    def __init__(
        self,
        max_requests: int | None,
        per_seconds: float,
        *,
        max_concurrency: int | None = None,
    ):
        if max_requests is not None and (max_requests < 1 or per_seconds <= 0):
            raise ValueError("a rate limit needs max_requests >= 1 and per_seconds > 0")
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.max_requests = max_requests
        self.per_seconds = per_seconds
        self.max_concurrency = max_concurrency
        self._finished: deque[float] = deque()
        self._in_flight = 0
        self._condition = threading.Condition()

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """A limiter that never blocks."""
        return cls(None, 0.0)

    def __repr__(self) -> str:
        if self.max_requests is None and self.max_concurrency is None:
            return "RateLimiter.unlimited()"
        return (
            f"RateLimiter({self.max_requests}, {self.per_seconds}, "
            f"max_concurrency={self.max_concurrency})"
        )

    def acquire(self) -> float:
        """Block until a request may start; return the seconds spent waiting."""
        if self.max_requests is None and self.max_concurrency is None:
            return 0.0
        started = time.monotonic()
        with self._condition:
            while True:
                now = time.monotonic()
                horizon = now - self.per_seconds
                while self._finished and self._finished[0] <= horizon:
                    self._finished.popleft()
                timeout = self._wait_needed()
                if timeout == 0.0:
                    self._in_flight += 1
                    return time.monotonic() - started
                self._condition.wait(timeout)

    def _wait_needed(self) -> float | None:
        """0 when a request may start now, else how long to wait (None: until notified)."""
        if self.max_concurrency is not None and self._in_flight >= self.max_concurrency:
            return None
        if self.max_requests is None or self._in_flight + len(self._finished) < self.max_requests:
            return 0.0
        if not self._finished:
            return None  # the window is all in-flight requests: wait for one to finish
        return max(self._finished[0] + self.per_seconds - time.monotonic(), 0.001)

    def release(self) -> None:
        """Mark a request acquired with `acquire` as finished."""
        if self.max_requests is None and self.max_concurrency is None:
            return
        with self._condition:
            self._in_flight -= 1
            if self.max_requests is not None:
                self._finished.append(time.monotonic())
            self._condition.notify_all()

    @contextmanager
    def slot(self) -> Iterator[float]:
        """`with limiter.slot() as waited:` around exactly one HTTP exchange."""
        waited = self.acquire()
        try:
            yield waited
        finally:
            self.release()
