"""HaloPSA purchase orders into QBO, exactly once each: a PurchaseOrder once HaloPSA has
approved or sent it, and its Bill, linked to it, once the goods are received or a supplier
invoice is linked (docs/qbo-api.md §B2, §B3; docs/halopsa-api.md §A2).

What a HaloPSA `status` means is undocumented: `purchasing.statuses` maps it (the default
is an unconfirmed reading, docs/operations.md "Purchase orders"). Exported as a PurchaseOrder:
approved, sent, received, closed. Billed: received or closed, or `goodsin_status` in
`purchasing.received_goodsin_statuses`, or a linked supplier invoice — every line, at its
ordered quantity and unit cost (a partly received order waits until it is received in
full). A cancelled order is never sent; one cancelled after export is reported, not undone.

The QBO documents (one PurchaseOrder and one Bill per HaloPSA purchase order):
- DocNumber: the PO's `po_ref` (the Bill: the supplier invoice's number, else the PO's),
  at most 21 characters; PrivateNote carries our marker `[datagate <portal>:po:<id>]`
  (`bill:<id>`), by which a lookup recognises ours;
- VendorRef (the supplier's linked vendor, exporting/vendors.py), APAccountRef
  (`qbo.ap_account`), CurrencyRef for an order in another currency (refused unless the QBO
  company has multi-currency on);
- a line with an item linked to a QBO item (exporting/qbo_references.py) is an
  ItemBasedExpenseLineDetail; any other line an AccountBasedExpenseLineDetail on its expense
  account (exporting/accounts.py; an unmapped nominal code fails the order with its reason);
- the Bill links the PurchaseOrder on its header and on each line (TxnLineId: the QBO PO's
  line in the same position); QBO is known to drop invalid links silently, so a Bill that
  comes back unlinked is recorded as failed with its id (never created twice).

Exactly once, as invoices (exporting/runner.py, exporting/qbo.py): the ledger row (in
`purchasing_exports`) is committed before anything is sent, every document is looked up by
DocNumber and marker first, creates go in batches with request ids, and every answer is
recorded at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, select

from datagate_pipelines.config import PortalSettings, PurchasingSettings
from datagate_pipelines.exporting.accounts import Chart, expense_account, item_label
from datagate_pipelines.exporting.batches import PARALLEL_BATCHES
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.documents import load_items, number_text, priced
from datagate_pipelines.exporting.ledger import QBO, ExportOutcome, Ledger
from datagate_pipelines.exporting.qbo import (
    AfterBatch,
    QBOTransaction,
    create_in_batches,
    look_up_first,
    private_note_marker,
)
from datagate_pipelines.exporting.qbo_references import ITEM, item_key, load_links
from datagate_pipelines.exporting.runner import PendingExports, export_documents
from datagate_pipelines.exporting.vendors import VENDOR
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.warehouse.models import (
    halo_purchase_order_lines,
    halo_purchase_orders,
    halo_suppliers,
    purchasing_exports,
)

PURCHASE_ORDER, BILL = "purchase_order", "bill"
PURCHASE_ORDERS = Ledger(
    purchasing_exports, "halo_po_id", (("document", PURCHASE_ORDER),), portal_column="portal_id"
)
BILLS = Ledger(purchasing_exports, "halo_po_id", (("document", BILL),), portal_column="portal_id")
#: Meanings of a HaloPSA status (config.PurchaseOrderMeaning) that QBO gets a PO for …
EXPORTED = frozenset({"approved", "sent", "received", "closed"})
#: … and a Bill for.
BILLED = frozenset({"received", "closed"})
DOC_NUMBER_MAX = 21
READ_CHUNK = 100


@dataclass(frozen=True)
class PurchaseLine:
    line_no: int
    item_id: int | None
    description: str
    qty: Decimal
    unit_price: Decimal  # the unit cost
    amount: Decimal
    nominal_code: str | None
    service_month: date | None = None  # (what `priced` asks of any line)


@dataclass(frozen=True)
class PurchaseDocument:
    """A HaloPSA purchase order as one QBO document: its PurchaseOrder, or its Bill."""

    document: str  # purchase_order | bill
    id: int  # the HaloPSA purchase order's id
    portal_id: str
    po_ref: str | None
    supplier_id: int
    supplier_name: str | None
    meaning: str | None
    currency_code: int | None
    order_date: date | None
    due_date: date | None
    supplier_invoice: str | None
    supplier_invoice_date: date | None
    lines: tuple[PurchaseLine, ...]

    @property
    def key(self) -> str:
        return f"{'po' if self.document == PURCHASE_ORDER else 'bill'}:{self.id}"

    @property
    def doc_number(self) -> str:
        number = self.po_ref or f"PO-{self.id}"
        if self.document == BILL and self.supplier_invoice:
            number = self.supplier_invoice
        return number[:DOC_NUMBER_MAX]

    @property
    def label(self) -> str:
        what = "purchase order" if self.document == PURCHASE_ORDER else "bill of purchase order"
        supplier = f", {self.supplier_name}" if self.supplier_name else ""
        return f"{what} {self.po_ref or self.id} (HaloPSA {self.id}{supplier})"

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


# --- what is to be exported ---------------------------------------------------------------


@dataclass
class Selection:
    """The purchase orders to send as POs and as bills, and what was left out and why."""

    purchase_orders: list[PurchaseDocument] = field(default_factory=list)
    bills: list[PurchaseDocument] = field(default_factory=list)
    waiting: int = 0  # not (yet) approved, or not received: nothing to send
    cancelled: list[int] = field(default_factory=list)
    unmapped_statuses: dict[int, int] = field(default_factory=dict)  # PO id → status


def _billable(settings: PurchasingSettings, meaning: str | None, row: Any) -> bool:
    return (
        meaning in BILLED
        or row.goodsin_status in settings.received_goodsin_statuses
        or row.supplier_invoice is not None
    )


def select_purchases(connection: Connection, portal: PortalSettings) -> Selection:
    """The portal's live purchase orders, by what their HaloPSA status means."""
    settings = portal.purchasing
    assert settings is not None
    orders = halo_purchase_orders.c
    headers = connection.execute(
        select(halo_purchase_orders, halo_suppliers.c.name.label("supplier_name"))
        .select_from(
            halo_purchase_orders.outerjoin(
                halo_suppliers,
                and_(
                    halo_suppliers.c.portal_id == orders.portal_id,
                    halo_suppliers.c.halo_id == orders.supplier_id,
                    halo_suppliers.c.deleted_at.is_(None),
                ),
            )
        )
        .where(orders.portal_id == portal.id, orders.deleted_at.is_(None))
        .order_by(orders.halo_id)
    ).all()
    lines = _lines(connection, portal.id, [h.halo_id for h in headers])
    selection = Selection()
    for row in headers:
        meaning = settings.statuses.get(row.status) if row.status is not None else None
        if meaning is None:
            selection.unmapped_statuses[row.halo_id] = row.status
            continue
        if meaning == "cancelled":
            selection.cancelled.append(row.halo_id)
            continue
        if meaning not in EXPORTED or not lines.get(row.halo_id):
            selection.waiting += 1
            continue

        def document(kind: str, row: Any = row, meaning: str = meaning) -> PurchaseDocument:
            return PurchaseDocument(
                kind,
                row.halo_id,
                portal.id,
                row.po_ref,
                row.supplier_id,
                row.supplier_name,
                meaning,
                row.currency_code,
                row.order_date,
                row.due_date,
                row.supplier_invoice,
                row.supplier_invoice_date,
                tuple(lines[row.halo_id]),
            )

        selection.purchase_orders.append(document(PURCHASE_ORDER))
        if _billable(settings, meaning, row):
            selection.bills.append(document(BILL))
    return selection


