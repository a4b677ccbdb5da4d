"""The client base every API client builds on (HaloPSA, QBO).

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

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import httpx
import tenacity

from datagate_pipelines.apiclient.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from datagate_pipelines.apiclient.rate_limit import RateLimiter
from datagate_pipelines.apiclient.records import ApiRequestRecord, ClientStats, RequestRecorder
from datagate_pipelines.apiclient.redaction import Redactor, redact_mapping
from datagate_pipelines.apiclient.retries import RetryPolicy, parse_retry_after, retrying

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 30.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


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
        self._write_record(
            method=request.method,
            path=request.url.path,
            params=dict(request.url.params.multi_items()),
            status=status,
            duration_ms=duration_ms,
            attempt=attempt,
            error=error,
            started_at=started_at,
        )

    def record_part_failure(
        self, method: str, path: str, params: dict[str, Any], status: int | None, error: str
    ) -> None:
        """A failure that came back inside a successful answer (one item of a QBO batch):
        logged like a request of its own, so that the request log's errors show it."""
        self._write_record(
            method=method,
            path=path,
            params=params,
            status=status,
            duration_ms=0.0,
            attempt=1,
            error=self.redact(error),
            started_at=datetime.now(UTC),
        )

    def _write_record(
        self,
        *,
        method: str,
        path: str,
        params: dict[str, Any],
        status: int | None,
        duration_ms: float,
        attempt: int,
        error: str | None,
        started_at: datetime,
    ) -> None:
        if self.recorder is None:
            return
        record = ApiRequestRecord(
            system=self.system,
            portal=self.portal,
            run_id=self.run_id,
            method=method,
            path=path,
            params=redact_mapping(params),
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
