"""Payment bookkeeping in the warehouse: the invoices we exported to QBO, the CDC cursor,
and the append-only history of payment applications and invoice payment states.

A payment application is one QBO Payment applied to one QBO invoice. Its history is a row
per version read (the payment's SyncToken, or what removed it); the latest row is the
current state. Storing the same version again is a no-op (unique key), so re-runs and
overlapping reads store nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, update

from datagate_pipelines.exporting.ledger import QBO
from datagate_pipelines.warehouse.bulk import upsert
from datagate_pipelines.warehouse.models import (
    exports,
    invoice_payment_states,
    invoices,
    payment_applications,
    qbo_payment_cursors,
)

APPLIED, REMOVED = "applied", "removed"
PAYMENT, CREDIT = "payment", "credit"
_CHUNK = 500


@dataclass(frozen=True)
class OurInvoice:
    """One of our invoices that has a QBO invoice."""

    id: int
    qbo_id: str
    invoice_key: str
    doc_number: str | None
    total: Decimal
    payment_status: str | None
    balance: Decimal | None


@dataclass(frozen=True)
class Application:
    """A payment application as read from QBO (one version of it)."""

    qbo_payment_id: str
    qbo_invoice_id: str
    kind: str
    state: str
    amount: Decimal
    payment_date: date | None
    method: str | None
    reference: str | None
    qbo_version: str
    qbo_updated_at: datetime | None

    @property
    def key(self) -> tuple[str, str]:
        return self.qbo_payment_id, self.qbo_invoice_id

    def same_as(self, other: Application | None) -> bool:
        """Whether nothing an operator sees changed (kind, state, amount, date, method, ref)."""
        return other is not None and (
            self.kind,
            self.state,
            self.amount,
            self.payment_date,
            self.method,
            self.reference,
        ) == (
            other.kind,
            other.state,
            other.amount,
            other.payment_date,
            other.method,
            other.reference,
        )


@dataclass(frozen=True)
class Cursor:
    realm_id: str
    changed_since: datetime
    refreshed_at: datetime


def our_qbo_invoices(connection: Connection, portal_id: str) -> dict[str, OurInvoice]:
    """The portal's invoices exported to QBO as invoices (voided ones too), by QBO Id."""
    rows = connection.execute(
        select(
            invoices.c.id,
            exports.c.external_id,
            invoices.c.invoice_key,
            invoices.c.doc_number,
            invoices.c.total,
            invoices.c.payment_status,
            invoices.c.balance,
        )
        .join(exports, exports.c.invoice_id == invoices.c.id)
        .where(
            invoices.c.portal_id == portal_id,
            exports.c.target == QBO,
            exports.c.status.in_(("exported", "voided")),
            exports.c.external_id.is_not(None),
            # A negative total goes to QBO as a credit memo: nothing is owed on it.
            invoices.c.total >= 0,
        )
    ).all()
    return {str(row.external_id): OurInvoice(*row) for row in rows}


def load_cursor(connection: Connection, portal_id: str) -> Cursor | None:
    row = connection.execute(
        select(
            qbo_payment_cursors.c.realm_id,
            qbo_payment_cursors.c.changed_since,
            qbo_payment_cursors.c.refreshed_at,
        ).where(qbo_payment_cursors.c.portal_id == portal_id)
    ).first()
    return None if row is None else Cursor(*row)


def save_cursor(
    connection: Connection,
    portal_id: str,
    *,
    realm_id: str,
    changed_since: datetime,
    refreshed_at: datetime,
    mode: str,
    api_calls: int,
    changed_objects: int,
    run_id: str | None,
) -> None:
    upsert(
        connection,
        qbo_payment_cursors,
        [
            {
                "portal_id": portal_id,
                "realm_id": realm_id,
                "changed_since": changed_since,
                "refreshed_at": refreshed_at,
                "mode": mode,
                "api_calls": api_calls,
                "changed_objects": changed_objects,
                "run_id": run_id,
            }
        ],
        key=("portal_id",),
    )


