"""The QBO simulator's ASGI app: Intuit's OAuth endpoints and the v3 Accounting API.

One app serves what Intuit spreads over several hosts (appcenter, oauth.platform,
developer.api, quickbooks.api); the discovery document points at the app itself, so
``intuitlib`` and our client only need the one base URL.

Middleware, outermost first: :class:`~.control.QBOControl` (``/_sim/qbo``),
:class:`~.gateway.QBOGateway` (per-company throttles and counters), the shared
:class:`~datagate_simulators.faults.FaultMiddleware` (``/_sim`` switches, faults,
request counts), then the routes.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from datagate_simulators.faults import FaultMiddleware, FaultPlan, RequestStats

from .api import api_endpoint
from .backend import QBOBackend
from .control import QBOControl, fault_handlers
from .errors import OAuthError, QBOFault
from .gateway import QBOGateway
from .oauth import KNOWN_SCOPES
from .responses import fault_response, injected_fault_body, json_response

__all__ = ["create_app"]

DISCOVERY_PATHS = (
    "/.well-known/openid_configuration/",
    "/.well-known/openid_configuration",
    "/.well-known/openid_sandbox_configuration/",
    "/.well-known/openid_sandbox_configuration",
)


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def discovery(request: Request) -> Response:
    """OpenID discovery with every endpoint pointing at this server (QBO_API.md §1.1)."""
    base = _base(request)
    return json_response(
        200,
        {
            "issuer": f"{base}/op/v1",
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": sorted(KNOWN_SCOPES),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        },
    )


def _oauth_error(exc: OAuthError) -> Response:
    return json_response(exc.status, exc.to_json())


async def authorize(request: Request) -> Response:
    """The consent page, auto-answered: 302 to ``redirect_uri`` with ``code, state, realmId``."""
    backend: QBOBackend = request.app.state.backend
    try:
        location = backend.oauth.authorize(dict(request.query_params))
    except OAuthError as exc:
        return _oauth_error(exc)
    return RedirectResponse(location, status_code=302)


def _basic_auth(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


async def token(request: Request) -> Response:
    """``POST /oauth2/v1/tokens/bearer``: Basic client auth, form body (QBO_API.md §1.2–1.4)."""
    backend: QBOBackend = request.app.state.backend
    client_id, secret = _basic_auth(request)
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    hard = request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true"
    try:
        body = backend.oauth.token(client_id, secret, form, hard_expiry=hard)
    except OAuthError as exc:
        return _oauth_error(exc)
    return json_response(200, body, headers={"cache-control": "no-store"})


async def revoke(request: Request) -> Response:
    """``POST /v2/oauth2/tokens/revoke`` with ``{"token": …}`` as JSON or form (§1.5)."""
    backend: QBOBackend = request.app.state.backend
    client_id, secret = _basic_auth(request)
    raw = (await request.body()).decode("utf-8", "replace")
    token_value = ""
    if "json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(raw or "{}")
            token_value = str(data.get("token", "")) if isinstance(data, dict) else ""
        except ValueError:
            return _oauth_error(OAuthError("invalid_request", "body is not JSON"))
    else:
        token_value = dict(parse_qsl(raw)).get("token", "")
    try:
        backend.oauth.revoke(client_id, secret, token_value)
    except OAuthError as exc:
        return _oauth_error(exc)
    return Response(status_code=200)


async def userinfo(request: Request) -> Response:
    backend: QBOBackend = request.app.state.backend
    try:
        realm_id = backend.oauth.authenticate(request.headers.get("authorization"), None)
    except QBOFault as fault:
        return fault_response(fault, backend.clock.now(), backend.settings)
    return json_response(
        200,
        {
            "sub": f"sim-user-{realm_id}",
            "email": f"owner-{realm_id}@example.invalid",
            "emailVerified": True,
            "givenName": "Simulated",
            "familyName": "Owner",
        },
    )


async def jwks(request: Request) -> Response:
    return json_response(200, {"keys": []})


def create_app(
    backend: QBOBackend | None = None,
    *,
    fault_plan: FaultPlan | None = None,
    request_stats: RequestStats | None = None,
) -> Starlette:
    """The simulator app over ``backend`` (a fresh, empty backend if None).

    ``app.state`` holds ``backend``, ``fault_plan`` and ``request_stats``.
    """
    backend = backend or QBOBackend()
    plan = fault_plan or FaultPlan()
    stats = request_stats or RequestStats()

    def error_body(status: int) -> tuple[bytes, str]:
        return injected_fault_body(status, backend.clock.now(), backend.settings)

    def extra_stats() -> dict[str, Any]:
        return {"qbo": {"realms": backend.stats.snapshot()}}

    routes = [
        *(Route(path, discovery, methods=["GET"]) for path in DISCOVERY_PATHS),
        Route("/connect/oauth2", authorize, methods=["GET"]),
        Route("/oauth2/v1/tokens/bearer", token, methods=["POST"]),
        Route("/v2/oauth2/tokens/revoke", revoke, methods=["POST"]),
        Route("/v1/openid_connect/userinfo", userinfo, methods=["GET"]),
        Route("/op/v1/jwks", jwks, methods=["GET"]),
        Route("/v3/company/{realm_id}/{rest:path}", api_endpoint, methods=["GET", "POST"]),
    ]
    middleware = [
        Middleware(QBOControl, backend=backend),
        Middleware(QBOGateway, backend=backend),
        Middleware(
            FaultMiddleware,
            plan=plan,
            stats=stats,
            fault_handlers=fault_handlers(backend),
            on_reset=backend.reset_switches,
            extra_stats=extra_stats,
            error_body=error_body,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.backend = backend
    app.state.fault_plan = plan
    app.state.request_stats = stats
    return app
