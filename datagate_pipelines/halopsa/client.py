"""The HaloPSA API client: OAuth2 client credentials, paged lists, upserts, invoices.

Plain Python (no Dagster). Every request, token requests included, goes through the shared
HTTP core (`clients.http`): rate-limited per portal, retried, recorded and redacted. Rows
come back raw, as Halo sends them; validation is the schemas' job.

Halo's awkward parts this client absorbs (docs/halopsa-api.md):
- lists are paged with `pageinate=true` (sic), `page_size`, `page_no` (1-based); the server
  caps a page at 100 rows whatever `page_size` asks (§3.3), so paging follows the rows the
  server actually returns and `record_count`, and stops on an empty page;
- lists come wrapped (`{"record_count": N, "clients": [...]}`) or as bare arrays (§3.2);
- create and update are the same call: POST an array; an element with an `id` updates (§2);
- error bodies come in several shapes (§5), all turned into one readable message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from datagate_pipelines.halopsa.errors import (
    HaloPSAAuthError,
    HaloPSABadRequestError,
    HaloPSAError,
    HaloPSANotFoundError,
    HaloPSARateLimitedError,
    HaloPSAServerError,
    HaloPSATransportError,
    halo_error_message,
)

logger = logging.getLogger(__name__)

#: The most rows Halo returns per page, whatever `page_size` asks for. [R] HAPI #90
MAX_PAGE_SIZE = 100
#: `FieldInfo.usage` of a client-level custom field. [C] REAL-RI
CLIENT_FIELD_USAGE = 2
#: `FieldInfo.type` of a checkbox. [C] CFB README
CHECKBOX_FIELD_TYPE = 6
#: Written on a new Invoice record to make it a credit note. [I] docs/halopsa-api.md §A4:
#: the field exists (SPEC24) but what Halo does with it is not documented; how a credit's
#: amounts are signed is a portal setting (`halopsa.credit_note_amounts`).
CREDIT_NOTE_FLAG = "_create_credit_note"
#: The list key of the wrapper object, per resource (lower-case path). [C] §3.2
WRAPPER_KEYS = {
    "client": "clients",
    "site": "sites",
    "clientcontract": "contracts",
    "invoice": "invoices",
    "recurringinvoice": "invoices",
    "item": "items",
    "tickets": "tickets",
    "users": "users",
    "supplier": "suppliers",
    "purchaseorder": "purchaseorders",
}
# A guard against a server that never stops paging; far beyond any real portal.
_MAX_PAGES = 10_000
# Reads of a list whose records keep disappearing while it is paged, before giving up.
_MAX_PASSES = 3


class Listing(list):
    """The rows of one list call, raw and in server order, with how they were read.

    A row whose `id` was already read on an earlier page is left out (the first is kept)
    and its id goes to `duplicate_ids`: rows shift between pages when records are added or
    removed while paging.
    """

    def __init__(self, resource: str, rows: Iterable[Any] = ()):
        super().__init__(rows)
        self.resource = resource
        self.pages = 0
        self.record_count: int | None = None
        self.duplicate_ids: list[Any] = []


@dataclass
class AccessCheck:
    """What `HaloPSAClient.test_access` found. `problems` block access; `warnings` do not
    (older on-premises instances may not serve authinfo)."""

    portal: str
    authinfo: dict[str, Any] | None = None
    token_ok: bool = False
    first_page_ok: bool = False
    client_count: int | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.token_ok and self.first_page_ok and not self.problems


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # time.monotonic() after which a new token is fetched


class HaloPSAClient(ApiClientBase):
    """A HaloPSA instance, seen through its REST API, for one portal. Thread-safe.

    `rate_limit` is `(requests, per_seconds)` for a limiter of this client's own, or a
    `RateLimiter` to share with other clients of the same portal (Halo limits per API
    application). `retry` defaults to `RetryPolicy()`. `recorder` receives an
    `ApiRequestRecord` for every attempt.
    """

    system = "halopsa"
    error_classes = {
        ApiError: HaloPSAError,
        AuthError: HaloPSAAuthError,
        NotFoundError: HaloPSANotFoundError,
        BadRequestError: HaloPSABadRequestError,
        RateLimitedError: HaloPSARateLimitedError,
        ServerError: HaloPSAServerError,
        TransportError: HaloPSATransportError,
    }

    def __init__(
        self,
        portal_id: str,
        *,
        client_id: str,
        client_secret: Any,
        tenant: str | None = "",
        authorization_server: str,
        resource_server: str,
        rate_limit: tuple[int, float] | RateLimiter | None = (300, 300.0),
        page_size: int = MAX_PAGE_SIZE,
        transport: httpx.BaseTransport | None = None,
        recorder: RequestRecorder | None = None,
        run_id: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
        scope: str = "all",
        token_refresh_margin: float = 60.0,
    ):
        # Accept a pydantic SecretStr (config.HaloPSACredentials) as well as a plain str.
        secret = getattr(client_secret, "get_secret_value", lambda: client_secret)()
        if isinstance(rate_limit, RateLimiter):
            limiter = rate_limit
        elif rate_limit is None:
            limiter = RateLimiter.unlimited()
        else:
            limiter = RateLimiter(*rate_limit)
        super().__init__(
            portal_id,
            base_url=resource_server,
            transport=transport,
            timeout=timeout,
            limiter=limiter,
            retry=retry,
            recorder=recorder,
            run_id=run_id,
            secrets=[secret],
        )
        self.client_id = client_id
        self._client_secret = secret
        self.tenant = tenant or ""
        self.scope = scope
        self.token_url = f"{authorization_server.rstrip('/')}/token"
        self.page_size = page_size
        self.token_refresh_margin = token_refresh_margin
        self._token: _Token | None = None
        self._token_lock = threading.Lock()

    @classmethod
    def for_portal(cls, portal: Any, **options: Any) -> HaloPSAClient:
        """A client with a portal's `halopsa:` settings and the secrets its environment
        variables hold (`config.Portal`); `options` (transport, recorder, run_id, retry,
        timeout, …) override or add."""
        settings = portal.settings.halopsa
        credentials = portal.halopsa_credentials()
        values: dict[str, Any] = {
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "tenant": settings.tenant,
            "authorization_server": settings.authorization_server,
            "resource_server": settings.resource_server,
            "rate_limit": (settings.rate_limit_requests, settings.rate_limit_window_seconds),
            "page_size": settings.page_size,
        }
        values.update(options)
        return cls(portal.id, **values)

    def __repr__(self) -> str:
        return f"HaloPSAClient(portal={self.portal!r}, resource_server={str(self.http.base_url)!r})"

    # -- authentication ------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access_token()}"}

    def _access_token(self) -> str:
        """The current token; fetched once, and again shortly before it expires."""
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token.refresh_at:
                self._token = self._fetch_token()
            return self._token.value

    def _invalidate_auth(self, used: Mapping[str, str]) -> bool:
        with self._token_lock:
            # Another thread may have replaced the token already: drop only the one that failed.
            if (
                self._token is not None
                and used.get("Authorization") == f"Bearer {self._token.value}"
            ):
                self._token = None
        return True

    def _fetch_token(self) -> _Token:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "scope": self.scope,
        }
        try:
            response = self.request(
                "POST",
                self.token_url,
                params={"tenant": self.tenant} if self.tenant else None,
                data=form,
                authenticate=False,
                idempotent=True,
                entity="token",
            )
        except HaloPSAServerError as error:
            # A wrong tenant has been seen to give a 500 from the token endpoint. [R] PYPI
            tenant_hint = (
                f"is the tenant {self.tenant!r} right?"
                if self.tenant
                else "does this instance need a tenant?"
            )
            raise HaloPSAAuthError(
                f"the token endpoint failed ({error.message}); {tenant_hint}",
                system=self.system,
                portal=self.portal,
                method=error.method,
                path=error.path,
                status=error.status,
                entity="token",
                attempts=error.attempts,
            ) from None
        body = self._json(response, entity="token")
        access_token = body.get("access_token") if isinstance(body, dict) else None
        if not access_token:
            raise self._error(
                AuthError, "the token response has no access_token", response.request,
                response.status_code, "token", None,
            )  # fmt: skip
        self.redact.add(access_token, transient=True)
        self.stats.add(token_fetches=1)
        try:
            lifetime = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            lifetime = 3600.0
        # Refresh `margin` seconds early, or half-way through a token shorter than that.
        early = min(self.token_refresh_margin, lifetime / 2)
        return _Token(access_token, time.monotonic() + lifetime - early)

    # -- plumbing --------------------------------------------------------------------------

    def _error_message(self, response: httpx.Response) -> str:
        return halo_error_message(response)

    def _json(self, response: httpx.Response, *, entity: str | None = None) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._error(
                ApiError,
                f"expected JSON, got {response.headers.get('Content-Type', 'no content type')}",
                response.request,
                response.status_code,
                entity,
                None,
            ) from None

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        entity: str | None = None,
        entity_id: Any = None,
    ) -> Any:
        """One authenticated API call; the parsed JSON body (None when empty)."""
        response = self.request(
            method,
            path,
            params={k: v for k, v in (params or {}).items() if v is not None},
            json=json,
            idempotent=idempotent,
            entity=entity or path.split("/")[0],
            entity_id=entity_id,
        )
        return self._json(response, entity=entity)

    # -- lists -----------------------------------------------------------------------------

    def list(
        self,
        resource: str,
        *,
        wrapper_key: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Listing:
        """Every row of a list endpoint, page by page.

        Paging follows the rows the server actually returns (it caps pages at 100) and
        `record_count`, re-read on every page so that records added while paging are
        fetched too; it stops on an empty page, or on a page that brings nothing new (an
        endpoint that ignores paging). Accepts a wrapper object or a bare array.

        Records removed while paging shift later rows onto pages already read, so some
        would be skipped without a trace: when `record_count` shrinks, the list is read
        again from the start (up to `_MAX_PASSES` times).
        """
        for _ in range(_MAX_PASSES):
            listing, shrank = self._read_pages(resource, wrapper_key, params)
            if not shrank:
                break
            logger.warning(
                "halopsa portal %s: %s lost records while paging (now %s); reading it again",
                self.portal,
                resource,
                listing.record_count,
            )
        self.stats.add(rows=len(listing), duplicate_rows=len(listing.duplicate_ids))
        self._report(listing, shrank)
        return listing

    def _read_pages(
        self, resource: str, wrapper_key: str | None, params: Mapping[str, Any] | None
    ) -> tuple[Listing, bool]:
        """One pass over every page; also whether `record_count` shrank on the way."""
        listing = Listing(resource)
        seen: set[Any] = set()
        previous: list[Any] | None = None
        shrank = False
        for page_no in range(1, _MAX_PAGES + 1):
            query = {
                **(params or {}),
                "pageinate": "true",
                "page_size": self.page_size,
                "page_no": page_no,
            }
            body = self._call("GET", resource, params=query, entity=resource)
            rows, record_count = self._page(resource, body, wrapper_key)
            listing.pages += 1
            self.stats.add(pages=1)
            if record_count is not None:
                shrank = shrank or (
                    listing.record_count is not None and record_count < listing.record_count
                )
                listing.record_count = record_count
            if not rows or rows == previous:
                break
            fresh = 0
            for row in rows:
                row_id = _row_id(row)
                if row_id is not None and row_id in seen:
                    listing.duplicate_ids.append(row_id)
                else:
                    seen.add(row_id)
                    listing.append(row)
                    fresh += 1
            if not fresh:
                # Only rows read before: this endpoint ignores paging. Not duplicates.
                del listing.duplicate_ids[-len(rows) :]
                break
            previous = rows
            if record_count is not None and len(listing) >= record_count:
                break
        else:
            raise self._list_error(resource, f"still paging after {_MAX_PAGES} pages")
        return listing, shrank

    def _page(
        self, resource: str, body: Any, wrapper_key: str | None
    ) -> tuple[list[Any], int | None]:
        """The rows and `record_count` of one page, from a wrapper object or a bare array."""
        if isinstance(body, list):
            return body, None
        if body is None:
            return [], None
        if isinstance(body, dict):
            key = wrapper_key or WRAPPER_KEYS.get(resource.strip("/").lower())
            if key is None:
                lists = [
                    k
                    for k, v in body.items()
                    if isinstance(v, list) and not k.startswith("columns")
                ]
                key = lists[0] if len(lists) == 1 else None
            if key is not None and isinstance(body.get(key, []), list):
                count = body.get("record_count")
                return body.get(key, []), int(count) if isinstance(count, int | float) else None
        shape = f"keys {sorted(body)[:10]}" if isinstance(body, dict) else type(body).__name__
        raise self._list_error(resource, f"unexpected list response ({shape})")

    def _list_error(self, resource: str, message: str) -> HaloPSAError:
        return HaloPSAError(
            message,
            system=self.system,
            portal=self.portal,
            method="GET",
            path=f"{self.http.base_url.path}{resource}",
            entity=resource,
        )

    def _report(self, listing: Listing, unstable: bool) -> None:
        if listing.duplicate_ids:
            logger.warning(
                "halopsa portal %s: %s listed %d rows twice across pages (kept the first): ids %s",
                self.portal,
                listing.resource,
                len(listing.duplicate_ids),
                listing.duplicate_ids[:20],
            )
        if unstable or (listing.record_count is not None and len(listing) < listing.record_count):
            logger.warning(
                "halopsa portal %s: %s reported %s records and %d were read; records changed "
                "while paging, so some may be missing: run the sync again",
                self.portal,
                listing.resource,
                listing.record_count,
                len(listing),
            )

    # -- single records and writes ---------------------------------------------------------------

    def get(
        self,
        resource: str,
        id: Any,
        *,
        include_details: bool = True,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One record by id (with nested details unless told otherwise). Raises
        `HaloPSANotFoundError` when it does not exist."""
        query = {"includedetails": "true"} if include_details else {}
        return self._call(
            "GET",
            f"{resource}/{id}",
            params={**query, **(params or {})},
            entity=resource,
            entity_id=id,
        )

    def upsert(
        self, resource: str, records: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Create or update: Halo's POST of an array; an element with an `id` updates.

        One record (a mapping) in, the saved record out; a sequence in, a list out. Retried
        after a 5xx or a dropped connection only when every element has an id (an update
        is safe to repeat; a create is not).
        """
        single = isinstance(records, Mapping)
        batch = [dict(records)] if single else [dict(r) for r in records]
        ids = [r.get("id") for r in batch]
        body = self._call(
            "POST",
            resource,
            json=batch,
            idempotent=all(ids),
            entity=resource,
            entity_id=ids[0] if single else None,
        )
        if single:
            return body[0] if isinstance(body, list) and body else body
        return body if isinstance(body, list) else [body]

    def delete(self, resource: str, id: Any) -> Any:
        """Delete a record; Halo's response body (the deleted object, or None).

        Raises `HaloPSANotFoundError` for an unknown id, except on a retry: then the first
        attempt, whose answer was lost, is what deleted it."""
        try:
            return self._call("DELETE", f"{resource}/{id}", entity=resource, entity_id=id)
        except HaloPSANotFoundError as error:
            if error.attempts > 1:
                return None
            raise

    # -- domain lists ---------------------------------------------------------------------

    def clients(
        self,
        *,
        include_inactive: bool = False,
        custom_field_ids: Iterable[int] = (),
        params: Mapping[str, Any] | None = None,
    ) -> Listing:
        """Customers (Halo's `Client`, schema `Area`). List rows carry the values of the
        custom fields in `custom_field_ids` only (e.g. the Datagate checkbox's id)."""
        ids = ",".join(str(i) for i in custom_field_ids) or None
        return self.list(
            "Client",
            params={
                "includeinactive": include_inactive,
                "include_custom_fields": ids,
                **(params or {}),
            },
        )

    def sites(
        self,
        *,
        client_id: int | None = None,
        include_inactive: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> Listing:
        return self.list(
            "Site",
            params={"client_id": client_id, "includeinactive": include_inactive, **(params or {})},
        )

    def contracts(
        self,
        *,
        client_id: int | None = None,
        include_inactive: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> Listing:
        return self.list(
            "ClientContract",
            params={"client_id": client_id, "includeinactive": include_inactive, **(params or {})},
        )

    def items(
        self, *, include_inactive: bool = False, params: Mapping[str, Any] | None = None
    ) -> Listing:
        """Products (Halo's `Item`)."""
        return self.list("Item", params={"includeinactive": include_inactive, **(params or {})})

    def asset_groups(self, *, params: Mapping[str, Any] | None = None) -> Listing:
        """Asset groups: what `Item.assetgroup_id` refers to (the product's group)."""
        return self.list("AssetGroup", params=params)

    def item_groups(self, *, params: Mapping[str, Any] | None = None) -> Listing:
        return self.list("ItemGroup", params=params)

    def recurring_invoices(
        self,
        *,
        include_lines: bool = True,
        client_id: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Listing:
        """Recurring invoice templates (negative ids), with their lines by default."""
        return self.list(
            "RecurringInvoice",
            params={"includelines": include_lines, "client_id": client_id, **(params or {})},
        )

    def taxes(self, *, params: Mapping[str, Any] | None = None) -> Listing:
        return self.list("Tax", params=params)

    def suppliers(
        self, *, include_inactive: bool = True, params: Mapping[str, Any] | None = None
    ) -> Listing:
        """Suppliers (schema `Company`, §A1). List rows lack `accounts_id`, `address`,
        `notes` and any change stamp: read those with `get("Supplier", id)`."""
        return self.list("Supplier", params={"includeinactive": include_inactive, **(params or {})})

    def purchase_orders(self, *, params: Mapping[str, Any] | None = None) -> Listing:
        """Purchase orders (`SupplierOrderHeader`, §A2): list rows are full objects."""
        return self.list("PurchaseOrder", params=params)

    def field_infos(self, *, params: Mapping[str, Any] | None = None) -> Listing:
        """Custom field definitions (`FieldInfo`)."""
        return self.list("FieldInfo", params=params)

    # -- invoices -----------------------------------------------------------------------------

    def create_invoice(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create one invoice. Never retried after a 5xx or a dropped connection: the
        invoice may exist already; look it up (`find_invoices`) before trying again."""
        return self._create_one("Invoice", payload)

    def _create_one(self, resource: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        if payload.get("id"):
            raise ValueError(f"this creates; to change a {resource} use upsert({resource!r}, …)")
        body = self._call("POST", resource, json=[dict(payload)], idempotent=False, entity=resource)
        return body[0] if isinstance(body, list) and body else body

    def create_credit_note(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create one credit note: an Invoice record written with the credit flag
        (docs/halopsa-api.md §A4). Like `create_invoice`, never retried blindly."""
        return self.create_invoice({**payload, CREDIT_NOTE_FLAG: True})

    def find_invoices(
        self,
        *,
        client_id: int | None = None,
        contract_id: int | None = None,
        search: str | None = None,
        start_date: str | None = None,
        end_date: str | None = None,
        include_lines: bool = False,
        include_credits: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> Listing:
        """Invoices matching the filters (dates filter on the invoice date); with
        `include_credits`, credit notes too."""
        query = {
            "client_id": client_id,
            "contract_id": contract_id,
            "search": search,
            "start_date": start_date,
            "end_date": end_date,
            "datesearch": "invoice_date" if start_date or end_date else None,
            "includelines": include_lines or None,
            "includecredits": include_credits or None,
            **(params or {}),
        }
        return self.list("Invoice", params=query)

    # -- invoice payments (docs/halopsa-api.md §A5; the unconfirmed meanings: payments.py) --

    def invoice_payments(self, invoice_id: int) -> Listing:
        """The payments recorded against one invoice."""
        return self.list("InvoicePayment", params={"invoice_id": invoice_id})

    def create_invoice_payment(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Record one payment (`payments.payment_body`). Never retried after a 5xx or a
        dropped connection: look it up (`invoice_payments`) before trying again."""
        return self._create_one("InvoicePayment", payload)

    def delete_invoice_payment(self, id: int) -> Any:
        """Delete a payment record; one already gone counts as deleted."""
        try:
            return self.delete("InvoicePayment", id)
        except HaloPSANotFoundError:
            return None

    def void_invoice(self, id: int) -> Any:
        """Void an invoice (`POST /Invoice/{id}/void`, with an empty object as RDX sends)."""
        return self._call(
            "POST", f"Invoice/{id}/void", json={}, idempotent=True, entity="Invoice", entity_id=id
        )

    # -- custom fields ---------------------------------------------------------------------------

    def ensure_client_checkbox_field(
        self, name: str = "Datagate", label: str = "Datagate"
    ) -> tuple[dict[str, Any], bool]:
        """The client-level checkbox custom field `name`, created if missing.

        Returns `(field, created)`. Idempotent: an existing field matches by name with or
        without Halo's `CF` prefix, ignoring case.
        """
        for existing in self.field_infos():
            if (
                _same_field_name(existing.get("name", ""), name)
                and existing.get("usage", CLIENT_FIELD_USAGE) == CLIENT_FIELD_USAGE
            ):
                if existing.get("type", CHECKBOX_FIELD_TYPE) != CHECKBOX_FIELD_TYPE:
                    logger.warning(
                        "halopsa portal %s: custom field %s exists but is of type %s, not a checkbox",
                        self.portal, existing.get("name"), existing.get("type"),
                    )  # fmt: skip
                return existing, False
        created = self.upsert(
            "FieldInfo",
            {
                "usage": CLIENT_FIELD_USAGE,
                "name": name,
                "label": label,
                "type": CHECKBOX_FIELD_TYPE,
                "inputtype": 0,
            },
        )
        logger.info("halopsa portal %s: created the client custom field %s", self.portal, name)
        return created, True

    # -- access check -----------------------------------------------------------------------------

    def test_access(self) -> AccessCheck:
        """Check the portal's API access step by step (for `datagate portals check`):
        the discovery endpoint, a token, and the first page of clients. Never raises an
        `ApiError`: each failure becomes a line in `problems`."""
        check = AccessCheck(portal=self.portal)
        try:
            info = self._json(
                self.request("GET", "authinfo", authenticate=False, entity="authinfo")
            )
            check.authinfo = info if isinstance(info, dict) else None
        except ApiError as error:
            check.warnings.append(f"authinfo: {error}")
        advertised = str((check.authinfo or {}).get("auth_url") or "").rstrip("/")
        configured = self.token_url.removesuffix("/token")
        if advertised and advertised.lower() != configured.lower():
            check.warnings.append(
                f"authinfo names the authorization server {advertised}, "
                f"but portals.yaml has {configured}"
            )
        try:
            self._access_token()
            check.token_ok = True
        except ApiError as error:
            check.problems.append(f"token: {error}")
            return check
        try:
            body = self._call(
                "GET", "Client", params={"pageinate": "true", "page_size": 1, "page_no": 1}
            )
            _rows, check.client_count = self._page("Client", body, None)
            check.first_page_ok = True
        except ApiError as error:
            check.problems.append(f"first page of clients: {error}")
        return check


def _row_id(row: Any) -> Any:
    return row.get("id") if isinstance(row, dict) else None


def _same_field_name(candidate: str, wanted: str) -> bool:
    """`CFDatagate` matches `Datagate` and `cfdatagate`; `Datagate` matches `CFDatagate`."""
    a, b = candidate.strip().lower(), wanted.strip().lower()
    return a == b or a == f"cf{b}" or f"cf{a}" == b
