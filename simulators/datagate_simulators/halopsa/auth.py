"""OAuth2 client-credentials tokens and the per-application rolling-window rate limit.

Plain Python, no locking: the backend calls these under its own lock.
"""

from __future__ import annotations

import math
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from datagate_simulators.halopsa.errors import InvalidToken, RateLimited

#: Scope areas from HAPI's HaloAuth class (read:<area> / edit:<area>). [C] §1.2
SCOPE_AREAS = (
    "tickets", "calendar", "customers", "crm", "timesheets", "contracts", "suppliers", "items",
    "projects", "sales", "quotes", "sos", "pos", "invoices", "reporting", "software",
    "softwarelicensing", "kb", "assets",
)  # fmt: skip


@dataclass
class Application:
    """An API application (Configuration > Integrations > Halo API): credentials and grants."""

    client_id: str
    client_secret: str
    name: str = "Datagate"
    #: Space-separated scopes this application may be granted; "all" grants everything.
    allowed_scopes: str = "all"


@dataclass
class Token:
    access_token: str
    client_id: str
    scope: str
    issued_at: float
    #: What ``expires_in`` told the client.
    expires_in: int
    #: When the token really stops working (earlier than advertised under the early-expiry fault).
    expires_at: float
    revoked: bool = False

    def allows(self, area: str | None, write: bool) -> bool:
        """Does this token's scope cover ``area`` (None = admin-only) for reading or writing?"""
        scopes = set(self.scope.split())
        if scopes & {"all", "admin"}:
            return True
        if area is None:
            return False
        if "all:standard" in scopes:
            return True
        if f"edit:{area}" in scopes:
            return True
        return not write and f"read:{area}" in scopes


class TokenStore:
    """Issues opaque bearer tokens and checks them against a clock (seconds, like time.time)."""

    def __init__(self, clock: Callable[[], float], ttl: int = 3600) -> None:
        self.clock = clock
        self.ttl = ttl
        #: When set, tokens issued from now on stop working after this many seconds,
        #: whatever ``expires_in`` says (the "tokens expire early" fault).
        self.actual_lifetime: float | None = None
        self._tokens: dict[str, Token] = {}
        self.issued = 0

    def issue(self, client_id: str, scope: str) -> Token:
        now = self.clock()
        lifetime = self.ttl if self.actual_lifetime is None else min(self.ttl, self.actual_lifetime)
        token = Token(
            access_token=secrets.token_urlsafe(32),
            client_id=client_id,
            scope=scope,
            issued_at=now,
            expires_in=self.ttl,
            expires_at=now + lifetime,
        )
        self._prune(now)
        self._tokens[token.access_token] = token
        self.issued += 1
        return token

    def validate(self, access_token: str | None) -> Token:
        if not access_token:
            raise InvalidToken("The access token is missing.")
        token = self._tokens.get(access_token)
        if token is None or token.revoked:
            raise InvalidToken("The specified token is invalid.")
        if self.clock() >= token.expires_at:
            raise InvalidToken("The specified token is no longer valid.")
        return token

    def revoke_all(self) -> int:
        """Invalidate every live token (clients must fetch new ones); returns how many."""
        live = [t for t in self._tokens.values() if not t.revoked]
        for token in live:
            token.revoked = True
        return len(live)

    def _prune(self, now: float) -> None:
        # Keep the table small in long-running servers; expired tokens answer 401 either way.
        if len(self._tokens) > 1000:
            self._tokens = {
                k: t for k, t in self._tokens.items() if t.expires_at > now and not t.revoked
            }


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
