"""The QuickBooks Online client: Intuit OAuth 2.0 and the v3 Accounting API (QBO_API.md).

Plain Python (no Dagster). Two clients share the HTTP core (`clients.http`):

- `QBOAuthClient` talks to Intuit's token and revoke endpoints (refresh, code exchange,
  revoke) with the app's Basic credentials;
- `QBOClient` talks to one company (realm) of one portal. It takes its access tokens from an
  `AccessTokens` source — in production `datagate_pipelines.qbo_tokens.QBOTokenStore`, which
  stores every rotated refresh token encrypted in the warehouse.

What this module absorbs from QBO:
- numbers are parsed as `Decimal` and written back exactly (never through `float`);
- every call sends `minorversion`; faults (`{"Fault": …}`, the gateway's lower-case
  `{"fault": …}`, XML throttle bodies, and a 200 that carries a Fault) become typed errors
  with QBO's code, element and detail (`QBOFaultError.code == "6240"`);
- queries are paged with STARTPOSITION/MAXRESULTS to the end; values are quoted with
  backslash escapes;
- writes carry a deterministic `requestid` (`request_id_for`), so a retried or re-run create
  replays the first answer instead of creating a duplicate; such writes are retried after a
  5xx or a dropped connection, writes without one are not;
- batches are cut into chunks of `batch_size`, answered by `bId` (in any order), per-item
  faults surfaced as error objects carrying the entity and the caller's id.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal, Protocol

import httpx

from datagate_pipelines.clients.http import (
    ApiClientBase,
    ApiError,
    AuthError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    RateLimiter,
    RequestRecorder,
    RetryPolicy,
    ServerError,
    TransportError,
)

logger = logging.getLogger(__name__)

SYSTEM = "qbo"
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
DEFAULT_BASE_URL = "https://quickbooks.api.intuit.com"
DEFAULT_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
DEFAULT_REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
DEFAULT_MINOR_VERSION = 75
#: QBO's largest page (§4); asking for more is a 400.
MAX_PAGE_SIZE = 1000
#: QBO's largest batch (§5).
MAX_BATCH_SIZE = 30
#: `requestid` limits (§7.1): 50 characters, 36 on a batch.
REQUEST_ID_MAX = 50
BATCH_REQUEST_ID_MAX = 36
#: Batch requests per minute per company and app (§5).
BATCH_RATE = (40, 60.0)
#: Name-list entities: queries return active records only unless `Active` is constrained.
NAME_LISTS = frozenset(
    {"Account", "Customer", "Item", "Term", "TaxCode", "TaxRate", "TaxAgency", "Vendor", "Class"}
)
# A guard against a server that never stops paging: 10 million rows.
_MAX_PAGES = 10_000
# Doc numbers per `IN (…)` query: keeps the GET URL short.
_DOC_NUMBER_CHUNK = 50
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ENTITY = re.compile(r"^[A-Z][A-Za-z]*$")
_PAGING_CLAUSE = re.compile(r"\b(STARTPOSITION|MAXRESULTS)\b", re.IGNORECASE)
# A fixed namespace: request ids must come out the same in every process, for ever.
_REQUEST_ID_NAMESPACE = uuid.UUID("5b0e4f1c-9a57-4c1e-8d7a-2f1e7a3c9b10")


# ---------------------------------------------------------------------------------------
# Exact JSON
# ---------------------------------------------------------------------------------------


def loads(data: bytes | str) -> Any:
    """Parse a QBO body: decimals become `Decimal` (money stays exact), integers `int`."""
    return json.loads(data, parse_float=Decimal)


def dumps(value: Any) -> bytes:
    """Serialize a request body; `Decimal` is written as a plain JSON number, exactly.

    Floats are refused: money must never pass through binary floating point.
    """
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("utf-8")


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, bool) or value is None:
        out.append(json.dumps(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be sent to QBO")
        text = format(value, "f")
        out.append("0" if text.lstrip("-").strip("0.") == "" else text)
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        raise TypeError("floats are not sent to QBO; use Decimal for amounts")
    elif isinstance(value, datetime | date):
        out.append(json.dumps(value.isoformat()))
    else:
        out.append(json.dumps(str(value), ensure_ascii=False))


class _ExactJSONHttpClient(httpx.Client):
    """`httpx.Client` whose `json=` bodies are written by `dumps` (exact `Decimal`s)."""

    def build_request(self, method: str, url: Any, **kwargs: Any) -> httpx.Request:
        body = kwargs.pop("json", None)
        if body is not None:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("Content-Type", "application/json")
            kwargs["headers"] = headers
            kwargs["content"] = dumps(body)
        return super().build_request(method, url, **kwargs)


# ---------------------------------------------------------------------------------------
# Typed errors
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultEntry:
    """One entry of a QBO `Fault.Error` list."""

    code: str
    message: str
    detail: str = ""
    element: str = ""


class QBOError(ApiError):
    """A QBO request failed. Besides `ApiError`'s fields: QBO's first fault `code`,
    `element`, `detail` and `fault_type` (None when the answer carried no Fault), every
    entry in `faults`, the caller's `our_id` and QBO's `qbo_id` of the record."""

    code: str | None = None
    element: str | None = None
    detail: str | None = None
    fault_type: str | None = None
    faults: tuple[FaultEntry, ...] = ()
    our_id: str | None = None
    qbo_id: str | None = None

    @property
    def outcome(self) -> str:
        if self.status is None and self.code is not None:
            return f"QBO fault: {self.message}"
        return super().outcome


class QBOAuthError(QBOError, AuthError):
    """401/403 from the API, or the token endpoint refused the app's credentials."""

    hint = (
        "check this portal's qbo client id/secret environment variables and realm_id in "
        "portals.yaml; if the company was disconnected, run `datagate qbo connect`"
    )


class QBOInvalidGrantError(QBOAuthError):
    """The token endpoint answered `invalid_grant`: the refresh token (or authorization code)
    is expired, rotated away, revoked or already used."""

    hint = ""


class QBOFaultError(QBOError, BadRequestError):
    """QBO refused the request or its data (a validation or business Fault)."""


class QBONotFoundError(QBOFaultError, NotFoundError):
    """610 Object Not Found: the record does not exist (or was deleted)."""


class QBOStaleObjectError(QBOFaultError):
    """5010 Stale Object Error: the SyncToken sent is not the current one."""