def current_applications(
    connection: Connection,
    portal_id: str,
    *,
    payment_ids: Iterable[str] = (),
    qbo_invoice_ids: Iterable[str] = (),
) -> dict[tuple[str, str], Application]:
    """The latest version of every application of these payments or to these invoices."""
    wanted_payments, wanted_invoices = sorted(set(payment_ids)), sorted(set(qbo_invoice_ids))
    latest: dict[tuple[str, str], tuple[int, Application]] = {}
    t = payment_applications.c
    for field, values in ((t.qbo_payment_id, wanted_payments), (t.qbo_invoice_id, wanted_invoices)):
        for start in range(0, len(values), _CHUNK):
            for row in connection.execute(
                select(payment_applications).where(
                    t.portal_id == portal_id, field.in_(values[start : start + _CHUNK])
                )
            ):
                application = _application(row)
                if application.key not in latest or latest[application.key][0] < row.id:
                    latest[application.key] = (row.id, application)
    return {key: application for key, (_, application) in latest.items()}


def _application(row: Any) -> Application:
    return Application(
        row.qbo_payment_id,
        row.qbo_invoice_id,
        row.kind,
        row.state,
        row.amount,
        row.payment_date,
        row.method,
        row.reference,
        row.qbo_version,
        row.qbo_updated_at,
    )


def record_applications(
    connection: Connection,
    portal_id: str,
    observed: Sequence[Application],
    invoice_ids: dict[str, int],
    *,
    recorded_at: datetime,
    run_id: str | None,
) -> None:
    """Append the versions read (a version stored already is left alone)."""
    upsert(
        connection,
        payment_applications,
        [
            {
                "portal_id": portal_id,
                "qbo_payment_id": a.qbo_payment_id,
                "qbo_invoice_id": a.qbo_invoice_id,
                "invoice_id": invoice_ids.get(a.qbo_invoice_id),
                "kind": a.kind,
                "state": a.state,
                "amount": a.amount,
                "payment_date": a.payment_date,
                "method": a.method,
                "reference": a.reference,
                "qbo_version": a.qbo_version,
                "qbo_updated_at": a.qbo_updated_at,
                "recorded_at": recorded_at,
                "run_id": run_id,
            }
            for a in observed
        ],
        key=("portal_id", "qbo_payment_id", "qbo_invoice_id", "qbo_version"),
        update_columns=(),
    )


def record_invoice_state(
    connection: Connection,
    portal_id: str,
    invoice: OurInvoice,
    *,
    payment_status: str,
    balance: Decimal | None,
    qbo_total: Decimal | None,
    qbo_state: str,
    qbo_version: str,
    qbo_updated_at: datetime | None,
    recorded_at: datetime,
    run_id: str | None,
) -> None:
    """Append a state to the invoice's history and make it the invoice's current one."""
    upsert(
        connection,
        invoice_payment_states,
        [
            {
                "portal_id": portal_id,
                "invoice_id": invoice.id,
                "qbo_invoice_id": invoice.qbo_id,
                "payment_status": payment_status,
                "balance": balance,
                "qbo_total": qbo_total,
                "qbo_state": qbo_state,
                "qbo_version": qbo_version,
                "qbo_updated_at": qbo_updated_at,
                "recorded_at": recorded_at,
                "run_id": run_id,
            }
        ],
        key=("invoice_id", "qbo_version"),
        update_columns=(),
    )
    values: dict[str, Any] = {"payment_status": payment_status}
    if qbo_state != "deleted":
        values["balance"] = balance
    connection.execute(update(invoices).where(invoices.c.id == invoice.id).values(**values))


def latest_states(
    connection: Connection, invoice_ids: Iterable[int]
) -> dict[int, tuple[str, Decimal | None, str]]:
    """The latest recorded (payment status, balance, QBO state) of these invoices."""
    ids = sorted(set(invoice_ids))
    states: dict[int, tuple[str, Decimal | None, str]] = {}
    t = invoice_payment_states.c
    for start in range(0, len(ids), _CHUNK):
        latest = (
            select(func.max(t.id).label("id"))
            .where(t.invoice_id.in_(ids[start : start + _CHUNK]))
            .group_by(t.invoice_id)
            .subquery()
        )
        for row in connection.execute(
            select(t.invoice_id, t.payment_status, t.balance, t.qbo_state).join(
                latest, latest.c.id == t.id
            )
        ):
            states[row.invoice_id] = (row.payment_status, row.balance, row.qbo_state)
    return states
