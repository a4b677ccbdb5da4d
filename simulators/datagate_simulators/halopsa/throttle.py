"""HaloPSA's rate limit: requests per rolling window per API application.

Plain Python, no locking: the backend calls it under its own lock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from datagate_simulators.halopsa.errors import RateLimited


@dataclass
class RateLimit:
    """``requests`` per rolling ``window_seconds`` per application. [R] HAPI #31: 300 per 5 min."""

    requests: int = 300
    window_seconds: float = 300.0
    #: Send ``Retry-After`` on 429 (unconfirmed for Halo, so clients must not rely on it). [I]
    retry_after: bool = True
    enabled: bool = True

    @classmethod
    def parse(cls, text: str, retry_after: bool = True) -> RateLimit:
        """``"300/300"`` = 300 requests per 300 s; ``"off"`` disables the limit."""
        if text.strip().lower() in {"off", "none", "0"}:
            return cls(enabled=False, retry_after=retry_after)
        count, _, window = text.partition("/")
        return cls(
            requests=int(count), window_seconds=float(window or 300), retry_after=retry_after
        )

    def message(self) -> str:
        seconds = self.window_seconds
        if seconds >= 60 and seconds % 60 == 0:
            window = f"{int(seconds // 60)} minute"
        else:
            window = f"{seconds:g} second"
        return f"Rate Limit Reached - {self.requests} Requests per rolling {window} window"


@dataclass
class RateLimiter:
    limit: RateLimit
    clock: Callable[[], float]
    _hits: dict[str, deque[float]] = field(default_factory=dict)

    def hit(self, key: str) -> None:
        """Count one request for ``key`` or raise RateLimited (refused requests do not count)."""
        if not self.limit.enabled:
            return
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        horizon = now - self.limit.window_seconds
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) >= self.limit.requests:
            retry_after = None
            if self.limit.retry_after:
                retry_after = max(1, math.ceil(hits[0] + self.limit.window_seconds - now))
            raise RateLimited(self.limit.message(), retry_after)
        hits.append(now)

    def used(self, key: str) -> int:
        now = self.clock()
        return sum(1 for t in self._hits.get(key, ()) if t > now - self.limit.window_seconds)

    def reset(self) -> None:
        self._hits.clear()
