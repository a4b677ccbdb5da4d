"""Final invoices exported into QuickBooks Online, exactly once each.

Two guards make a create safe to repeat, whatever killed the previous run:
1. look first: every invoice not recorded as exported is searched for in QBO by its
   DocNumber (`DocNumber IN (…)`, many per query) and recognised as ours by the marker
   `[datagate <portal>:<invoice key>]` in its PrivateNote; found ones are recorded, not
   created;
2. creates carry a requestid (a batch's is derived from its invoices' ids in `exports`):
   a batch QBO executed but whose answer was lost is replayed, not executed again.
Creates go in batches of the portal's batch size (30), each item's bId mapped back to our
invoice id; the outcomes of a batch are recorded in one transaction right after it. A
refusal is recorded per invoice with QBO's fault code and message (exports.error_code,
last_error) and the invoice stays to be retried.

A final invoice with a negative total is a credit (docs/billing.md): it goes to QBO as a
CreditMemo — the same DocNumber, customer and lines with every sign flipped, TotalAmt our
total negated — left unapplied as the customer's credit. QBO keeps one DocNumber space for
invoices and credit memos, so the look-up asks for both.

The QBO invoice (docs/qbo-api.md §3.4):
- `DocNumber` from our numbering, `TxnDate` = invoice date, `DueDate`, `SalesTermRef` (the
  portal's Net N term), `CustomerRef`, `PrivateNote` with our marker;
- one SalesItemLineDetail line per invoice line: `ItemRef`, `Qty`, `UnitPrice`, `Amount`,
  `ServiceDate` (service month, or usage date), `TaxCodeRef`, description. QBO requires
  Amount = Qty × UnitPrice; a pro-rated line (or a price with more decimals than cents) is
  sent as Qty 1 at UnitPrice = Amount, its real qty × price and service month in the
  description (`documents.priced`);
- site subtotals: when lines have sites, each site's lines are preceded by a description
  line naming the site and followed by one reading "Subtotal <site>: <amount>". Description
  lines carry no money, so they can never change the total; QBO's own SubTotalLineDetail
  lines in a request are not reliably kept (the simulator drops them, as QBO recomputes
  subtotals), so they are not used.

Tax — US companies (the supported case): each line's `TaxCodeRef` is `TAX` when we taxed
it and `NON` otherwise, and `TxnTaxDetail.TotalTax` is our computed tax, so QBO never
computes its own (an explicit TotalTax is honoured, also by Automated Sales Tax). QBO's
`TotalAmt` must then equal our total; an invoice where it does not is recorded as failed
(with its QBO id, so it is never created again) and the others go on.

Non-US companies (not supported in this version): QBO computes tax itself from a real
TaxCode id on every line (`TAX`/`NON` do not exist there) and ignores a sent TotalTax.
Exporting there needs a mapping from our tax codes to the company's TaxCode ids (and a
check that QBO's computed tax equals ours, which it will not where rates differ);
`GlobalTaxCalculation` would be `TaxExcluded`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from datagate_pipelines.apiclient.errors import RateLimitedError, ServerError, TransportError
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.batches import PARALLEL_BATCHES, send_batches
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.documents import DocumentLine, InvoiceDocument, priced
from datagate_pipelines.exporting.ledger import QBO, ExportOutcome, combined_request_id
from datagate_pipelines.exporting.qbo_references import (
    CUSTOMER,
    ITEM,
    TERM,
    item_key,
    load_links,
)
from datagate_pipelines.exporting.runner import (
    PendingExports,
    record_failure,
    record_outcome,
    run_export,
)
from datagate_pipelines.qbo.batch import BatchItem
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.errors import (
    QBOAuthError,
    QBODuplicateDocNumberError,
    QBOError,
    QBOFaultError,
)

# DocNumbers per lookup query: few calls, and a GET URL far below any server's limit.
LOOKUP_CHUNK = 100

#: Called after QBO answered a batch of creates and before it is recorded (tests inject
#: crashes here): the batch's invoices and QBO's results by our invoice id.
AfterBatch = Callable[[Sequence[InvoiceDocument], dict[str, Any]], None]


#: QBO's code for a DocNumber already used (docs/qbo-api.md §7.3), also recorded when our
#: lookup finds the number taken before QBO is asked.
DOC_NUMBER_TAKEN = "6140"
#: Our code for a record that exists in the target but not as we billed it.
TOTAL_DIFFERS = "total-differs"


def error_code(error: BaseException) -> str | None:
    """The code an operator looks up: QBO's fault code, else the HTTP status."""
    code = getattr(error, "code", None)
    if code:
        return str(code)
    status = getattr(error, "status", None)
    return f"HTTP {status}" if status else None


