"""What the `invoices` asset's blocking checks read: a period's invoices against their lines,
the portal's billed pairs, the portal's invoice numbers. Plain reads, no Dagster."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Connection, func, select

from datagate_pipelines.warehouse.models import billing_ledger, invoice_lines, invoices


@dataclass(frozen=True)
class Integrity:
    line_sums: dict[int, tuple[Decimal, Decimal]]
    """Each of the period's invoices: (sum of its lines' amounts, sum of their taxes)."""
    billed_twice: list[tuple[str, date]]
    """(product, service month) pairs billed by more than one standing bill."""
    numbers_reused: list[str]
    """DocNumbers carried by more than one of the portal's invoices."""


def read_integrity(connection: Connection, portal_id: str, period: date) -> Integrity:
    return Integrity(
        _line_sums(connection, portal_id, period),
        _billed_twice(connection, portal_id),
        _numbers_reused(connection, portal_id),
    )


def _line_sums(
    connection: Connection, portal_id: str, period: date
) -> dict[int, tuple[Decimal, Decimal]]:
    return {
        row.invoice_id: (row.amount, row.tax)
        for row in connection.execute(
            select(
                invoice_lines.c.invoice_id,
                func.sum(invoice_lines.c.amount).label("amount"),
                func.sum(invoice_lines.c.tax).label("tax"),
            )
            .join(invoices, invoices.c.id == invoice_lines.c.invoice_id)
            .where(invoices.c.portal_id == portal_id, invoices.c.period == period)
            .group_by(invoice_lines.c.invoice_id)
        )
    }


def _billed_twice(connection: Connection, portal_id: str) -> list[tuple[str, date]]:
    return [
        (row.product_id, row.service_month)
        for row in connection.execute(
            select(billing_ledger.c.product_id, billing_ledger.c.service_month)
            # Repairs (credit / rebill rows, rule 6) correct a pair; only bills bill it, and
            # a voided invoice's rows are released (rule 7).
            .where(
                billing_ledger.c.portal_id == portal_id,
                billing_ledger.c.kind == "bill",
                billing_ledger.c.released_at.is_(None),
            )
            .group_by(billing_ledger.c.product_id, billing_ledger.c.service_month)
            .having(func.count() > 1)
        )
    ]


def _numbers_reused(connection: Connection, portal_id: str) -> list[str]:
    return list(
        connection.execute(
            select(invoices.c.doc_number)
            .where(invoices.c.portal_id == portal_id, invoices.c.doc_number.is_not(None))
            .group_by(invoices.c.doc_number)
            .having(func.count() > 1)
        ).scalars()
    )
