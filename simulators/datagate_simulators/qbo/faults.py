"""QBO's fault switches: its kinds for ``POST /_sim/faults``, injected bodies, ``/_sim/qbo``.

The shared :class:`~datagate_simulators.faults.FaultMiddleware` owns ``/_sim``
(faults, stats, reset). This module plugs QBO into it and adds:

- extra fault kinds for ``POST /_sim/faults``: ``{"kind": "expire_tokens", "realm_id"?}``,
  ``{"kind": "rotate_refresh_tokens", "realm_id"?}``, ``{"kind": "deny_consent"}``;
- QBO-shaped bodies for injected statuses (:func:`injected_error_body`);
- ``/_sim/qbo/…`` endpoints for tests and demos (served by :class:`QBOControl`, which sits in
  front of the shared middleware), listed in :data:`ENDPOINTS`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datagate_simulators.faults import FaultMiddleware, FaultPlan, RequestStats

from . import errors
from .backend import QBOBackend
from .backend.company import ENTITIES
from .errors import QBOFault, fault_body
from .jsonio import JSONError, json_response, loads
from .settings import QBOSettings

__all__ = [
    "CONTROL_PREFIX",
    "ENDPOINTS",
    "QBOControl",
    "fault_handlers",
    "fault_middleware",
    "injected_error_body",
]

CONTROL_PREFIX = "/_sim/qbo"

ENDPOINTS = {
    "GET /_sim/qbo/stats": "per-company counts: requests, throttled (429), replayed, by status",
    "GET /_sim/qbo/companies": "the companies (realm ids and names)",
    "POST /_sim/qbo/companies": "seed a company: the keyword arguments of seed_company as JSON",
    "GET /_sim/qbo/companies/{realm}/records/{Entity}?include_deleted=true": "inspect records",
    "POST /_sim/qbo/companies/{realm}/preferences": "{custom_txn_numbers, using_sales_tax}",
    "POST /_sim/qbo/companies/{realm}/access-token": "mint an access token (skips OAuth)",
    "GET /_sim/qbo/oauth/refresh-tokens/{token}": "what the server knows about a refresh token",
    "POST /_sim/qbo/oauth/expire-access-tokens": "{realm_id?}: access tokens expire now",
    "POST /_sim/qbo/oauth/rotate-refresh-tokens": "{realm_id?}: next refresh returns a new RT",
    "POST /_sim/qbo/oauth/consent": "{approve: bool, realm_id?}: the consent screen's answer",
    "GET|POST /_sim/qbo/settings": "throttle limits and behaviour switches",
    "POST /_sim/qbo/clock/advance": "{seconds}: move a FakeClock forward",
    "GET|POST /_sim/qbo/webhooks": "{url, verifier_token, format, entities, delay, retry_delays}",
    "POST /_sim/qbo/webhooks/flush": "send the webhook notifications that are due now",
}

_SWITCHES = (
    "xml_throttle",
    "lowercase_gateway_faults",
    "shuffle_batch",
    "batch_max_items",
    "strict_query_properties",
    "reject_duplicate_doc_numbers_when_auto",
)


def injected_fault(status: int) -> QBOFault:
    """The QBO-shaped fault for a status injected through ``POST /_sim/faults`` [I]."""
    if status == 429:
        return errors.throttle_exceeded()
    if status == 401:
        return errors.authentication_failed("Token expired")
    if status == 403:
        return errors.authorization_failed("Access denied")
    if status >= 500:
        return QBOFault(
            [
                errors.QBOError(
                    "10000",
                    "An application error has occurred while processing your request",
                    f"System Failure Error: simulated HTTP {status}",
                )
            ],
            type="SystemFault",
            status=status,
        )
    return QBOFault(
        [
            errors.QBOError(
                "6000",
                "A business validation error has occurred while processing your request",
                f"Business Validation Error: simulated HTTP {status}",
            )
        ],
        status=status,
    )


def injected_error_body(status: int, moment: datetime, settings: QBOSettings) -> tuple[bytes, str]:
    """(body, content type) of an injected status, in the shape the settings ask for."""
    return fault_body(injected_fault(status), moment, settings)


def fault_handlers(backend: QBOBackend) -> dict[str, Any]:
    """Extra kinds for ``POST /_sim/faults`` (the shared fault middleware's hook)."""
    oauth = backend.oauth

    def expire(spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "expire_tokens",
            "expired": oauth.expire_access_tokens(spec.get("realm_id")),
        }

    def rotate(spec: dict[str, Any]) -> dict[str, Any]:
        hit = oauth.force_rotation(spec.get("realm_id"))
        return {"kind": "rotate_refresh_tokens", "refresh_tokens": hit}

    def deny(spec: dict[str, Any]) -> dict[str, Any]:
        oauth.approve = bool(spec.get("approve", False))
        return {"kind": "deny_consent", "approve": oauth.approve}

    return {"expire_tokens": expire, "rotate_refresh_tokens": rotate, "deny_consent": deny}


def fault_middleware(backend: QBOBackend, plan: FaultPlan, stats: RequestStats) -> Middleware:
    """The shared fault middleware, wired to the backend's switches, counters and error bodies."""

    def error_body(status: int) -> tuple[bytes, str]:
        return injected_error_body(status, backend.clock.now(), backend.settings)

    def extra_stats() -> dict[str, Any]:
        return {"qbo": {"realms": backend.stats.snapshot()}}

    return Middleware(
        FaultMiddleware,
        plan=plan,
        stats=stats,
        fault_handlers=fault_handlers(backend),
        on_reset=backend.reset_switches,
        extra_stats=extra_stats,
        error_body=error_body,
    )


# --------------------------------------------------------------------------- /_sim/qbo


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = loads(raw) if raw.strip() else {}
    except JSONError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def _handle(func: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        try:
            return await func(request, request.app.state.backend)
        except (ValueError, KeyError, TypeError, QBOFault) as exc:
            status = 404 if isinstance(exc, KeyError) else 400
            return _error(status, str(exc))

    return endpoint


async def _stats(request: Request, backend: QBOBackend) -> Response:
    return json_response(200, {"realms": backend.stats.snapshot()})


async def _companies(request: Request, backend: QBOBackend) -> Response:
    if request.method == "POST":
        spec = await _json(request)
        realm_id = str(spec.pop("realm_id"))
        company = backend.seed_company(realm_id, **spec)
        return json_response(
            201,
            {
                "realm_id": company.realm_id,
                "refresh_token": backend.oauth.current_refresh_token(realm_id),
            },
        )
    companies = [
        {"realm_id": r, "name": backend.company(r).company_info()["CompanyName"]}
        for r in backend.realm_ids()
    ]
    return json_response(200, {"companies": companies})


async def _records(request: Request, backend: QBOBackend) -> Response:
    company = backend.company(request.path_params["realm"])
    entity = request.path_params["entity"]
    if entity not in ENTITIES:
        raise KeyError(f"unknown entity {entity}")
    deleted = request.query_params.get("include_deleted", "").lower() == "true"
    return json_response(200, {entity: company.records(entity, include_deleted=deleted)})


async def _preferences(request: Request, backend: QBOBackend) -> Response:
    company = backend.company(request.path_params["realm"])
    spec = await _json(request)
    company.set_preferences(
        custom_txn_numbers=spec.get("custom_txn_numbers"),
        using_sales_tax=spec.get("using_sales_tax"),
    )
    return json_response(200, {"Preferences": company.preferences()})


async def _access_token(request: Request, backend: QBOBackend) -> Response:
    realm = request.path_params["realm"]
    return json_response(200, {"access_token": backend.access_token(realm)})


async def _refresh_token(request: Request, backend: QBOBackend) -> Response:
    state = backend.oauth.refresh_token_state(request.path_params["token"])
    if state is None:
        raise KeyError("unknown refresh token")
    return json_response(200, state)


async def _expire(request: Request, backend: QBOBackend) -> Response:
    spec = await _json(request)
    return json_response(200, {"expired": backend.oauth.expire_access_tokens(spec.get("realm_id"))})


async def _rotate(request: Request, backend: QBOBackend) -> Response:
    spec = await _json(request)
    return json_response(
        200, {"refresh_tokens": backend.oauth.force_rotation(spec.get("realm_id"))}
    )


async def _consent(request: Request, backend: QBOBackend) -> Response:
    spec = await _json(request)
    backend.oauth.approve = bool(spec.get("approve", True))
    backend.oauth.consent_realm = spec.get("realm_id")
    return json_response(
        200, {"approve": backend.oauth.approve, "realm_id": backend.oauth.consent_realm}
    )


async def _settings(request: Request, backend: QBOBackend) -> Response:
    settings = backend.settings
    if request.method == "POST":
        spec = await _json(request)
        throttle = spec.pop("throttle", None) or {}
        for key in spec:
            if key not in _SWITCHES:
                raise ValueError(
                    f"unknown setting {key!r}; known: throttle, {', '.join(_SWITCHES)}"
                )
        backend.throttle.configure(
            **{
                k: int(v) if k != "window" and k != "batch_window" else float(v)
                for k, v in throttle.items()
            }
        )
        for key, value in spec.items():
            setattr(settings, key, type(getattr(settings, key))(value))
    current = {key: getattr(settings, key) for key in _SWITCHES}
    current["throttle"] = {
        # Windows are float seconds; the exact-decimal writer refuses floats.
        key: Decimal(str(value)) if isinstance(value, float) else value
        for key, value in vars(backend.throttle.settings).items()
    }
    return json_response(200, current)


async def _advance(request: Request, backend: QBOBackend) -> Response:
    advance = getattr(backend.clock, "advance", None)
    if advance is None:
        return _error(409, "the simulator runs on the system clock; start it with a FakeClock")
    spec = await _json(request)
    moment = advance(float(spec.get("seconds", 0)))
    return json_response(200, {"now": moment.isoformat()})


async def _webhooks(request: Request, backend: QBOBackend) -> Response:
    if request.method == "POST":
        backend.webhooks.configure(**await _json(request))
    return json_response(200, backend.webhooks.snapshot())


async def _flush_webhooks(request: Request, backend: QBOBackend) -> Response:
    sent = backend.webhooks.flush()
    return json_response(
        200, {"sent": [{"attempt": d.attempt, "status": d.status, "error": d.error} for d in sent]}
    )


def _control_app(backend: QBOBackend) -> Starlette:
    p = CONTROL_PREFIX
    routes = [
        Route(f"{p}/stats", _handle(_stats), methods=["GET"]),
        Route(f"{p}/companies", _handle(_companies), methods=["GET", "POST"]),
        Route(f"{p}/companies/{{realm}}/records/{{entity}}", _handle(_records), methods=["GET"]),
        Route(f"{p}/companies/{{realm}}/preferences", _handle(_preferences), methods=["POST"]),
        Route(f"{p}/companies/{{realm}}/access-token", _handle(_access_token), methods=["POST"]),
        Route(f"{p}/oauth/refresh-tokens/{{token}}", _handle(_refresh_token), methods=["GET"]),
        Route(f"{p}/oauth/expire-access-tokens", _handle(_expire), methods=["POST"]),
        Route(f"{p}/oauth/rotate-refresh-tokens", _handle(_rotate), methods=["POST"]),
        Route(f"{p}/oauth/consent", _handle(_consent), methods=["POST"]),
        Route(f"{p}/settings", _handle(_settings), methods=["GET", "POST"]),
        Route(f"{p}/clock/advance", _handle(_advance), methods=["POST"]),
        Route(f"{p}/webhooks", _handle(_webhooks), methods=["GET", "POST"]),
        Route(f"{p}/webhooks/flush", _handle(_flush_webhooks), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.backend = backend
    return app


class QBOControl:
    """ASGI middleware: serves ``/_sim/qbo/…`` itself, passes everything else on."""

    def __init__(self, app: Any, backend: QBOBackend) -> None:
        self.app = app
        self.control = _control_app(backend)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            await self.control(scope, receive, send)
        else:
            await self.app(scope, receive, send)
