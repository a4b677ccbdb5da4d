"""Credit notes and voids in the warehouse (docs/billing.md rule 7).

A credit note is an invoice row of its own: final, numbered from the portal's sequence,
with a negative total, in the credited invoice's period and agreement, naming the invoice
it credits (`credit_of`) and the operator's reason. Being a negative-total final invoice,
it is exported exactly as every credit is (exporting/qbo.py, exporting/halopsa.py): a QBO
CreditMemo and a HaloPSA credit note, each once. Each of its lines takes from the
credited invoice's line with the same `line_no`, so what remains uncredited of every line
is read from the notes that stand (not voided).

The note is written in one transaction that holds the portal's row (the lock finalization
takes, SQLite's write lock): two credits of one invoice at once are one after the other,
and the second sees what the first took. Everything is checked before anything is written.

A void (`mark_voided`) keeps the invoice final and numbered — its number is never reused —
sets `voided_at` and releases its (product, month) pairs in the ledger, all in one
transaction with its audit event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from datagate_pipelines import DatagateError
from datagate_pipelines.billing.credits import BilledLine, CreditedLine, CreditError, credit_lines
from datagate_pipelines.billing.numbering import doc_number, first_free_number
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.warehouse.audit import CREDIT, VOID, record_event
from datagate_pipelines.warehouse.models import (
    billing_ledger,
    invoice_lines,
    invoices,
    portals,
)

ZERO = Decimal("0.00")


class CorrectionError(DatagateError):
    """A credit or void refused: one line naming the portal, the invoice and why."""


@dataclass(frozen=True)
class CreditNote:
    """A credit note as written (or, with --dry-run, as it would be)."""

    id: int | None
    portal_id: str
    period: date
    invoice_key: str
    doc_number: str | None
    credits: str  # the credited invoice's DocNumber
    reason: str
    lines: tuple[CreditedLine, ...]

    @property
    def subtotal(self) -> Decimal:
        return -sum((line.amount for line in self.lines), ZERO)

    @property
    def tax(self) -> Decimal:
        return -sum((line.tax for line in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.tax


@contextmanager
def portal_locked(engine: Engine, portal_id: str) -> Iterator[Connection]:
    """A transaction holding the portal's row: corrections and finalizations of the portal
    run one at a time (PostgreSQL row lock; SQLite's write lock, taken up front so that
    what is read inside is the last committed state)."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            connection.execute(
                select(portals.c.id).where(portals.c.id == portal_id).with_for_update()
            )
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


def find_invoice(connection: Connection, portal_id: str, number: str) -> Any:
    """The portal's invoice (or credit note) with this DocNumber; refused when unknown."""
    row = connection.execute(
        select(invoices).where(invoices.c.portal_id == portal_id, invoices.c.doc_number == number)
    ).first()
    if row is None:
        raise CorrectionError(f"portal {portal_id}: no invoice numbered {number!r}")
    return row


def _credited(connection: Connection, invoice_id: int) -> dict[int, tuple[Decimal, Decimal]]:
    """What the credit notes that stand took of each line (positive), by line number."""
    notes = select(invoices.c.id).where(
        invoices.c.credit_of == invoice_id, invoices.c.voided_at.is_(None)
    )
    rows = connection.execute(
        select(
            invoice_lines.c.line_no,
            func.sum(invoice_lines.c.amount),
            func.sum(invoice_lines.c.tax),
        )
        .where(invoice_lines.c.invoice_id.in_(notes))
        .group_by(invoice_lines.c.line_no)
    ).all()
    return {no: (-Decimal(amount), -Decimal(tax)) for no, amount, tax in rows}


def credit_notes_of(connection: Connection, invoice_id: int) -> list[str]:
    """The DocNumbers of the credit notes that stand against an invoice."""
    return list(
        connection.execute(
            select(invoices.c.doc_number)
            .where(invoices.c.credit_of == invoice_id, invoices.c.voided_at.is_(None))
            .order_by(invoices.c.number)
        ).scalars()
    )