def _lines(
    connection: Connection, portal_id: str, po_ids: list[int]
) -> dict[int, list[PurchaseLine]]:
    out: dict[int, list[PurchaseLine]] = {}
    lines = halo_purchase_order_lines.c
    for start in range(0, len(po_ids), 500):
        for r in connection.execute(
            select(halo_purchase_order_lines)
            .where(
                lines.portal_id == portal_id,
                lines.deleted_at.is_(None),
                lines.purchase_order_id.in_(po_ids[start : start + 500]),
            )
            .order_by(lines.purchase_order_id, lines.line_no, lines.halo_id)
        ):
            out.setdefault(r.purchase_order_id, []).append(
                PurchaseLine(
                    r.line_no,
                    r.item_id,
                    r.description or f"HaloPSA item {r.item_id}",
                    r.qty,
                    r.unit_cost,
                    r.amount,
                    r.nominal_code,
                )
            )
    return out


# --- references and bodies -----------------------------------------------------------------


class _Purchases:
    """What the portal's purchase documents refer to in QBO, and why one cannot be sent."""

    def __init__(self, db: Database, client: QBOClient, portal: PortalSettings):
        assert portal.qbo is not None and portal.purchasing is not None
        self.portal, self.client = portal, client
        self.settings = portal.purchasing
        with transaction(db) as connection:
            self.vendors = load_links(connection, portal.id, VENDOR)
            self.items = load_links(connection, portal.id, ITEM)
        self._chart: Chart | None = None
        self._db = db
        self._infos: dict[int, Any] = {}
        self._multi_currency: bool | None = None
        self.qbo_purchase_orders: dict[int, dict[str, Any]] = {}  # for bills: by HaloPSA id

    @property
    def chart(self) -> Chart:
        """The company's accounts, read once, when a document is first looked at."""
        if self._chart is None:
            self._chart = Chart.read(self.client)
        return self._chart

    @property
    def payable(self) -> dict[str, Any] | None:
        return self.chart.by_name_only(self.portal.qbo.ap_account)  # type: ignore[union-attr]

    def load_items(self, documents: Iterable[PurchaseDocument]) -> None:
        wanted = sorted(
            {line.item_id for d in documents for line in d.lines if line.item_id is not None}
        )
        with transaction(self._db) as connection:
            self._infos = load_items(connection, self.portal.id, wanted)

    def currency(self, document: PurchaseDocument) -> tuple[str | None, str | None]:
        """(ISO code to send, or None for the home currency; the reason it cannot be sent)."""
        code = document.currency_code
        iso = self.settings.currencies.get(code) if code is not None else None
        if iso is None and code in (None, 1):
            iso = self.portal.currency
        if iso is None:
            return None, (
                f"HaloPSA currency code {code} is not in purchasing.currencies (give its ISO "
                "code there)"
            )
        if iso == self.portal.currency:
            return None, None
        if self._multi_currency is None:
            prefs = self.client.preferences().get("CurrencyPrefs") or {}
            self._multi_currency = bool(prefs.get("MultiCurrencyEnabled"))
        if not self._multi_currency:
            return None, (
                f"it is in {iso}, the portal bills in {self.portal.currency}, and the QBO "
                "company has multi-currency off: turn it on in QBO, or keep the order in "
                f"{self.portal.currency}"
            )
        return iso, None

    def _line(self, document: PurchaseDocument, line: PurchaseLine) -> dict[str, Any] | str:
        """The QBO expense line, or why there is none."""
        info = self._infos.get(line.item_id) if line.item_id is not None else None
        where = f"line {line.line_no} ({line.description!r}) of {document.label}"
        if line.item_id is not None and info is None:
            return f"{where}: HaloPSA item {line.item_id} is not in the warehouse (run a sync)"
        how = priced(line)
        qbo_item = self.items.get(item_key(line.item_id)) if line.item_id is not None else None
        if qbo_item is not None:
            return {
                "Amount": line.amount,
                "Description": how.description[:4000],
                "DetailType": "ItemBasedExpenseLineDetail",
                "ItemBasedExpenseLineDetail": {
                    "ItemRef": {"value": qbo_item},
                    "Qty": how.qty,
                    "UnitPrice": how.unit_price,
                },
            }
        choice = expense_account(
            self.portal,
            self.chart,
            info,
            line.nominal_code,
            used_by=f"{where}, {item_label(info)}",
        )
        if choice.problem is not None:
            return choice.problem
        description = (
            f"{line.description} ({number_text(line.qty)} × {number_text(line.unit_price)})"
        )
        return {
            "Amount": line.amount,
            "Description": description[:4000],
            "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": choice.ref},
        }

    def missing(self, document: PurchaseDocument) -> str | None:
        problems = []
        if document.supplier_name is None:
            problems.append(
                f"supplier {document.supplier_id} is not in the warehouse (not in HaloPSA's "
                "supplier list, or rejected: see the halo_suppliers rejects)"
            )
        elif str(document.supplier_id) not in self.vendors:
            problems.append(
                f"supplier {document.supplier_name!r} (HaloPSA supplier {document.supplier_id}) "
                "has no QBO vendor (see qbo_vendors)"
            )
        if self.payable is None or self.payable.get("AccountType") != "Accounts Payable":
            problems.append(
                f"qbo.ap_account {self.portal.qbo.ap_account!r} is not an Accounts Payable "  # type: ignore[union-attr]
                "account in QBO"
            )
        _, why = self.currency(document)
        if why is not None:
            problems.append(why)
        problems += [line for line in self._lines(document) if isinstance(line, str)]
        if document.document == BILL and document.id not in self.qbo_purchase_orders:
            problems.append(
                "its PurchaseOrder, recorded as exported, is gone from QBO (deleted there?)"
            )
        if not problems:
            return None
        return f"{document.label}: {'; '.join(problems)}"

    def _lines(self, document: PurchaseDocument) -> list[dict[str, Any] | str]:
        return [self._line(document, line) for line in document.lines]

    def payload(self, document: PurchaseDocument) -> dict[str, Any]:
        assert self.payable is not None
        lines = [line for line in self._lines(document) if isinstance(line, dict)]
        kind = "purchase order" if document.document == PURCHASE_ORDER else "bill of PO"
        body: dict[str, Any] = {
            "DocNumber": document.doc_number,
            "VendorRef": {"value": self.vendors[str(document.supplier_id)]},
            "APAccountRef": {"value": str(self.payable["Id"])},
            "PrivateNote": f"Datagate {kind} {document.po_ref or document.id} "
            f"{private_note_marker(document)}",
            "Line": lines,
        }
        iso, _ = self.currency(document)
        if iso is not None:
            body["CurrencyRef"] = {"value": iso}
        if document.document == PURCHASE_ORDER:
            body["POStatus"] = "Open"
            if document.order_date is not None:
                body["TxnDate"] = document.order_date.isoformat()
            if document.due_date is not None:
                body["DueDate"] = document.due_date.isoformat()
            return body
        po = self.qbo_purchase_orders[document.id]
        po_lines = [x for x in po.get("Line", []) if x.get("DetailType") in EXPENSE_LINES]
        for line, po_line in zip(lines, po_lines, strict=False):
            line["LinkedTxn"] = [
                {
                    "TxnId": str(po["Id"]),
                    "TxnType": "PurchaseOrder",
                    "TxnLineId": str(po_line["Id"]),
                }
            ]
        body["LinkedTxn"] = [{"TxnId": str(po["Id"]), "TxnType": "PurchaseOrder"}]
        if document.supplier_invoice_date is not None:
            body["TxnDate"] = document.supplier_invoice_date.isoformat()
        return body

    def check(self, document: PurchaseDocument, record: Mapping[str, Any]) -> str | None:
        """Why a QBO purchase order or bill is not what we sent (None when it is)."""
        entity = "PurchaseOrder" if document.document == PURCHASE_ORDER else "Bill"
        total = Decimal(str(record.get("TotalAmt", "0")))
        if total != document.total:
            return (
                f"QBO {entity} {record.get('Id')} for {document.label} totals {total}, ours "
                f"{document.total}"
            )
        if document.document == BILL:
            po = self.qbo_purchase_orders.get(document.id) or {}
            linked = {str(x.get("TxnId")) for x in record.get("LinkedTxn") or []}
            if str(po.get("Id")) not in linked:
                return (
                    f"QBO Bill {record.get('Id')} for {document.label} is not linked to "
                    f"PurchaseOrder {po.get('Id', '?')} (QBO dropped the link): link it in QBO"
                )
        return None


