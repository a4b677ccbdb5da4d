"""Invoices as operators and scripts read them (`datagate invoices`, its --json form)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from datagate_pipelines.billing import period_label
from datagate_pipelines.warehouse.models import exports, invoice_lines, invoices, sites

EXPORT_TARGETS = ("halopsa", "qbo")
#: What the payments refresh reads from QBO, shown instead of final/exported.
PAYMENT_STATUSES = ("paid", "partly_paid", "credited", "voided")


def display_status(
    status: str,
    payment_status: str | None,
    exported_to: set[str],
    targets: tuple[str, ...],
    voided: bool = False,
) -> str:
    """draft | held | final | exported | paid | partly_paid | credited | voided
    (docs/operations.md, `datagate invoices --json`); the last four come from QBO, and
    voided also from `datagate void`."""
    if status != "final":
        return status
    if voided:
        return "voided"
    if payment_status in PAYMENT_STATUSES:
        return payment_status
    if targets and set(targets) <= exported_to:
        return "exported"
    return "final"


def _money(value: Any) -> str | None:
    return None if value is None else f"{value:.2f}"


def invoice_documents(
    connection: Connection,
    portal_id: str,
    period: date,
    *,
    targets: tuple[str, ...] = EXPORT_TARGETS,
) -> list[dict[str, Any]]:
    """One JSON-ready object per invoice of the period, lines and export ids included."""
    rows = connection.execute(
        select(invoices)
        .where(invoices.c.portal_id == portal_id, invoices.c.period == period)
        .order_by(
            invoices.c.number.is_(None),
            invoices.c.number,
            invoices.c.customer_name,
            invoices.c.agreement_key,
        )
    ).all()
    ids = [r.id for r in rows]
    site_names = dict(
        connection.execute(
            select(sites.c.halo_site_id, sites.c.name).where(sites.c.portal_id == portal_id)
        ).all()
    )
    lines_by_invoice: dict[int, list[Any]] = defaultdict(list)
    exported: dict[int, dict[str, str | None]] = defaultdict(dict)
    # QBO's own tax where it differs from ours (tax_codes mode: it rounds per rate).
    qbo_tax: dict[int, Any] = {}
    if ids:
        for line in connection.execute(
            select(invoice_lines)
            .where(invoice_lines.c.invoice_id.in_(ids))
            .order_by(invoice_lines.c.line_no)
        ):
            lines_by_invoice[line.invoice_id].append(line)
        for export in connection.execute(select(exports).where(exports.c.invoice_id.in_(ids))):
            if export.status == "exported":
                exported[export.invoice_id][export.target] = export.external_id
            if export.target == "qbo" and export.external_tax is not None:
                qbo_tax[export.invoice_id] = export.external_tax
    numbers = {r.id: r.doc_number for r in rows}
    credited = {r.credit_of for r in rows if r.credit_of is not None} - set(numbers)
    if credited:  # a credit note's invoice is in its period; kept general all the same
        numbers.update(
            connection.execute(
                select(invoices.c.id, invoices.c.doc_number).where(invoices.c.id.in_(credited))
            ).all()
        )
    documents = []
    for inv in rows:
        lines = lines_by_invoice[inv.id]
        subtotals: dict[Any, Any] = {}
        for line in lines:
            subtotals[line.site_id] = subtotals.get(line.site_id, 0) + line.amount
        documents.append(
            {
                "portal": portal_id,
                "period": period_label(period),
                "number": inv.doc_number,
                "invoice_key": inv.invoice_key,
                "status": display_status(
                    inv.status,
                    inv.payment_status,
                    set(exported[inv.id]),
                    targets,
                    voided=inv.voided_at is not None,
                ),
                # Rule 7: a credit note names the invoice it credits; both keep the reason.
                "kind": "credit_note" if inv.credit_of is not None else "invoice",
                "credits": numbers.get(inv.credit_of) if inv.credit_of is not None else None,
                "reason": inv.reason,
                "hold_reasons": list(inv.hold_reasons or []),
                "customer": {"halo_id": inv.customer_id, "name": inv.customer_name},
                "agreement": {"key": inv.agreement_key, "halo_contract_id": inv.halo_contract_id},
                "invoice_date": inv.invoice_date.isoformat(),
                "due_date": inv.due_date.isoformat(),
                "subtotal": _money(inv.subtotal),
                "tax": _money(inv.tax),
                "total": _money(inv.total),
                "balance": _money(inv.balance),
                "site_subtotals": [
                    {
                        "site": site_names.get(site, None if site is None else str(site)),
                        "subtotal": _money(amount),
                    }
                    for site, amount in subtotals.items()
                ],
                "lines": [
                    {
                        "line": line.line_no,
                        "kind": line.kind,
                        "description": line.description,
                        "product_id": line.product_id,
                        "service_month": line.service_month.strftime("%Y-%m")
                        if line.service_month
                        else None,
                        "site": site_names.get(line.site_id) if line.site_id is not None else None,
                        "qty": None if line.qty is None else format(line.qty.normalize(), "f"),
                        "unit_price": None if line.unit_price is None else str(line.unit_price),
                        "amount": _money(line.amount),
                        "tax_code": line.tax_code,
                        "tax": _money(line.tax),
                        # Repair lines (kind credit / rebill): the invoice they correct.
                        "corrects_invoice": line.corrects_invoice,
                    }
                    for line in lines
                ],
                "halo_invoice_id": exported[inv.id].get("halopsa"),
                "qbo_invoice_id": exported[inv.id].get("qbo"),
                "qbo_tax_difference": (
                    _money(qbo_tax[inv.id] - inv.tax)
                    if inv.id in qbo_tax and qbo_tax[inv.id] != inv.tax
                    else None
                ),
            }
        )
    return documents
