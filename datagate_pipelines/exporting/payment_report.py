"""Payments as operators and scripts read them (`datagate payments`, its --json form)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, and_, select

from datagate_pipelines import DatagateError
from datagate_pipelines.warehouse.models import (
    halo_payment_exports,
    invoice_payment_states,
    invoices,
    payment_applications,
    qbo_payment_cursors,
)


def _money(value: Any) -> str | None:
    return None if value is None else f"{value:.2f}"


def payment_documents(
    connection: Connection,
    portal_id: str,
    *,
    since: date | None = None,
    doc_number: str | None = None,
) -> list[dict[str, Any]]:
    """One JSON-ready object per payment application, newest payment first: the current
    version of each, or with `doc_number` every version of that invoice's applications
    (`current` tells which is the latest). `since` keeps payments dated on or after it."""
    t = payment_applications.c
    query = (
        select(
            payment_applications,
            invoices.c.doc_number,
            invoices.c.customer_name,
        )
        .join(invoices, invoices.c.id == t.invoice_id, isouter=True)
        .where(t.portal_id == portal_id)
        .order_by(t.id)
    )
    if doc_number is not None:
        invoice_id = connection.execute(
            select(invoices.c.id).where(
                invoices.c.portal_id == portal_id, invoices.c.doc_number == doc_number
            )
        ).scalar_one_or_none()
        if invoice_id is None:
            raise DatagateError(f"portal {portal_id}: no invoice numbered {doc_number}")
        query = query.where(t.invoice_id == invoice_id)
    rows = connection.execute(query).all()
    latest = {(r.qbo_payment_id, r.qbo_invoice_id): r.id for r in rows}
    if doc_number is None:
        rows = [r for r in rows if latest[(r.qbo_payment_id, r.qbo_invoice_id)] == r.id]
    if since is not None:
        rows = [r for r in rows if r.payment_date is not None and r.payment_date >= since]
    halo = _halo_records(connection, portal_id)
    documents = [
        {
            "portal": portal_id,
            "qbo_payment_id": r.qbo_payment_id,
            "qbo_invoice_id": r.qbo_invoice_id,
            "invoice": r.doc_number,
            "customer": r.customer_name,
            "kind": r.kind,
            "state": r.state,
            "amount": _money(r.amount),
            "date": r.payment_date.isoformat() if r.payment_date else None,
            "method": r.method,
            "reference": r.reference,
            "qbo_version": r.qbo_version,
            "recorded_at": r.recorded_at.isoformat(),
            "current": latest[(r.qbo_payment_id, r.qbo_invoice_id)] == r.id,
            "halopsa": halo.get((r.qbo_payment_id, r.qbo_invoice_id)),
        }
        for r in rows
    ]
    documents.sort(key=lambda d: (d["date"] or "", d["recorded_at"]), reverse=True)
    return documents


def _halo_records(connection: Connection, portal_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest HaloPSA record of each application."""
    t = halo_payment_exports.c
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for row in connection.execute(
        select(halo_payment_exports).where(t.portal_id == portal_id).order_by(t.version)
    ):
        records[(row.qbo_payment_id, row.qbo_invoice_id)] = {
            "status": row.status,
            "payment_id": row.halo_payment_id,
            "amount": _money(row.amount),
            "reference": row.reference,
            "error": row.last_error,
        }
    return records


def invoice_states(connection: Connection, portal_id: str, doc_number: str) -> list[dict[str, Any]]:
    """The payment-state history of one invoice, oldest first."""
    t = invoice_payment_states.c
    rows = connection.execute(
        select(invoice_payment_states)
        .join(invoices, and_(invoices.c.id == t.invoice_id, invoices.c.doc_number == doc_number))
        .where(t.portal_id == portal_id)
        .order_by(t.id)
    ).all()
    return [
        {
            "payment_status": r.payment_status,
            "balance": _money(r.balance),
            "qbo_state": r.qbo_state,
            "recorded_at": r.recorded_at.isoformat(),
        }
        for r in rows
    ]


def payment_refreshes(connection: Connection) -> dict[str, dict[str, Any]]:
    """Each portal's last payment refresh (for `datagate portals status`)."""
    return {
        row.portal_id: {
            "at": row.refreshed_at.isoformat(),
            "mode": row.mode,
            "api_calls": row.api_calls,
        }
        for row in connection.execute(select(qbo_payment_cursors))
    }
