"""Payments read back from QBO: each exported invoice's Balance, as paid / partly paid /
unpaid on our invoice (`invoices.payment_status`, `invoices.balance`).

Payments are recorded in QBO (received there, or synced in by HaloPSA's own integration);
an invoice's `Balance` is what is still owed on it. The exported invoices of a period are
read with `Id IN (…)` queries (100 ids a query), so a period of 5,000 invoices costs 50
calls. (CDC — `GET /cdc?entities=Invoice&changedSince=…` — would read only what changed,
but needs a stored last-check time per portal and reaches back 30 days only; for one
period's invoices, reading them all is simple and cheap enough.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.ledger import QBO
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.warehouse.models import exports, invoices

PAID, PARTLY_PAID, UNPAID, VOIDED = "paid", "partly_paid", "unpaid", "voided"
READ_CHUNK = 100


def payment_status(total: Decimal, balance: Decimal, *, voided: bool = False) -> str:
    """paid (nothing owed), partly_paid (some of it paid), unpaid; voided when the QBO
    invoice was voided (its balance is 0, but nothing was paid)."""
    if voided:
        return VOIDED
    if balance <= 0:
        return PAID
    if balance < total:
        return PARTLY_PAID
    return UNPAID


def _is_voided(record: dict[str, Any], total: Decimal) -> bool:
    return Decimal(str(record.get("TotalAmt", "0"))) == 0 and total != 0


@dataclass
class PaymentOutcome:
    """Counts by status; `changed` lists the invoice keys whose status or balance moved;
    `missing` the ones QBO no longer has (deleted there)."""

    statuses: dict[str, int] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            **{s: self.statuses.get(s, 0) for s in (PAID, PARTLY_PAID, UNPAID, VOIDED)},
            "changed": len(self.changed),
            "missing_in_qbo": len(self.missing),
        }


def read_payments(
    db: Database, client: QBOClient, portal: PortalSettings, period: date
) -> PaymentOutcome:
    """Read the Balance of the period's invoices exported to QBO and record their status
    (credits, exported as credit memos, owe nothing and are left out)."""
    outcome = PaymentOutcome()
    with transaction(db) as connection:
        exported = connection.execute(
            select(
                invoices.c.id,
                invoices.c.invoice_key,
                invoices.c.total,
                invoices.c.balance,
                invoices.c.payment_status,
                exports.c.external_id,
            )
            .join(exports, exports.c.invoice_id == invoices.c.id)
            .where(
                invoices.c.portal_id == portal.id,
                invoices.c.period == period,
                exports.c.target == QBO,
                exports.c.status == "exported",
                # Credits went out as credit memos: there is no balance owed to read.
                invoices.c.total >= 0,
            )
            .order_by(invoices.c.id)
        ).all()
    by_qbo_id = {row.external_id: row for row in exported}
    records: dict[str, dict[str, Any]] = {}
    ids = sorted(by_qbo_id, key=lambda i: int(i) if i.isdigit() else 0)
    for start in range(0, len(ids), READ_CHUNK):
        for record in client.select("Invoice", Id=ids[start : start + READ_CHUNK]):
            records[str(record["Id"])] = record
    updates = []
    for qbo_id, row in by_qbo_id.items():
        record = records.get(qbo_id)
        if record is None:
            outcome.missing.append(row.invoice_key)
            continue
        balance = Decimal(str(record.get("Balance", "0"))).quantize(Decimal("0.01"))
        status = payment_status(row.total, balance, voided=_is_voided(record, row.total))
        outcome.statuses[status] = outcome.statuses.get(status, 0) + 1
        if (status, balance) != (row.payment_status, row.balance):
            updates.append((row.id, status, balance))
            outcome.changed.append(row.invoice_key)
    if updates:
        with transaction(db) as connection:
            for invoice_id, status, balance in updates:
                connection.execute(
                    update(invoices)
                    .where(invoices.c.id == invoice_id)
                    .values(payment_status=status, balance=balance)
                )
    return outcome
