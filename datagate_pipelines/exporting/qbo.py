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
invoices and credit memos: numbering skips both, and a create refused for a number taken
(6140) is looked up in both.

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

Tax (`qbo.tax_mode`):
- `us_automated` (US companies, with or without Automated Sales Tax): each line's
  `TaxCodeRef` is `TAX` when we taxed it and `NON` otherwise, and `TxnTaxDetail.TotalTax`
  is our computed tax, so QBO never computes its own (an explicit TotalTax is honoured, also
  by Automated Sales Tax). QBO's `TotalAmt` must then equal our total; an invoice where it
  does not is recorded as failed (with its QBO id, so it is never created again) and the
  others go on.
- `tax_codes` (companies outside the US): each line names the QBO tax code of its (tax
  code, zip), linked by `datagate qbo tax-codes` (exporting/qbo_tax.py), lines we did not
  tax the exempt code; `GlobalTaxCalculation` is `TaxExcluded` and `TxnTaxDetail` carries
  our tax per rate. QBO may round per rate where we round per line: the amount before tax
  must be ours, and QBO's total and tax are kept on the export record and shown (not a
  failure). A line whose tax code is not linked fails its invoice with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from datagate_pipelines.apiclient.errors import RateLimitedError, ServerError, TransportError
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.accounts import Chart, income_account, unmapped
from datagate_pipelines.exporting.batches import PARALLEL_BATCHES, send_batches
from datagate_pipelines.exporting.credit_applications import apply_credit_notes
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.documents import (
    DocumentLine,
    InvoiceDocument,
    load_items,
    priced,
)
from datagate_pipelines.exporting.ledger import (
    QBO,
    Exportable,
    ExportOutcome,
    combined_request_id,
)
from datagate_pipelines.exporting.qbo_references import (
    CUSTOMER,
    ITEM,
    TERM,
    item_key,
    load_links,
)
from datagate_pipelines.exporting.qbo_tax import InvoiceTaxCodes
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
#: Our code for a record that exists in the target but not as we sent it.
TOTAL_DIFFERS = "total-differs"

#: The QBO transaction types a final invoice becomes: a negative total is a credit memo.
INVOICE, CREDIT_MEMO = "Invoice", "CreditMemo"


def error_code(error: BaseException) -> str | None:
    """The code an operator looks up: QBO's fault code, else the HTTP status."""
    code = getattr(error, "code", None)
    if code:
        return str(code)
    status = getattr(error, "status", None)
    return f"HTTP {status}" if status else None


def qbo_entity(document: InvoiceDocument) -> str:
    return CREDIT_MEMO if document.is_credit else INVOICE


def private_note_marker(document: Exportable) -> str:
    """The text in PrivateNote that marks a QBO transaction as the export of `document`."""
    return f"[datagate {document.portal_id}:{document.key}]"


def tax_code(line: DocumentLine) -> str:
    """US line tax code: TAX when we charged tax on the line, NON otherwise."""
    return "TAX" if line.tax else "NON"


def _sales_line(
    line: DocumentLine, item_id: str, line_tax_code: str, sign: int = 1
) -> dict[str, Any]:
    how = priced(line)
    detail: dict[str, Any] = {
        "ItemRef": {"value": item_id},
        "Qty": how.qty,
        "UnitPrice": sign * how.unit_price,
        "TaxCodeRef": {"value": line_tax_code},
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
    document: InvoiceDocument,
    *,
    customer_id: str,
    item_ids: dict[str, str],
    term_id: str,
    tax_codes: InvoiceTaxCodes | None = None,
) -> dict[str, Any]:
    """The QBO body for one of our invoices (QBO ids already resolved): an Invoice, or for a
    negative total a CreditMemo with every amount's sign flipped (no term, no due date),
    whose TotalAmt is our total negated and which stays unapplied as the customer's credit.
    With `tax_codes` (tax_codes mode) each line names its QBO tax code and the tax goes per
    rate; otherwise TAX/NON per line and our tax as TotalTax."""
    sign = document.sign
    line_code = tax_codes.line_code if tax_codes is not None else tax_code
    lines: list[dict[str, Any]] = []
    groups = document.site_groups()
    with_sites = any(group.site_id is not None for group in groups)
    for group in groups:
        name = group.name or ("no site" if group.site_id is None else f"site {group.site_id}")
        if with_sites:
            lines.append(_description_line(f"{name}:"))
        for line in group.lines:
            item_id = item_ids[item_key(line.item_id, line.kind)]
            lines.append(_sales_line(line, item_id, line_code(line), sign))
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
    if tax_codes is not None:
        body["GlobalTaxCalculation"] = "TaxExcluded"
        body["TxnTaxDetail"] = tax_codes.detail(document, sign=sign)
    return body


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (ArithmeticError, ValueError):
        return None