#: The QBO transaction types a final invoice becomes: a negative total is a credit memo.
INVOICE, CREDIT_MEMO = "Invoice", "CreditMemo"


def qbo_entity(document: InvoiceDocument) -> str:
    return CREDIT_MEMO if document.is_credit else INVOICE


def private_note_marker(document: InvoiceDocument) -> str:
    """The text in PrivateNote that marks a QBO record as the export of `document`."""
    return f"[datagate {document.portal_id}:{document.invoice_key}]"


def tax_code(line: DocumentLine) -> str:
    """US line tax code: TAX when we charged tax on the line, NON otherwise."""
    return "TAX" if line.tax else "NON"


def _sales_line(line: DocumentLine, item_id: str, sign: int) -> dict[str, Any]:
    how = priced(line)
    detail: dict[str, Any] = {
        "ItemRef": {"value": item_id},
        "Qty": how.qty,
        "UnitPrice": sign * how.unit_price,
        "TaxCodeRef": {"value": tax_code(line)},
    }
    if line.service_date is not None:
        detail["ServiceDate"] = line.service_date.isoformat()
    return {
        "DetailType": "SalesItemLineDetail",
        "Amount": sign * line.amount,
        "Description": how.description[:4000],
        "SalesItemLineDetail": detail,
    }


def _description_line(text: str) -> dict[str, Any]:
    return {"DetailType": "DescriptionOnly", "Description": text, "DescriptionLineDetail": {}}


def document_payload(
    document: InvoiceDocument, *, customer_id: str, item_ids: dict[str, str], term_id: str
) -> dict[str, Any]:
    """The QBO body for one of our invoices (QBO ids already resolved): an Invoice, or for a
    negative total a CreditMemo with every amount's sign flipped (no term, no due date),
    whose TotalAmt is our total negated and which stays unapplied as the customer's credit."""
    sign = document.sign
    lines: list[dict[str, Any]] = []
    groups = document.site_groups()
    with_sites = any(group.site_id is not None for group in groups)
    for group in groups:
        name = group.name or ("no site" if group.site_id is None else f"site {group.site_id}")
        if with_sites:
            lines.append(_description_line(f"{name}:"))
        for line in group.lines:
            lines.append(_sales_line(line, item_ids[item_key(line.item_id, line.kind)], sign))
        if with_sites:
            lines.append(_description_line(f"Subtotal {name}: {sign * group.subtotal}"))
    kind = "credit" if document.is_credit else "invoice"
    body: dict[str, Any] = {
        "DocNumber": document.doc_number,
        "TxnDate": document.invoice_date.isoformat(),
        "CustomerRef": {"value": customer_id},
        "PrivateNote": f"Datagate {kind} {document.doc_number} {private_note_marker(document)}",
        "Line": lines,
        "TxnTaxDetail": {"TotalTax": sign * document.tax},
    }
    if not document.is_credit:
        body["DueDate"] = document.due_date.isoformat()
        body["SalesTermRef"] = {"value": term_id}
    return body


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (ArithmeticError, ValueError):
        return None


def check_recorded(document: InvoiceDocument, record: dict[str, Any]) -> str | None:
    """Why a QBO record does not match ours (None when it does): its number and total."""
    entity = qbo_entity(document)
    if str(record.get("DocNumber") or "") != document.doc_number:
        return (
            f"QBO {entity} {record.get('Id')} for {document.label} has DocNumber "
            f"{record.get('DocNumber')!r}, ours is {document.doc_number!r}"
        )
    total = _decimal(record.get("TotalAmt"))
    expected = document.sign * document.total
    if total != expected:
        return (
            f"QBO {entity} {record.get('Id')} for {document.label} totals {total}, "
            f"ours {expected} (QBO recomputed the tax or an amount)"
        )
    return None


