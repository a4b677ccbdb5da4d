"""What the `invoices` asset's blocking checks read: a period's invoices against their lines,
the period's bills against every other bill of the portal, the portal's invoice numbers.
Plain reads, no Dagster.

A pair billed once and a number used once are what the warehouse's unique indexes enforce:
where the catalog shows the index valid, it is the proof and the rows are not read (at a
million products the bills' probe alone took seconds a night); where it does not, the
rows are read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import Connection, and_, exists, func, select, text

from datagate_pipelines.warehouse.catalog import enforcing_index
from datagate_pipelines.warehouse.models import (
    BILLED_PAIR_WHERE,
    billed_pair_where,
    billing_ledger,
    invoice_lines,
    invoices,
)


@dataclass(frozen=True)
class Integrity:
    line_sums: dict[int, tuple[Decimal, Decimal]]
    """Each of the period's invoices: (sum of its lines' amounts, sum of their taxes)."""
    billed_twice: list[tuple[str, date]]
    """(product, service month) pairs the period bills that another standing bill bills too."""
    numbers_reused: list[str]
    """DocNumbers carried by more than one of the portal's invoices."""
    billed_once_by: str | None = None
    """The unique index that enforces `billed_twice` empty (then the bills were not read)."""
    numbers_unique_by: str | None = None
    """The unique index that enforces `numbers_reused` empty (then the numbers were not read)."""


def read_integrity(connection: Connection, portal_id: str, period: date) -> Integrity:
    billed_once_by = enforcing_index(
        connection,
        billing_ledger,
        ["portal_id", "product_id", "service_month"],
        where=BILLED_PAIR_WHERE,
    )
    numbers_unique_by = enforcing_index(connection, invoices, ["portal_id", "doc_number"])
    return Integrity(
        _line_sums(connection, portal_id, period),
        [] if billed_once_by else _billed_twice(connection, portal_id, period),
        [] if numbers_unique_by else _numbers_reused(connection, portal_id),
        billed_once_by,
        numbers_unique_by,
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


def _billed_twice(connection: Connection, portal_id: str, period: date) -> list[tuple[str, date]]:
    """The pairs the period's standing bills bill that another standing bill bills too.
    Every bill is written by its own period's run, which then checks it: so no pair is
    billed twice anywhere, while a run reads its own period's rows rather than the
    portal's whole history (the unique index answers each probe)."""
    mine, other = billing_ledger.alias("mine"), billing_ledger.alias("other")
    # Repairs (credit / rebill rows, rule 6) correct a pair; only bills bill it, and a
    # voided invoice's rows are released (rule 7). The predicate is the index's, word for word.
    billed_by_other = exists().where(
        other.c.portal_id == mine.c.portal_id,
        other.c.product_id == mine.c.product_id,
        other.c.service_month == mine.c.service_month,
        text(f"({billed_pair_where(other.name)})"),
        other.c.id != mine.c.id,
    )
    return [
        (row.product_id, row.service_month)
        for row in connection.execute(
            select(mine.c.product_id, mine.c.service_month)
            .join(
                invoices,
                and_(invoices.c.portal_id == mine.c.portal_id, invoices.c.id == mine.c.invoice_id),
            )
            .where(
                invoices.c.portal_id == portal_id,
                invoices.c.period == period,
                text(f"({billed_pair_where(mine.name)})"),
                billed_by_other,
            )
            .order_by(mine.c.product_id, mine.c.service_month)
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
