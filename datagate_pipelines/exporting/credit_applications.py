"""Credit notes applied in QBO to the open invoices they credit (docs/billing.md rule 7).

A credit note an operator issued against an invoice goes to QBO as a CreditMemo (like any
credit, exporting/qbo.py); while the credited invoice is open there, the memo is applied to
it by a Payment of 0.00 whose lines link both: the invoice for the amount applied, the
memo for the same amount (docs/qbo-api.md §B4). The amount is what is left of the memo,
at most the invoice's open balance. An invoice already paid (balance 0) leaves the memo
unapplied, as the customer's credit.

Exactly once, like the exports: the application is one more row in `exports` (target
`qbo_apply`; a failed one is an open export, retried by the next export of its period) with
its request id, committed before the Payment is sent; before sending,
the invoice's linked payments are read, and one that already takes from the memo (a run
killed after QBO created it) is recorded instead of creating another. A replayed request id
returns the first Payment.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from sqlalchemy import select

from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.documents import InvoiceDocument, load_final_invoices
from datagate_pipelines.exporting.ledger import (
    QBO,
    ExportOutcome,
    open_exports,
    record_exported,
    record_failed,
)
from datagate_pipelines.exporting.payments import qbo_amount
from datagate_pipelines.exporting.status import QBO_APPLY
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.errors import QBOError, QBOFaultError
from datagate_pipelines.warehouse.models import exports, invoices

#: `external_type` of an application: the Payment made, or none needed (invoice not open).
PAYMENT, UNAPPLIED = "Payment", "unapplied"


def apply_credit_notes(
    db: Database,
    client: QBOClient,
    portal_id: str,
    period: date,
    *,
    only: Collection[int] | None = None,
    outcome: ExportOutcome | None = None,
) -> list[str]:
    """Apply the period's credit notes (or those in `only`) that are in QBO to their
    invoices; the DocNumbers applied. A failure is recorded on the application's row (and
    in `outcome.failed`) and the others go on."""
    with transaction(db) as connection:
        # The period's credit notes only: a period's export must not read its invoices twice.
        query = select(invoices.c.id).where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.status == "final",
            invoices.c.credit_of.is_not(None),
        )
        if only is not None:
            query = query.where(invoices.c.id.in_(list(only)))
        note_ids = list(connection.execute(query).scalars())
        if not note_ids:
            return []
        notes = load_final_invoices(connection, portal_id, period, invoice_ids=note_ids)
        ids = [n.id for n in notes] + [n.credit_of for n in notes]
        memo_ids = {
            r.invoice_id: r.external_id
            for r in connection.execute(
                select(exports.c.invoice_id, exports.c.external_id).where(
                    exports.c.invoice_id.in_(ids),
                    exports.c.target == QBO,
                    exports.c.status == "exported",
                )
            )
        }
        voided = set(
            connection.execute(
                select(invoices.c.id).where(
                    invoices.c.id.in_(ids), invoices.c.voided_at.is_not(None)
                )
            ).scalars()
        )
        ready = [
            n
            for n in notes
            if n.id in memo_ids and n.credit_of in memo_ids and not {n.id, n.credit_of} & voided
        ]
        rows = open_exports(connection, ready, QBO_APPLY)
    applied = []
    for note in ready:
        if rows[note.id].status == "exported":
            continue
        assert note.credit_of is not None
        try:
            done = _apply(
                db, client, note, memo_ids[note.id], memo_ids[note.credit_of], rows[note.id]
            )
        except QBOError as error:
            with transaction(db) as connection:
                record_failed(
                    connection,
                    note,
                    QBO_APPLY,
                    f"applying {note.label} in QBO: {error.message}",
                    refused=isinstance(error, QBOFaultError),
                    code=str(getattr(error, "code", "") or "") or None,
                )
            if outcome is not None:
                outcome.failed[note.key] = f"applying it in QBO: {error.message}"
            continue
        if done:
            applied.append(note.doc_number)
    return applied


def _apply(
    db: Database,
    client: QBOClient,
    note: InvoiceDocument,
    memo_id: str,
    invoice_id: str,
    row: Any,
) -> bool:
    """Apply one memo (lookup first); whether a Payment now applies it."""
    invoice = client.get("Invoice", invoice_id, our_id=note.credit_of)
    found = _payment_taking(client, invoice, memo_id)
    if found is not None:
        _record(db, note, found["Id"], PAYMENT)
        return True
    memo = client.get("CreditMemo", memo_id, our_id=note.id)
    amount = min(
        qbo_amount(memo.get("RemainingCredit", memo.get("Balance"))),
        qbo_amount(invoice.get("Balance")),
    )
    if amount <= 0:
        _record(db, note, None, UNAPPLIED)  # nothing open to apply it to: the customer's credit
        return False
    payment = client.create(
        "Payment",
        {
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": "0.00",
            "TxnDate": note.invoice_date.isoformat(),
            "PrivateNote": f"Datagate credit {note.doc_number} applied to invoice "
            f"{invoice.get('DocNumber')} [datagate {note.portal_id}:{note.invoice_key}]",
            "Line": [
                {"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]},
                {"Amount": amount, "LinkedTxn": [{"TxnId": memo_id, "TxnType": "CreditMemo"}]},
            ],
        },
        request_id=row.request_id,
        our_id=note.id,
    )
    _record(db, note, payment["Id"], PAYMENT)
    return True


def _payment_taking(
    client: QBOClient, invoice: dict[str, Any], memo_id: str
) -> dict[str, Any] | None:
    """A payment linked to the invoice that takes from the memo (ours, made by a run that
    died before recording it), or None."""
    for link in invoice.get("LinkedTxn") or []:
        if link.get("TxnType") != "Payment":
            continue
        payment = client.get("Payment", link["TxnId"])
        for line in payment.get("Line") or []:
            for linked in line.get("LinkedTxn") or []:
                if linked.get("TxnType") == "CreditMemo" and str(linked.get("TxnId")) == memo_id:
                    return payment
    return None


def _record(db: Database, note: InvoiceDocument, payment_id: str | None, kind: str) -> None:
    with transaction(db) as connection:
        record_exported(
            connection,
            note,
            QBO_APPLY,
            external_id=payment_id or "",
            external_number=None,
            external_type=kind,
        )