class QBODuplicateNameError(QBOFaultError):
    """6240 Duplicate Name Exists: the DisplayName/Name is used by another record."""


class QBODuplicateDocNumberError(QBOFaultError):
    """6140 Duplicate Document Number: the DocNumber is used already."""


class QBORateLimitedError(QBOError, RateLimitedError):
    """429 (code 3001) and still throttled after the retries."""


class QBOServerError(QBOError, ServerError):
    pass


class QBOTransportError(QBOError, TransportError):
    hint = "check this portal's qbo base_url/token_url and the network"


_ERRORS_BY_CODE: dict[str, type[QBOError]] = {
    "610": QBONotFoundError,
    "5010": QBOStaleObjectError,
    "6240": QBODuplicateNameError,
    "6140": QBODuplicateDocNumberError,
}


def parse_faults(body: bytes | str) -> tuple[str | None, list[FaultEntry]]:
    """`(fault type, entries)` from any of QBO's fault shapes (JSON `Fault`, the gateway's
    lower-case `fault`, XML `IntuitResponse`); `(None, [])` when there is none."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    if text.startswith("<"):
        return _xml_faults(text)
    try:
        data = loads(text) if text else None
    except ValueError:
        return None, []
    if not isinstance(data, dict):
        return None, []
    fault = data.get("Fault") or data.get("fault")
    return _json_faults(fault) if isinstance(fault, dict) else (None, [])


def _json_faults(fault: Mapping[str, Any]) -> tuple[str | None, list[FaultEntry]]:
    entries = []
    for raw in fault.get("Error") or fault.get("error") or []:
        if not isinstance(raw, dict):
            continue

        def get(key: str, raw: dict[str, Any] = raw) -> str:
            value = raw.get(key, raw.get(key.lower(), raw.get(key[:1].upper() + key[1:])))
            return "" if value is None else str(value)

        entries.append(FaultEntry(get("code"), get("Message"), get("Detail"), get("element")))
    kind = fault.get("type")
    return (str(kind) if kind is not None else None), entries


def _xml_faults(text: str) -> tuple[str | None, list[FaultEntry]]:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None, []
    for node in root.iter():
        if node.tag.rsplit("}", 1)[-1] != "Fault":
            continue
        entries = []
        for error in node:
            if error.tag.rsplit("}", 1)[-1] != "Error":
                continue
            texts = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in error}
            entries.append(
                FaultEntry(
                    error.get("code", ""),
                    texts.get("Message", ""),
                    texts.get("Detail", ""),
                    error.get("element", ""),
                )
            )
        return node.get("type"), entries
    return None, []


def describe_faults(entries: Sequence[FaultEntry]) -> str:
    """`6240 Duplicate Name Exists Error: <detail> (element DisplayName)`; several joined."""
    parts = []
    for entry in entries:
        text = f"{entry.code} {entry.message}".strip()
        if entry.detail and entry.detail != entry.message:
            text += f": {entry.detail}"
        if entry.element:
            text += f" (element {entry.element})"
        parts.append(text)
    return "; ".join(parts)


def _oauth_message(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
        if body.get("error_description"):
            message += f": {body['error_description']}"
        return message
    return None


# ---------------------------------------------------------------------------------------
# Idempotency
# ---------------------------------------------------------------------------------------


def request_id_for(portal_id: str, our_id: Any, operation: str) -> str:
    """The `requestid` of one write: the same (portal, Datagate id, operation) always gives
    the same id, so a retried or re-run create replays QBO's first answer.

    36 characters: fits both limits (50, and 36 on a batch). To write the same record again
    on purpose (say, re-export after the first invoice was deleted in QBO), change
    `operation` (`"create:2"`): QBO would otherwise replay the first answer.
    """
    if not portal_id or our_id is None or str(our_id) == "" or not operation:
        raise ValueError("request_id_for needs a portal, our id and an operation")
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"{portal_id}\x1f{our_id}\x1f{operation}"))


def _derived_request_id(request_id: str, *parts: Any) -> str:
    """A request id for a part of one logical request (a batch chunk, a stale-token retry)."""
    text = "\x1f".join([request_id, *(str(p) for p in parts)])
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, text))


# ---------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    """One answer of the token endpoint. Its repr shows no token."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    refresh_token_expires_in: int | None = None
    obtained_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def access_token_expires_at(self) -> datetime:
        return self.obtained_at + timedelta(seconds=self.expires_in)

    @property
    def refresh_token_expires_at(self) -> datetime | None:
        if self.refresh_token_expires_in is None:
            return None
        return self.obtained_at + timedelta(seconds=self.refresh_token_expires_in)


class AccessTokens(Protocol):
    """Where a `QBOClient` gets its access tokens (`qbo_tokens.QBOTokenStore` in production)."""

    def access_token(self) -> str:
        """A valid access token, refreshed (and the rotated refresh token stored) if need be."""
        ...

    def invalidate(self, access_token: str) -> None:
        """The API answered 401 to `access_token`: do not hand it out again."""
        ...


def _secret(value: Any) -> str:
    """A plain string from a str or a pydantic SecretStr."""
    return getattr(value, "get_secret_value", lambda: value)()


