"""The shared HTTP core of the outbound API clients (HaloPSA, QBO).

Every request of every client goes through `ApiClientBase.request`, which applies, in this
order: the portal's rate limiter, one send, the request record, the typed error, and the
retry policy (tenacity). One place, so a change to retries, limits, redaction or the
request log reaches both clients at once.

Secrets (client secrets, access and refresh tokens, Authorization headers, form bodies)
never reach a request record, a log line or an exception message: records carry only the
path and redacted query parameters, and every message passes through a `Redactor` that
knows the client's secrets.
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, Self

import httpx
import tenacity

from datagate_pipelines.errors import DatagateError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 30.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

# ---------------------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------------------

REDACTED = "***"
SENSITIVE_KEYS = frozenset(
    {
        "access_token",
        "apikey",
        "api_key",
        "assertion",
        "authorization",
        "client_assertion",
        "client_secret",
        "code",
        "cookie",
        "id_token",
        "password",
        "proxy_authorization",
        "refresh_token",
        "secret",
        "set_cookie",
        "token",
    }
)
_SENSITIVE_MARKERS = ("secret", "token", "password", "authorization", "api_key", "apikey")
_SENSITIVE_PATTERNS = (
    # "Bearer abc.def…" / "Basic dXNlcjpw…" in a header echoed back or a message; short
    # words after them ("Bearer token is invalid") are ordinary text.
    re.compile(r"\b([Bb]earer|BEARER|Basic)(\s+)[A-Za-z0-9\-._~+/]{8,}=*"),
    # client_secret=…, "access_token": "…", refresh_token: … in forms, JSON or text.
    re.compile(
        r"(?i)(\b(?:client_secret|access_token|refresh_token|id_token|password)\b[\"']?\s*[:=]\s*[\"']?)"
        r"[^\"'&\s,;}]+"
    ),
)
# Shorter values are too likely to occur by chance in ordinary text to scrub by value.
_MIN_SECRET_LENGTH = 6


def is_sensitive_key(key: str) -> bool:
    """True for a parameter or header name whose value must never be recorded or logged."""
    normal = key.strip().lower().replace("-", "_")
    return normal in SENSITIVE_KEYS or any(marker in normal for marker in _SENSITIVE_MARKERS)


def redact_mapping(values: Mapping[str, Any] | None) -> dict[str, str]:
    """A copy of query parameters or headers with the values of sensitive keys replaced."""
    if not values:
        return {}
    return {
        str(key): REDACTED if is_sensitive_key(str(key)) else str(value)
        for key, value in values.items()
    }


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the given secret values and anything that looks like a credential masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}, key=len)[::-1]:
        text = text.replace(secret, REDACTED)
    text = _SENSITIVE_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _SENSITIVE_PATTERNS[1].sub(lambda m: f"{m.group(1)}{REDACTED}", text)


_QUERY_PARAM = re.compile(r"([?&])([^=&\s\"']+)=([^&\s\"']*)")


def redact_url_query(text: str) -> str:
    """`text` with the values of sensitive query parameters in any URL masked."""
    return _QUERY_PARAM.sub(
        lambda m: (
            f"{m.group(1)}{m.group(2)}={REDACTED if is_sensitive_key(m.group(2)) else m.group(3)}"
        ),
        text,
    )


class _HttpLibraryLogFilter(logging.Filter):
    """httpx logs every request's full URL at INFO; mask credentials in it and in httpcore's
    debug traces, so that turning on library logging cannot leak a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(redact_url_query(message))
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_LIBRARY_LOG_FILTER = _HttpLibraryLogFilter()
for _name in (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
):
    logging.getLogger(_name).addFilter(_LIBRARY_LOG_FILTER)


class Redactor:
    """Masks one client's secrets in text: fixed ones (client secret) and recent tokens.

    Thread-safe. Tokens are kept in a short ring: an old token is useless once replaced,
    but a message about a request made with it may still be on its way to a log.
    """

    def __init__(self, secrets: Iterable[str] = (), *, recent: int = 16):
        self._fixed = {s for s in secrets if s}
        self._recent: deque[str] = deque(maxlen=recent)
        self._lock = threading.Lock()

    def add(self, secret: str, *, transient: bool = False) -> None:
        """Remember a secret; `transient` ones (access tokens) are kept only while recent."""
        if not secret:
            return
        with self._lock:
            if transient:
                self._recent.append(secret)
            else:
                self._fixed.add(secret)

    def __call__(self, text: str) -> str:
        with self._lock:
            secrets = [*self._fixed, *self._recent]
        return redact(text, secrets)


# ---------------------------------------------------------------------------------------
# Rate limiting
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Typed errors
# ---------------------------------------------------------------------------------------