EXPENSE_LINES = ("ItemBasedExpenseLineDetail", "AccountBasedExpenseLineDetail")


# --- the export ---------------------------------------------------------------------------


@dataclass
class PurchasingOutcome:
    purchase_orders: ExportOutcome
    bills: ExportOutcome
    selection: Selection
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        po, bills = self.purchase_orders.counts(), self.bills.counts()
        return {
            "purchase_orders_exported": po["exported"],
            "purchase_orders_already_there": po["already_there"],
            "purchase_orders_failed": po["failed"],
            "bills_exported": bills["exported"],
            "bills_already_there": bills["already_there"],
            "bills_failed": bills["failed"],
            "waiting": self.selection.waiting,
            "unmapped_statuses": len(self.selection.unmapped_statuses),
        }


def export_purchases(
    db: Database,
    client: QBOClient,
    portal: PortalSettings,
    *,
    after_batch: AfterBatch | None = None,
    parallel: int = PARALLEL_BATCHES,
) -> PurchasingOutcome:
    """Export the portal's purchase orders (then their bills) that QBO does not have yet.

    Needs the suppliers linked to vendors first (`exporting.vendors.link_vendors`). One
    order refused is recorded as failed with its reason and the others go on; when QBO
    stops answering, what was done is recorded and the error raised. Pass an Engine as `db`.
    """
    with transaction(db) as connection:
        selection = select_purchases(connection, portal)
    references = _Purchases(db, client, portal)
    references.load_items([*selection.purchase_orders, *selection.bills])

    def sender(entity: str) -> Any:
        kind = QBOTransaction(entity, references.payload, references.check)

        def send(pending: PendingExports, outcome: ExportOutcome) -> None:
            to_create = _resolve(db, client, kind, references, pending.documents, outcome)
            create_in_batches(
                db, client, kind, to_create, pending, outcome, after_batch=after_batch,
                parallel=parallel,
            )  # fmt: skip

        return send

    def loader(documents: list[PurchaseDocument]) -> Any:
        return lambda _connection: (documents, {})

    orders = export_documents(
        db,
        QBO,
        PURCHASE_ORDERS,
        loader(selection.purchase_orders),
        sender("PurchaseOrder"),
        label=f"{portal.id} purchase orders",
    )
    # A bill waits for its purchase order to be in QBO.
    exported, references.qbo_purchase_orders = _exported_purchase_orders(
        db, client, portal, selection.bills
    )
    ready = [d for d in selection.bills if d.id in exported]
    selection.waiting += len(selection.bills) - len(ready)
    bills = export_documents(
        db, QBO, BILLS, loader(ready), sender("Bill"), label=f"{portal.id} bills"
    )
    outcome = PurchasingOutcome(orders, bills, selection)
    outcome.warnings += [
        f"purchase order {po_id}: HaloPSA status {status} is not in purchasing.statuses; "
        "not exported"
        for po_id, status in sorted(selection.unmapped_statuses.items())
    ]
    outcome.warnings += _cancelled_after_export(db, portal, selection.cancelled)
    return outcome


