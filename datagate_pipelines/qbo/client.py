"""The QuickBooks Online client: Intuit OAuth 2.0 and the v3 Accounting API (docs/qbo-api.md).

Plain Python (no Dagster). Two clients share the HTTP core (`clients.http`):

- `QBOAuthClient` talks to Intuit's token and revoke endpoints (refresh, code exchange,
  revoke) with the app's Basic credentials;
- `QBOClient` talks to one company (realm) of one portal. It takes its access tokens from an
  `AccessTokens` source — in production `datagate_pipelines.qbo.token_store.QBOTokenStore`, which
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

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import httpx

from datagate_pipelines.apiclient.base import ApiClientBase
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
from datagate_pipelines.apiclient.records import RequestRecorder
from datagate_pipelines.apiclient.retries import RetryPolicy
from datagate_pipelines.qbo.batch import (
    BATCH_RATE,
    MAX_BATCH_SIZE,
    BatchItem,
    batch_chunks,
    batch_request_body,
    check_entity,
    read_batch_answers,
)
from datagate_pipelines.qbo.errors import (
    ERRORS_BY_CODE,
    SYSTEM,
    FaultEntry,
    QBOAuthError,
    QBOError,
    QBOFaultError,
    QBONotFoundError,
    QBORateLimitedError,
    QBOServerError,
    QBOStaleObjectError,
    QBOTransportError,
    attach_faults,
    describe_faults,
    parse_faults,
    retyped,
)
from datagate_pipelines.qbo.exact_json import ExactJSONHttpClient, loads
from datagate_pipelines.qbo.oauth import AccessTokens
from datagate_pipelines.qbo.request_ids import (
    BATCH_REQUEST_ID_MAX,
    REQUEST_ID_MAX,
    check_request_id,
    derived_request_id,
)

logger = logging.getLogger(__name__)


DEFAULT_BASE_URL = "https://quickbooks.api.intuit.com"


DEFAULT_MINOR_VERSION = 75
#: QBO's largest page (§4); asking for more is a 400.
MAX_PAGE_SIZE = 1000


#: Name-list entities: queries return active records only unless `Active` is constrained.
NAME_LISTS = frozenset(
    {"Account", "Customer", "Item", "Term", "TaxCode", "TaxRate", "TaxAgency", "Vendor", "Class"}
)
#: Transaction types sharing one DocNumber space in QBO's duplicate check (docs/billing.md,
#: Numbering): our invoices go out as invoices, or as credit memos when negative.
NUMBERED_TYPES = ("Invoice", "CreditMemo")
# A guard against a server that never stops paging: 10 million rows.
_MAX_PAGES = 10_000
# Doc numbers per `IN (…)` query: keeps the GET URL short.
_DOC_NUMBER_CHUNK = 50
_PROPERTY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


_PAGING_CLAUSE = re.compile(r"\b(STARTPOSITION|MAXRESULTS)\b", re.IGNORECASE)


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
        self.http = ExactJSONHttpClient(
            base_url=base_url.rstrip("/") + "/",
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/json"},
        )
        self.realm_id = str(realm_id)
        self.tokens = tokens
        #: QBO's clock: the `time` of the last answer (readers of changes start from it).
        self.last_answer_time: str | None = None
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
            kind = ERRORS_BY_CODE.get(entries[0].code)
            if kind is not None and not isinstance(error, kind):
                error = retyped(error, kind)
        if isinstance(error, QBOError):
            attach_faults(error, fault_type, entries)
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
        if isinstance(body, dict) and body.get("time"):
            self.last_answer_time = str(body["time"])
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
            kind = ERRORS_BY_CODE.get(entries[0].code, QBOFaultError) if entries else QBOFaultError
            error = self._error(
                kind,
                describe_faults(entries) or "the answer carried a Fault",
                response.request,
                response.status_code,
                entity,
                label,
            )
            assert isinstance(error, QBOError)
            attach_faults(error, fault_type, entries)
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
        check_entity(entity)
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

    def cdc(self, entities: Sequence[str], changed_since: datetime) -> tuple[dict[str, Any], str]:
        """One change-data-capture call (`GET /cdc`, docs/qbo-api.md §6.1): the records
        changed since `changed_since` by entity (deleted ones with `"status": "Deleted"`),
        and QBO's `time` of the answer. At most 1000 objects over all entities; paging
        beyond that is `qbo.cdc.read_changes`'s job."""
        for entity in entities:
            check_entity(entity)
        body = self._call(
            "GET",
            ["cdc"],
            params={
                "entities": ",".join(entities),
                "changedSince": changed_since.isoformat(timespec="seconds"),
            },
            entity="CDC",
        )
        changes: dict[str, Any] = {}
        responses = body.get("CDCResponse") if isinstance(body, dict) else None
        for response in responses or []:
            for part in (response or {}).get("QueryResponse") or []:
                for entity, records in (part or {}).items():
                    if isinstance(records, list):
                        changes.setdefault(entity, []).extend(records)
        return changes, str(body.get("time", "")) if isinstance(body, dict) else ""

    # -- single records --------------------------------------------------------------------

    def get(self, entity: str, qbo_id: Any, *, our_id: Any = None) -> dict[str, Any]:
        """One record by QBO Id; `QBONotFoundError` (610) if it does not exist."""
        check_entity(entity)
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
        check_entity(entity)
        check_request_id(request_id, REQUEST_ID_MAX)
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
        check_entity(entity)
        check_request_id(request_id, REQUEST_ID_MAX)
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
                    else derived_request_id(request_id, "synctoken", current["SyncToken"])
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
        check_request_id(request_id, REQUEST_ID_MAX)
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
        entity: Literal["Invoice", "CreditMemo"] = "Invoice",
    ) -> dict[str, Any]:
        """Void an invoice, or a credit memo (`entity`): TotalAmt and Balance become 0; it
        stays, numbered, in QBO.

        Safe to repeat: a transaction voided already is returned as it is, and a stale
        SyncToken is re-read once. Without `sync_token` the current one is read first.
        """
        try:
            return self._txn_operation(entity, "void", qbo_id, sync_token, our_id, request_id)
        except QBOStaleObjectError:
            current = self.get(entity, qbo_id, our_id=our_id)
            if is_voided(current):
                return current
            retry_id = (
                None
                if request_id is None
                else derived_request_id(request_id, "synctoken", current["SyncToken"])
            )
            return self._txn_operation(
                entity, "void", qbo_id, current["SyncToken"], our_id, retry_id
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
                else derived_request_id(request_id, "synctoken", current["SyncToken"])
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
        results: dict[str, dict[str, Any] | QBOError] = {}
        for chunk, chunk_id in batch_chunks(items, self.batch_size, request_id):
            check_request_id(chunk_id, BATCH_REQUEST_ID_MAX)
            by_bid, payload = batch_request_body(chunk)
            with self.batch_limiter.slot():
                body = self._call(
                    "POST",
                    ["batch"],
                    json=payload,
                    idempotent=chunk_id is not None,
                    entity="batch",
                    request_id=chunk_id,
                )
            answers = read_batch_answers(chunk, by_bid, body, self._batch_error)
            self._log_item_failures(by_bid, answers)
            results.update(answers)
        return results

    def _log_item_failures(
        self, by_bid: Mapping[str, BatchItem], answers: Mapping[str, Any]
    ) -> None:
        """Each refused item of an answered batch, in the request log with its bId and
        DocNumber: the batch request itself succeeded (HTTP 200)."""
        for bid, item in by_bid.items():
            error = answers.get(item.our_id)
            if not isinstance(error, QBOError):
                continue
            params = {"bId": bid, "entity": item.entity or "Query", "our_id": item.our_id}
            doc_number = (item.body or {}).get("DocNumber")
            if doc_number:
                params["DocNumber"] = str(doc_number)
            # The message starts with QBO's fault code ("6000 A business validation …").
            self.record_part_failure(
                "POST",
                f"/{self._path('batch')}",
                params,
                200,
                f"batch item bId {bid} ({params['entity']}"
                + (f" DocNumber {doc_number}" if doc_number else "")
                + f"): {error.message}",
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
        attach_faults(error, fault_type, entries)
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
        """The customer with this DisplayName (see `find_by_display_name`)."""
        return self.find_by_display_name(
            "Customer", display_name, include_inactive=include_inactive
        )

    def find_by_display_name(
        self, entity: str, display_name: str, *, include_inactive: bool = True
    ) -> dict[str, Any] | None:
        """The Customer, Vendor or Employee with this DisplayName (QBO compares without
        case; the value is escaped), inactive ones included by default (their name is still
        taken); an exact-case match wins."""
        rows = self.select(entity, include_inactive=include_inactive, DisplayName=display_name)
        exact = [r for r in rows if r.get("DisplayName") == display_name]
        return (exact or rows or [None])[0]

    def create_tax_code(self, body: Mapping[str, Any], *, request_id: str | None) -> dict[str, Any]:
        """`POST /taxservice/taxcode` (§3.6): a TaxCode and its rates, in one call;
        `{"TaxCode", "TaxCodeId", "TaxRateDetails": [{…, "TaxRateId"}]}`. With a
        `request_id` a retry or re-run replays the first answer."""
        check_request_id(request_id, REQUEST_ID_MAX)
        answer = self._call(
            "POST",
            ["taxservice", "taxcode"],
            json=dict(body),
            idempotent=request_id is not None,
            entity="TaxCode",
            our_id=body.get("TaxCode"),
            request_id=request_id,
        )
        if not isinstance(answer, dict) or not answer.get("TaxCodeId"):
            raise QBOError(
                "the tax service answer has no TaxCodeId",
                system=self.system,
                portal=self.portal,
                method="POST",
                path=self._path("taxservice", "taxcode"),
                entity="TaxCode",
            )
        return answer

    def doc_number_exists(self, doc_number: str) -> bool:
        """Whether an invoice or credit memo with this DocNumber exists in the company."""
        return bool(self.existing_doc_numbers([doc_number]))

    def existing_doc_numbers(self, candidates: Iterable[str]) -> set[str]:
        """The candidates that are DocNumbers of invoices or credit memos in the company
        already (queried in chunks with `DocNumber IN (…)`): QBO reports a DocNumber
        collision across these types, so numbering must skip both."""
        wanted = sorted({str(c) for c in candidates if str(c)})
        found: set[str] = set()
        for entity in NUMBERED_TYPES:
            for start in range(0, len(wanted), _DOC_NUMBER_CHUNK):
                chunk = wanted[start : start + _DOC_NUMBER_CHUNK]
                for row in self.select(entity, DocNumber=chunk):
                    if row.get("DocNumber") in chunk:
                        found.add(row["DocNumber"])
        return found

    def doc_number_lookup(self, *, prefetch: int = 50) -> Callable[[str], bool]:
        """`is_taken(doc_number) -> bool` for finalization numbering: whether the company
        has an invoice or credit memo with that DocNumber. The first question about a
        number also asks about the `prefetch - 1` numbers after it (`INV-1001` →
        `INV-1002` …) in the same queries, since numbering asks about consecutive numbers;
        answers are kept."""
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


def _without_literals(statement: str) -> str:
    return re.sub(r"'(?:\\.|[^'\\])*'", "''", statement)


def _statement_entity(statement: str) -> str | None:
    match = re.search(r"\bFROM\s+([A-Za-z]+)", _without_literals(statement), re.IGNORECASE)
    return match.group(1) if match else None


def is_voided(invoice: Mapping[str, Any]) -> bool:
    """Whether QBO shows the transaction voided (its note says so, its total is 0)."""
    note = invoice.get("PrivateNote") or ""
    return "Voided" in note and Decimal(str(invoice.get("TotalAmt", "0"))) == 0