class ApiError(DatagateError):
    """A request to an outside API failed. Carries everything an operator needs to act."""

    hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        system: str,
        portal: str,
        method: str,
        path: str,
        status: int | None = None,
        entity: str | None = None,
        entity_id: Any = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ):
        super().__init__(message)
        self.message = message
        self.system = system
        self.portal = portal
        self.method = method
        self.path = path
        self.status = status
        self.entity = entity
        self.entity_id = entity_id
        self.retry_after = retry_after
        self.attempts = attempts

    def __str__(self) -> str:
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        text = f"{self.request_text} failed{tries}: {self.outcome}"
        return f"{text} ({self.hint})" if self.hint else text

    @property
    def request_text(self) -> str:
        """`halopsa portal acme: GET /api/Client/7 (Client 7)`."""
        what = f"{self.system} portal {self.portal}: {self.method} {self.path}"
        if self.entity is not None and self.entity_id is not None:
            what += f" ({self.entity} {self.entity_id})"
        return what

    @property
    def outcome(self) -> str:
        """`HTTP 404: <the service's message>`, or `no response: <transport error>`."""
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        return f"{status}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: rebuild from the attributes, so errors survive pickling
        # (Dagster's multiprocess executor sends them across processes).
        return (_rebuild_error, (type(self), dict(self.__dict__)))


def _rebuild_error(cls: type[ApiError], state: dict[str, Any]) -> ApiError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class AuthError(ApiError):
    """401/403, or the token endpoint refused the credentials."""

    hint = "check this portal's credentials and the API application's permissions"


class NotFoundError(ApiError):
    """404: the record does not exist (any more)."""


class BadRequestError(ApiError):
    """400/409/422: the service refused the request or its data."""


class RateLimitedError(ApiError):
    """429 and still limited after the retries."""

    hint = "the service's rate limit was reached; lower this portal's rate limit or try later"


class ServerError(ApiError):
    """5xx (or 408) and still failing after the retries."""

    hint = "the service failed; try again later"


class TransportError(ApiError):
    """No HTTP response: connection refused or dropped, timeout, protocol error."""

    hint = "check the service URL and the network"


# ---------------------------------------------------------------------------------------
# Retry policy
# ---------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------
# Request records and statistics
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequestRecord:
    """One HTTP attempt, as the request log stores it. Never holds a secret."""

    system: str
    portal: str
    run_id: str | None
    method: str
    path: str
    params: dict[str, str]
    status: int | None
    duration_ms: float
    attempt: int
    error: str | None
    started_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestRecorder(Protocol):
    """Receives an `ApiRequestRecord` for every attempt, failed ones and token requests too."""

    def __call__(self, record: ApiRequestRecord, /) -> None: ...


@dataclass
class ClientStats:
    """Counters for asset metadata. `calls` counts every HTTP attempt, token requests too."""

    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    token_fetches: int = 0
    pages: int = 0
    rows: int = 0
    duplicate_rows: int = 0
    throttle_wait_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, amount in counts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
        values["throttle_wait_seconds"] = round(values["throttle_wait_seconds"], 3)
        return values


# ---------------------------------------------------------------------------------------
# The client base
# ---------------------------------------------------------------------------------------


class _AuthenticationFailed(Exception):
    """Carries an error of the authentication step through the retry loop, unretried."""

    def __init__(self, error: ApiError):
        super().__init__(str(error))
        self.error = error