def check_recorded(
    document: InvoiceDocument, record: dict[str, Any], *, own_tax: bool = False
) -> str | None:
    """Why a QBO invoice (or credit memo) does not match ours (None when it does): its
    number and total — a credit memo's is our total negated. With `own_tax` (tax_codes
    mode) QBO's tax may differ from ours by its rounding: then only the amount before tax
    must be ours (`qbo_figures` keeps QBO's)."""
    entity, sign = qbo_entity(document), document.sign
    if str(record.get("DocNumber") or "") != document.doc_number:
        return (
            f"QBO {entity} {record.get('Id')} for {document.label} has DocNumber "
            f"{record.get('DocNumber')!r}, ours is {document.doc_number!r}"
        )
    total = _decimal(record.get("TotalAmt"))
    if own_tax:
        tax = _decimal((record.get("TxnTaxDetail") or {}).get("TotalTax", 0))
        before_tax = None if total is None or tax is None else total - tax
        if before_tax != sign * document.subtotal:
            return (
                f"QBO {entity} {record.get('Id')} for {document.label} totals {total} with "
                f"tax {tax}: {before_tax} before tax, ours {sign * document.subtotal} (QBO "
                "recomputed an amount)"
            )
        return None
    if total != sign * document.total:
        return (
            f"QBO {entity} {record.get('Id')} for {document.label} totals {total}, "
            f"ours {sign * document.total} (QBO recomputed the tax or an amount)"
        )
    return None


def qbo_figures(document: InvoiceDocument, record: dict[str, Any]) -> dict[str, Any]:
    """QBO's own total and tax, for the export record (tax_codes mode): shown where they
    differ from ours."""
    return {
        "external_total": _decimal(record.get("TotalAmt")),
        "external_tax": _decimal((record.get("TxnTaxDetail") or {}).get("TotalTax", 0)),
    }


class _References:
    """The QBO ids an invoice refers to, and why an invoice cannot be sent yet."""

    def __init__(self, db: Database, client: QBOClient, portal: PortalSettings):
        with transaction(db) as connection:
            self.customers = load_links(connection, portal.id, CUSTOMER)
            self.items = load_links(connection, portal.id, ITEM)
            self.term = load_links(connection, portal.id, TERM).get(
                str(portal.invoicing.payment_terms_days)
            )
        self.db, self.client, self.portal = db, client, portal
        assert portal.qbo is not None
        self.tax_codes = InvoiceTaxCodes(db, portal) if portal.qbo.tax_mode == "tax_codes" else None
        self._chart: Chart | None = None

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
            problems.extend(self._account_problems(document, absent))
        if self.term is None and not document.is_credit:
            problems.append(f"no QBO term Net {self.portal.invoicing.payment_terms_days}")
        if self.tax_codes is not None:
            problems.extend(self.tax_codes.problems(document))
        if not problems:
            return None
        return (
            f"{document.label}: {'; '.join(problems)} "
            "(see qbo_customers / qbo_items / qbo_terms and their rejects)"
        )

    def _account_problems(self, document: InvoiceDocument, absent: list[str]) -> list[str]:
        """Why items have no QBO item when it is their account (an unmapped nominal code):
        the reason an operator acts on."""
        item_ids = [
            line.item_id
            for line in document.lines
            if line.item_id is not None and item_key(line.item_id) in absent
        ]
        if not item_ids:
            return []
        with transaction(self.db) as connection:
            infos = load_items(connection, self.portal.id, sorted(set(item_ids)))
        if self._chart is None:
            self._chart = Chart.read(self.client)
        by_code: dict[str, list[str]] = {}
        problems = []
        for item_id in sorted(infos):
            choice = income_account(self.portal, self._chart, infos[item_id])
            if choice.problem is not None and choice.code is not None:
                by_code.setdefault(choice.code, []).append(repr(infos[item_id].name))
            elif choice.problem is not None:
                problems.append(choice.problem)
        for code, names in sorted(by_code.items()):
            used_by = f"HaloPSA item{'s' if len(names) > 1 else ''} {', '.join(names)}"
            problems.append(unmapped(self.portal, code, used_by))
        return problems

    def payload(self, document: InvoiceDocument) -> dict[str, Any]:
        return document_payload(
            document,
            customer_id=self.customers[str(document.customer_id)],
            item_ids=self.items,
            term_id=self.term or "",
            tax_codes=self.tax_codes,
        )

    def check(self, document: InvoiceDocument, record: dict[str, Any]) -> str | None:
        return check_recorded(document, record, own_tax=self.tax_codes is not None)

    def extra(self, document: InvoiceDocument, record: dict[str, Any]) -> dict[str, Any]:
        return qbo_figures(document, record) if self.tax_codes is not None else {}

    def transaction(self, entity: str = INVOICE) -> QBOTransaction:
        """Invoices, or credits (credit memos): one DocNumber space, so each collides
        with the other."""
        other = CREDIT_MEMO if entity == INVOICE else INVOICE
        return QBOTransaction(entity, self.payload, self.check, self.extra, (other,))


