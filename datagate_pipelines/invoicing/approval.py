"""Approval: an operator's go-ahead for a closed period's drafts, then their finalization.

With `invoicing.approval: manual` (the default) a closed period waits, ready for review,
until someone approves it:

1. `approve_period` checks everything first (a closed period, billed, not yet final, the
   `--except` keys among its drafts, the reviewed fingerprint still current, no approval
   already waiting) and writes nothing unless all is well; then it records who approved,
   when, the note, and the digest of every draft approved (status `pending`), and an audit
   event. The approvals sensor turns it into a run at the top of the queue.
2. That run finalizes through `approved.finalize_approved`: the drafts are compared with the
   approved digests. Any change (a draft recomputed with other lines, a new or vanished
   invoice, a hold) refuses the approval as a whole — nothing is finalized — and names what
   changed. Otherwise the approved drafts are finalized and numbered (rules 4 and 5 still
   apply), and the approval is settled in the same transaction.

The drafts left out (`--except`) and the held ones stay as they are, to be approved later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Connection, func, select, update

from datagate_pipelines import DatagateError
from datagate_pipelines.billing import invoice_date, period_label
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.invoicing.fingerprint import DraftDigest, draft_digests, fingerprint
from datagate_pipelines.warehouse.audit import (
    APPROVE,
    current_run_id,
    record_event,
)
from datagate_pipelines.warehouse.models import approvals, billing_periods, invoices

#: Approvals still to be carried out: filed, or their run launched.
OPEN = ("pending", "launched")


class ApprovalError(DatagateError):
    """An approval that cannot be given (the message says why, naming portal and period)."""


class ApprovalStaleError(ApprovalError):
    """The drafts changed after they were approved: nothing was finalized."""


@dataclass(frozen=True)
class Approval:
    id: int
    portal_id: str
    period: date
    approved_by: str
    approved_at: datetime
    note: str | None
    fingerprint: str
    invoices: dict[str, dict[str, str]]  # invoice key → {digest, status, total}
    excepted: list[str]
    status: str
    run_key: str | None = None
    run_id: str | None = None
    outcome: str | None = None

    @property
    def total(self) -> Decimal:
        return sum((Decimal(i["total"]) for i in self.invoices.values()), Decimal("0.00"))


def _approval(row) -> Approval:  # type: ignore[no-untyped-def]
    return Approval(
        row.id,
        row.portal_id,
        row.period,
        row.approved_by,
        row.approved_at,
        row.note,
        row.fingerprint,
        dict(row.invoices),
        list(row.excepted),
        row.status,
        row.run_key,
        row.run_id,
        row.outcome,
    )


def approvals_of(connection: Connection, portal_id: str, period: date) -> list[Approval]:
    """The period's approvals, oldest first."""
    rows = connection.execute(
        select(approvals)
        .where(approvals.c.portal_id == portal_id, approvals.c.period == period)
        .order_by(approvals.c.id)
    )
    return [_approval(row) for row in rows]


def open_approval(connection: Connection, portal_id: str, period: date) -> Approval | None:
    """The period's approval still to be carried out, if any."""
    found = [a for a in approvals_of(connection, portal_id, period) if a.status in OPEN]
    return found[-1] if found else None


def approval_by_id(connection: Connection, approval_id: int) -> Approval | None:
    row = connection.execute(select(approvals).where(approvals.c.id == approval_id)).first()
    return None if row is None else _approval(row)


def pending_approvals(connection: Connection) -> list[Approval]:
    """Approvals filed and not yet launched, oldest first (for the approvals sensor)."""
    rows = connection.execute(
        select(approvals).where(approvals.c.status == "pending").order_by(approvals.c.id)
    )
    return [_approval(row) for row in rows]


def launched_approvals(connection: Connection) -> list[Approval]:
    rows = connection.execute(
        select(approvals).where(approvals.c.status == "launched").order_by(approvals.c.id)
    )
    return [_approval(row) for row in rows]


def mark_launched(connection: Connection, approval_id: int, run_key: str) -> None:
    connection.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status == "pending")
        .values(status="launched", run_key=run_key)
    )


def mark_failed(connection: Connection, approval_id: int, run_id: str, reason: str) -> None:
    """The run that was to carry the approval out broke before settling it: approve again."""
    connection.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.status.in_(OPEN))
        .values(status="failed", run_id=run_id, outcome=reason, settled_at=datetime.now(UTC))
    )


def period_readiness(
    connection: Connection, portal: PortalSettings, period: date, today: date
) -> dict[str, DraftDigest]:
    """The drafts of a period ready for approval (closed, billed, not all final), by key;
    raises ApprovalError naming why the period is not ready."""
    label = f"portal {portal.id}: billing period {period_label(period)}"
    if portal.invoicing.approval != "manual":
        raise ApprovalError(
            f"portal {portal.id} finalizes without approval (invoicing.approval: auto): "
            "the nightly billing run finalizes and exports closed periods by itself"
        )
    if invoice_date(period) > today:
        raise ApprovalError(
            f"{label} is still open: it can be approved from {invoice_date(period).isoformat()}"
        )
    billed = connection.execute(
        select(billing_periods.c.computed_at).where(
            billing_periods.c.portal_id == portal.id, billing_periods.c.period == period
        )
    ).first()
    if billed is None:
        raise ApprovalError(
            f"{label} was never billed: `datagate bill --portal {portal.id} "
            f"--period {period_label(period)}` computes its drafts"
        )
    digests = draft_digests(connection, portal.id, period)
    if not digests:
        finals = connection.execute(
            select(func.count()).where(
                invoices.c.portal_id == portal.id, invoices.c.period == period
            )
        ).scalar_one()
        raise ApprovalError(
            f"{label} is already final ({finals} invoices): nothing is left to approve"
        )
    return digests