class ApiClientBase:
    """What every API client shares: pooled `httpx.Client`, rate limiter, retry policy,
    request recorder, redaction and typed errors, applied by `request()`.

    Subclasses set `system`, map the generic error classes to their own in `error_classes`,
    and may override `_auth_headers`, `_invalidate_auth` (re-authentication after a 401)
    and `_error_message` (the service's error body shapes).
    """

    system: ClassVar[str] = "http"
    error_classes: ClassVar[Mapping[type[ApiError], type[ApiError]]] = {}

    def __init__(
        self,
        portal: str,
        *,
        base_url: str,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        recorder: RequestRecorder | None = None,
        run_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
    ):
        self.portal = portal
        self.limiter = limiter or RateLimiter.unlimited()
        self.retry_policy = retry or RetryPolicy()
        self.recorder = recorder
        self.run_id = run_id
        self.stats = ClientStats()
        self.redact = Redactor(secrets)
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/json", **(headers or {})},
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- hooks -----------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request (fetching a token if need be)."""
        return {}

    def _invalidate_auth(self, used: Mapping[str, str]) -> bool:
        """After a 401: drop the credentials in `used`; True if a new attempt may succeed."""
        return False

    def _error_message(self, response: httpx.Response) -> str:
        """The service's own message from an error response."""
        if response.is_redirect:
            return f"unexpected redirect to {response.headers.get('Location', '?')}"
        text = response.text.strip()
        return text[:500] if text else response.reason_phrase or "no message"

    # -- the one request path -------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticate: bool = True,
        idempotent: bool | None = None,
        entity: str | None = None,
        entity_id: Any = None,
    ) -> httpx.Response:
        """Send one logical request: limited, recorded, retried, and raising a typed error.

        `url` is relative to the base URL, or absolute (a token endpoint elsewhere).
        `idempotent` defaults from the method; pass True for a POST that is safe to repeat
        (an upsert of existing ids) so that it is retried after 5xx and dropped connections.
        A 401 on an authenticated request re-authenticates once and resends once.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        attempts = 0
        reauthenticated = False

        def send() -> tuple[httpx.Response, dict[str, str]]:
            nonlocal attempts
            try:
                auth = self._auth_headers() if authenticate else {}
            except ApiError as error:
                # The token request was retried on its own already: not again from here.
                raise _AuthenticationFailed(error) from None
            attempts += 1
            request = self.http.build_request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers={**(headers or {}), **auth},
            )
            return self._send(request, attempts, entity, entity_id), auth

        def one_attempt() -> httpx.Response:
            nonlocal reauthenticated
            response, auth = send()
            if (
                response.status_code == 401
                and authenticate
                and not reauthenticated
                and self._invalidate_auth(auth)
            ):
                reauthenticated = True
                response, auth = send()
            if not response.is_success:
                raise self._error_for(response, entity, entity_id, attempts)
            return response

        def before_sleep(state: tenacity.RetryCallState) -> None:
            self.stats.add(retries=1)
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, ApiError):
                what, outcome = error.request_text, error.outcome
            else:
                what, outcome = f"{self.system} portal {self.portal}: {method} {url}", repr(error)
            logger.warning(
                "%s attempt %d: %s; retrying in %.1f s",
                what,
                attempts,
                self.redact(outcome),
                state.upcoming_sleep,
            )

        try:
            return retrying(self.retry_policy, idempotent=idempotent, before_sleep=before_sleep)(
                one_attempt
            )
        except _AuthenticationFailed as failed:
            raise failed.error from None
        except ApiError as error:
            error.attempts = attempts
            raise

    def _send(
        self, request: httpx.Request, attempt: int, entity: str | None, entity_id: Any
    ) -> httpx.Response:
        """One HTTP exchange inside a limiter slot, recorded whatever its outcome."""
        with self.limiter.slot() as waited:
            started_at = datetime.now(UTC)
            started = time.perf_counter()
            try:
                response = self.http.send(request)
            except httpx.TransportError as exc:
                detail = f": {exc}" if str(exc) else ""
                error = self._error(
                    TransportError,
                    f"{type(exc).__name__} talking to {request.url.host}{detail}",
                    request,
                    None,
                    entity,
                    entity_id,
                )
                self.stats.add(calls=1, transport_errors=1, throttle_wait_seconds=waited)
                self._record(request, None, started, started_at, attempt, error.message)
                raise error from exc
        status = response.status_code
        self.stats.add(
            calls=1,
            throttle_wait_seconds=waited,
            rate_limited=int(status == 429),
            server_errors=int(status >= 500),
        )
        message = None if response.is_success else self.redact(self._error_message(response))
        self._record(request, status, started, started_at, attempt, message)
        return response

    def _record(
        self,
        request: httpx.Request,
        status: int | None,
        started: float,
        started_at: datetime,
        attempt: int,
        error: str | None,
    ) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        logger.debug(
            "%s portal %s: %s %s -> %s in %.0f ms (attempt %d)",
            self.system,
            self.portal,
            request.method,
            request.url.path,
            status if status is not None else "no response",
            duration_ms,
            attempt,
        )
        if self.recorder is None:
            return
        record = ApiRequestRecord(
            system=self.system,
            portal=self.portal,
            run_id=self.run_id,
            method=request.method,
            path=request.url.path,
            params=redact_mapping(dict(request.url.params.multi_items())),
            status=status,
            duration_ms=duration_ms,
            attempt=attempt,
            error=error,
            started_at=started_at,
        )
        try:
            self.recorder(record)
        except Exception:
            # The request already happened (an invoice may exist now): losing its log line
            # is better than reporting the request as failed.
            logger.exception("%s portal %s: the request recorder failed", self.system, self.portal)

    # -- errors ----------------------------------------------------------------------------

    def _error_for(
        self, response: httpx.Response, entity: str | None, entity_id: Any, attempts: int
    ) -> ApiError:
        status = response.status_code
        kind: type[ApiError]
        if status in (401, 403):
            kind = AuthError
        elif status == 404:
            kind = NotFoundError
        elif status == 429:
            kind = RateLimitedError
        elif status >= 500 or status == 408:
            kind = ServerError
        elif status in (400, 409, 422):
            kind = BadRequestError
        else:
            kind = ApiError
        error = self._error(
            kind,
            self._error_message(response),
            response.request,
            status,
            entity,
            entity_id,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
        error.attempts = attempts
        return error

    def _error(
        self,
        kind: type[ApiError],
        message: str,
        request: httpx.Request,
        status: int | None,
        entity: str | None,
        entity_id: Any,
        retry_after: float | None = None,
    ) -> ApiError:
        """A typed error of this client's system; its message is already redacted."""
        cls = self.error_classes.get(kind, kind)
        return cls(
            self.redact(message),
            system=self.system,
            portal=self.portal,
            method=request.method,
            path=request.url.path,
            status=status,
            entity=entity,
            entity_id=entity_id,
            retry_after=retry_after,
        )
