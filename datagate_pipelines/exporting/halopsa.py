"""Final invoices exported back to HaloPSA, against the contract docs/billing.md chooses.

Each of our invoices becomes at most one HaloPSA invoice, however often the export is
killed and repeated. HaloPSA has no idempotency key, so the guarantee comes from looking
first: every invoice not yet recorded as exported is searched for in HaloPSA (by the
marker we put in its `reference`, or our DocNumber in `thirdpartyinvoicenumber`) before it
is created, and the HaloPSA id is recorded in its own transaction right after the create.
A run killed between the create and the record finds the invoice on the next run.

What a HaloPSA invoice carries (docs/halopsa-api.md §4.5):
- header: `client_id`, `sitenumber` (the contract's site, else the customer's main site),
  `contract_id` (`invoices.halo_contract_id`; 0 = none), `invoice_date`, `duedate`,
  `thirdpartyinvoicenumber` = our DocNumber, `reference` = `Datagate <DocNumber>
  [<invoice key>]`;
- one line per invoice line, with its item, site and contract; a line whose qty × unit
  price is not exactly its amount (pro rata) goes as qty 1 at the amount, the real qty ×
  price and service month in its description (`documents.priced`);
- tax: our tax is computed per US zip, which HaloPSA's tax ids cannot express, so the
  lines go untaxed (`tax_code` "") and one "Sales tax" line carries our tax: the HaloPSA
  total equals ours to the cent.

Amounts are sent as decimal strings ("249.50"): exact, and accepted wherever HaloPSA
takes a number [I]. Site subtotals are not sent: every HaloPSA line names its site.

A final invoice with a negative total is a credit (docs/billing.md): it goes to HaloPSA as
a standalone credit note — an Invoice record written with `_create_credit_note` and no
linked invoice (docs/halopsa-api.md §A4). Halo does not document whether a credit's
amounts are positive or negative: the portal setting `halopsa.credit_note_amounts`
(default positive: every sign flipped) decides, and the look-up lists credits too.
A refusal is recorded per invoice with HaloPSA's message and HTTP status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from datagate_pipelines.apiclient.errors import (
    ApiError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.documents import InvoiceDocument, priced
from datagate_pipelines.exporting.ledger import HALOPSA, ExportOutcome, exports_for
from datagate_pipelines.exporting.runner import (
    PendingExports,
    record_failure,
    record_outcome,
    run_export,
)
from datagate_pipelines.halopsa.client import HaloPSAClient

logger = logging.getLogger(__name__)

NO_REF = -1  # HaloPSA's "not set" on line references
TAX_LINE_DESCRIPTION = "Sales tax"
#: Our codes for records that exist in HaloPSA but cannot stand as the export.
VOIDED_IN_HALOPSA = "voided"
TOTAL_DIFFERS = "total-differs"
CREDITED_MISSING = "credited-missing"
# Creates retried after an unknown outcome (5xx, dropped connection), each after a lookup.
CREATE_ATTEMPTS = 3

#: Called after HaloPSA accepted a create and before it is recorded (tests inject crashes).
AfterCreate = Callable[[InvoiceDocument, dict[str, Any]], None]


def halo_reference(document: InvoiceDocument) -> str:
    """The `reference` that marks a HaloPSA invoice as ours: number and invoice key."""
    return f"Datagate {document.doc_number} [{document.invoice_key}]"


def halo_datetime(day: date) -> str:
    return f"{day.isoformat()}T00:00:00"


def _amount(value: Decimal) -> str:
    return format(value, "f")


#: What the HaloPSA record is: an invoice, or for a negative total a credit note.
INVOICE, CREDIT_NOTE = "invoice", "credit_note"


def halo_kind(document: InvoiceDocument) -> str:
    return CREDIT_NOTE if document.is_credit else INVOICE


def halo_sign(total: Decimal, credit_note_amounts: str = "positive") -> int:
    """How the amounts of a document with this total go to HaloPSA: an invoice as billed;
    a credit note's with their signs flipped (positive amounts) unless the portal's setting
    says HaloPSA wants them negative (`halopsa.credit_note_amounts`, docs/halopsa-api.md
    §A4 [I])."""
    return -1 if total < 0 and credit_note_amounts == "positive" else 1


def invoice_payload(document: InvoiceDocument, *, sign: int = 1) -> dict[str, Any]:
    """The `POST /api/Invoice` body for one of our invoices (or credit notes), every amount
    multiplied by `sign` (see `halo_sign`)."""
    contract = document.halo_contract_id
    lines: list[dict[str, Any]] = []
    for line in document.lines:
        how = priced(line)
        halo_line: dict[str, Any] = {
            "item_shortdescription": how.description[:255],
            "item_longdescription": how.description,
            "qty_order": _amount(how.qty),
            "unit_price": _amount(sign * how.unit_price),
            "tax_code": "",  # untaxed in HaloPSA: our tax goes on its own line
            "contract_id": contract or NO_REF,
            "site": line.site_id or NO_REF,
            "sequenceid": len(lines) + 1,
        }
        if line.item_id is not None:
            halo_line["_itemid"] = line.item_id
        if line.service_month is not None:
            halo_line["startdate"] = halo_datetime(line.service_month)
        lines.append(halo_line)
    if document.tax:
        lines.append(
            {
                "item_shortdescription": TAX_LINE_DESCRIPTION,
                "qty_order": "1",
                "unit_price": _amount(sign * document.tax),
                "tax_code": "",
                "contract_id": contract or NO_REF,
                "site": NO_REF,
                "sequenceid": len(lines) + 1,
            }
        )
    return {
        "client_id": document.customer_id,
        "sitenumber": document.header_site_id or 0,
        "contract_id": contract or 0,
        "invoice_date": halo_datetime(document.invoice_date),
        "duedate": halo_datetime(document.due_date),
        "thirdpartyinvoicenumber": document.doc_number,
        "reference": halo_reference(document),
        "lines": lines,
    }


def is_ours(row: dict[str, Any], document: InvoiceDocument) -> bool:
    """Whether a HaloPSA invoice is the export of `document` (same client, and our marker
    in the reference or our DocNumber as the third-party number)."""
    if _int(row.get("client_id")) != document.customer_id:
        return False
    reference = str(row.get("reference") or "")
    return f"[{document.invoice_key}]" in reference or (
        str(row.get("thirdpartyinvoicenumber") or "") == document.doc_number
    )


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def _day_window(day: date) -> dict[str, str]:
    return {"start_date": halo_datetime(day), "end_date": f"{day.isoformat()}T23:59:59"}


def find_existing(
    client: HaloPSAClient, documents: Iterable[InvoiceDocument], *, client_id: int | None = None
) -> dict[int, dict[str, Any]]:
    """HaloPSA invoices (and credit notes) that are already the export of one of
    `documents`, by our invoice id. One listing per invoice date (all of a period's
    invoices share one): pages of the records dated that day, matched here rather than by
    Halo's substring `search`."""
    documents = list(documents)
    by_date: dict[date, list[InvoiceDocument]] = {}
    for document in documents:
        by_date.setdefault(document.invoice_date, []).append(document)
    found: dict[int, dict[str, Any]] = {}
    for day, group in by_date.items():
        by_client: dict[int, list[InvoiceDocument]] = {}
        for document in group:
            by_client.setdefault(document.customer_id, []).append(document)
        credits = any(document.is_credit for document in group)
        for row in client.find_invoices(
            client_id=client_id, include_credits=credits, **_day_window(day)
        ):
            for document in by_client.get(_int(row.get("client_id")) or -1, []):
                if is_ours(row, document) and _prefer(row, found.get(document.id)):
                    found[document.id] = row
    return found


