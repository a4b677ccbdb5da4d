"""The HTTP face of the HaloPSA simulator: requests → backend calls, errors → Halo's bodies.

Routes (matched case-insensitively, like Halo's):

- ``POST /auth/token``                 OAuth2 client credentials (form body or HTTP Basic);
- ``GET  /api/authinfo``               ``{"auth_url", "tenant_id"}``, no token needed;
- ``GET|POST /api/<Resource>``         list / upsert;
- ``GET|DELETE /api/<Resource>/{id}``  one record;
- ``POST /api/Invoice/{id}/void``;
- ``POST /api/PurchaseOrder/confirmreceipt``  goods in for a purchase order;
- ``/_sim/...``                        control endpoints (see ``faults``).

Every ``/api`` call except authinfo needs a live bearer token and counts against the
application's rate limit (after authentication; refused requests are not counted).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from datagate_simulators.faults import FaultPlan, RequestStats
from datagate_simulators.halopsa.backend import HaloPSABackend
from datagate_simulators.halopsa.errors import HaloSimError, NotFound, ValidationFailed
from datagate_simulators.halopsa.faults import fault_middleware

__all__ = ["create_app"]

_METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH"]


def _error_response(exc: HaloSimError) -> Response:
    body = exc.body()
    headers = exc.headers()
    if body is None:
        return Response(status_code=exc.status, headers=headers)
    if isinstance(body, str):
        return PlainTextResponse(body, status_code=exc.status, headers=headers)
    return JSONResponse(body, status_code=exc.status, headers=headers)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        user, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return unquote(user), unquote(password)


class _HaloHTTP:
    def __init__(self, backend: HaloPSABackend) -> None:
        self.backend = backend

    async def handle(self, request: Request) -> Response:
        try:
            return await self._dispatch(request)
        except HaloSimError as exc:
            return _error_response(exc)

    async def _dispatch(self, request: Request) -> Response:
        segments = [s for s in request.url.path.split("/") if s]
        lowered = [s.lower() for s in segments]
        method = request.method
        if lowered == ["auth", "token"]:
            if method != "POST":
                return Response(status_code=405, headers={"Allow": "POST"})
            return await self._token(request)
        if not lowered or lowered[0] != "api" or len(lowered) < 2:
            raise NotFound(request.url.path)
        if lowered[1:] == ["authinfo"] and method == "GET":
            base = str(request.base_url).rstrip("/")
            return JSONResponse(self.backend.authinfo(base))

        token = self.backend.authenticate(_bearer(request))
        self.backend.check_rate_limit(token)
        resource = segments[1]
        write = method != "GET"
        self.backend.authorize(token, resource, write)
        params = dict(request.query_params)
        rest = lowered[2:]
        if not rest:
            if method == "GET":
                return JSONResponse(self.backend.list(resource, params).to_json())
            if method == "POST":
                items = await self._json_body(request)
                saved = self.backend.upsert(resource, items)
                return JSONResponse(saved[0] if len(saved) == 1 else saved, status_code=201)
            return Response(status_code=405, headers={"Allow": "GET, POST"})
        if rest == ["confirmreceipt"] and self.backend.resource(resource).name == "PurchaseOrder":
            if method != "POST":
                return Response(status_code=405, headers={"Allow": "POST"})
            return JSONResponse(self.backend.confirm_receipt(await self._json_body(request)))
        if len(rest) == 1:
            record_id = segments[2]
            if method == "GET":
                return JSONResponse(self.backend.get(resource, record_id, params))
            if method == "DELETE":
                return JSONResponse(self.backend.delete(resource, record_id))
            if method == "POST":
                raise NotFound(request.url.path)
            return Response(status_code=405, headers={"Allow": "GET, DELETE"})
        if (
            len(rest) == 2
            and rest[1] == "void"
            and self.backend.resource(resource).name == "Invoice"
        ):
            if method != "POST":
                return Response(status_code=405, headers={"Allow": "POST"})
            return JSONResponse(self.backend.void_invoice(segments[2]))
        raise NotFound(request.url.path)

    async def _json_body(self, request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValidationFailed({"": ["The request body is not valid JSON."]}) from None

    async def _token(self, request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", "replace")
        content_type = request.headers.get("content-type", "")
        form = dict(parse_qsl(raw, keep_blank_values=True)) if "json" not in content_type else {}
        basic_id, basic_secret = _basic_credentials(request)
        # tenant: query parameter [C] HAPI, N8N; or form field [R] NODEH, PYH. Missing is fine.
        tenant = request.query_params.get("tenant") or form.get("tenant")
        body = self.backend.issue_token(
            grant_type=form.get("grant_type"),
            client_id=form.get("client_id") or basic_id,
            client_secret=form.get("client_secret") or basic_secret,
            scope=form.get("scope"),
            tenant=tenant,
        )
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def create_app(
    backend: HaloPSABackend, *, faults: FaultPlan | None = None, stats: RequestStats | None = None
) -> Starlette:
    """The simulator's ASGI app over ``backend``.

    ``app.state.backend``, ``app.state.faults`` (a FaultPlan) and ``app.state.stats`` (a
    RequestStats) are the handles tests use to flip switches and read counters.
    """
    faults = faults if faults is not None else FaultPlan()
    stats = stats if stats is not None else RequestStats()
    handler = _HaloHTTP(backend)
    app = Starlette(
        routes=[Route("/{path:path}", handler.handle, methods=_METHODS)],
        middleware=[fault_middleware(backend, faults, stats)],
    )
    app.state.backend = backend
    app.state.faults = faults
    app.state.stats = stats
    return app
