"""Plain-Python API clients (no Dagster): the shared HTTP core and one client per service.

`http` holds what every client shares (rate limiter, retry policy, request records,
redaction, typed errors, `ApiClientBase`); `halopsa` is the HaloPSA client.
"""

from datagate_pipelines.clients.http import (
    ApiClientBase,
    ApiError,
    ApiRequestRecord,
    AuthError,
    BadRequestError,
    ClientStats,
    NotFoundError,
    RateLimitedError,
    RateLimiter,
    RequestRecorder,
    RetryPolicy,
    ServerError,
    TransportError,
    redact,
    retrying,
)

__all__ = [
    "ApiClientBase",
    "ApiError",
    "ApiRequestRecord",
    "AuthError",
    "BadRequestError",
    "ClientStats",
    "NotFoundError",
    "RateLimitedError",
    "RateLimiter",
    "RequestRecorder",
    "RetryPolicy",
    "ServerError",
    "TransportError",
    "redact",
    "retrying",
]