def plan_credit(
    connection: Connection,
    portal_id: str,
    number: str,
    *,
    reason: str,
    line_nos: Sequence[int] = (),
    amount: Decimal | None = None,
) -> tuple[Any, list[Any], list[CreditedLine]]:
    """Check a credit and compute its lines: (the invoice, its lines, the note's lines).
    Raises `CorrectionError` naming portal, invoice and field; writes nothing."""
    if not reason.strip():
        raise CorrectionError(f"portal {portal_id}: a credit needs a --reason")
    invoice = find_invoice(connection, portal_id, number)
    where = f"portal {portal_id}, invoice {number}"
    if invoice.status != "final":
        raise CorrectionError(
            f"{where}: is {invoice.status}, not final: only a final invoice is credited"
        )
    if invoice.credit_of is not None:
        raise CorrectionError(f"{where}: is a credit note; a credit note is not credited")
    if invoice.voided_at is not None:
        raise CorrectionError(f"{where}: is voided; there is nothing to credit")
    if invoice.total < 0:
        raise CorrectionError(f"{where}: is a credit (total {invoice.total}); it is not credited")
    lines = connection.execute(
        select(invoice_lines)
        .where(invoice_lines.c.invoice_id == invoice.id)
        .order_by(invoice_lines.c.line_no)
    ).all()
    billed = [BilledLine(r.line_no, r.amount, r.tax, r.tax_rate) for r in lines]
    try:
        taken = credit_lines(
            billed, _credited(connection, invoice.id), line_nos=line_nos, amount=amount
        )
    except CreditError as error:
        field = "--amount" if amount is not None else "--line" if line_nos else "credit"
        raise CorrectionError(f"{where}, {field}: {error}") from None
    return invoice, lines, taken


def create_credit_note(
    engine: Engine,
    portal: PortalSettings,
    number: str,
    *,
    reason: str,
    line_nos: Sequence[int] = (),
    amount: Decimal | None = None,
    is_taken: Callable[[str], bool] = lambda doc: False,
    dry_run: bool = False,
    today: date | None = None,
) -> CreditNote:
    """Write the credit note (numbered, final, with its audit event) and return it; with
    `dry_run`, only check and compute it. `is_taken(doc_number)`: whether QBO has that
    DocNumber already (skipped, as at finalization)."""
    today = today or datetime.now(UTC).date()
    with engine.connect() as connection:
        # Checked before the lock too, so a refusal never waits for it.
        invoice, _lines, taken = plan_credit(
            connection, portal.id, number, reason=reason, line_nos=line_nos, amount=amount
        )
        upcoming = connection.execute(
            select(portals.c.next_invoice_number).where(portals.c.id == portal.id)
        ).scalar_one()
    if dry_run:
        return _note(None, invoice, None, None, reason, taken)
    # QBO is asked about the next numbers now, not while holding the lock: on SQLite that
    # lock is the database's, and the QBO client may need to write (its tokens) on first use.
    is_taken(doc_number(portal.invoicing.number_prefix, upcoming))
    with portal_locked(engine, portal.id) as connection:
        # Checked again under the lock: a credit that ran meanwhile took its part.
        invoice, lines, taken = plan_credit(
            connection, portal.id, number, reason=reason, line_nos=line_nos, amount=amount
        )
        next_number = connection.execute(
            select(portals.c.next_invoice_number).where(portals.c.id == portal.id)
        ).scalar_one()
        used = set(
            connection.execute(
                select(invoices.c.doc_number).where(
                    invoices.c.portal_id == portal.id, invoices.c.number >= next_number
                )
            ).scalars()
        )
        given, text = first_free_number(
            portal.invoicing.number_prefix, next_number, lambda t: t in used or is_taken(t)
        )
        key = f"{invoice.invoice_key}:credit:{given}"
        note = _note(None, invoice, key, text, reason, taken)
        now = datetime.now(UTC)
        note_id = connection.execute(
            insert(invoices)
            .values(
                portal_id=portal.id,
                period=invoice.period,
                invoice_key=key,
                customer_id=invoice.customer_id,
                customer_name=invoice.customer_name,
                agreement_key=invoice.agreement_key,
                halo_contract_id=invoice.halo_contract_id,
                status="final",
                hold_reasons=[],
                number=given,
                doc_number=text,
                invoice_date=today,
                due_date=today,
                subtotal=note.subtotal,
                tax=note.tax,
                total=note.total,
                computed_at=now,
                finalized_at=now,
                credit_of=invoice.id,
                reason=reason,
            )
            .returning(invoices.c.id)
        ).scalar_one()
        by_no = {line.line_no: line for line in lines}
        connection.execute(
            insert(invoice_lines),
            [_credit_line(note_id, by_no[c.line_no], c, invoice.doc_number) for c in taken],
        )
        connection.execute(
            update(portals).where(portals.c.id == portal.id).values(next_invoice_number=given + 1)
        )
        record_event(
            connection,
            portal.id,
            CREDIT,
            period=invoice.period,
            invoice_key=invoice.invoice_key,
            details={
                "credit_note": text,
                "credit_note_key": key,
                "credits": invoice.doc_number,
                "reason": reason,
                "subtotal": note.subtotal,
                "tax": note.tax,
                "total": note.total,
                "lines": {str(c.line_no): str(c.amount) for c in taken},
                "how": "amount" if amount is not None else "lines" if line_nos else "whole",
            },
        )
    return _note(note_id, invoice, key, text, reason, taken)


