"""Typed errors of the API clients: each names the system, portal, request and record."""

from __future__ import annotations

from typing import Any, ClassVar

from datagate_pipelines import DatagateError


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
