"""Do the exports still hold? Every final invoice of a period has its record in HaloPSA and
in QBO (ids recorded), carrying our number and our total. The asset checks run these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, select

from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.halopsa import find_existing_by_id, halo_sign
from datagate_pipelines.exporting.ledger import HALOPSA, QBO
from datagate_pipelines.exporting.qbo import CREDIT_MEMO, INVOICE
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.warehouse.models import exports, invoices

READ_CHUNK = 100


@dataclass
class Verification:
    """`not_exported`: final invoices without an exported record (why); `mismatched`:
    exported ones whose record is gone or differs (what differs)."""

    target: str
    checked: int = 0
    not_exported: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.not_exported and not self.mismatched


@dataclass(frozen=True)
class _Exported:
    invoice_id: int
    invoice_key: str
    doc_number: str
    invoice_date: date
    customer_id: int
    total: Decimal
    status: str | None
    external_id: str | None
    external_number: str | None
    last_error: str | None
    external_total: Decimal | None = None


def _rows(db: Database, portal_id: str, period: date, target: str) -> list[_Exported]:
    with transaction(db) as connection:
        rows = connection.execute(
            select(
                invoices.c.id,
                invoices.c.invoice_key,
                invoices.c.doc_number,
                invoices.c.invoice_date,
                invoices.c.customer_id,
                invoices.c.total,
                exports.c.status,
                exports.c.external_id,
                exports.c.external_number,
                exports.c.last_error,
                exports.c.external_total,
            )
            .select_from(
                invoices.outerjoin(
                    exports, and_(exports.c.invoice_id == invoices.c.id, exports.c.target == target)
                )
            )
            .where(
                invoices.c.portal_id == portal_id,
                invoices.c.period == period,
                invoices.c.status == "final",
            )
            .order_by(invoices.c.number)
        ).all()
    return [_Exported(*row) for row in rows]


def _split(rows: list[_Exported], outcome: Verification) -> list[_Exported]:
    exported = []
    for row in rows:
        if row.status == "exported" and row.external_id:
            exported.append(row)
        else:
            why = row.last_error or "not exported yet"
            outcome.not_exported.append(f"{row.doc_number} ({row.invoice_key}): {why}")
    outcome.checked = len(rows)
    return exported


def verify_qbo(
    db: Database, client: QBOClient, portal: PortalSettings, period: date
) -> Verification:
    """Each exported invoice is in QBO under its recorded id — an Invoice, or a CreditMemo
    for a negative total — with our DocNumber and total (a credit memo's negated)."""
    outcome = Verification(QBO)
    exported = _split(_rows(db, portal.id, period, QBO), outcome)
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for entity in (INVOICE, CREDIT_MEMO):
        ids = [r.external_id for r in exported if r.external_id and _qbo_type(r) == entity]
        for start in range(0, len(ids), READ_CHUNK):
            for record in client.select(entity, Id=ids[start : start + READ_CHUNK]):
                records[(entity, str(record["Id"]))] = record
    for row in exported:
        entity = _qbo_type(row)
        record = records.get((entity, str(row.external_id)))
        label = f"{row.doc_number} ({row.invoice_key})"
        expected = -row.total if entity == CREDIT_MEMO else row.total
        if record is None:
            outcome.mismatched.append(f"{label}: QBO {entity} {row.external_id} is gone")
        elif row.external_number != row.doc_number or record.get("DocNumber") != row.doc_number:
            outcome.mismatched.append(
                f"{label}: number changed (ours {row.doc_number}, recorded "
                f"{row.external_number}, QBO {record.get('DocNumber')})"
            )
        elif Decimal(str(record.get("TotalAmt"))) != (
            recorded := row.external_total if row.external_total is not None else expected
        ):
            # QBO's own total where it was kept (its tax rounding, tax_codes mode).
            outcome.mismatched.append(
                f"{label}: QBO total {record.get('TotalAmt')} ≠ "
                f"{'the recorded' if row.external_total is not None else 'ours'} {recorded}"
            )
    return outcome


def _qbo_type(row: _Exported) -> str:
    return CREDIT_MEMO if row.total < 0 else INVOICE


def verify_halopsa(
    db: Database, client: HaloPSAClient, portal: PortalSettings, period: date
) -> Verification:
    """Each exported invoice is in HaloPSA under its recorded id, live, with our DocNumber
    as its third-party number and our total."""
    outcome = Verification(HALOPSA)
    amounts = portal.halopsa.credit_note_amounts
    exported = _split(_rows(db, portal.id, period, HALOPSA), outcome)
    records = find_existing_by_id(client, {row.invoice_date for row in exported})
    for row in exported:
        record = records.get(str(row.external_id))
        label = f"{row.doc_number} ({row.invoice_key})"
        if record is None:
            outcome.mismatched.append(f"{label}: HaloPSA invoice {row.external_id} is gone")
        elif record.get("voided"):
            outcome.mismatched.append(f"{label}: HaloPSA invoice {row.external_id} was voided")
        elif str(record.get("thirdpartyinvoicenumber") or "") != row.doc_number:
            outcome.mismatched.append(
                f"{label}: HaloPSA third-party number is "
                f"{record.get('thirdpartyinvoicenumber')!r}, ours {row.doc_number}"
            )
        elif Decimal(str(record.get("total"))).quantize(Decimal("0.01")) != (
            expected := halo_sign(row.total, amounts) * row.total
        ):
            outcome.mismatched.append(
                f"{label}: HaloPSA total {record.get('total')} ≠ ours {expected}"
            )
    return outcome
