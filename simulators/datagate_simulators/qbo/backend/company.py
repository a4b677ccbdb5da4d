"""One QBO company (realm): its records, the entity registry, the CRUD flow, query and CDC.

Records are kept internally with full-precision ``datetime`` metadata (queries and CDC compare
on it) and private ``_…`` keys; :func:`public` renders what the API returns: copies, private
keys dropped, times as ``2024-05-29T23:22:07-07:00``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from .. import errors
from ..clock import format_time
from ..settings import QBOSettings
from .base import Entity, blank, words
from .names import (
    Account,
    Customer,
    Employee,
    Item,
    TaxAgency,
    TaxCode,
    TaxRate,
    Term,
    Vendor,
    create_tax_code,
)
from .purchases import Bill, PurchaseOrder
from .query import evaluate, page, parse_query
from .transactions import CreditMemo, Invoice, Payment

__all__ = ["ENTITIES", "ENTITIES_BY_PATH", "Company", "public"]

#: The entity types the simulator knows, by name (``Customer``) and by URL path (``customer``).
ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Customer(),
        Vendor(),
        Employee(),
        Item(),
        Account(),
        Term(),
        TaxCode(),
        TaxRate(),
        TaxAgency(),
        Invoice(),
        CreditMemo(),
        Payment(),
        PurchaseOrder(),
        Bill(),
    )
}
ENTITIES_BY_PATH: dict[str, Entity] = {e.path: e for e in ENTITIES.values()}

#: Queryable entities that are one record per company, not a list.
SINGLETONS = ("Preferences", "CompanyInfo")

ZERO = Decimal("0")
CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "CAD": "Canadian Dollar",
    "GBP": "British Pound Sterling",
    "AUD": "Australian Dollar",
    "EUR": "Euro",
}
PREFERENCE_SECTIONS = words(
    """AccountingInfoPrefs ProductAndServicesPrefs SalesFormsPrefs EmailMessagesPrefs
    VendorAndPurchasesPrefs TimeTrackingPrefs TaxPrefs CurrencyPrefs ReportPrefs OtherPrefs
    """
)


def public(value: Any, tz: timezone) -> Any:
    """A deep copy for the API: private keys dropped, datetimes formatted."""
    if isinstance(value, dict):
        return {k: public(v, tz) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [public(v, tz) for v in value]
    if isinstance(value, datetime):
        return format_time(value, tz)
    return value


def _project(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    wanted = {f.lower() for f in fields} | {"id", "synctoken", "domain"}
    out = {k: v for k, v in record.items() if k.lower() in wanted}
    out["sparse"] = True
    return out


def _applied_total(lines: list[dict[str, Any]], txn_type: str) -> Decimal:
    """What payment lines linking ``txn_type`` records add up to."""
    return sum(
        (line["Amount"] for line in lines if line["LinkedTxn"][0]["TxnType"] == txn_type), ZERO
    )


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run the method under the backend's lock (one lock for all companies: simple, enough)."""

    @functools.wraps(method)
    def wrapper(self: Company, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


class Company:
    """A company's records and rules. Build with :meth:`QBOBackend.seed_company`.

    Public methods take and return the API's JSON shapes (``Decimal`` numbers) and raise
    :class:`~datagate_simulators.qbo.errors.QBOFault` exactly as the HTTP API would answer.
    """

    def __init__(
        self,
        realm_id: str,
        *,
        name: str,
        settings: QBOSettings,
        clock: Any,
        lock: threading.RLock,
        custom_txn_numbers: bool,
        using_sales_tax: bool,
        country: str = "US",
        automated_sales_tax: bool = False,
        multi_currency: bool = False,
        home_currency: str = "USD",
    ) -> None:
        self.realm_id = realm_id
        self.settings = settings
        self.clock = clock
        self.lock = lock
        self.tz = timezone(timedelta(hours=settings.utc_offset_hours))
        self._live: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in ENTITIES}
        self._deleted: dict[str, dict[str, dict[str, Any]]] = {n: {} for n in ENTITIES}
        self._seq: dict[str, int] = {}
        self._doc_high: dict[str, int] = {}
        #: requestid → (status, body, content type) of the first answer (docs/qbo-api.md §7.1)
        self.replays: dict[str, tuple[int, bytes, str]] = {}
        #: Called with (realm, entity, id, operation, time) after every change (webhooks).
        self.listeners: list[Callable[[str, str, str, str, datetime], None]] = []
        now = self.now()
        meta = {"CreateTime": now, "LastUpdatedTime": now}
        self._preferences: dict[str, Any] = {
            "AccountingInfoPrefs": {
                "TrackDepartments": False,
                "ClassTrackingPerTxn": False,
                "CustomerTerminology": "Customers",
            },
            "ProductAndServicesPrefs": {
                "ForSales": True,
                "ForPurchase": True,
                "QuantityWithPriceAndRate": True,
                "QuantityOnHand": True,
            },
            "SalesFormsPrefs": {
                "CustomTxnNumbers": custom_txn_numbers,
                "AllowDeposit": False,
                "AllowDiscount": True,
                "AllowShipping": False,
                "DefaultTerms": {"value": "3"},
                "AutoApplyCredit": True,
            },
            "VendorAndPurchasesPrefs": {
                "TrackingByCustomer": False,
                "BillableExpenseTracking": False,
                "POCustomField": [],
            },
            # PartnerTaxEnabled: US Automated Sales Tax (docs/qbo-api.md §3.6).
            "TaxPrefs": {
                "UsingSalesTax": using_sales_tax,
                "PartnerTaxEnabled": automated_sales_tax,
            },
            "CurrencyPrefs": {
                "MultiCurrencyEnabled": multi_currency,
                "HomeCurrency": {"value": home_currency},
            },
            "OtherPrefs": {"NameValue": []},
            "domain": "QBO",
            "sparse": False,
            "Id": "1",
            "SyncToken": "0",
            "MetaData": meta,
        }
        self._company_info: dict[str, Any] = {
            "CompanyName": name,
            "LegalName": name,
            "CompanyAddr": {
                "Id": "1",
                "Line1": "1 Simulator Way",
                "City": "Mountain View",
                "CountrySubDivisionCode": "CA",
                "PostalCode": "94043",
                "Country": country,
            },
            "Country": country,
            "SupportedLanguages": "en",
            "FiscalYearStartMonth": "January",
            "CompanyStartDate": now.astimezone(self.tz).date().isoformat(),
            "Email": {"Address": "noreply@example.invalid"},
            "NameValue": [
                {"Name": "NeoEnabled", "Value": "true"},
                {"Name": "CompanyType", "Value": "Other"},
            ],
            "domain": "QBO",
            "sparse": False,
            "Id": "1",
            "SyncToken": "0",
            "MetaData": dict(meta),
        }

    # ------------------------------------------------------------------ time & settings

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        return self.now().astimezone(self.tz).date()

    def custom_txn_numbers(self) -> bool:
        return bool(self._preferences["SalesFormsPrefs"].get("CustomTxnNumbers"))

    def using_sales_tax(self) -> bool:
        return bool(self._preferences["TaxPrefs"].get("UsingSalesTax"))

    def home_currency_ref(self) -> dict[str, str]:
        code = self._preferences["CurrencyPrefs"]["HomeCurrency"]["value"]
        return {"value": code, "name": CURRENCY_NAMES.get(code, code)}

    def country(self) -> str:
        return str(self._company_info.get("Country") or "US")

    def multi_currency(self) -> bool:
        return bool(self._preferences["CurrencyPrefs"].get("MultiCurrencyEnabled"))

    def undeposited_funds_ref(self) -> dict[str, str] | None:
        for account in self._live["Account"].values():
            if account.get("AccountSubType") == "UndepositedFunds" and account.get("Active"):
                return {"value": account["Id"], "name": account["Name"]}
        return None

    # ------------------------------------------------------------------ lookups for the rules

    def live(self, entity: str, entity_id: str | None) -> dict[str, Any] | None:
        """The stored record (not a copy — do not modify), or None if missing/deleted."""
        return self._live.get(entity, {}).get(str(entity_id)) if entity_id is not None else None

    def all_live(self, entity: str) -> list[dict[str, Any]]:
        return list(self._live.get(entity, {}).values())

    def _spec(self, entity: str, operation: str) -> Entity:
        spec = ENTITIES.get(entity)
        if spec is None:
            raise errors.unsupported_operation(f"{operation} on {entity}")
        return spec

    def _next_id(self, spec: Entity) -> str:
        # Transactions share one sequence (an Invoice 145 then a Payment 146), lists their own.
        key = "txn" if spec.transaction else spec.name
        self._seq[key] = self._seq.get(key, 0) + 1
        return str(self._seq[key])

    def next_doc_number(self, entity: str) -> str:
        """The next number in sequence, starting at 1001 like a new QBO company [I]."""
        return str(max(self._doc_high.get(entity, 1000), 1000) + 1)

    def _note_doc_number(self, entity: str, value: Any) -> None:
        if isinstance(value, str) and value.isdigit():
            self._doc_high[entity] = max(self._doc_high.get(entity, 0), int(value))

    # ------------------------------------------------------------------ derived balances

    def applied_to_invoice(self, invoice_id: str) -> dict[str, Decimal]:
        """Payment Id → amount that live payments apply to the invoice, by payment Id."""
        applied: dict[str, Decimal] = {}
        # Payments are kept in the order they were created, which is their Id order.
        for payment in self._live["Payment"].values():
            for line in payment.get("Line", []):
                if line["Amount"] and any(
                    link["TxnId"] == invoice_id and link["TxnType"] == "Invoice"
                    for link in line["LinkedTxn"]
                ):
                    applied[payment["Id"]] = applied.get(payment["Id"], ZERO) + line["Amount"]
        return applied

    def credit_used(self, credit_memo_id: str) -> Decimal:
        """What live payments apply of a credit memo (a credit linked beside an invoice)."""
        used = ZERO
        for payment in self._live["Payment"].values():
            for line in payment.get("Line", []):
                if any(
                    link["TxnId"] == credit_memo_id and link["TxnType"] == "CreditMemo"
                    for link in line["LinkedTxn"]
                ):
                    used += line["Amount"]
        return used

    def _touch(self, record: dict[str, Any]) -> None:
        record["SyncToken"] = str(int(record["SyncToken"]) + 1)
        record["MetaData"] = dict(record["MetaData"], LastUpdatedTime=self.now())

    def _touch_and_tell(self, record: dict[str, Any], entity: str) -> None:
        """A derived change (a balance a payment moved): a new version, and a webhook event."""
        self._touch(record)
        self._changed(entity, record["Id"], "Update")

    def _changed(self, entity: str, entity_id: str, operation: str) -> None:
        """Tell the listeners (the webhook emitter) that a record changed (§6.2)."""
        for listener in self.listeners:
            listener(self.realm_id, entity, entity_id, operation, self.now())

    def refresh_invoices(self, invoice_ids: Iterable[str]) -> None:
        """Recompute Balance and LinkedTxn of invoices whose payments changed.

        A change bumps the invoice's SyncToken and LastUpdatedTime, so CDC reports it [I].
        """
        for invoice_id in sorted(set(invoice_ids), key=int):
            invoice = self.live("Invoice", invoice_id)
            if invoice is None:
                continue
            applied = self.applied_to_invoice(invoice_id)
            balance = (
                ZERO
                if invoice.get("_voided")
                else invoice["TotalAmt"] - sum(applied.values(), ZERO)
            )
            linked = [{"TxnId": pid, "TxnType": "Payment"} for pid in applied]
            if balance != invoice["Balance"] or linked != invoice.get("LinkedTxn"):
                invoice["Balance"] = balance
                invoice["LinkedTxn"] = linked
                self._touch_and_tell(invoice, "Invoice")
            self.refresh_customer_balance(invoice["CustomerRef"]["value"])

    def refresh_credit_memos(self, credit_memo_ids: Iterable[str]) -> None:
        """Recompute RemainingCredit (and Balance) of credit memos payments take from (§B4);
        a change bumps the memo's SyncToken, so CDC reports it [I]."""
        for credit_id in sorted(set(credit_memo_ids), key=int):
            memo = self.live("CreditMemo", credit_id)
            if memo is None or memo.get("_voided"):
                continue
            remaining = memo["TotalAmt"] - self.credit_used(credit_id)
            if remaining != memo["RemainingCredit"]:
                memo["Balance"] = memo["RemainingCredit"] = remaining
                self._touch_and_tell(memo, "CreditMemo")

    def unlink_payments_from(self, txn_id: str) -> None:
        """Drop payment lines linking a deleted/voided transaction; what they applied becomes
        unapplied. A payment whose remaining lines no longer balance (more credit than
        invoices, or more applied than paid) is left unapplied whole [I]."""
        touched: list[dict[str, Any]] = []
        for payment in self._live["Payment"].values():
            lines = payment.get("Line", [])
            keep = [
                line
                for line in lines
                if not any(link["TxnId"] == txn_id for link in line["LinkedTxn"])
            ]
            if len(keep) == len(lines):
                continue
            credits = _applied_total(keep, "CreditMemo")
            applied = _applied_total(keep, "Invoice") - credits
            if applied < 0 or applied > payment["TotalAmt"]:
                touched += [link for line in keep for link in line["LinkedTxn"]]
                keep, applied = [], ZERO
            payment["Line"] = keep
            payment["UnappliedAmt"] = payment["TotalAmt"] - applied
            self._touch_and_tell(payment, "Payment")
        others = [link for link in touched if link["TxnId"] != txn_id]
        self.refresh_invoices({link["TxnId"] for link in others if link["TxnType"] == "Invoice"})
        self.refresh_credit_memos(
            {link["TxnId"] for link in others if link["TxnType"] == "CreditMemo"}
        )

    def vendor_open_balance(self, vendor_id: str) -> Decimal:
        return sum(
            (
                b["Balance"]
                for b in self._live["Bill"].values()
                if b["VendorRef"]["value"] == vendor_id
            ),
            ZERO,
        )

    def bills_linked_to(self, purchase_order_id: str) -> list[dict[str, str]]:
        """The PurchaseOrder's ``LinkedTxn``: the live bills that link it, by Id."""
        bills = sorted(self._live["Bill"].values(), key=lambda b: int(b["Id"]))
        return [
            {"TxnId": b["Id"], "TxnType": "Bill"}
            for b in bills
            if any(link["TxnId"] == purchase_order_id for link in b.get("LinkedTxn", []))
        ]

    def refresh_purchase_orders(self, purchase_order_ids: Iterable[str]) -> None:
        """Re-link purchase orders whose bills changed; one whose every line is billed
        closes [I] (QBO closes a PO's lines as bills take them)."""
        for po_id in sorted(set(purchase_order_ids), key=int):
            po = self.live("PurchaseOrder", po_id)
            if po is None:
                continue
            linked = self.bills_linked_to(po_id)
            billed_lines = {
                link["TxnLineId"]
                for bill in self._live["Bill"].values()
                for line in bill.get("Line", [])
                for link in line.get("LinkedTxn", [])
                if link["TxnId"] == po_id
            }
            status = "Closed" if {x["Id"] for x in po["Line"]} <= billed_lines else po["POStatus"]
            if linked != po.get("LinkedTxn") or status != po["POStatus"]:
                po["LinkedTxn"] = linked
                po["POStatus"] = status
                self._touch(po)
            vendor = self.live("Vendor", po["VendorRef"]["value"])
            if vendor is not None:
                vendor["Balance"] = self.vendor_open_balance(vendor["Id"])

    def customer_open_balance(self, customer_id: str) -> Decimal:
        """Open invoices less the customer's unused credit (credit memos' RemainingCredit)."""
        owed = sum(
            (
                inv["Balance"]
                for inv in self._live["Invoice"].values()
                if inv["CustomerRef"]["value"] == customer_id
            ),
            ZERO,
        )
        credit = sum(
            (
                memo["RemainingCredit"]
                for memo in self._live["CreditMemo"].values()
                if memo["CustomerRef"]["value"] == customer_id
            ),
            ZERO,
        )
        return owed - credit

    def refresh_customer_balance(self, customer_id: str) -> None:
        # Balance is read-only and derived; changing it does not bump the SyncToken [I].
        customer = self.live("Customer", customer_id)
        if customer is not None:
            balance = self.customer_open_balance(customer_id)
            customer["Balance"] = customer["BalanceWithJobs"] = balance

    # ------------------------------------------------------------------ storing

    def _store(
        self,
        spec: Entity,
        record: dict[str, Any],
        existing: dict[str, Any] | None,
        operation: str | None = None,
    ) -> dict[str, Any]:
        now = self.now()
        if existing is None:
            entity_id, sync, created = self._next_id(spec), "0", now
        else:
            entity_id = existing["Id"]
            sync = str(int(existing["SyncToken"]) + 1)
            created = existing["MetaData"]["CreateTime"]
        body = {k: v for k, v in record.items() if k not in ("Id", "SyncToken", "MetaData")}
        stored = {
            **body,
            "domain": "QBO",
            "sparse": False,
            "Id": entity_id,
            "SyncToken": sync,
            "MetaData": {"CreateTime": created, "LastUpdatedTime": now},
        }
        self._live[spec.name][entity_id] = stored
        self._note_doc_number(spec.name, stored.get("DocNumber"))
        self._changed(
            spec.name, entity_id, operation or ("Create" if existing is None else "Update")
        )
        spec.after_write(self, stored, existing)
        return stored

    @_locked
    def insert(self, entity: str, record: dict[str, Any]) -> dict[str, Any]:
        """Store ``record`` as given, without the entity's rules (seeding, tax service)."""
        return public(self._store(ENTITIES[entity], record, None), self.tz)

    # ------------------------------------------------------------------ the API

    @_locked
    def create(self, entity: str, body: Any, include: Iterable[str] = ()) -> dict[str, Any]:
        """Create; returns the new record (``SyncToken`` "0")."""
        spec = self._spec(entity, "create")
        if not spec.creatable:
            raise errors.unsupported_operation(f"create for {entity}")
        if not isinstance(body, dict):
            raise errors.unsupported_property(entity, entity)
        spec.check_properties(body)
        data = {k: v for k, v in body.items() if k in spec.fields}
        record = spec.build(self, data, None, frozenset(i.lower() for i in include))
        return public(self._store(spec, record, None), self.tz)

    @_locked
    def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        """Read one record; 610 if it does not exist or was deleted."""
        spec = self._spec(entity, "read")
        record = self.live(spec.name, entity_id)
        if record is None:
            raise errors.not_found(entity, entity_id)
        return public(record, self.tz)

    def _current(self, spec: Entity, body: Any) -> dict[str, Any]:
        """The record an update/delete/void names, checked against its SyncToken."""
        if not isinstance(body, dict):
            raise errors.unsupported_property(spec.name, spec.name)
        if blank(body.get("Id")):
            raise errors.required_param_missing("Id")
        if blank(body.get("SyncToken")):
            raise errors.required_param_missing("SyncToken")
        existing = self.live(spec.name, str(body["Id"]))
        if existing is None:
            raise errors.not_found(spec.name, body["Id"])
        sync = body["SyncToken"]
        if isinstance(sync, Decimal):
            sync = format(sync, "f")
        if str(sync).strip() != existing["SyncToken"]:
            raise errors.stale_object(spec.name)
        return existing

    @_locked
    def update(self, entity: str, body: Any, include: Iterable[str] = ()) -> dict[str, Any]:
        """Full update, or sparse when ``body["sparse"]`` is true; ``include=void`` voids.

        Full: writable properties left out are cleared. Sparse: only those sent change;
        arrays such as ``Line`` are replaced whole (docs/qbo-api.md §3.0).
        """
        spec = self._spec(entity, "update")
        include = frozenset(i.lower() for i in include)
        existing = self._current(spec, body)
        if "void" in include:
            if not spec.void_by_update:
                raise errors.unsupported_operation(f"void (include=void) for {entity}")
            return self._void(spec, existing)
        if not spec.updatable:
            raise errors.unsupported_operation(f"update for {entity}")
        spec.check_properties(body)
        data = {k: v for k, v in body.items() if k in spec.fields}
        if body.get("sparse") is True:
            data = {**spec.writable(existing), **data}
        record = spec.build(self, data, existing, include)
        return public(self._store(spec, record, existing), self.tz)

    @_locked
    def delete(self, entity: str, body: Any) -> dict[str, Any]:
        """Delete a transaction; name lists answer 500 Unsupported Operation (deactivate them)."""
        spec = self._spec(entity, "delete")
        if not spec.deletable:
            raise errors.unsupported_operation(f"delete for {entity}")
        existing = self._current(spec, body)
        spec.before_remove(self, existing)
        del self._live[spec.name][existing["Id"]]
        now = self.now()
        self._deleted[spec.name][existing["Id"]] = {
            "domain": "QBO",
            "status": "Deleted",
            "Id": existing["Id"],
            "MetaData": {"LastUpdatedTime": now},
        }
        self._changed(spec.name, existing["Id"], "Delete")
        spec.after_write(self, existing, None)
        return {"domain": "QBO", "status": "Deleted", "Id": existing["Id"]}

    @_locked
    def void(self, entity: str, body: Any) -> dict[str, Any]:
        """``?operation=void`` (Invoice): TotalAmt 0, Balance 0, PrivateNote "Voided"."""
        spec = self._spec(entity, "void")
        if not spec.voidable:
            raise errors.unsupported_operation(f"void for {entity}")
        return self._void(spec, self._current(spec, body))

    def _void(self, spec: Entity, existing: dict[str, Any]) -> dict[str, Any]:
        spec.before_remove(self, existing)
        voided = spec.void(existing)
        return public(self._store(spec, voided, existing, "Void"), self.tz)

    @_locked
    def create_tax_code(self, body: Any) -> dict[str, Any]:
        """``POST /taxservice/taxcode``: a TaxCode with its new TaxRates (docs/qbo-api.md §3.6)."""
        return create_tax_code(self, body)

    # ------------------------------------------------------------------ singletons

    @_locked
    def preferences(self) -> dict[str, Any]:
        return public(self._preferences, self.tz)

    @_locked
    def update_preferences(self, body: Any) -> dict[str, Any]:
        """Merge the sections sent into Preferences (SyncToken checked) [I: always merged]."""
        if not isinstance(body, dict):
            raise errors.unsupported_property("Preferences", "Preferences")
        if blank(body.get("SyncToken")):
            raise errors.required_param_missing("SyncToken")
        if str(body["SyncToken"]) != self._preferences["SyncToken"]:
            raise errors.stale_object("Preferences")
        for key, value in body.items():
            if key in ("Id", "SyncToken", "sparse", "domain", "MetaData"):
                continue
            if key not in PREFERENCE_SECTIONS or not isinstance(value, dict):
                raise errors.unsupported_property(key, "Preferences")
            self._preferences[key] = {**self._preferences.get(key, {}), **value}
        self._touch(self._preferences)
        return public(self._preferences, self.tz)

    def set_preferences(
        self, *, custom_txn_numbers: bool | None = None, using_sales_tax: bool | None = None
    ) -> None:
        """Test/seed helper: flip the two preferences the rules depend on."""
        with self.lock:
            if custom_txn_numbers is not None:
                self._preferences["SalesFormsPrefs"]["CustomTxnNumbers"] = custom_txn_numbers
            if using_sales_tax is not None:
                self._preferences["TaxPrefs"]["UsingSalesTax"] = using_sales_tax
            self._touch(self._preferences)

    @_locked
    def company_info(self, entity_id: str | None = None) -> dict[str, Any]:
        """``GET /companyinfo/{realmId}`` (the Id "1" is accepted too)."""
        if entity_id is not None and entity_id not in (self.realm_id, "1"):
            raise errors.not_found("CompanyInfo", entity_id)
        return public(self._company_info, self.tz)

    # ------------------------------------------------------------------ query & CDC

    @_locked
    def query(self, statement: str) -> dict[str, Any]:
        """Run a query statement; returns the ``QueryResponse`` object (docs/qbo-api.md §4).

        ``{"<Entity>": [...], "startPosition": n, "maxResults": rows}``; ``{}`` when no row is
        left (no entity key at all); ``{"totalCount": n}`` for ``count(*)``. Name lists answer
        active records only unless the WHERE clause constrains ``Active``.
        """
        query = parse_query(statement, max_results_limit=self.settings.query_max_results)
        if query.entity in SINGLETONS:
            spec = None
            source = [self.singleton(query.entity)]
        else:
            spec = ENTITIES.get(query.entity)  # entity names are case-sensitive (§4)
            if spec is None:
                raise errors.query_validation_error(f"Invalid entity name: {query.entity}")
            source = self.all_live(spec.name)
        if spec is not None and self.settings.strict_query_properties:
            for prop in [c.prop for c in query.where] + [p for p, _ in query.order_by]:
                if not spec.is_queryable(prop):
                    raise errors.query_validation_error(
                        f"property '{prop}' is not queryable for entity {query.entity}"
                    )
        if spec is not None and spec.name_list and not query.constrains("Active"):
            source = [r for r in source if r.get("Active", True)]
        rows = evaluate(query, source, tz=self.tz)
        if query.count:
            return {"totalCount": len(rows)}
        shown = [public(r, self.tz) for r in page(rows, query)]
        if not shown:
            return {}
        if query.fields is not None:
            shown = [_project(r, query.fields) for r in shown]
        return {
            query.entity: shown,
            "startPosition": query.start_position,
            "maxResults": len(shown),
        }

    @_locked
    def cdc(self, entities: Iterable[str], changed_since: datetime) -> list[dict[str, Any]]:
        """Changes since ``changed_since``: the ``QueryResponse`` list of ``CDCResponse[0]``.

        docs/qbo-api.md §6.1: oldest changes first, at most ``cdc_max_objects`` across all entities;
        deleted objects come as ``{"status": "Deleted"}`` tombstones; ``[{}]`` when nothing
        changed.
        """
        settings = self.settings
        if changed_since < self.now() - timedelta(days=settings.cdc_lookback_days):
            raise errors.business_validation(
                f"changedSince must be within the last {settings.cdc_lookback_days} days.",
                "changedSince",
            )
        names = list(dict.fromkeys(entities))
        changes: list[tuple[datetime, int, str, dict[str, Any]]] = []
        for position, name in enumerate(names):
            spec = ENTITIES.get(name)
            if spec is None or not spec.cdc:
                raise errors.invalid_enumeration("entities", name)
            for record in (*self.all_live(name), *self.tombstones(name)):
                changed = record["MetaData"]["LastUpdatedTime"]
                if changed >= changed_since:
                    changes.append((changed, position, name, record))
        changes.sort(key=lambda c: (c[0], c[1], int(c[3]["Id"])))
        grouped: dict[str, list[dict[str, Any]]] = {}
        for _, _, name, record in changes[: settings.cdc_max_objects]:
            grouped.setdefault(name, []).append(public(record, self.tz))
        response = [
            {name: grouped[name], "startPosition": 1, "maxResults": len(grouped[name])}
            for name in names
            if name in grouped
        ]
        return response or [{}]

    def singleton(self, entity: str) -> dict[str, Any]:
        """The stored Preferences or CompanyInfo (not a copy)."""
        return self._preferences if entity == "Preferences" else self._company_info

    def tombstones(self, entity: str) -> list[dict[str, Any]]:
        """Deleted records as ``{"status": "Deleted", …}`` (not copies)."""
        return list(self._deleted.get(entity, {}).values())

    # ------------------------------------------------------------------ inspection (tests)

    @_locked
    def records(
        self, entity: str, *, include_inactive: bool = True, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """All records of ``entity`` as the API would render them, by Id."""
        rows = list(self._live[entity].values())
        if not include_inactive:
            rows = [r for r in rows if r.get("Active", True)]
        if include_deleted:
            rows += list(self._deleted[entity].values())
        return [public(r, self.tz) for r in sorted(rows, key=lambda r: int(r["Id"]))]

    @_locked
    def get(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        """One record as rendered, or None."""
        record = self.live(entity, entity_id)
        return None if record is None else public(record, self.tz)

    @_locked
    def find(self, entity: str, **props: Any) -> dict[str, Any] | None:
        """The first live record whose top-level properties equal ``props``."""
        for record in self._live[entity].values():
            if all(record.get(k) == v for k, v in props.items()):
                return public(record, self.tz)
        return None

    def is_deleted(self, entity: str, entity_id: str) -> bool:
        with self.lock:
            return str(entity_id) in self._deleted[entity]