class _References:
    """The QBO ids an invoice refers to, and why an invoice cannot be sent yet."""

    def __init__(self, db: Database, portal: PortalSettings):
        with transaction(db) as connection:
            self.customers = load_links(connection, portal.id, CUSTOMER)
            self.items = load_links(connection, portal.id, ITEM)
            self.term = load_links(connection, portal.id, TERM).get(
                str(portal.invoicing.payment_terms_days)
            )
        self.portal = portal

    def missing(self, document: InvoiceDocument) -> str | None:
        problems = []
        if str(document.customer_id) not in self.customers:
            problems.append(
                f"customer {document.customer_name!r} (HaloPSA client {document.customer_id}) "
                "has no QBO customer"
            )
        absent = sorted(
            {
                item_key(line.item_id, line.kind)
                for line in document.lines
                if item_key(line.item_id, line.kind) not in self.items
            }
        )
        if absent:
            problems.append(f"items {', '.join(absent)} have no QBO item")
        if self.term is None and not document.is_credit:
            problems.append(f"no QBO term Net {self.portal.invoicing.payment_terms_days}")
        if not problems:
            return None
        return (
            f"{document.label}: {'; '.join(problems)} "
            "(see qbo_customers / qbo_items / qbo_terms and their rejects)"
        )

    def payload(self, document: InvoiceDocument) -> dict[str, Any]:
        return document_payload(
            document,
            customer_id=self.customers[str(document.customer_id)],
            item_ids=self.items,
            term_id=self.term or "",
        )


def find_existing(
    client: QBOClient,
    documents: Iterable[InvoiceDocument],
    *,
    chunk: int = LOOKUP_CHUNK,
    every_type: bool = False,
) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """QBO records carrying the DocNumbers of `documents`: (ours, someone else's), by our
    invoice id. Ours are of the document's own type (Invoice, or CreditMemo for a credit)
    and carry our marker in PrivateNote; when several do, the oldest wins. A record of the
    other type, or without our marker, is someone else's (its type is in `_type`).

    Credit memos are looked up when a document is a credit, or with `every_type` (QBO keeps
    one DocNumber space for both types: an invoice colliding with someone's credit memo
    is refused with 6140, and the look-up after that refusal names the memo)."""
    documents = list(documents)
    entities = (
        (INVOICE, CREDIT_MEMO) if every_type or any(d.is_credit for d in documents) else (INVOICE,)
    )
    by_number = {d.doc_number: d for d in documents}
    ours: dict[int, dict[str, Any]] = {}
    theirs: dict[int, dict[str, Any]] = {}
    numbers = sorted(by_number)
    for entity in entities:
        for start in range(0, len(numbers), chunk):
            rows = client.select(entity, DocNumber=numbers[start : start + chunk])
            for row in sorted(rows, key=lambda r: int(r.get("Id") or 0)):
                document = by_number.get(str(row.get("DocNumber") or ""))
                if document is None:
                    continue
                marked = private_note_marker(document) in str(row.get("PrivateNote") or "")
                if marked and entity == qbo_entity(document):
                    ours.setdefault(document.id, row)
                else:
                    theirs.setdefault(document.id, {**row, "_type": entity})
    return ours, theirs


def _taken_by(document: InvoiceDocument, other: dict[str, Any]) -> str:
    kind = "credit memo" if other.get("_type") == CREDIT_MEMO else "invoice"
    return (
        f"DocNumber {document.doc_number} of {document.label} is used in QBO by {kind} "
        f"{other.get('Id', '?')}, which Datagate did not create"
    )


def export_to_qbo(
    db: Database,
    client: QBOClient,
    portal: PortalSettings,
    period: date,
    *,
    after_batch: AfterBatch | None = None,
    parallel: int = PARALLEL_BATCHES,
) -> ExportOutcome:
    """Export the period's final invoices that QBO does not have yet.

    Needs the period's customers, items and term linked first (`qbo_references`); an
    invoice whose references are missing fails with that reason. Held and draft invoices
    are never exported. One invoice QBO refuses is recorded as failed with QBO's reason
    and the others go on; when QBO stops answering, what was done is recorded and the
    error raised (the next run looks everything up again). Pass an Engine as `db`.
    Up to `parallel` batches are in flight at once (`batches.send_batches`).
    """

    def send(pending: PendingExports, outcome: ExportOutcome) -> None:
        to_create = _resolve(db, client, portal, pending.documents, outcome)
        references = to_create.references
        chunks = [
            to_create.documents[start : start + client.batch_size]
            for start in range(0, len(to_create.documents), client.batch_size)
        ]
        items = [
            [BatchItem.create(d.id, qbo_entity(d), references.payload(d)) for d in chunk]
            for chunk in chunks
        ]
        request_ids = [
            combined_request_id(portal.id, (pending.rows[d.id].request_id for d in chunk))
            for chunk in chunks
        ]
        for index, answer in send_batches(client, items, request_ids, parallel=parallel):
            chunk = chunks[index]
            if isinstance(answer, BaseException):
                if _stop_after(db, chunk, answer, outcome):
                    # What is in flight finishes unrecorded: the next run finds it by lookup.
                    raise answer
                continue
            if after_batch is not None:
                after_batch(chunk, answer)
            _record_batch(db, client, chunk, answer, outcome)

    return run_export(db, QBO, portal.id, period, send)