def _note(
    note_id: int | None,
    invoice: Any,
    key: str | None,
    text: str | None,
    reason: str,
    taken: list[CreditedLine],
) -> CreditNote:
    return CreditNote(
        id=note_id,
        portal_id=invoice.portal_id,
        period=invoice.period,
        invoice_key=key or f"{invoice.invoice_key}:credit",
        doc_number=text,
        credits=invoice.doc_number,
        reason=reason,
        lines=tuple(taken),
    )


def _credit_line(
    note_id: int, billed: Any, taken: CreditedLine, credited_number: str
) -> dict[str, Any]:
    """A note's line: the billed line's own number (it says which line it takes from), its
    amount and tax negated. A whole line keeps its quantity at the price negated (QBO gets
    the line as billed); a part of one is an amount of its own."""
    exact = (
        taken.whole
        and taken.amount == billed.amount
        and billed.qty is not None
        and billed.unit_price is not None
        and billed.qty * billed.unit_price == billed.amount
    )
    return {
        "invoice_id": note_id,
        "line_no": billed.line_no,
        "kind": billed.kind,
        "product_id": billed.product_id,
        "usage_id": billed.usage_id,
        "description": f"Credit on {credited_number}: {billed.description}"[:1000],
        "service_month": billed.service_month,
        "site_id": billed.site_id,
        "qty": billed.qty if exact else None,
        "unit_price": -billed.unit_price if exact else None,
        "amount": -taken.amount,
        "tax_code": billed.tax_code,
        "tax_zip": billed.tax_zip,
        "tax_rate": billed.tax_rate,
        "tax": -taken.tax,
    }


def mark_voided(
    engine: Engine, portal_id: str, invoice_id: int, *, reason: str, details: dict[str, Any]
) -> bool:
    """Record a void done in the targets: `voided_at`, the reason, the ledger pairs released
    and the audit event, in one transaction. False when another run recorded it first."""
    with portal_locked(engine, portal_id) as connection:
        row = connection.execute(select(invoices).where(invoices.c.id == invoice_id)).one()
        if row.voided_at is not None:
            return False
        now = datetime.now(UTC)
        connection.execute(
            update(invoices).where(invoices.c.id == invoice_id).values(voided_at=now, reason=reason)
        )
        released = connection.execute(
            update(billing_ledger)
            .where(
                billing_ledger.c.invoice_id == invoice_id, billing_ledger.c.released_at.is_(None)
            )
            .values(released_at=now)
        ).rowcount
        record_event(
            connection,
            portal_id,
            VOID,
            period=row.period,
            invoice_key=row.invoice_key,
            details={
                "number": row.doc_number,
                "reason": reason,
                "total": row.total,
                "before": {"status": "final"},
                "after": {"status": "voided"},
                "pairs_released": released,
                **details,
            },
        )
    return True
