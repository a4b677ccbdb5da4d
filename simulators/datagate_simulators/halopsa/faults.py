"""HaloPSA's fault switches: its kinds for ``POST /_sim/faults`` and its injected error bodies.

The shared machinery (``datagate_simulators.faults``) serves ``/_sim``; this module plugs
HaloPSA into it. The switches' state is the backend's (tokens, rate limit, list faults).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.middleware import Middleware

from datagate_simulators.faults import (
    FaultMiddleware,
    FaultPlan,
    FaultSpecError,
    RequestStats,
)
from datagate_simulators.halopsa.backend import HaloPSABackend
from datagate_simulators.halopsa.errors import NotFound, RateLimited
from datagate_simulators.halopsa.throttle import RateLimit

__all__ = ["fault_handlers", "fault_middleware", "injected_error_body"]


def injected_error_body(status: int) -> tuple[Any, ...]:
    """Bodies for injected errors: the rate-limit text for 429, .NET JSON for 500, gateway text else."""
    if status == 429:
        limit = RateLimit()
        exc = RateLimited(limit.message(), 60)
        return exc.body().encode(), "text/plain; charset=utf-8", exc.headers()
    if status == 500:
        body = {
            "ClassName": "System.Exception",
            "Message": "An unexpected error occurred (simulated).",
        }
        return json.dumps(body).encode(), "application/json; charset=utf-8"
    phrases = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
    return f"{status} {phrases.get(status, 'Error')}".encode(), "text/plain; charset=utf-8"


def fault_handlers(backend: HaloPSABackend) -> dict[str, Any]:
    """HaloPSA-specific kinds accepted by ``POST /_sim/faults``."""

    def expire_tokens(spec: dict[str, Any]) -> Any:
        return {"kind": "expire_tokens", "revoked": backend.expire_tokens()}

    def token_lifetime(spec: dict[str, Any]) -> Any:
        seconds = spec.get("seconds")
        backend.set_token_lifetime(None if seconds is None else float(seconds))
        return {"kind": "token_lifetime", "seconds": seconds}

    def malformed_rows(spec: dict[str, Any]) -> Any:
        try:
            backend.malform_rows(
                str(spec["resource"]),
                str(spec["mode"]),
                spec.get("field"),
                count=int(spec.get("count", 1)),
                rows=spec.get("rows", "first"),
            )
        except (KeyError, ValueError, NotFound) as exc:
            raise FaultSpecError(f"bad malformed_rows spec: {exc}") from exc
        return {k: spec.get(k) for k in ("kind", "resource", "mode", "field", "count", "rows")}

    def between_pages(spec: dict[str, Any]) -> Any:
        try:
            method = (
                backend.delete_between_pages
                if spec["kind"] == "delete_between_pages"
                else backend.add_between_pages
            )
            method(
                str(spec["resource"]), int(spec.get("after_page", 1)), int(spec.get("records", 1))
            )
        except (KeyError, ValueError, NotFound) as exc:
            raise FaultSpecError(f"bad {spec.get('kind')} spec: {exc}") from exc
        return {k: spec.get(k) for k in ("kind", "resource", "after_page", "records")}

    def ignore_change_filters(spec: dict[str, Any]) -> Any:
        resources = spec.get("resources") or ["Client", "Site"]
        try:
            backend.ignore_change_filters(*map(str, resources), ignore=bool(spec.get("on", True)))
        except NotFound as exc:
            raise FaultSpecError(f"bad ignore_change_filters spec: {exc}") from exc
        return {"kind": "ignore_change_filters", "resources": resources, "on": spec.get("on", True)}

    def rate_limit(spec: dict[str, Any]) -> Any:
        current = backend.rate_limit
        try:
            limit = RateLimit(
                requests=int(spec.get("requests", current.requests)),
                window_seconds=float(spec.get("window_seconds", current.window_seconds)),
                retry_after=bool(spec.get("retry_after", current.retry_after)),
                enabled=bool(spec.get("enabled", True)),
            )
        except (TypeError, ValueError) as exc:
            raise FaultSpecError(f"bad rate_limit spec: {exc}") from exc
        backend.set_rate_limit(limit)
        return {"kind": "rate_limit", **limit.__dict__}

    return {
        "expire_tokens": expire_tokens,
        "token_lifetime": token_lifetime,
        "malformed_rows": malformed_rows,
        "delete_between_pages": between_pages,
        "add_between_pages": between_pages,
        "rate_limit": rate_limit,
        "ignore_change_filters": ignore_change_filters,
    }


def fault_middleware(backend: HaloPSABackend, plan: FaultPlan, stats: RequestStats) -> Middleware:
    """The shared fault middleware, wired to the backend's switches, counters and error bodies."""
    return Middleware(
        FaultMiddleware,
        plan=plan,
        stats=stats,
        fault_handlers=fault_handlers(backend),
        on_reset=backend.reset_faults,
        extra_stats=lambda: {"halopsa": backend.stats()},
        extra_faults=lambda: {"halopsa": backend.faults.describe()},
        error_body=injected_error_body,
    )