class QBOAuthClient(ApiClientBase):
    """Intuit's OAuth 2.0 token and revoke endpoints for one app and portal (QBO_API.md §1).

    Requests are recorded and retried like API calls (not rate limited: the token endpoint
    is not counted against the company). Every token it sees is added to its redactor.
    """

    system = SYSTEM
    error_classes: ClassVar[Mapping[type[ApiError], type[ApiError]]] = {
        ApiError: QBOError,
        AuthError: QBOAuthError,
        NotFoundError: QBOError,
        BadRequestError: QBOAuthError,
        RateLimitedError: QBORateLimitedError,
        ServerError: QBOServerError,
        TransportError: QBOTransportError,
    }

    def __init__(
        self,
        portal_id: str,
        *,
        client_id: str,
        client_secret: Any,
        token_url: str = DEFAULT_TOKEN_URL,
        revoke_url: str = DEFAULT_REVOKE_URL,
        transport: httpx.BaseTransport | None = None,
        recorder: RequestRecorder | None = None,
        run_id: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
    ):
        secret = _secret(client_secret)
        super().__init__(
            portal_id,
            base_url=token_url,
            transport=transport,
            timeout=timeout,
            retry=retry,
            recorder=recorder,
            run_id=run_id,
            secrets=[secret],
        )
        self.client_id = client_id
        # Sent as a header (not httpx's auth flow) so the request takes the shared path.
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self.token_url = token_url
        self.revoke_url = revoke_url

    def __repr__(self) -> str:
        return f"QBOAuthClient(portal={self.portal!r}, token_url={self.token_url!r})"

    def _error_message(self, response: httpx.Response) -> str:
        try:
            message = _oauth_message(response.json())
        except ValueError:
            message = None
        return message or super()._error_message(response)

    def _error_for(
        self, response: httpx.Response, entity: str | None, entity_id: Any, attempts: int
    ) -> ApiError:
        error = super()._error_for(response, entity, entity_id, attempts)
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error") == "invalid_grant":
            grant = QBOInvalidGrantError.__new__(QBOInvalidGrantError)
            grant.__dict__.update(error.__dict__)
            Exception.__init__(grant, error.message)
            grant.code = "invalid_grant"
            return grant
        return error

    def _token_request(self, form: Mapping[str, str], *, idempotent: bool) -> TokenSet:
        headers = {"Authorization": self._basic, "Accept": "application/json"}
        response = self.request(
            "POST",
            self.token_url,
            data=dict(form),
            headers=headers,
            authenticate=False,
            idempotent=idempotent,
            entity="token",
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        access = body.get("access_token") if isinstance(body, dict) else None
        refresh = body.get("refresh_token") if isinstance(body, dict) else None
        if not access or not refresh:
            raise self._error(
                QBOAuthError,
                "the token response has no access_token/refresh_token",
                response.request,
                response.status_code,
                "token",
                None,
            )
        self.redact.add(str(access), transient=True)
        self.redact.add(str(refresh))
        self.stats.add(token_fetches=1)

        def seconds(key: str, default: int | None) -> int | None:
            try:
                return int(body[key])
            except (KeyError, TypeError, ValueError):
                return default

        return TokenSet(
            access_token=str(access),
            refresh_token=str(refresh),
            expires_in=seconds("expires_in", 3600) or 3600,
            refresh_token_expires_in=seconds("x_refresh_token_expires_in", None),
        )

    def refresh(self, refresh_token: Any) -> TokenSet:
        """A new access token for `refresh_token`; the answer may carry a new (rotated)
        refresh token, which the caller must store before using the access token.

        Raises `QBOInvalidGrantError` when the refresh token is no good. Retried after a 5xx
        or a dropped answer: during the rotation grace window QBO answers a repeated refresh
        with the same successor, so a retry is safe.
        """
        token = _secret(refresh_token)
        self.redact.add(token)
        return self._token_request(
            {"grant_type": "refresh_token", "refresh_token": token}, idempotent=True
        )

    def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        """Tokens for an authorization code (single use: never retried once sent)."""
        self.redact.add(code)
        return self._token_request(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            idempotent=False,
        )

    def revoke(self, token: Any) -> None:
        """Revoke a refresh (or access) token: the company's connection ends at once."""
        value = _secret(token)
        self.redact.add(value)
        self.request(
            "POST",
            self.revoke_url,
            json={"token": value},
            headers={"Authorization": self._basic},
            authenticate=False,
            idempotent=True,
            entity="revoke",
        )


class RefreshingTokens:
    """`AccessTokens` kept in memory: refreshes with `refresh_token` when needed.

    Rotated refresh tokens are kept in this object only (and passed to `on_rotate`), so they
    are lost with the process: fine for tests and one-off scripts, not for production (use
    `qbo_tokens.QBOTokenStore`). Thread-safe.
    """

    def __init__(
        self,
        oauth: QBOAuthClient,
        refresh_token: Any,
        *,
        margin_seconds: float = 300.0,
        on_rotate: Callable[[str], None] | None = None,
    ):
        self.oauth = oauth
        self.refresh_token = _secret(refresh_token)
        self.margin = timedelta(seconds=margin_seconds)
        self.on_rotate = on_rotate
        self._access: str | None = None
        self._expires_at = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()
        self.refreshes = 0

    def access_token(self) -> str:
        with self._lock:
            if self._access is None or datetime.now(UTC) >= self._expires_at - self.margin:
                tokens = self.oauth.refresh(self.refresh_token)
                self.refreshes += 1
                if tokens.refresh_token != self.refresh_token:
                    self.refresh_token = tokens.refresh_token
                    if self.on_rotate is not None:
                        self.on_rotate(tokens.refresh_token)
                self._access, self._expires_at = tokens.access_token, tokens.access_token_expires_at
            return self._access

    def invalidate(self, access_token: str) -> None:
        with self._lock:
            if self._access == access_token:
                self._access = None


# ---------------------------------------------------------------------------------------
# Batch items
# ---------------------------------------------------------------------------------------

BatchOperationName = Literal["create", "update", "delete", "void", "query"]


@dataclass(frozen=True)
class BatchItem:
    """One operation of a batch, named by the caller's own id (`our_id`), which is also the
    key of its result. Build with the class methods."""

    our_id: str
    operation: BatchOperationName
    entity: str | None = None
    body: Mapping[str, Any] | None = None
    statement: str | None = None

    @classmethod
    def create(cls, our_id: Any, entity: str, body: Mapping[str, Any]) -> BatchItem:
        return cls(str(our_id), "create", entity, dict(body))

    @classmethod
    def update(
        cls, our_id: Any, entity: str, body: Mapping[str, Any], *, sparse: bool = True
    ) -> BatchItem:
        payload = dict(body)
        if sparse:
            payload["sparse"] = True
        return cls(str(our_id), "update", entity, payload)

    @classmethod
    def delete(cls, our_id: Any, entity: str, qbo_id: Any, sync_token: Any) -> BatchItem:
        return cls(str(our_id), "delete", entity, {"Id": str(qbo_id), "SyncToken": str(sync_token)})

    @classmethod
    def void(cls, our_id: Any, entity: str, qbo_id: Any, sync_token: Any) -> BatchItem:
        return cls(str(our_id), "void", entity, {"Id": str(qbo_id), "SyncToken": str(sync_token)})

    @classmethod
    def query(cls, our_id: Any, statement: str) -> BatchItem:
        return cls(str(our_id), "query", statement=statement)

    def request_item(self, bid: str) -> dict[str, Any]:
        """The `BatchItemRequest` element for this item under `bid`."""
        if self.operation == "query":
            return {"bId": bid, "Query": self.statement}
        _check_entity(self.entity or "")
        item: dict[str, Any] = {"bId": bid, self.entity: dict(self.body or {})}  # type: ignore[dict-item]
        if self.operation == "void":
            item["operation"] = "update"
            item["optionsData"] = "void"
        else:
            item["operation"] = self.operation
        return item


def _check_entity(entity: str) -> str:
    if not _ENTITY.match(entity):
        raise ValueError(f"{entity!r} is not a QBO entity name (e.g. 'Invoice')")
    return entity


# ---------------------------------------------------------------------------------------
# The API client
# ---------------------------------------------------------------------------------------


class QBOClient(ApiClientBase):
    """One portal's QBO company (realm), through the v3 Accounting API. Thread-safe.

    `tokens` supplies access tokens (`qbo_tokens.QBOTokenStore`; `RefreshingTokens` in
    tests). `rate_limit` is `(requests, per_seconds)` for a limiter of this client's own
    (QBO: 500 per 60 s per company and app), or a `RateLimiter` to share between clients of
    the same company; `max_concurrent` caps requests in flight (QBO: 10);
    `batch_rate_limit` is `(batch requests, per_seconds)` on top (QBO: 40 per 60 s), applied
    whenever `rate_limit` is (None: batches limited by `rate_limit` alone). With
    `close_tokens`, closing the client closes the token source too.
    """

    system = SYSTEM
    error_classes: ClassVar[Mapping[type[ApiError], type[ApiError]]] = {
        ApiError: QBOError,
        AuthError: QBOAuthError,
        NotFoundError: QBONotFoundError,
        BadRequestError: QBOFaultError,
        RateLimitedError: QBORateLimitedError,
        ServerError: QBOServerError,
        TransportError: QBOTransportError,
    }

    def __init__(
        self,
        portal_id: str,
        *,
        realm_id: str,
        tokens: AccessTokens,
        base_url: str = DEFAULT_BASE_URL,
        minor_version: int = DEFAULT_MINOR_VERSION,
        rate_limit: tuple[int, float] | RateLimiter | None = (500, 60.0),
        max_concurrent: int | None = 10,
        batch_rate_limit: tuple[int, float] | None = BATCH_RATE,
        batch_size: int = MAX_BATCH_SIZE,
        page_size: int = MAX_PAGE_SIZE,
        transport: httpx.BaseTransport | None = None,
        recorder: RequestRecorder | None = None,
        run_id: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
        close_tokens: bool = False,
    ):
        if isinstance(rate_limit, RateLimiter):
            limiter = rate_limit
        elif rate_limit is None and max_concurrent is None:
            limiter = RateLimiter.unlimited()
        elif rate_limit is None:
            limiter = RateLimiter(None, 1.0, max_concurrency=max_concurrent)
        else:
            limiter = RateLimiter(*rate_limit, max_concurrency=max_concurrent)
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if not str(realm_id).isdigit():
            raise ValueError("realm_id must be the QBO company id (digits only)")
        super().__init__(
            portal_id,
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            limiter=limiter,
            retry=retry,
            recorder=recorder,
            run_id=run_id,
        )
        # The base client's httpx.Client cannot write Decimal bodies exactly: swap it.
        self.http.close()
        self.http = _ExactJSONHttpClient(
            base_url=base_url.rstrip("/") + "/",
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/json"},
        )
        self.realm_id = str(realm_id)
        self.tokens = tokens
        self._close_tokens = close_tokens
        self.minor_version = minor_version
        self.batch_size = batch_size
        self.page_size = page_size
        self.batch_limiter = (
            RateLimiter(*batch_rate_limit)
            if rate_limit is not None and batch_rate_limit is not None
            else RateLimiter.unlimited()
        )

    @classmethod
    def for_portal(
        cls, portal_id: str, settings: Any, tokens: AccessTokens, **options: Any
    ) -> QBOClient:
        """A client with the settings of a portal's `qbo:` section (`config.QBOSettings`):
        base URL, minor version, rate limits, concurrency and batch size; `options`
        (transport, recorder, run_id, retry, timeout, …) override or add."""
        values: dict[str, Any] = {
            "realm_id": settings.realm_id,
            "base_url": settings.base_url,
            "minor_version": settings.minor_version,
            "rate_limit": (settings.rate_limit_requests, settings.rate_limit_window_seconds),
            "batch_rate_limit": (
                settings.batch_rate_limit_requests,
                settings.rate_limit_window_seconds,
            ),
            "max_concurrent": settings.max_concurrent,
            "batch_size": settings.batch_size,
        }
        values.update(options)
        return cls(portal_id, tokens=tokens, **values)

    def __repr__(self) -> str:
        return f"QBOClient(portal={self.portal!r}, realm_id={self.realm_id!r})"

    def close(self) -> None:
        """Close the connection pool (and the token source, when this client owns it)."""
        super().close()
        closer = getattr(self.tokens, "close", None)
        if self._close_tokens and callable(closer):
            closer()

    # -- authentication ------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        token = self.tokens.access_token()
        self.redact.add(token, transient=True)
        return {"Authorization": f"Bearer {token}"}

    def _invalidate_auth(self, used: Mapping[str, str]) -> bool:
        header = used.get("Authorization", "")
        if header.startswith("Bearer "):
            self.tokens.invalidate(header[len("Bearer ") :])
        return True

    # -- plumbing ----------------------------------------------------------------------------

    def _error_message(self, response: httpx.Response) -> str:
        _, entries = parse_faults(response.content)
        if entries:
            return describe_faults(entries)
        return super()._error_message(response)

    def _error_for(
        self, response: httpx.Response, entity: str | None, entity_id: Any, attempts: int
    ) -> ApiError:
        error = super()._error_for(response, entity, entity_id, attempts)
        fault_type, entries = parse_faults(response.content)
        if entries and response.status_code < 500 and response.status_code not in (401, 403, 429):
            kind = _ERRORS_BY_CODE.get(entries[0].code)
            if kind is not None and not isinstance(error, kind):
                error = _retype(error, kind)
        if isinstance(error, QBOError):
            _attach_faults(error, fault_type, entries)
        return error

    def _path(self, *segments: str) -> str:
        return "/".join(["v3", "company", self.realm_id, *segments])

    def _call(
        self,
        method: str,
        segments: Sequence[str],
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        entity: str | None = None,
        our_id: Any = None,
        qbo_id: Any = None,
        request_id: str | None = None,
    ) -> Any:
        """One authenticated API call; the parsed body. A 200 carrying a Fault raises too."""
        query = {"minorversion": self.minor_version, **(params or {})}
        if request_id is not None:
            query["requestid"] = request_id
        label = our_id if our_id is not None else qbo_id
        try:
            response = self.request(
                method,
                self._path(*segments),
                params=query,
                json=json,
                idempotent=idempotent,
                entity=entity,
                entity_id=label,
            )
            body = self._parse(response, entity, label)
        except QBOError as error:
            error.our_id = None if our_id is None else str(our_id)
            error.qbo_id = None if qbo_id is None else str(qbo_id)
            raise
        return body

    def _parse(self, response: httpx.Response, entity: str | None, label: Any) -> Any:
        try:
            body = loads(response.content) if response.content else None
        except ValueError:
            raise self._error(
                QBOError,
                f"expected JSON, got {response.headers.get('Content-Type', 'no content type')}",
                response.request,
                response.status_code,
                entity,
                label,
            ) from None
        if isinstance(body, dict) and ("Fault" in body or "fault" in body):
            fault_type, entries = parse_faults(response.content)
            kind = _ERRORS_BY_CODE.get(entries[0].code, QBOFaultError) if entries else QBOFaultError
            error = self._error(
                kind,
                describe_faults(entries) or "the answer carried a Fault",
                response.request,
                response.status_code,
                entity,
                label,
            )
            assert isinstance(error, QBOError)
            _attach_faults(error, fault_type, entries)
            raise error
        return body

    def _entity_body(self, body: Any, entity: str, response_key: str | None = None) -> Any:
        key = response_key or entity
        if not isinstance(body, dict) or key not in body:
            raise QBOError(
                f"the answer has no {key} object",
                system=self.system,
                portal=self.portal,
                method="?",
                path=self._path(entity.lower()),
                entity=entity,
            )
        return body[key]

    # -- query -----------------------------------------------------------------------------

    @staticmethod
    def quote(value: Any) -> str:
        """A query literal: strings single-quoted with backslash escapes (`O'Brien & Sons` →
        `'O\\'Brien & Sons'`), booleans `true`/`false`, numbers as they are, dates ISO."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | Decimal):
            return format(value, "f") if isinstance(value, Decimal) else str(value)
        if isinstance(value, float):
            raise TypeError("floats are not used in QBO queries; pass a Decimal or a str")
        if isinstance(value, date):  # datetimes too
            value = value.isoformat()
        text = str(value)
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    @classmethod
    def condition(cls, prop: str, op: str, value: Any) -> str:
        """One WHERE condition: `prop op value`; a list/tuple/set value makes `IN (…)`."""
        if not _PROPERTY.match(prop):
            raise ValueError(f"{prop!r} is not a QBO property name")
        op = op.strip().upper()
        if isinstance(value, list | tuple | set | frozenset):
            values = sorted(value, key=str) if isinstance(value, set | frozenset) else value
            if not values:
                raise ValueError(f"an empty list for {prop} matches nothing")
            if op not in ("=", "IN"):
                raise ValueError(f"a list needs = or IN, not {op}")
            return f"{prop} IN ({', '.join(cls.quote(v) for v in values)})"
        if op not in ("=", "<", ">", "<=", ">=", "LIKE"):
            raise ValueError(f"QBO queries have no operator {op!r}")
        return f"{prop} {op} {cls.quote(value)}"

    @classmethod
    def where(cls, conditions: Mapping[str, Any] | None = None, **equals: Any) -> str:
        """`WHERE a = 'x' AND b IN ('y', 'z')` from equalities (a list value means IN);
        an empty string when there is nothing to filter on."""
        merged = {**(conditions or {}), **equals}
        parts = [cls.condition(prop, "=", value) for prop, value in merged.items()]
        return f"WHERE {' AND '.join(parts)}" if parts else ""

    @classmethod
    def statement(
        cls,
        entity: str,
        conditions: Mapping[str, Any] | None = None,
        *,
        include_inactive: bool = False,
        order_by: str | None = None,
        **equals: Any,
    ) -> str:
        """`SELECT * FROM Entity WHERE …` for `select`/`count`."""
        _check_entity(entity)
        merged = {**(conditions or {}), **equals}
        if include_inactive and entity in NAME_LISTS and "Active" not in merged:
            merged["Active"] = [True, False]
        text = f"SELECT * FROM {entity}"
        clause = cls.where(merged)
        if clause:
            text += f" {clause}"
        if order_by:
            prop, _, direction = order_by.partition(" ")
            if not _PROPERTY.match(prop) or direction.strip().upper() not in ("", "ASC", "DESC"):
                raise ValueError(f"bad ORDERBY {order_by!r}")
            text += f" ORDERBY {order_by}"
        return text

    def query(self, statement: str) -> list[dict[str, Any]]:
        """Every row a `SELECT` statement matches, paged with STARTPOSITION/MAXRESULTS to the
        end. A statement that has its own STARTPOSITION/MAXRESULTS is sent once, as it is.
        Rows read twice (records added while paging) are kept once."""
        statement = statement.strip().rstrip(";")
        entity = _statement_entity(statement)
        if _PAGING_CLAUSE.search(_without_literals(statement)):
            return self._query_page(statement, entity)
        rows: list[dict[str, Any]] = []
        seen: set[Any] = set()
        start = 1
        for _ in range(_MAX_PAGES):
            page = self._query_page(
                f"{statement} STARTPOSITION {start} MAXRESULTS {self.page_size}", entity
            )
            self.stats.add(pages=1)
            for row in page:
                key = row.get("Id") if isinstance(row, dict) else None
                if key is not None and key in seen:
                    self.stats.add(duplicate_rows=1)
                    continue
                seen.add(key)
                rows.append(row)
            if len(page) < self.page_size:
                break
            start += self.page_size
        else:
            raise QBOError(
                f"still paging after {_MAX_PAGES} pages",
                system=self.system,
                portal=self.portal,
                method="GET",
                path=self._path("query"),
                entity=entity,
            )
        self.stats.add(rows=len(rows))
        return rows

    def _query_page(self, statement: str, entity: str | None) -> list[dict[str, Any]]:
        body = self._call("GET", ["query"], params={"query": statement}, entity=entity)
        response = body.get("QueryResponse") if isinstance(body, dict) else None
        if not isinstance(response, dict):
            return []
        if entity and isinstance(response.get(entity), list):
            return response[entity]
        lists = [v for k, v in response.items() if isinstance(v, list)]
        return lists[0] if len(lists) == 1 else []

    def select(
        self,
        entity: str,
        conditions: Mapping[str, Any] | None = None,
        *,
        include_inactive: bool = False,
        order_by: str | None = None,
        **equals: Any,
    ) -> list[dict[str, Any]]:
        """Every `entity` row whose properties equal the given values (a list means IN):
        `client.select("Customer", DisplayName="O'Brien & Sons")`. Dotted properties go in
        `conditions` (`{"MetaData.LastUpdatedTime": …}`). Name lists return active rows
        only unless `include_inactive` (or an `Active` condition)."""
        return self.query(
            self.statement(
                entity, conditions, include_inactive=include_inactive, order_by=order_by, **equals
            )
        )

    def count(
        self,
        entity: str,
        conditions: Mapping[str, Any] | None = None,
        *,
        include_inactive: bool = False,
        **equals: Any,
    ) -> int:
        """How many `entity` rows match (`SELECT COUNT(*)`)."""
        statement = self.statement(
            entity, conditions, include_inactive=include_inactive, **equals
        ).replace("SELECT *", "SELECT COUNT(*)", 1)
        body = self._call("GET", ["query"], params={"query": statement}, entity=entity)
        response = body.get("QueryResponse") if isinstance(body, dict) else None
        total = response.get("totalCount", 0) if isinstance(response, dict) else 0
        return int(total)

    # -- single records --------------------------------------------------------------------

    def get(self, entity: str, qbo_id: Any, *, our_id: Any = None) -> dict[str, Any]:
        """One record by QBO Id; `QBONotFoundError` (610) if it does not exist."""
        _check_entity(entity)
        body = self._call(
            "GET", [entity.lower(), str(qbo_id)], entity=entity, our_id=our_id, qbo_id=qbo_id
        )
        return self._entity_body(body, entity)

    def create(
        self,
        entity: str,
        body: Mapping[str, Any],
        *,
        request_id: str | None,
        our_id: Any = None,
        include: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Create a record; the record as QBO saved it.

        With a `request_id` (`request_id_for(portal, our_id, "create")`) a retry — after a
        5xx or a dropped answer here, or a re-run later — replays QBO's first answer: the
        same record, never a duplicate. Without one it is never retried once sent.
        `include` adds QBO's `include=` flags (e.g. `allowduplicatedocnum`).
        """
        _check_entity(entity)
        _check_request_id(request_id, REQUEST_ID_MAX)
        params = {"include": ",".join(include)} if include else None
        answer = self._call(
            "POST",
            [entity.lower()],
            params=params,
            json=dict(body),
            idempotent=request_id is not None,
            entity=entity,
            our_id=our_id,
            request_id=request_id,
        )
        return self._entity_body(answer, entity)

    def update(
        self,
        entity: str,
        body: Mapping[str, Any],
        *,
        sparse: bool = True,
        request_id: str | None = None,
        our_id: Any = None,
        include: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Update a record (`body` has `Id` and `SyncToken`); the saved record.

        Sparse by default: only the properties sent change (arrays such as `Line` are
        replaced whole). A sparse update that meets a stale SyncToken (5010) reads the
        record's current SyncToken and tries once more; a full update raises
        `QBOStaleObjectError` (it would overwrite fields someone else just changed).
        """
        _check_entity(entity)
        _check_request_id(request_id, REQUEST_ID_MAX)
        if not body.get("Id") or body.get("SyncToken") in (None, ""):
            raise ValueError(f"updating {entity} needs Id and SyncToken")
        payload = dict(body)
        if sparse:
            payload["sparse"] = True
        else:
            payload.pop("sparse", None)
        params = {"operation": "update", **({"include": ",".join(include)} if include else {})}
        try:
            answer = self._call(
                "POST",
                [entity.lower()],
                params=params,
                json=payload,
                idempotent=True,  # same Id and SyncToken: a repeat is refused (5010), not doubled
                entity=entity,
                our_id=our_id,
                qbo_id=payload["Id"],
                request_id=request_id,
            )
        except QBOStaleObjectError:
            if not sparse:
                raise
            current = self.get(entity, payload["Id"], our_id=our_id)
            logger.info(
                "qbo portal %s: %s %s changed since it was read (SyncToken %s → %s); "
                "sending the sparse update again",
                self.portal, entity, payload["Id"], payload["SyncToken"], current["SyncToken"],
            )  # fmt: skip
            payload["SyncToken"] = current["SyncToken"]
            answer = self._call(
                "POST",
                [entity.lower()],
                params=params,
                json=payload,
                idempotent=True,
                entity=entity,
                our_id=our_id,
                qbo_id=payload["Id"],
                # The first request id would replay the 5010: a new one, derived from it.
                request_id=(
                    None
                    if request_id is None
                    else _derived_request_id(request_id, "synctoken", current["SyncToken"])
                ),
            )
        return self._entity_body(answer, entity)

    def _txn_operation(
        self,
        entity: str,
        operation: Literal["void", "delete"],
        qbo_id: Any,
        sync_token: Any,
        our_id: Any,
        request_id: str | None,
    ) -> dict[str, Any]:
        _check_request_id(request_id, REQUEST_ID_MAX)
        if sync_token is None:
            sync_token = self.get(entity, qbo_id, our_id=our_id)["SyncToken"]
        answer = self._call(
            "POST",
            [entity.lower()],
            params={"operation": operation},
            json={"Id": str(qbo_id), "SyncToken": str(sync_token)},
            idempotent=True,
            entity=entity,
            our_id=our_id,
            qbo_id=qbo_id,
            request_id=request_id,
        )
        return self._entity_body(answer, entity)

    def void_invoice(
        self,
        qbo_id: Any,
        sync_token: Any = None,
        *,
        our_id: Any = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Void an invoice (TotalAmt and Balance become 0; it stays, numbered, in QBO).

        Safe to repeat: an invoice voided already is returned as it is, and a stale
        SyncToken is re-read once. Without `sync_token` the current one is read first.
        """
        try:
            return self._txn_operation("Invoice", "void", qbo_id, sync_token, our_id, request_id)
        except QBOStaleObjectError:
            current = self.get("Invoice", qbo_id, our_id=our_id)
            if _is_voided(current):
                return current
            retry_id = (
                None
                if request_id is None
                else _derived_request_id(request_id, "synctoken", current["SyncToken"])
            )
            return self._txn_operation(
                "Invoice", "void", qbo_id, current["SyncToken"], our_id, retry_id
            )

    def delete_invoice(
        self,
        qbo_id: Any,
        sync_token: Any = None,
        *,
        our_id: Any = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Delete an invoice; `{"Id", "status": "Deleted"}`. Safe to repeat: an invoice that
        is gone already counts as deleted; a stale SyncToken is re-read once."""
        try:
            return self._txn_operation("Invoice", "delete", qbo_id, sync_token, our_id, request_id)
        except QBONotFoundError:
            return {"Id": str(qbo_id), "status": "Deleted"}
        except QBOStaleObjectError:
            current = self.get("Invoice", qbo_id, our_id=our_id)
            retry_id = (
                None
                if request_id is None
                else _derived_request_id(request_id, "synctoken", current["SyncToken"])
            )
            return self._txn_operation(
                "Invoice", "delete", qbo_id, current["SyncToken"], our_id, retry_id
            )

    # -- batch -----------------------------------------------------------------------------

    def batch(
        self, items: Iterable[BatchItem], *, request_id: str | None = None
    ) -> dict[str, dict[str, Any] | QBOError]:
        """Run operations in batches of `batch_size`; the result of each, by its `our_id`.

        A result is the entity as QBO returned it (create/update/void), the deleted stub
        (`{"Id", "status": "Deleted"}`), the `QueryResponse` of a query — or a `QBOError`
        (a `QBOFaultError` subclass for a per-item Fault) carrying the entity and our id.
        Only a failure of a whole batch request raises.

        With `request_id`, every chunk gets a request id derived from it and from the ids
        it carries, so a re-run of the same items replays QBO's answers (and the request is
        retried after a 5xx or a dropped answer); different items never replay another
        chunk's answer. bIds sent to QBO are positions (QBO allows 10 characters with a
        requestid); results are mapped back to `our_id`.
        """
        items = list(items)
        ids = [item.our_id for item in items]
        if len(set(ids)) != len(ids):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"batch ids must be unique; repeated: {duplicates[:10]}")
        results: dict[str, dict[str, Any] | QBOError] = {}
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            chunk_id = (
                None
                if request_id is None
                else _derived_request_id(request_id, *(item.our_id for item in chunk))
            )
            results.update(self._batch_chunk(chunk, chunk_id))
        return results

    def _batch_chunk(
        self, chunk: list[BatchItem], request_id: str | None
    ) -> dict[str, dict[str, Any] | QBOError]:
        _check_request_id(request_id, BATCH_REQUEST_ID_MAX)
        by_bid = {str(position): item for position, item in enumerate(chunk, start=1)}
        payload = {"BatchItemRequest": [item.request_item(bid) for bid, item in by_bid.items()]}
        with self.batch_limiter.slot():
            body = self._call(
                "POST",
                ["batch"],
                json=payload,
                idempotent=request_id is not None,
                entity="batch",
                request_id=request_id,
            )
        answers = body.get("BatchItemResponse") if isinstance(body, dict) else None
        results: dict[str, dict[str, Any] | QBOError] = {}
        for answer in answers if isinstance(answers, list) else []:
            item = by_bid.get(str(answer.get("bId"))) if isinstance(answer, dict) else None
            if item is None:
                continue
            results[item.our_id] = self._batch_result(item, answer)
        for item in chunk:
            if item.our_id not in results:
                results[item.our_id] = self._batch_error(
                    QBOError, item, "QBO's batch answer has no result for this item", None, []
                )
        return results

    def _batch_result(
        self, item: BatchItem, answer: Mapping[str, Any]
    ) -> dict[str, Any] | QBOError:
        fault = answer.get("Fault") or answer.get("fault")
        if isinstance(fault, dict):
            fault_type, entries = _json_faults(fault)
            kind = _ERRORS_BY_CODE.get(entries[0].code, QBOFaultError) if entries else QBOFaultError
            return self._batch_error(kind, item, describe_faults(entries), fault_type, entries)
        if item.operation == "query":
            return answer.get("QueryResponse") or {}
        value = answer.get(item.entity or "")
        if isinstance(value, dict):
            return value
        return self._batch_error(
            QBOError, item, f"QBO's batch answer has no {item.entity} object", None, []
        )

    def _batch_error(
        self,
        kind: type[QBOError],
        item: BatchItem,
        message: str,
        fault_type: str | None,
        entries: list[FaultEntry],
    ) -> QBOError:
        error = kind(
            self.redact(message or "the batch item failed"),
            system=self.system,
            portal=self.portal,
            method="POST",
            path=f"/{self._path('batch')}",
            entity=item.entity or "Query",
            entity_id=item.our_id,
        )
        _attach_faults(error, fault_type, entries)
        error.our_id = item.our_id
        body = item.body or {}
        error.qbo_id = str(body["Id"]) if body.get("Id") else None
        return error

    # -- lookups the exporter needs --------------------------------------------------------

    def company_info(self) -> dict[str, Any]:
        """`GET /companyinfo/{realmId}`: the company's name, address, country."""
        body = self._call("GET", ["companyinfo", self.realm_id], entity="CompanyInfo")
        return self._entity_body(body, "CompanyInfo")

    def preferences(self) -> dict[str, Any]:
        """The company's Preferences (e.g. `SalesFormsPrefs.CustomTxnNumbers`,
        `TaxPrefs.UsingSalesTax`)."""
        body = self._call("GET", ["preferences"], entity="Preferences")
        return self._entity_body(body, "Preferences")

    def find_customer_by_display_name(
        self, display_name: str, *, include_inactive: bool = True
    ) -> dict[str, Any] | None:
        """The customer with this DisplayName (QBO compares without case), inactive ones
        included by default (their name is still taken); an exact-case match wins."""
        rows = self.select("Customer", include_inactive=include_inactive, DisplayName=display_name)
        exact = [r for r in rows if r.get("DisplayName") == display_name]
        return (exact or rows or [None])[0]

    def doc_number_exists(self, doc_number: str) -> bool:
        """Whether an invoice with this DocNumber exists in the company."""
        return bool(self.existing_doc_numbers([doc_number]))

    def existing_doc_numbers(self, candidates: Iterable[str]) -> set[str]:
        """The candidates that are DocNumbers of invoices in the company already
        (queried in chunks with `DocNumber IN (…)`)."""
        wanted = sorted({str(c) for c in candidates if str(c)})
        found: set[str] = set()
        for start in range(0, len(wanted), _DOC_NUMBER_CHUNK):
            chunk = wanted[start : start + _DOC_NUMBER_CHUNK]
            for row in self.select("Invoice", DocNumber=chunk):
                if row.get("DocNumber") in chunk:
                    found.add(row["DocNumber"])
        return found

    def doc_number_lookup(self, *, prefetch: int = 50) -> Callable[[str], bool]:
        """`is_taken(doc_number) -> bool` for finalization numbering: whether the company
        has an invoice with that DocNumber. The first question about a number also asks
        about the `prefetch - 1` numbers after it (`INV-1001` → `INV-1002` …) in the same
        query, since numbering asks about consecutive numbers; answers are kept."""
        known: dict[str, bool] = {}
        lock = threading.Lock()

        def is_taken(doc_number: str) -> bool:
            doc_number = str(doc_number)
            with lock:
                if doc_number not in known:
                    wanted = [doc_number, *following_doc_numbers(doc_number, prefetch - 1)]
                    wanted = [n for n in wanted if n not in known]
                    found = self.existing_doc_numbers(wanted)
                    known.update({n: n in found for n in wanted})
                return known[doc_number]

        return is_taken

    def find_invoices(
        self,
        *,
        doc_number: str | None = None,
        private_note_contains: str | None = None,
        customer_id: Any = None,
        txn_date_from: date | None = None,
    ) -> list[dict[str, Any]]:
        """Invoices by DocNumber, customer and date, then by a text in PrivateNote (which
        QBO cannot filter on, so that part is done here), oldest first."""
        conditions: dict[str, Any] = {}
        if doc_number is not None:
            conditions["DocNumber"] = doc_number
        if customer_id is not None:
            conditions["CustomerRef"] = str(customer_id)
        statement = self.statement("Invoice", conditions)
        if txn_date_from is not None:
            joiner = " AND " if conditions else " WHERE "
            statement += joiner + self.condition("TxnDate", ">=", txn_date_from)
        rows = self.query(statement)
        if private_note_contains:
            rows = [r for r in rows if private_note_contains in (r.get("PrivateNote") or "")]
        return rows

    def find_invoice(
        self,
        doc_number: str | None = None,
        private_note_contains: str | None = None,
        **filters: Any,
    ) -> dict[str, Any] | None:
        """The first (oldest) invoice `find_invoices` finds, or None."""
        rows = self.find_invoices(
            doc_number=doc_number, private_note_contains=private_note_contains, **filters
        )
        return rows[0] if rows else None

    def accounts_by_name(self, *, include_inactive: bool = False) -> dict[str, dict[str, Any]]:
        """Accounts by Name and by FullyQualifiedName (`Income:Services`)."""
        accounts: dict[str, dict[str, Any]] = {}
        for row in self.select("Account", include_inactive=include_inactive):
            for key in (row.get("FullyQualifiedName"), row.get("Name")):
                if key:
                    accounts.setdefault(key, row)
        return accounts

    def items_by_name(self, *, include_inactive: bool = False) -> dict[str, dict[str, Any]]:
        """Items (products and services) by Name and FullyQualifiedName."""
        items: dict[str, dict[str, Any]] = {}
        for row in self.select("Item", include_inactive=include_inactive):
            for key in (row.get("FullyQualifiedName"), row.get("Name")):
                if key:
                    items.setdefault(key, row)
        return items

    def terms(self, *, include_inactive: bool = False) -> list[dict[str, Any]]:
        """Payment terms (`Net 30`: `DueDays` 30)."""
        return self.select("Term", include_inactive=include_inactive)

    def tax_codes(self, *, include_inactive: bool = False) -> list[dict[str, Any]]:
        return self.select("TaxCode", include_inactive=include_inactive)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


_TRAILING_DIGITS = re.compile(r"^(.*?)(\d+)$")


def following_doc_numbers(doc_number: str, count: int, *, max_length: int = 21) -> list[str]:
    """The `count` numbers after `doc_number` (`INV-0099` → `INV-0100`, `INV-0101` …),
    keeping the prefix and zero padding; none when it does not end in digits."""
    match = _TRAILING_DIGITS.match(doc_number)
    if match is None or count < 1:
        return []
    prefix, digits = match.groups()
    numbers = []
    for step in range(1, count + 1):
        text = f"{prefix}{int(digits) + step:0{len(digits)}d}"
        if len(text) > max_length:
            break
        numbers.append(text)
    return numbers


def _retype(error: ApiError, kind: type[QBOError]) -> QBOError:
    """The same error as an instance of `kind` (a more precise class for a fault code)."""
    typed = kind.__new__(kind)
    Exception.__init__(typed, error.message)
    typed.__dict__.update(error.__dict__)
    return typed


def _attach_faults(error: QBOError, fault_type: str | None, entries: Sequence[FaultEntry]) -> None:
    error.fault_type = fault_type
    error.faults = tuple(entries)
    if entries:
        first = entries[0]
        error.code = first.code or None
        error.element = first.element or None
        error.detail = first.detail or None


def _check_request_id(request_id: str | None, limit: int) -> None:
    if request_id is not None and not 0 < len(request_id) <= limit:
        raise ValueError(f"a QBO requestid has 1 to {limit} characters, not {len(request_id)}")


def _without_literals(statement: str) -> str:
    return re.sub(r"'(?:\\.|[^'\\])*'", "''", statement)


def _statement_entity(statement: str) -> str | None:
    match = re.search(r"\bFROM\s+([A-Za-z]+)", _without_literals(statement), re.IGNORECASE)
    return match.group(1) if match else None


def _is_voided(invoice: Mapping[str, Any]) -> bool:
    note = invoice.get("PrivateNote") or ""
    return "Voided" in note and Decimal(str(invoice.get("TotalAmt", "0"))) == 0