def find_existing(
    client: QBOClient,
    documents: Iterable[Exportable],
    *,
    chunk: int = LOOKUP_CHUNK,
    entity: str = INVOICE,
    also: Sequence[str] = (),
) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """QBO transactions (`entity`) carrying the DocNumbers of `documents`: (ours, someone
    else's), by our document id. Ours carry our marker in PrivateNote; when several do, the
    oldest wins. Documents may share a DocNumber (bills of different suppliers). Records of
    the types in `also` (sharing the DocNumber space) are someone else's whatever their
    note. Each record of someone else's carries its type in `_type`."""
    documents = list(documents)
    by_number: dict[str, list[Exportable]] = {}
    for d in documents:
        by_number.setdefault(d.doc_number, []).append(d)
    ours: dict[int, dict[str, Any]] = {}
    theirs: dict[int, dict[str, Any]] = {}
    numbers = sorted(by_number)
    for searched in (entity, *also):
        for start in range(0, len(numbers), chunk):
            rows = client.select(searched, DocNumber=numbers[start : start + chunk])
            for row in sorted(rows, key=lambda r: int(r.get("Id") or 0)):
                note = str(row.get("PrivateNote") or "")
                for document in by_number.get(str(row.get("DocNumber") or ""), []):
                    if searched == entity and private_note_marker(document) in note:
                        ours.setdefault(document.id, row)
                    else:
                        theirs.setdefault(document.id, {**row, "_type": searched})
    return ours, theirs


def taken_by(document: Exportable, other: dict[str, Any]) -> str:
    """Why a document's DocNumber cannot be ours in QBO: who holds it."""
    return (
        f"DocNumber {document.doc_number} of {document.label} is used in QBO by "
        f"{other.get('_type', 'a transaction')} {other.get('Id', '?')}, which Datagate did not "
        "create"
    )


def export_to_qbo(
    db: Database,
    client: QBOClient,
    portal: PortalSettings,
    period: date,
    *,
    after_batch: AfterBatch | None = None,
    parallel: int = PARALLEL_BATCHES,
    only: Collection[int] | None = None,
) -> ExportOutcome:
    """Export the period's final invoices (or those in `only`) that QBO does not have yet,
    then apply the period's credit notes to the open invoices they credit
    (exporting/credit_applications.py).

    Needs the period's customers, items and term linked first (`qbo_references`); an
    invoice whose references are missing fails with that reason. Held and draft invoices
    are never exported. One invoice QBO refuses is recorded as failed with QBO's reason
    and the others go on; when QBO stops answering, what was done is recorded and the
    error raised (the next run looks everything up again). Pass an Engine as `db`.
    Up to `parallel` batches are in flight at once (`batches.send_batches`).
    """

    def send(pending: PendingExports, outcome: ExportOutcome) -> None:
        references = _References(db, client, portal)
        for entity in (INVOICE, CREDIT_MEMO):
            documents = [d for d in pending.documents if qbo_entity(d) == entity]
            if not documents:
                continue
            kind = references.transaction(entity)
            to_create = look_up_first(
                db, client, kind, documents, outcome, references.missing, _foreign
            )
            create_in_batches(
                db,
                client,
                kind,
                to_create,
                pending,
                outcome,
                after_batch=after_batch,
                parallel=parallel,
            )

    outcome = run_export(db, QBO, portal.id, period, send, only=only)
    apply_credit_notes(db, client, portal.id, period, only=only, outcome=outcome)
    return outcome


