"""Credits and voids carried out in HaloPSA and QBO (docs/billing.md rule 7).

`issue_credit`: the credit note is written (exporting/credit_notes.py), then exported like
every credit — HaloPSA and QBO exports of that one document, the QBO CreditMemo applied to
the credited invoice while it is open (exporting/credit_applications.py). A run killed after
the note was written leaves it final and not exported: `bill --export` of its period (and
the nightly schedule, which retries open exports) finishes it, exactly once.

`void_invoice`, in this order, each step safe to repeat:
1. checks in the warehouse (final, not voided, exported to every target, no credit note
   standing against it) — refused before anything is sent;
2. QBO read at that moment: a payment applied (or, for a credit memo, credit used) refuses
   the void ("credit instead"); one voided already (a run killed after step 3) goes on;
3. QBO `operation=void`, with a request id fixed per invoice (a repeat replays);
4. HaloPSA `POST /api/Invoice/{id}/void` (voiding twice leaves it voided);
5. the warehouse: voided, its ledger pairs released, the audit event — once (a concurrent
   void finds it recorded and records nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.credit_applications import QBO_APPLY
from datagate_pipelines.exporting.credit_notes import (
    CorrectionError,
    CreditNote,
    create_credit_note,
    credit_notes_of,
    find_invoice,
    mark_voided,
)
from datagate_pipelines.exporting.halopsa import export_to_halopsa
from datagate_pipelines.exporting.ledger import HALOPSA, QBO, ExportOutcome
from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.qbo.client import QBOClient, is_voided
from datagate_pipelines.qbo.request_ids import request_id_for
from datagate_pipelines.warehouse.models import exports


@dataclass
class CreditOutcome:
    note: CreditNote
    exports: dict[str, ExportOutcome] = field(default_factory=dict)

    @property
    def failed(self) -> dict[str, str]:
        return {
            target: "; ".join(outcome.failed.values())
            for target, outcome in self.exports.items()
            if outcome.failed
        }


def issue_credit(
    engine: Engine,
    portal: PortalSettings,
    number: str,
    *,
    reason: str,
    halo: HaloPSAClient | None,
    qbo: QBOClient | None,
    line_nos: Sequence[int] = (),
    amount: Decimal | None = None,
    dry_run: bool = False,
    is_taken: Callable[[str], bool] | None = None,
) -> CreditOutcome:
    """Write the credit note, then export it (unless `dry_run`). `is_taken` defaults to
    QBO's DocNumbers (numbers QBO has are skipped)."""
    if is_taken is None:
        is_taken = qbo.doc_number_lookup() if qbo is not None else (lambda doc: False)
    note = create_credit_note(
        engine,
        portal,
        number,
        reason=reason,
        line_nos=line_nos,
        amount=amount,
        is_taken=is_taken,
        dry_run=dry_run,
    )
    outcome = CreditOutcome(note)
    if dry_run or note.id is None:
        return outcome
    if halo is not None:
        outcome.exports[HALOPSA] = export_to_halopsa(
            engine, halo, portal, note.period, only=[note.id]
        )
    if qbo is not None and portal.qbo is not None:
        outcome.exports[QBO] = export_to_qbo(engine, qbo, portal, note.period, only=[note.id])
    return outcome


@dataclass(frozen=True)
class VoidOutcome:
    number: str
    period: date
    recorded: bool  # False: another run recorded this void first
    qbo_id: str | None
    halo_id: str | None


def void_invoice(
    engine: Engine,
    portal: PortalSettings,
    number: str,
    *,
    reason: str,
    halo: HaloPSAClient,
    qbo: QBOClient | None,
) -> VoidOutcome:
    """Void an exported invoice (or credit note) that has no payment: steps 1–5 above.
    Raises `CorrectionError` (nothing sent, nothing written) when it cannot be voided."""
    where = f"portal {portal.id}, invoice {number}"
    if not reason.strip():
        raise CorrectionError(f"{where}: a void needs a --reason")
    with engine.connect() as connection:
        invoice = find_invoice(connection, portal.id, number)
        records = {
            r.target: r
            for r in connection.execute(select(exports).where(exports.c.invoice_id == invoice.id))
        }
        credits = credit_notes_of(connection, invoice.id)
    if invoice.status != "final":
        raise CorrectionError(f"{where}: is {invoice.status}, not final: there is nothing to void")
    if invoice.voided_at is not None:
        raise CorrectionError(f"{where}: is voided already ({invoice.voided_at:%Y-%m-%d %H:%M})")
    missing = [
        t
        for t in portal.export_targets
        if t not in records or records[t].status != "exported" or not records[t].external_id
    ]
    if missing:
        raise CorrectionError(
            f"{where}: is not exported to {', '.join(missing)}; only an exported invoice is "
            "voided (`datagate bill --export` first)"
        )
    if credits:
        raise CorrectionError(
            f"{where}: credit note {', '.join(credits)} credits it; void the credit note first"
        )
    if QBO_APPLY in records and records[QBO_APPLY].external_type == "Payment":
        raise CorrectionError(
            f"{where}: is a credit note applied to an invoice in QBO; it is not voided"
        )
    credit = invoice.total < 0
    qbo_id = records[QBO].external_id if QBO in records else None
    if qbo is not None and qbo_id is not None:
        _void_in_qbo(qbo, portal.id, invoice, qbo_id, credit=credit, where=where)
    halo_id = records[HALOPSA].external_id
    halo.void_invoice(int(halo_id))
    recorded = mark_voided(
        engine,
        portal.id,
        invoice.id,
        reason=reason,
        details={"qbo_id": qbo_id, "halo_id": halo_id},
    )
    return VoidOutcome(number, invoice.period, recorded, qbo_id, halo_id)


def _void_in_qbo(
    qbo: QBOClient, portal_id: str, invoice: Any, qbo_id: str, *, credit: bool, where: str
) -> None:
    entity = "CreditMemo" if credit else "Invoice"
    current = qbo.get(entity, qbo_id, our_id=invoice.id)
    if is_voided(current):
        return  # voided by a run that died before recording it
    total = Decimal(str(current.get("TotalAmt", "0")))
    if credit:
        left = Decimal(str(current.get("RemainingCredit", current.get("Balance", total))))
        if left != total:
            raise CorrectionError(
                f"{where}: QBO credit memo {qbo_id} has {total - left} of its credit used; "
                "it is not voided"
            )
    else:
        balance = Decimal(str(current.get("Balance", total)))
        paid = [
            link["TxnId"]
            for link in current.get("LinkedTxn") or []
            if link.get("TxnType") == "Payment"
        ]
        if balance != total or paid:
            raise CorrectionError(
                f"{where}: has a payment in QBO ({total - balance} of {total} paid"
                f"{', payment ' + ', '.join(paid) if paid else ''}); a paid invoice is not "
                f"voided — credit instead: `datagate credit --portal {portal_id} --invoice "
                f"{invoice.doc_number} --reason …`"
            )
    qbo.void_invoice(
        qbo_id,
        current.get("SyncToken"),
        our_id=invoice.id,
        request_id=request_id_for(
            portal_id, f"{invoice.invoice_key}|{invoice.doc_number}", f"{QBO}:void"
        ),
        entity=entity,
    )
