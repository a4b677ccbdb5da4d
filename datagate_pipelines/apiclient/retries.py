"""The one retry policy of every outbound call (tenacity): what is retried, how long to wait."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import tenacity

from datagate_pipelines.apiclient.errors import ApiError, TransportError

# Transport failures worth another try; and the subset where the request surely never
# reached the server, which are safe to retry even for a POST that creates something.
_RETRYABLE_TRANSPORT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_NOT_SENT_TRANSPORT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Statuses where the server refused the request before doing anything with it.
_NOT_PROCESSED_STATUSES = frozenset({429})

# 501/505 will not change on a retry; 520-524 are the gateway errors of CDN-fronted hosts.
DEFAULT_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry. Built into a tenacity `Retrying` by `retrying()`.

    Waits: the server's `Retry-After` when it sends one (capped at `retry_after_max`);
    otherwise exponential backoff from `backoff_initial` (from `rate_limited_initial` after
    a 429, because rate windows are minutes long), capped at `backoff_max`, plus a random
    jitter of up to `jitter` seconds. Stops after `max_attempts` attempts, or before a wait
    would take the total past `max_elapsed` seconds. `sleep` is injectable for tests.
    """

    max_attempts: int = 6
    max_elapsed: float = 600.0
    backoff_initial: float = 1.0
    rate_limited_initial: float = 5.0
    backoff_max: float = 60.0
    jitter: float = 1.0
    retry_after_max: float = 300.0
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retries."""
        return cls(max_attempts=1)

    def replace(self, **changes: Any) -> RetryPolicy:
        return replace(self, **changes)

    def should_retry(self, error: BaseException, *, idempotent: bool = True) -> bool:
        """Whether `error` (raised by one attempt) is worth another attempt.

        A request that is not idempotent (a POST that creates) is retried only when the
        server surely did not act on it: a 429, or a connection that was never made.
        """
        if isinstance(error, ApiError) and error.status is not None:
            if error.status not in self.retry_statuses:
                return False
            return idempotent or error.status in _NOT_PROCESSED_STATUSES
        cause = error.__cause__ if isinstance(error, TransportError) else error
        if isinstance(cause, _NOT_SENT_TRANSPORT):
            return True
        return idempotent and isinstance(cause, _RETRYABLE_TRANSPORT)


class _WaitRetryAfterOrBackoff(tenacity.wait.wait_base):
    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        jitter = tenacity.wait_random(0, policy.jitter)
        self.backoff = (
            tenacity.wait_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max)
            + jitter
        )
        self.rate_limited_backoff = (
            tenacity.wait_exponential(
                multiplier=policy.rate_limited_initial, max=policy.backoff_max
            )
            + jitter
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(max(float(retry_after), 0.0), self.policy.retry_after_max)
        if getattr(error, "status", None) == 429:
            return self.rate_limited_backoff(retry_state)
        return self.backoff(retry_state)


class _StopWhenBudgetSpent(tenacity.stop.stop_base):
    """Stop before a wait would take the time spent past the budget. Counts the time slept
    as well as the wall clock, so an injected no-op `sleep` still stops deterministically."""

    def __init__(self, max_elapsed: float):
        self.max_elapsed = max_elapsed

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        spent = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return spent + retry_state.upcoming_sleep > self.max_elapsed


def retrying(
    policy: RetryPolicy,
    *,
    idempotent: bool = True,
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
) -> tenacity.Retrying:
    """A tenacity `Retrying` that applies `policy` and re-raises the last error when it stops."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda error: policy.should_retry(error, idempotent=idempotent)
        ),
        wait=_WaitRetryAfterOrBackoff(policy),
        stop=tenacity.stop_after_attempt(policy.max_attempts)
        | _StopWhenBudgetSpent(policy.max_elapsed),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