def approve_period(
    connection: Connection,
    portal: PortalSettings,
    period: date,
    *,
    approved_by: str,
    note: str | None = None,
    reviewed_fingerprint: str | None = None,
    excepted: Iterable[str] = (),
    today: date | None = None,
) -> Approval:
    """Record the approval of the period's drafts (all checks first; nothing is written
    when one fails). The run that finalizes is launched by the approvals sensor."""
    today = today or datetime.now(UTC).date()
    label = f"portal {portal.id}: billing period {period_label(period)}"
    digests = period_readiness(connection, portal, period, today)
    waiting = open_approval(connection, portal.id, period)
    if waiting is not None:
        raise ApprovalError(
            f"{label} is already approved (approval {waiting.id} by {waiting.approved_by} at "
            f"{waiting.approved_at:%Y-%m-%d %H:%M} UTC) and waits for its run"
        )
    excepted = sorted(set(excepted))
    unknown = [key for key in excepted if key not in digests]
    if unknown:
        raise ApprovalError(
            f"{label}: --except {unknown[0]}: no draft invoice with that key in the period"
        )
    current = fingerprint(digests)
    if reviewed_fingerprint is not None and reviewed_fingerprint.strip().lower() != current:
        raise ApprovalError(
            f"{label}: the drafts changed since the review that showed fingerprint "
            f"{reviewed_fingerprint.strip()} (now {current}): review them again "
            f"(`datagate review --portal {portal.id} --period {period_label(period)}`)"
        )
    approved = {
        key: d.as_json()
        for key, d in digests.items()
        if d.status == "draft" and key not in excepted
    }
    if not approved:
        raise ApprovalError(
            f"{label}: nothing to approve: every invoice not yet final is held or left out"
        )
    now = datetime.now(UTC)
    approval_id = connection.execute(
        approvals.insert().values(
            portal_id=portal.id,
            period=period,
            approved_by=approved_by,
            approved_at=now,
            note=note or None,
            fingerprint=current,
            invoices=approved,
            excepted=excepted,
            status="pending",
        )
    ).inserted_primary_key[0]
    approval = approval_by_id(connection, int(approval_id))
    assert approval is not None
    record_event(
        connection,
        portal.id,
        APPROVE,
        period=period,
        actor=approved_by,
        details={
            "approval": approval.id,
            "fingerprint": current,
            "invoices": len(approved),
            "total": approval.total,
            "excepted": excepted,
            "held": sorted(key for key, d in digests.items() if d.status == "held"),
            "note": note or None,
        },
    )
    return approval


def changes_since(approval: Approval, current: dict[str, DraftDigest]) -> list[str]:
    """What differs between the drafts approved and the drafts now (empty: nothing)."""
    changes = []
    for key, approved in sorted(approval.invoices.items()):
        now = current.get(key)
        if now is None:
            changes.append(f"{key}: no longer a draft (approved at {approved['total']})")
        elif now.status != approved["status"]:
            changes.append(f"{key}: now {now.status} (approved as {approved['status']})")
        elif now.total != approved["total"]:
            changes.append(f"{key}: total {approved['total']} → {now.total}")
        elif now.digest != approved["digest"]:
            changes.append(f"{key}: its lines changed (total still {now.total})")
    for key, now in sorted(current.items()):
        if key not in approval.invoices and key not in approval.excepted and now.status == "draft":
            changes.append(f"{key}: new draft since the approval (total {now.total})")
    return changes


def settle(connection: Connection, approval: Approval, status: str, outcome: str) -> None:
    connection.execute(
        update(approvals)
        .where(approvals.c.id == approval.id)
        .values(
            status=status, outcome=outcome, run_id=current_run_id(), settled_at=datetime.now(UTC)
        )
    )


@dataclass(frozen=True)
class WaitingPeriod:
    """A closed period whose drafts wait for an approval, since the day it closed."""

    portal_id: str
    period: date
    since: date
    drafts: int
    total: Decimal

    def days(self, today: date) -> int:
        return (today - self.since).days


def periods_awaiting_approval(
    connection: Connection, portal_ids: Iterable[str], today: date
) -> list[WaitingPeriod]:
    """The closed periods of these portals with drafts and no approval under way."""
    portal_ids = list(portal_ids)
    if not portal_ids:
        return []
    rows = connection.execute(
        select(
            invoices.c.portal_id,
            invoices.c.period,
            func.count().label("drafts"),
            func.sum(invoices.c.total).label("total"),
        )
        .where(invoices.c.portal_id.in_(portal_ids), invoices.c.status == "draft")
        .group_by(invoices.c.portal_id, invoices.c.period)
        .order_by(invoices.c.portal_id, invoices.c.period)
    ).all()
    waiting = []
    for row in rows:
        if invoice_date(row.period) > today:
            continue  # still open
        if open_approval(connection, row.portal_id, row.period) is not None:
            continue
        waiting.append(
            WaitingPeriod(
                row.portal_id, row.period, invoice_date(row.period), row.drafts, row.total
            )
        )
    return waiting


def waits_for_approval(connection: Connection, portal_id: str, period: date) -> bool:
    """Whether finalizing the period needs an approval first: it has drafts, or was never
    computed (its drafts are still to come), and no approval is under way."""
    computed = connection.execute(
        select(billing_periods.c.period).where(
            billing_periods.c.portal_id == portal_id, billing_periods.c.period == period
        )
    ).first()
    drafts = connection.execute(
        select(func.count()).where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.status == "draft",
        )
    ).scalar_one()
    return (computed is None or drafts > 0) and open_approval(connection, portal_id, period) is None