def find_existing_by_id(client: HaloPSAClient, days: Iterable[date]) -> dict[str, dict[str, Any]]:
    """Every HaloPSA invoice and credit note dated one of `days`, by its id (as text)."""
    out: dict[str, dict[str, Any]] = {}
    for day in sorted(set(days)):
        for row in client.find_invoices(include_credits=True, **_day_window(day)):
            out[str(_int(row.get("id")))] = row
    return out


def _prefer(row: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """A live invoice over a voided one; else the oldest (lowest id)."""
    if current is None:
        return True
    if bool(current.get("voided")) != bool(row.get("voided")):
        return not row.get("voided")
    return (_int(row.get("id")) or 0) < (_int(current.get("id")) or 0)


def export_to_halopsa(
    db: Database,
    client: HaloPSAClient,
    portal: PortalSettings,
    period: date,
    *,
    after_create: AfterCreate | None = None,
    only: Collection[int] | None = None,
) -> ExportOutcome:
    """Export the period's final invoices (or those in `only`) that HaloPSA does not have
    yet; a negative total goes as a credit note — standalone, or linked to the invoice an
    operator credited (`creditlinkedtoinvoiceid`, once that invoice is in HaloPSA).

    Held and draft invoices are never exported. One invoice refused by HaloPSA is recorded
    as failed with the reason and the others go on; when HaloPSA stops answering, what was
    done is recorded and the error is raised (a re-run picks up from there). Pass an Engine
    as `db` so that every record commits as soon as it is made.
    """

    def send(pending: PendingExports, outcome: ExportOutcome) -> None:
        export = _HaloExport(db, client, outcome, portal.halopsa.credit_note_amounts, after_create)
        existing = find_existing(client, pending.documents)
        for document in pending.documents:
            row = existing.get(document.id)
            if row is not None:
                export.record_found(document, row)
            else:
                export.create(document)

    return run_export(db, HALOPSA, portal.id, period, send, only=only)


@dataclass
class _HaloExport:
    """One export run's writes: each document looked up, created at most once, recorded."""

    db: Database
    client: HaloPSAClient
    outcome: ExportOutcome
    credit_note_amounts: str
    after_create: AfterCreate | None

    def record_found(self, document: InvoiceDocument, row: dict[str, Any]) -> None:
        """A record HaloPSA already has (a run killed after its create, or a replay)."""
        halo_id = str(_int(row.get("id")))
        if row.get("voided"):
            reason = (
                f"HaloPSA invoice {halo_id} for {document.label} was voided in HaloPSA; "
                "it is not created again (delete or restore it there, then re-run)"
            )
            with transaction(self.db) as connection:
                record_failure(
                    connection,
                    self.outcome,
                    document,
                    reason,
                    refused=False,
                    external_id=halo_id,
                    code=VOIDED_IN_HALOPSA,
                )
            return
        self.record(document, row, created=False)

    def record(self, document: InvoiceDocument, row: dict[str, Any], *, created: bool) -> None:
        halo_id = str(_int(row.get("id")))
        total = _money(row.get("total"))
        expected = halo_sign(document.total, self.credit_note_amounts) * document.total
        with transaction(self.db) as connection:
            if total is not None and total != expected:
                reason = (
                    f"HaloPSA {halo_kind(document).replace('_', ' ')} {halo_id} for "
                    f"{document.label} totals {total}, ours {expected}"
                )
                record_failure(
                    connection,
                    self.outcome,
                    document,
                    reason,
                    refused=False,
                    external_id=halo_id,
                    code=TOTAL_DIFFERS,
                )
                return
            record_outcome(
                connection,
                self.outcome,
                document,
                external_id=halo_id,
                external_number=str(row.get("invoicenumber") or "") or None,
                external_type=halo_kind(document),
                created=created,
            )

    def create(self, document: InvoiceDocument) -> None:
        payload = invoice_payload(
            document, sign=halo_sign(document.total, self.credit_note_amounts)
        )
        if document.credit_of is not None:
            linked = self._credited_invoice(document)
            if linked is None:
                return
            payload["creditlinkedtoinvoiceid"] = linked
        create = (
            self.client.create_credit_note if document.is_credit else self.client.create_invoice
        )
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                created = create(payload)
            except (BadRequestError, NotFoundError) as error:
                # HaloPSA refused it: nothing was created. Record why; go on.
                reason = f"HaloPSA refused {document.label}: {error.message}"
                self._fail(document, reason, refused=True, error=error)
                return
            except RateLimitedError as error:
                # Refused before it was processed; the run fails and is retried later.
                self._fail(document, str(error), refused=False, error=error)
                raise
            except (ServerError, TransportError) as error:
                # Unknown outcome: it may exist. Look before trying again.
                found = find_existing(self.client, [document], client_id=document.customer_id)
                if document.id in found:
                    self.record_found(document, found[document.id])
                    return
                if attempt == CREATE_ATTEMPTS:
                    self._fail(document, str(error), refused=False, error=error)
                    raise
                logger.warning(
                    "halopsa portal %s: creating %s: %s; not there, trying again",
                    document.portal_id,
                    document.label,
                    error.outcome,
                )
                continue
            if self.after_create is not None:
                self.after_create(document, created)
            self.record(document, created, created=True)
            return

    def _credited_invoice(self, document: InvoiceDocument) -> int | None:
        """The HaloPSA id of the invoice a credit note credits; None (recorded as this
        note's failure, retried by the next run) while that invoice is not in HaloPSA."""
        assert document.credit_of is not None
        with transaction(self.db) as connection:
            row = exports_for(connection, [document.credit_of], HALOPSA).get(document.credit_of)
            if row is not None and row.status == "exported" and row.external_id:
                return int(row.external_id)
            reason = (
                f"{document.label} credits an invoice that is not in HaloPSA yet; it is "
                "exported once that invoice is"
            )
            record_failure(
                connection, self.outcome, document, reason, refused=False, code=CREDITED_MISSING
            )
        return None

    def _fail(
        self, document: InvoiceDocument, reason: str, *, refused: bool, error: ApiError
    ) -> None:
        code = f"HTTP {error.status}" if error.status else None
        with transaction(self.db) as connection:
            record_failure(connection, self.outcome, document, reason, refused=refused, code=code)