@dataclass(frozen=True)
class QBOTransaction:
    """How our documents become one QBO transaction type: the entity, its body, and what
    makes a record QBO has ours (`check` says why not; `extra` what to keep from it)."""

    entity: str
    payload: Callable[[Any], dict[str, Any]]
    check: Callable[[Any, dict[str, Any]], str | None]
    extra: Callable[[Any, dict[str, Any]], dict[str, Any]] = lambda _d, _r: {}
    #: Other types in the same DocNumber space: looked up too after QBO refused a create
    #: for its number (6140), to name who holds it.
    collides_with: tuple[str, ...] = ()


def create_in_batches(
    db: Database,
    client: QBOClient,
    kind: QBOTransaction,
    documents: Sequence[Exportable],
    pending: PendingExports,
    outcome: ExportOutcome,
    *,
    after_batch: AfterBatch | None = None,
    parallel: int = PARALLEL_BATCHES,
) -> None:
    """Create `documents` (looked up already) in batches of the client's batch size, a few
    in flight; each batch's request id combines its documents' ones, and its outcomes are
    recorded in one transaction as its answer arrives."""
    documents = list(documents)
    chunks = [
        documents[start : start + client.batch_size]
        for start in range(0, len(documents), client.batch_size)
    ]
    items = [
        [BatchItem.create(d.id, kind.entity, kind.payload(d)) for d in chunk] for chunk in chunks
    ]
    request_ids = [
        combined_request_id(chunk[0].portal_id, (pending.rows[d.id].request_id for d in chunk))
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
        _record_batch(db, client, kind, chunk, answer, outcome)


def _foreign(document: InvoiceDocument, other: dict[str, Any]) -> str:
    return (
        f"{taken_by(document, other)}; it is not exported (renumbering a final invoice is not "
        "allowed)"
    )


def look_up_first(
    db: Database,
    client: QBOClient,
    kind: QBOTransaction,
    documents: Sequence[Any],
    outcome: ExportOutcome,
    missing: Callable[[Any], str | None],
    foreign: Callable[[Any, dict[str, Any]], str | None],
) -> list[Any]:
    """Look documents up in QBO before creating any: record ours (found by DocNumber and
    marker); refuse one whose DocNumber another record has (`foreign` says why; None when
    that is no obstacle) or that cannot be sent (`missing` says why); the rest are to be
    created, in order."""
    ours, theirs = find_existing(client, documents, entity=kind.entity)
    to_create = []
    with transaction(db) as connection:
        for document in documents:
            taken = foreign(document, theirs[document.id]) if document.id in theirs else None
            if document.id in ours:
                record_transaction(
                    connection, kind, document, ours[document.id], outcome, created=False
                )
            elif taken is not None:
                record_failure(
                    connection, outcome, document, taken, refused=False, code=DOC_NUMBER_TAKEN
                )
            elif (reason := missing(document)) is not None:
                record_failure(connection, outcome, document, reason, refused=False)
            else:
                to_create.append(document)
    return to_create


def _stop_after(
    db: Database, chunk: list[Any], error: BaseException, outcome: ExportOutcome
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
    kind: QBOTransaction,
    chunk: list[Any],
    results: dict[str, Any],
    outcome: ExportOutcome,
) -> None:
    """Record what QBO answered for each document of one batch, in one transaction."""
    retry_lookup: list[Any] = []
    with transaction(db) as connection:
        for document in chunk:
            result = results.get(str(document.id))
            if isinstance(result, dict):
                record_transaction(connection, kind, document, result, outcome, created=True)
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
    ours, theirs = find_existing(client, retry_lookup, entity=kind.entity, also=kind.collides_with)
    with transaction(db) as connection:
        for document in retry_lookup:
            if document.id in ours:
                record_transaction(
                    connection, kind, document, ours[document.id], outcome, created=False
                )
            else:
                record_failure(
                    connection,
                    outcome,
                    document,
                    taken_by(document, theirs.get(document.id, {})),
                    refused=True,
                    code=DOC_NUMBER_TAKEN,
                )


def record_transaction(
    connection: Any,
    kind: QBOTransaction,
    document: Any,
    record: dict[str, Any],
    outcome: ExportOutcome,
    *,
    created: bool,
) -> None:
    """QBO has the document (we created it, or found it): record it, or — when it is not
    what we sent — record the failure with its QBO id, so it is never created again."""
    problem = kind.check(document, record)
    if problem is not None:
        # It exists (and must never be created again), but it is not what we sent.
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
        external_type=kind.entity,
        created=created,
        **kind.extra(document, record),
    )