def _resolve(
    db: Database,
    client: QBOClient,
    kind: QBOTransaction,
    references: _Purchases,
    documents: Sequence[PurchaseDocument],
    outcome: ExportOutcome,
) -> list[PurchaseDocument]:
    """Look the documents up in QBO first (exporting/qbo.py): record ours, refuse a PO
    number someone else's PurchaseOrder has (bills of other vendors may share a supplier
    invoice number) and documents that cannot be sent; the rest are to be created."""

    def foreign(document: PurchaseDocument, other: dict[str, Any]) -> str | None:
        if document.document != PURCHASE_ORDER:
            return None
        return (
            f"DocNumber {document.doc_number} of {document.label} is used in QBO by "
            f"PurchaseOrder {other.get('Id')}, which Datagate did not create; change the PO's "
            "reference in HaloPSA"
        )

    return look_up_first(db, client, kind, documents, outcome, references.missing, foreign)


def _exported_purchase_orders(
    db: Database, client: QBOClient, portal: PortalSettings, bills: list[PurchaseDocument]
) -> tuple[set[int], dict[int, dict[str, Any]]]:
    """Of the orders to bill: those whose PurchaseOrder is exported, and the QBO records
    (their line ids) of those not billed yet, by HaloPSA id."""
    wanted = [d.id for d in bills]
    if not wanted:
        return set(), {}
    table = purchasing_exports.c
    with transaction(db) as connection:
        exported = connection.execute(
            select(table.document, table.halo_po_id, table.external_id).where(
                table.portal_id == portal.id,
                table.status == "exported",
                table.halo_po_id.in_(wanted),
            )
        ).all()
    done = {po_id for document, po_id, _ in exported if document == BILL}
    by_qbo_id = {
        str(external): po_id
        for document, po_id, external in exported
        if document == PURCHASE_ORDER and po_id not in done
    }
    out: dict[int, dict[str, Any]] = {}
    ids = sorted(by_qbo_id)
    for start in range(0, len(ids), READ_CHUNK):
        for record in client.select("PurchaseOrder", Id=ids[start : start + READ_CHUNK]):
            out[by_qbo_id[str(record["Id"])]] = record
    return done | set(by_qbo_id.values()), out


def _cancelled_after_export(
    db: Database, portal: PortalSettings, cancelled: list[int]
) -> list[str]:
    if not cancelled:
        return []
    with transaction(db) as connection:
        rows = connection.execute(
            select(purchasing_exports.c.halo_po_id, purchasing_exports.c.external_id).where(
                purchasing_exports.c.portal_id == portal.id,
                purchasing_exports.c.document == PURCHASE_ORDER,
                purchasing_exports.c.status == "exported",
                purchasing_exports.c.halo_po_id.in_(cancelled),
            )
        ).all()
    return [
        f"purchase order {po_id} was cancelled in HaloPSA after it was exported to QBO "
        f"(PurchaseOrder {external}): close or delete it there"
        for po_id, external in rows
    ]
