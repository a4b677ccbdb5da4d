"""``/v3/company/{realmId}/…``: maps requests to backend calls and faults to QBO's bodies.

Order of checks per request: Bearer token (401/3200, 403/3100) → ``requestid`` replay →
the operation. Throttling happens earlier, in :mod:`.gateway`.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timezone
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from . import errors
from .backend import QBOBackend
from .backend.batch import run_batch
from .backend.company import ENTITIES_BY_PATH, Company
from .errors import QBOFault
from .jsonio import JSONError, loads
from .responses import fault_response, json_response, stamp

__all__ = ["api_endpoint"]


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
        return fault_response(fault, backend.clock.now(), settings)
    company = backend.company(realm_id)
    request_id = request.query_params.get("requestid")
    is_batch = segments == ["batch"]
    if request_id is not None:
        limit = settings.batch_requestid_max_length if is_batch else settings.requestid_max_length
        if len(request_id) > limit:
            fault = errors.invalid_string_length("requestid", limit, len(request_id))
            return fault_response(fault, backend.clock.now(), settings)
    if is_batch:
        backend.stats.add(realm_id, "batches")
    # One lock around replay lookup, execution and remembering: a duplicate requestid racing
    # the first request waits and then replays its answer.
    with company.lock:
        replay = company.replays.get(request_id) if request_id is not None else None
        if replay is not None:
            # Same requestid: the first answer again, nothing re-executed (QBO_API.md §7.1).
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
            response = fault_response(fault, backend.clock.now(), settings)
        if request_id is not None:
            company.replays[request_id] = (
                response.status_code,
                bytes(response.body),
                response.media_type or "application/json",
            )
    return response