@dataclass(frozen=True)
class _ToCreate:
    documents: list[InvoiceDocument]
    references: _References


def _resolve(
    db: Database,
    client: QBOClient,
    portal: PortalSettings,
    documents: list[InvoiceDocument],
    outcome: ExportOutcome,
) -> _ToCreate:
    """Look the invoices up in QBO first: record ours, refuse numbers someone else uses
    and invoices whose references are missing; the rest are to be created."""
    ours, theirs = find_existing(client, documents)
    references = _References(db, portal)
    to_create: list[InvoiceDocument] = []
    with transaction(db) as connection:
        for document in documents:
            if document.id in ours:
                _record(connection, document, ours[document.id], outcome, created=False)
            elif document.id in theirs:
                record_failure(
                    connection,
                    outcome,
                    document,
                    f"{_taken_by(document, theirs[document.id])}; it is not exported "
                    "(renumbering a final invoice is not allowed)",
                    refused=False,
                    code=DOC_NUMBER_TAKEN,
                )
            elif (reason := references.missing(document)) is not None:
                record_failure(connection, outcome, document, reason, refused=False)
            else:
                to_create.append(document)
    return _ToCreate(to_create, references)


def _stop_after(
    db: Database, chunk: list[InvoiceDocument], error: BaseException, outcome: ExportOutcome
) -> bool:
    """Record a batch request that failed as a whole; whether the export must stop."""
    if isinstance(error, QBOAuthError) or not isinstance(error, QBOError):
        return True
    if isinstance(error, RateLimitedError | ServerError | TransportError):
        # QBO may or may not have run it: keep the request ids (a replay tells), stop; the
        # next run looks these invoices up first.
        with transaction(db) as connection:
            for document in chunk:
                record_failure(
                    connection, outcome, document, str(error), refused=False, code=error_code(error)
                )
        return True
    # Refused as a whole (nothing was created): record it and go on with the others.
    with transaction(db) as connection:
        for document in chunk:
            record_failure(
                connection, outcome, document, str(error), refused=True, code=error_code(error)
            )
    return False


def _record_batch(
    db: Database,
    client: QBOClient,
    chunk: list[InvoiceDocument],
    results: dict[str, Any],
    outcome: ExportOutcome,
) -> None:
    """Record what QBO answered for each invoice of one batch, in one transaction."""
    retry_lookup: list[InvoiceDocument] = []
    with transaction(db) as connection:
        for document in chunk:
            result = results.get(str(document.id))
            if isinstance(result, dict):
                _record(connection, document, result, outcome, created=True)
            elif isinstance(result, QBODuplicateDocNumberError):
                retry_lookup.append(document)  # ours after all? (a lost answer, no replay)
            elif isinstance(result, QBOFaultError):
                record_failure(
                    connection,
                    outcome,
                    document,
                    f"QBO refused {document.label}: {result.message}",
                    refused=True,
                    code=error_code(result),
                )
            else:
                reason = result.message if isinstance(result, QBOError) else "no result"
                record_failure(
                    connection,
                    outcome,
                    document,
                    f"{document.label}: {reason}",
                    refused=False,
                    code=None if result is None else error_code(result),
                )
    if not retry_lookup:
        return
    ours, theirs = find_existing(client, retry_lookup, every_type=True)
    with transaction(db) as connection:
        for document in retry_lookup:
            if document.id in ours:
                _record(connection, document, ours[document.id], outcome, created=False)
            else:
                record_failure(
                    connection,
                    outcome,
                    document,
                    _taken_by(document, theirs.get(document.id, {})),
                    refused=True,
                    code=DOC_NUMBER_TAKEN,
                )


def _record(
    connection: Any,
    document: InvoiceDocument,
    record: dict[str, Any],
    outcome: ExportOutcome,
    *,
    created: bool,
) -> None:
    problem = check_recorded(document, record)
    if problem is not None:
        # It exists (and must never be created again), but it is not what we billed.
        record_failure(
            connection,
            outcome,
            document,
            problem,
            refused=False,
            external_id=str(record["Id"]),
            code=TOTAL_DIFFERS,
        )
        return
    record_outcome(
        connection,
        outcome,
        document,
        external_id=str(record["Id"]),
        external_number=str(record.get("DocNumber") or ""),
        external_type=qbo_entity(document),
        created=created,
    )
