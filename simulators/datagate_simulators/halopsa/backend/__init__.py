"""The HaloPSA backend: the instance's state and rules in plain Python, no HTTP.

:class:`HaloPSABackend` holds the records, the OAuth server, the rate limit and the fault
switches. The rules live beside it, a module per concern:

- ``base``         what every resource shares (typed fields, upserts, list queries) and the
  ``Tenant`` protocol through which resources see the backend;
- ``customers``, ``catalog``, ``fields``, ``invoices``, ``payments``  the resource families;
- ``store``        one resource's table of records;
- ``list_faults``  faults applied to list responses.

One re-entrant lock guards everything, so the backend can be shared by uvicorn's threads and
a test's thread. Records are stored as Halo-shaped dicts and never changed in place; what a
caller gets back must be treated as read-only (``get`` returns a deep copy).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from datagate_simulators.halopsa.backend.base import Errors, ListQuery, Resource
from datagate_simulators.halopsa.backend.catalog import AssetGroup, Item, ItemGroup, Tax
from datagate_simulators.halopsa.backend.customers import Client, ClientContract, Site
from datagate_simulators.halopsa.backend.fields import CustomFieldValues, FieldInfo
from datagate_simulators.halopsa.backend.invoices import Invoice, RecurringInvoice
from datagate_simulators.halopsa.backend.list_faults import (
    HaloFaults,
    MalformedRows,
    PageAction,
    PageHook,
    add_records,
    delete_first_records,
)
from datagate_simulators.halopsa.backend.payments import InvoicePayment
from datagate_simulators.halopsa.backend.purchasing import (
    GOODS_IN,
    PO_LINE_QUANTITY,
    PurchaseOrder,
    Supplier,
)
from datagate_simulators.halopsa.backend.store import Table
from datagate_simulators.halopsa.conventions import (
    UNSET,
    halo_timestamp,
    parse_int,
    utc_now_naive,
)
from datagate_simulators.halopsa.errors import Forbidden, NotFound, ValidationFailed
from datagate_simulators.halopsa.oauth import Application, OAuthServer, Token
from datagate_simulators.halopsa.throttle import RateLimit, RateLimiter

#: The resources served, by canonical name (the URL's, matched case-insensitively).
RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Client(), Site(), ClientContract(), Item(), AssetGroup(), ItemGroup(), Tax(), FieldInfo(),
        RecurringInvoice(), Invoice(), InvoicePayment(), Supplier(), PurchaseOrder(),
    )
}  # fmt: skip

_LIST_CACHE_SIZE = 64
_MAX_COUNT = 100_000  # "maximum is 100000" for count. [R] PYPI


@dataclass
class ListResult:
    """One list response: the rows plus what the wrapper reports."""

    resource: str
    key: str | None
    rows: list[dict[str, Any]]
    record_count: int
    paged: bool
    page_no: int | None = None
    page_size: int | None = None

    def to_json(self) -> Any:
        """Halo's shape: ``{"page_no", "page_size", "record_count", "<key>": [...]}`` or a bare array.

        ``page_no``/``page_size`` (the size actually served, after the cap) only when paging.
        """
        if self.key is None:
            return self.rows
        body: dict[str, Any] = {}
        if self.paged:
            body["page_no"] = self.page_no
            body["page_size"] = self.page_size
        body["record_count"] = self.record_count
        body[self.key] = self.rows
        return body


class HaloPSABackend:
    """A HaloPSA instance: applications, tokens, the rate limit, records and fault switches.

    ``clock`` (seconds since the epoch, like ``time.time``) drives token expiry, the rate-limit
    window and write timestamps, so tests can move time by hand.
    """

    def __init__(
        self,
        *,
        tenant: str = "datagate",
        token_ttl: int = 3600,
        rate_limit: RateLimit | None = None,
        page_cap: int = 100,
        default_page_size: int = 50,
        unpaged_limit: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        #: Largest page served whatever page_size asks for. [R] HAPI #90
        self.page_cap = page_cap
        #: page_size used when pageinate=true comes without one. [I]
        self.default_page_size = default_page_size
        #: Rows returned without paging and without count (None = all). [I]
        self.unpaged_limit = unpaged_limit
        self.oauth = OAuthServer(tenant, clock, token_ttl)
        self.rate_limiter = RateLimiter(rate_limit or RateLimit(), clock)
        #: Contract type lookup: id → name (``ClientContract.contracttype``/``contracttype_name``).
        self.contract_types: dict[int, str] = {}
        self.custom_fields = CustomFieldValues(self)
        self.faults = HaloFaults()
        self._tables = {name: Table(name, resource.id_sign) for name, resource in RESOURCES.items()}
        self._by_lower = {name.lower(): resource for name, resource in RESOURCES.items()}
        self._table_versions = dict.fromkeys(RESOURCES, 0)
        self._version = 0
        self._sequences: dict[str, int] = {"invoice_number": 1000}
        self._list_cache: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()

    # ------------------------------------------------------------------ configuration

    @property
    def tenant(self) -> str:
        """The instance's tenant: ``authinfo`` reports it, the token endpoint checks it."""
        return self.oauth.tenant

    def add_application(
        self,
        client_id: str,
        client_secret: str,
        *,
        name: str = "Datagate",
        allowed_scopes: str = "all",
    ) -> Application:
        """Register API credentials (Configuration > Integrations > Halo API)."""
        with self.lock:
            return self.oauth.add_application(
                client_id, client_secret, name=name, allowed_scopes=allowed_scopes
            )

    def add_contract_type(self, name: str, type_id: int | None = None) -> int:
        """Add a contract type to the lookup; returns its id (existing id for a known name)."""
        with self.lock:
            for known_id, known in self.contract_types.items():
                if known.lower() == name.lower():
                    return known_id
            type_id = type_id if type_id is not None else max(self.contract_types, default=0) + 1
            self.contract_types[type_id] = name
            self._bump(None)
            return type_id

    @property
    def rate_limit(self) -> RateLimit:
        return self.rate_limiter.limit

    def set_rate_limit(self, limit: RateLimit) -> None:
        with self.lock:
            self.rate_limiter.limit = limit
            self.rate_limiter.reset()

    # ------------------------------------------------------------------ auth

    def authinfo(self, base_url: str) -> dict[str, Any]:
        """``GET /api/authinfo`` (no token needed). [C] HAPI Connect-HaloAPI"""
        return {"auth_url": f"{base_url.rstrip('/')}/auth", "tenant_id": self.tenant}

    def issue_token(
        self,
        *,
        grant_type: str | None,
        client_id: str | None,
        client_secret: str | None,
        scope: str | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """``POST /auth/token`` with client credentials → the OAuth2 token response. §1.2"""
        with self.lock:
            return self.oauth.issue_token(
                grant_type=grant_type,
                client_id=client_id,
                client_secret=client_secret,
                scope=scope,
                tenant=tenant,
            )

    def authenticate(self, access_token: str | None) -> Token:
        """The token behind ``Authorization: Bearer …``; raises InvalidToken (401)."""
        with self.lock:
            return self.oauth.authenticate(access_token)

    def check_rate_limit(self, token: Token) -> None:
        """Count one API request for the token's application; raises RateLimited (429)."""
        with self.lock:
            self.rate_limiter.hit(token.client_id)

    def authorize(self, token: Token, resource: str, write: bool) -> None:
        """Raise Forbidden (403) unless the token's scope covers ``resource``."""
        area = self.resource(resource).scope_area
        if not token.allows(area, write):
            verb = "edit" if write else "read"
            raise Forbidden(
                f"The token's scope does not allow {verb} access to {self.resource(resource).name}."
            )

    def expire_tokens(self) -> int:
        """Invalidate every live token now (fault switch); returns how many."""
        with self.lock:
            return self.oauth.tokens.revoke_all()

    def set_token_lifetime(self, seconds: float | None) -> None:
        """Tokens issued from now on stop working after ``seconds`` although ``expires_in``
        still says the full TTL (fault switch); None restores normal lifetimes."""
        with self.lock:
            self.oauth.tokens.actual_lifetime = seconds

    # ------------------------------------------------------------------ records

    def resource(self, name: str) -> Resource:
        """A resource by URL name, case-insensitively (``client`` = ``Client``). [C] §2"""
        resource = self._by_lower.get(name.lower())
        if resource is None:
            raise NotFound(name)
        return resource

    def list(self, resource: str, params: Mapping[str, str] | None = None) -> ListResult:
        """``GET /api/<Resource>`` with Halo's list parameters. §3"""
        with self.lock:
            res = self.resource(resource)
            query = ListQuery.parse(params or {})
            ids = self._matching_ids(res, query)
            table = self._tables[res.name]
            total = len(ids)
            page_no = page_size = None
            offset = 0
            if query.idonly:
                # idonly does not combine with paging [C] SPEC24: every matching id is returned.
                result = ListResult(
                    res.name, res.list_key, [{"id": i} for i in ids], total, paged=False
                )
                return result
            if query.pageinate:
                page_no = max(1, query.page_no)
                page_size = min(max(1, query.page_size or self.default_page_size), self.page_cap)
                offset = (page_no - 1) * page_size
                chosen = ids[offset : offset + page_size]
            elif query.count is not None:
                chosen = ids[: max(0, min(query.count, _MAX_COUNT))]
            elif self.unpaged_limit is not None:
                chosen = ids[: self.unpaged_limit]
            else:
                chosen = ids
            rows = [res.render(self, table.get(i), False, query) for i in chosen]  # type: ignore[arg-type]
            key = None if res.bare_unless_paged and not query.pageinate else res.list_key
            for fault in self.faults.take_malformed(res.name):
                previous = None
                if fault.mode == "duplicate_id" and offset > 0 and offset - 1 < len(ids):
                    previous = res.render(self, table.get(ids[offset - 1]), False, query)  # type: ignore[arg-type]
                rows = fault.apply(rows, previous)
            result = ListResult(res.name, key, rows, total, query.pageinate, page_no, page_size)
            if query.pageinate and page_no is not None:
                for hook in self.faults.take_page_hooks(res.name, page_no):
                    hook.action(self)
            return result

    def get(
        self, resource: str, record_id: Any, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``GET /api/<Resource>/{id}``: the full object (lines, custom fields); 404 if unknown."""
        with self.lock:
            res = self.resource(resource)
            record = self._tables[res.name].get(self._id(res, record_id))
            if record is None:
                raise NotFound(res.name, record_id)
            return copy.deepcopy(res.render(self, record, True))

    def upsert(
        self, resource: str, items: Any, *, now: str | datetime | None = None
    ) -> list[dict[str, Any]]:
        """``POST /api/<Resource>`` with a JSON array: create (no id / id 0) or update (id).

        All or nothing: any validation error → ValidationFailed (400) and nothing is written.
        Returns the stored objects in full, in the order sent. ``now`` overrides the write
        timestamp (the generator uses it to stay deterministic).
        """
        with self.lock:
            res = self.resource(resource)
            records = self._write_batch(res, items, now)
            table = self._tables[res.name]
            return [copy.deepcopy(res.render(self, table.get(r["id"]), True)) for r in records]  # type: ignore[arg-type]

    def load(
        self,
        resource: str,
        items: Sequence[Mapping[str, Any]],
        *,
        now: str | datetime | None = None,
    ) -> list[int]:
        """Like ``upsert`` (same rules) but returns only the ids: for bulk loading."""
        with self.lock:
            return [r["id"] for r in self._write_batch(self.resource(resource), list(items), now)]

    def _write_batch(
        self, res: Resource, items: Any, now: str | datetime | None
    ) -> list[dict[str, Any]]:
        with self.lock:
            if not isinstance(items, list):
                raise ValidationFailed(
                    {
                        "": [
                            f"The JSON value could not be converted to List<{res.name}>; send an array."
                        ]
                    }
                )
            now_text = self._now_text(now)
            table = self._tables[res.name]
            errors = Errors()
            staged: list[tuple[dict[str, Any], bool]] = []
            seen: set[int] = set()
            for index, item in enumerate(items):
                path = f"[{index}]"
                if not isinstance(item, dict):
                    errors.add(path, f"The JSON value could not be converted to {res.name}.")
                    continue
                try:
                    record_id = 0 if item.get("id") in (None, "") else parse_int(item["id"])
                except ValueError:
                    errors.add(f"{path}.id", f"The value {item.get('id')!r} is not a valid id.")
                    continue
                existing = None
                if record_id == 0:
                    record_id = table.next_id()
                else:
                    existing = table.get(record_id)
                    if existing is None:
                        errors.add(f"{path}.id", f"{res.name} {record_id} does not exist.")
                        continue
                    if record_id in seen:
                        errors.add(
                            f"{path}.id", f"{res.name} {record_id} appears twice in the request."
                        )
                        continue
                seen.add(record_id)
                staged.append(
                    (
                        res.write(self, record_id, existing, item, path, errors, now_text),
                        existing is None,
                    )
                )
            errors.raise_if_any()
            for record, _ in staged:
                table.put(record)
            self._bump(res.name)
            for record, created in staged:
                res.after_commit(self, record, created, now_text)
            return [record for record, _ in staged]

    def create(
        self, resource: str, item: Mapping[str, Any], *, now: str | datetime | None = None
    ) -> dict[str, Any]:
        """Upsert a single object; returns it."""
        return self.upsert(resource, [dict(item)], now=now)[0]

    def delete(self, resource: str, record_id: Any) -> dict[str, Any]:
        """``DELETE /api/<Resource>/{id}`` → the deleted object; 404 if unknown."""
        with self.lock:
            res = self.resource(resource)
            table = self._tables[res.name]
            key = self._id(res, record_id)
            record = table.get(key)
            if record is None:
                raise NotFound(res.name, record_id)
            rendered = copy.deepcopy(res.render(self, record, True))
            table.remove(key)
            res.on_delete(self, record)
            self._bump(res.name)
            return rendered

    def void_invoice(self, invoice_id: Any) -> dict[str, Any]:
        """``POST /api/Invoice/{id}/void``: mark it voided, nothing left to pay. [C] SPEC25"""
        with self.lock:
            record = self._tables["Invoice"].get(self._id(RESOURCES["Invoice"], invoice_id))
            if record is None:
                raise NotFound("Invoice", invoice_id)
            self.replace_record(
                "Invoice",
                {**record, "voided": True, "amountdue": 0.0, "last_modified": self._now_text(None)},
            )
            return self.get("Invoice", record["id"])

    def confirm_receipt(self, body: Any, *, now: str | datetime | None = None) -> dict[str, Any]:
        """``POST /api/PurchaseOrder/confirmreceipt`` (HTS): goods in for a purchase order.

        ``{"id", "lines": [{"id", "quantity_received"}]}``; lines not named are received in
        full, and ``goodsin_status`` follows (every line received, some, none). [I] for what
        the real endpoint does beyond its existence.
        """
        with self.lock:
            if not isinstance(body, dict):
                raise ValidationFailed({"": ["The request body must be a purchase order."]})
            table = self._tables["PurchaseOrder"]
            record = table.get(self._id(RESOURCES["PurchaseOrder"], body.get("id")))
            if record is None:
                raise NotFound("PurchaseOrder", body.get("id"))
            sent = {
                parse_int(line["id"]): line
                for line in body.get("lines") or []
                if isinstance(line, dict) and line.get("id") is not None
            }
            stamp = self._now_text(now)
            lines = []
            for line in record["lines"]:
                wanted = sent.get(line["id"], {}).get("quantity_received")
                received = line[PO_LINE_QUANTITY] if wanted is None else float(wanted)
                lines.append({**line, "quantity_received": received, "date_received": stamp})
            complete = all(x["quantity_received"] >= x[PO_LINE_QUANTITY] for x in lines)
            some = any(x["quantity_received"] > 0 for x in lines)
            status = GOODS_IN["received" if complete else "partial" if some else "none"]
            self.replace_record(
                "PurchaseOrder",
                {**record, "lines": lines, "goodsin_status": status, "last_update_time": stamp},
            )
            return self.get("PurchaseOrder", record["id"])

    def count(self, resource: str) -> int:
        with self.lock:
            return len(self._tables[self.resource(resource).name])

    # ------------------------------------------------------------------ for resources

    def table(self, name: str) -> Table:
        return self._tables[name]

    def table_version(self, name: str) -> int:
        return self._table_versions[name]

    def exists(self, resource: str, record_id: int) -> bool:
        return record_id in self._tables[resource]

    def name_of(self, resource: str, record_id: Any) -> str:
        """A referenced record's ``name`` ("" for none or unknown), as Halo's ``*_name`` fields."""
        if record_id in (None, UNSET, 0):
            return ""
        record = self._tables[resource].get(int(record_id))
        return "" if record is None else str(record.get("name", ""))

    def next_sequence(self, name: str) -> int:
        """Counters for ids that are not table keys (invoice lines, addresses, numbers)."""
        value = self._sequences.get(name, 0) + 1
        self._sequences[name] = value
        return value

    def replace_record(self, resource: str, record: dict[str, Any]) -> None:
        """Store a new version of a record directly (no rules); for side effects and faults."""
        with self.lock:
            self._tables[resource].put(record)
            self._bump(resource)

    # ------------------------------------------------------------------ faults

    def malform_rows(
        self,
        resource: str,
        mode: str,
        field: str | None = None,
        *,
        count: int = 1,
        rows: str | int = "first",
    ) -> None:
        """Spoil the next ``count`` list responses of ``resource`` (see MalformedRows)."""
        with self.lock:
            self.faults.malformed.append(
                MalformedRows(self.resource(resource).name, mode, field, count, rows)
            )

    def after_page(
        self,
        resource: str,
        page_no: int,
        action: PageAction,
        *,
        count: int = 1,
        description: str = "",
    ) -> None:
        """Run ``action(backend)`` right after page ``page_no`` of a paged ``resource`` list."""
        with self.lock:
            self.faults.page_hooks.append(
                PageHook(self.resource(resource).name, page_no, action, count, description)
            )

    def delete_between_pages(self, resource: str, after_page: int = 1, records: int = 1) -> None:
        """After page ``after_page`` is served, delete the first ``records`` records."""
        self.after_page(
            resource,
            after_page,
            delete_first_records(self.resource(resource).name, records),
            description=f"delete {records}",
        )

    def add_between_pages(self, resource: str, after_page: int = 1, records: int = 1) -> None:
        """After page ``after_page`` is served, add ``records`` new records."""
        self.after_page(
            resource,
            after_page,
            add_records(self.resource(resource).name, records),
            description=f"add {records}",
        )

    def ignore_change_filters(self, *resources: str, ignore: bool = True) -> None:
        """Make ``lastupdatefromdate``/``lastupdatetodate`` ignored on these lists (or heeded
        again): the whole list is served, as Halo does with a parameter it does not know."""
        with self.lock:
            names = {self.resource(r).name for r in resources}
            if ignore:
                self.faults.ignored_change_filters |= names
            else:
                self.faults.ignored_change_filters -= names
            self._list_cache.clear()

    def ignores_change_filter(self, resource: str) -> bool:
        return resource in self.faults.ignored_change_filters

    def now_text(self) -> str:
        """Now, on the backend's clock, as Halo writes timestamps."""
        return self._now_text(None)

    def reset_faults(self) -> None:
        """Clear HaloPSA fault switches and rate-limit windows (data and live tokens stay)."""
        with self.lock:
            self.faults.clear()
            self._list_cache.clear()
            self.oauth.tokens.actual_lifetime = None
            self.rate_limiter.reset()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            limit = self.rate_limiter.limit
            return {
                "tenant": self.tenant,
                "tokens_issued": self.oauth.tokens.issued,
                "records": {name: len(table) for name, table in self._tables.items()},
                "lines": sum(
                    len(r.get("lines", [])) for r in self._tables["RecurringInvoice"].values()
                ),
                "rate_limit": {
                    "enabled": limit.enabled,
                    "requests": limit.requests,
                    "window_seconds": limit.window_seconds,
                    "retry_after": limit.retry_after,
                    "used": {
                        client_id: self.rate_limiter.used(client_id)
                        for client_id in self.oauth.applications
                    },
                },
                "page_cap": self.page_cap,
            }

    # ------------------------------------------------------------------ internals

    def _id(self, res: Resource, record_id: Any) -> int:
        try:
            return parse_int(record_id)
        except ValueError:
            raise NotFound(res.name, record_id) from None

    def _now_text(self, now: str | datetime | None) -> str:
        if now is None:
            return halo_timestamp(utc_now_naive(self.clock()))
        if isinstance(now, datetime):
            return halo_timestamp(now)
        return now

    def _bump(self, resource: str | None) -> None:
        self._version += 1
        if resource is not None:
            self._table_versions[resource] += 1
        self._list_cache.clear()

    def _matching_ids(self, res: Resource, query: ListQuery) -> list[int]:
        key = (res.name, self._version, query.cache_key())
        cached = self._list_cache.get(key)
        if cached is not None:
            self._list_cache.move_to_end(key)
            return cached
        table = self._tables[res.name]
        ids = [i for i in table.ids() if res.matches(self, table.get(i), query)]  # type: ignore[arg-type]
        for field_name, descending in reversed(query.orders):
            ids.sort(
                key=lambda i, f=field_name: _sort_key(res.value_of(self, table.get(i), f)),
                reverse=descending,
            )  # type: ignore[arg-type,misc]
        self._list_cache[key] = ids
        if len(self._list_cache) > _LIST_CACHE_SIZE:
            self._list_cache.popitem(last=False)
        return ids


def _sort_key(value: Any) -> tuple[int, Any]:
    # SQL Server's default collation ignores case; None sorts first, as NULL does.
    if value is None:
        return (0, 0)
    if isinstance(value, bool | int | float):
        return (1, float(value))
    if isinstance(value, str):
        return (2, value.lower())
    return (3, str(value))


__all__ = ["RESOURCES", "HaloPSABackend", "ListResult"]
