"""Manual holds: an operator keeps a draft from being finalized, giving a reason.

A manually held invoice behaves as the holds of docs/billing.md do (rules 4 and 5): it
keeps its (product, month) pairs, gets no number and is not exported, and while it is held
the agreement's later invoices are not finalized either. The hold is kept by invoice key
in `invoice_holds`, so it survives every recomputation of the drafts (rule 3) until it is
released; `apply_manual_holds` puts it back on the recomputed invoice. Holding and
releasing are audit events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, insert, select, update

from datagate_pipelines import DatagateError
from datagate_pipelines.billing import FINAL_STATUSES, period_label
from datagate_pipelines.warehouse.audit import HOLD, RELEASE, record_event
from datagate_pipelines.warehouse.models import invoice_holds, invoices


class HoldError(DatagateError):
    """A hold or release that cannot be done (the message names portal and invoice)."""


@dataclass(frozen=True)
class ManualHold:
    id: int
    invoice_key: str
    reason: str
    held_by: str
    held_at: datetime

    @property
    def text(self) -> str:
        """The hold reason as it stands on the invoice beside the billing holds."""
        return f"manual hold by {self.held_by}: {self.reason}"


def active_holds(connection: Connection, portal_id: str) -> dict[str, ManualHold]:
    """The portal's manual holds not yet released, by invoice key."""
    rows = connection.execute(
        select(invoice_holds)
        .where(invoice_holds.c.portal_id == portal_id, invoice_holds.c.released_at.is_(None))
        .order_by(invoice_holds.c.id)
    )
    return {
        r.invoice_key: ManualHold(r.id, r.invoice_key, r.reason, r.held_by, r.held_at) for r in rows
    }


def apply_manual_holds(connection: Connection, portal_id: str, period: date) -> int:
    """Put the active manual holds back on the period's freshly computed drafts; how many
    drafts became held by it (the others were held for their data already)."""
    holds = active_holds(connection, portal_id)
    if not holds:
        return 0
    drafts = connection.execute(
        select(
            invoices.c.id, invoices.c.invoice_key, invoices.c.status, invoices.c.hold_reasons
        ).where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.status.in_(("draft", "held")),
            invoices.c.invoice_key.in_(list(holds)),
        )
    ).all()
    for row in drafts:
        reasons = [*(row.hold_reasons or []), holds[row.invoice_key].text]
        connection.execute(
            update(invoices)
            .where(invoices.c.id == row.id)
            .values(status="held", hold_reasons=reasons)
        )
    return sum(1 for row in drafts if row.status == "draft")


def _invoice(connection: Connection, portal_id: str, invoice_key: str):  # type: ignore[no-untyped-def]
    row = connection.execute(
        select(invoices).where(
            invoices.c.portal_id == portal_id, invoices.c.invoice_key == invoice_key
        )
    ).first()
    if row is None:
        raise HoldError(f"portal {portal_id}: no invoice {invoice_key}")
    return row


def hold_invoice(
    connection: Connection, portal_id: str, invoice_key: str, reason: str, held_by: str
) -> ManualHold:
    """Hold a draft (or an invoice already held for its data) with the operator's reason."""
    reason = reason.strip()
    if not reason:
        raise HoldError(f"portal {portal_id}, invoice {invoice_key}: give a reason for the hold")
    row = _invoice(connection, portal_id, invoice_key)
    if row.status in FINAL_STATUSES:
        raise HoldError(
            f"portal {portal_id}: invoice {invoice_key} is final (number {row.doc_number}); "
            "a final invoice is never held"
        )
    existing = active_holds(connection, portal_id).get(invoice_key)
    if existing is not None:
        raise HoldError(
            f"portal {portal_id}: invoice {invoice_key} is already held by {existing.held_by} "
            f"since {existing.held_at:%Y-%m-%d %H:%M} UTC ({existing.reason})"
        )
    now = datetime.now(UTC)
    hold_id = connection.execute(
        insert(invoice_holds).values(
            portal_id=portal_id,
            invoice_key=invoice_key,
            reason=reason,
            held_by=held_by,
            held_at=now,
        )
    ).inserted_primary_key[0]
    hold = ManualHold(int(hold_id), invoice_key, reason, held_by, now)
    reasons = [*(row.hold_reasons or []), hold.text]
    connection.execute(
        update(invoices).where(invoices.c.id == row.id).values(status="held", hold_reasons=reasons)
    )
    record_event(
        connection,
        portal_id,
        HOLD,
        period=row.period,
        invoice_key=invoice_key,
        actor=held_by,
        details={
            "reason": reason,
            "before": {"status": row.status, "hold_reasons": list(row.hold_reasons or [])},
            "after": {"status": "held", "hold_reasons": reasons},
            "total": row.total,
        },
    )
    return hold


def release_invoice(
    connection: Connection, portal_id: str, invoice_key: str, released_by: str, note: str = ""
) -> str:
    """Release the invoice's manual hold; its status afterwards (held while billing holds
    remain, else draft — finalized by the next approval, or by the nightly run with auto)."""
    row = _invoice(connection, portal_id, invoice_key)
    hold = active_holds(connection, portal_id).get(invoice_key)
    if hold is None:
        raise HoldError(
            f"portal {portal_id}: invoice {invoice_key} has no manual hold to release"
            + (
                f" (its hold is for its data: {'; '.join(row.hold_reasons)})"
                if row.hold_reasons
                else ""
            )
        )
    connection.execute(
        update(invoice_holds)
        .where(invoice_holds.c.id == hold.id)
        .values(released_by=released_by, released_at=datetime.now(UTC))
    )
    reasons = [r for r in row.hold_reasons or [] if r != hold.text]
    status = row.status
    if status == "held":
        status = "held" if reasons else "draft"
        connection.execute(
            update(invoices)
            .where(invoices.c.id == row.id)
            .values(status=status, hold_reasons=reasons)
        )
    record_event(
        connection,
        portal_id,
        RELEASE,
        period=row.period,
        invoice_key=invoice_key,
        actor=released_by,
        details={
            "hold": {"reason": hold.reason, "by": hold.held_by, "at": hold.held_at},
            "note": note or None,
            "before": {"status": row.status, "hold_reasons": list(row.hold_reasons or [])},
            "after": {"status": status, "hold_reasons": reasons},
            "period": period_label(row.period),
        },
    )
    return status
