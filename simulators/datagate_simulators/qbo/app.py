"""The HTTP face of the QBO simulator: requests → backend calls, faults → QBO's bodies.

One app serves what Intuit spreads over several hosts (appcenter, oauth.platform,
developer.api, quickbooks.api); the discovery document points at the app itself, so
``intuitlib`` and our client only need the one base URL. Routes (sections of docs/qbo-api.md):

- ``GET  /.well-known/openid_configuration``  OpenID discovery (§1.1);
- ``GET  /connect/oauth2``                    the consent page, auto-answered (§1.2);
- ``POST /oauth2/v1/tokens/bearer``           both grant types (§1.2–1.4);
- ``POST /v2/oauth2/tokens/revoke``           revoke a grant (§1.5);
- ``GET  /v1/openid_connect/userinfo``, ``GET /op/v1/jwks``;
- ``GET|POST /v3/company/{realmId}/…``        the Accounting API;
- ``/_sim/...``                               control endpoints (see ``faults``).

Order of checks per API request: the gateway's throttle (429/3001) → Bearer token (401/3200,
403/3100) → ``requestid`` replay → the operation.

Middleware, outermost first: :class:`~.faults.QBOControl` (``/_sim/qbo``),
:class:`QBOGateway` (per-company throttles and counters), the shared
:class:`~datagate_simulators.faults.FaultMiddleware` (``/_sim`` switches, faults,
request counts), then the routes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from datetime import date, datetime, time, timezone
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from datagate_simulators.faults import FaultPlan, RequestStats

from . import errors
from .backend import QBOBackend
from .backend.batch import run_batch
from .backend.company import ENTITIES_BY_PATH, Company
from .clock import stamp
from .errors import OAuthError, QBOFault, fault_body, throttle_exceeded
from .faults import QBOControl, fault_middleware
from .jsonio import JSONError, json_response, loads
from .oauth import KNOWN_SCOPES
from .settings import QBOSettings

__all__ = ["QBOGateway", "create_app"]

DISCOVERY_PATHS = (
    "/.well-known/openid_configuration/",
    "/.well-known/openid_configuration",
    "/.well-known/openid_sandbox_configuration/",
    "/.well-known/openid_sandbox_configuration",
)


def _fault_response(fault: QBOFault, moment: datetime, settings: QBOSettings) -> Response:
    """A fault as QBO sends it: its status, its body in the configured shape, ``intuit_tid``."""
    body, content_type = fault_body(fault, moment, settings)
    return Response(
        body,
        status_code=fault.status,
        media_type=content_type,
        headers={"intuit_tid": str(uuid.uuid4()), **fault.headers},
    )


# --------------------------------------------------------------------------- OAuth


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def discovery(request: Request) -> Response:
    """OpenID discovery with every endpoint pointing at this server (docs/qbo-api.md §1.1)."""
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
    """``POST /oauth2/v1/tokens/bearer``: Basic client auth, form body.

    docs/qbo-api.md §1.2–1.4.
    """
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
        return _fault_response(fault, backend.clock.now(), backend.settings)
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


# --------------------------------------------------------------------------- the Accounting API


def _includes(request: Request) -> tuple[str, ...]:
    values = request.query_params.getlist("include")
    return tuple(part.strip() for v in values for part in v.split(",") if part.strip())


def _json_body(raw: bytes) -> Any:
    try:
        return loads(raw or b"null")
    except JSONError as exc:
        # QBO answers malformed JSON as an unsupported property (2010) [I].
        raise QBOFault(
            [
                errors.QBOError(
                    "2010",
                    "Request has invalid or unsupported property",
                    f"Property Name:{exc} specified is unsupported or invalid",
                )
            ]
        ) from None


def _changed_since(text: str | None, tz: timezone) -> datetime:
    if not text:
        raise errors.required_param_missing("changedSince")
    value = text.strip().replace(" ", "+")  # an unencoded "+" in the offset arrives as a space
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tz)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise errors.invalid_string(
            "changedSince", f"Invalid String : changedSince {text!r} is not an ISO date-time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


def _not_found_path(request: Request) -> QBOFault:
    return errors.unsupported_operation(
        f"Could not find resource for relative : {request.url.path} of full path: {request.url}"
    )


def dispatch(company: Company, request: Request, segments: list[str], raw: bytes) -> Any:
    """Run the operation; returns the payload (without ``time``)."""
    method = request.method
    params = request.query_params
    head = segments[0] if segments else ""
    spec = ENTITIES_BY_PATH.get(head)
    if method == "GET":
        if spec is not None and len(segments) == 2:
            return {spec.name: company.read(spec.name, segments[1])}
        if head == "companyinfo" and len(segments) == 2:
            return {"CompanyInfo": company.company_info(segments[1])}
        if head == "preferences" and len(segments) == 1:
            return {"Preferences": company.preferences()}
        if head == "query" and len(segments) == 1:
            return {"QueryResponse": company.query(params.get("query", ""))}
        if head == "cdc" and len(segments) == 1:
            names = [n.strip() for n in params.get("entities", "").split(",") if n.strip()]
            if not names:
                raise errors.required_param_missing("entities")
            since = _changed_since(params.get("changedSince"), company.tz)
            return {"CDCResponse": [{"QueryResponse": company.cdc(names, since)}]}
    elif method == "POST":
        if head == "query" and len(segments) == 1:
            return {"QueryResponse": company.query(raw.decode("utf-8", "replace"))}
        if head == "batch" and len(segments) == 1:
            settings = company.settings
            return run_batch(
                company,
                _json_body(raw),
                max_items=settings.batch_max_items,
                shuffle=settings.shuffle_batch,
            )
        if head == "preferences" and len(segments) == 1:
            return {"Preferences": company.update_preferences(_json_body(raw))}
        if segments == ["taxservice", "taxcode"]:
            return company.create_tax_code(_json_body(raw))
        if spec is not None and len(segments) == 1:
            body = _json_body(raw)
            operation = params.get("operation")
            include = _includes(request)
            if operation == "delete":
                return {spec.name: company.delete(spec.name, body)}
            if operation == "void":
                return {spec.name: company.void(spec.name, body)}
            if operation not in (None, "update", "create"):
                raise errors.unsupported_operation(f"{operation} for {spec.name}")
            # PQB posts updates without ?operation=update: an Id in the body means update.
            has_id = isinstance(body, dict) and body.get("Id") not in (None, "")
            if operation == "update" or has_id:
                return {spec.name: company.update(spec.name, body, include)}
            return {spec.name: company.create(spec.name, body, include)}
    raise _not_found_path(request)


async def api_endpoint(request: Request) -> Response:
    """The single route behind ``/v3/company/{realm_id}/{rest:path}``."""
    backend: QBOBackend = request.app.state.backend
    settings = backend.settings
    realm_id = request.path_params["realm_id"]
    segments = [unquote(s) for s in request.path_params["rest"].split("/") if s]
    raw = await request.body()
    try:
        backend.oauth.authenticate(request.headers.get("authorization"), realm_id)
        if not backend.has_company(realm_id):
            raise errors.authorization_failed(f"Company {realm_id} does not exist")
    except QBOFault as fault:
        return _fault_response(fault, backend.clock.now(), settings)
    company = backend.company(realm_id)
    request_id = request.query_params.get("requestid")
    is_batch = segments == ["batch"]
    if request_id is not None:
        limit = settings.batch_requestid_max_length if is_batch else settings.requestid_max_length
        if len(request_id) > limit:
            fault = errors.invalid_string_length("requestid", limit, len(request_id))
            return _fault_response(fault, backend.clock.now(), settings)
    if is_batch:
        backend.stats.add(realm_id, "batches")
    # One lock around replay lookup, execution and remembering: a duplicate requestid racing
    # the first request waits and then replays its answer.
    with company.lock:
        replay = company.replays.get(request_id) if request_id is not None else None
        if replay is not None:
            # Same requestid: the first answer again, nothing re-executed (docs/qbo-api.md §7.1).
            backend.stats.add(realm_id, "replayed")
            status, body, content_type = replay
            return Response(
                body,
                status_code=status,
                media_type=content_type,
                headers={"intuit_tid": str(uuid.uuid4())},
            )
        try:
            payload = dispatch(company, request, segments, raw)
            response = json_response(200, {**payload, "time": stamp(backend.clock.now(), settings)})
        except QBOFault as fault:
            response = _fault_response(fault, backend.clock.now(), settings)
        if request_id is not None:
            company.replays[request_id] = (
                response.status_code,
                bytes(response.body),
                response.media_type or "application/json",
            )
    return response


# --------------------------------------------------------------------------- gateway


_REALM_PATH = re.compile(r"^/v3/company/([^/]+)(/.*)?$")


class QBOGateway:
    """ASGI middleware: 429 (code 3001) beyond the company's limits; counts per company."""

    def __init__(self, app: Any, backend: QBOBackend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = _REALM_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        realm = match.group(1)
        batch = (match.group(2) or "").rstrip("/") == "/batch"
        backend = self.backend
        if not backend.throttle.try_acquire(realm, batch=batch):
            backend.stats.record(realm, 429)
            body, content_type = fault_body(
                throttle_exceeded(), backend.clock.now(), backend.settings
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", content_type.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        status: list[int] = []

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            backend.throttle.release(realm)
            backend.stats.record(realm, status[0] if status else None)


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
        fault_middleware(backend, plan, stats),
    ]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.backend = backend
    app.state.fault_plan = plan
    app.state.request_stats = stats
    return app
