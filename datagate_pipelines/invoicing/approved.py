"""Carrying out an approval: finalize the drafts it approved, or refuse it when they changed.

Apart from `approval` (the records and their queries) because this side loads the billing
engine: the read-only commands (`portals status`, `invoices`) read approvals and stay light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine, func, select

from datagate_pipelines.billing import period_label
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.invoicing.approval import (
    OPEN,
    Approval,
    ApprovalError,
    ApprovalStaleError,
    approval_by_id,
    changes_since,
    open_approval,
    settle,
)
from datagate_pipelines.invoicing.finalize import (
    ApprovalRequiredError,
    FinalizeOutcome,
    approval_required_message,
    finalize_period,
)
from datagate_pipelines.invoicing.fingerprint import draft_digests
from datagate_pipelines.warehouse.audit import APPROVAL_REFUSED, audit_context, record_event
from datagate_pipelines.warehouse.models import invoices


@dataclass
class ApprovedFinalization:
    """What finalizing on an approval did (`outcome` is empty when nothing was approved)."""

    approval: Approval | None
    outcome: FinalizeOutcome = field(default_factory=FinalizeOutcome)


def finalize_approved(
    engine: Engine,
    portal: PortalSettings,
    period: date,
    *,
    approval_id: int | None = None,
    is_taken: Callable[[str], bool] = lambda doc_number: False,
    today: date | None = None,
) -> ApprovedFinalization:
    """Finalize the drafts an approval approved (the given one, else the period's open one).

    Without an open approval while drafts wait: ApprovalRequiredError. When the drafts
    changed since the approval, it is refused (committed) and ApprovalStaleError names the
    changes. A settled approval is not carried out twice (a re-executed run)."""
    with engine.begin() as connection:
        approval = (
            approval_by_id(connection, approval_id)
            if approval_id is not None
            else open_approval(connection, portal.id, period)
        )
        if approval is not None and (approval.portal_id, approval.period) != (portal.id, period):
            raise ApprovalError(
                f"approval {approval.id} is for portal {approval.portal_id} "
                f"{period_label(approval.period)}, not {portal.id} {period_label(period)}"
            )
        if approval is None or approval.status not in OPEN:
            waiting = connection.execute(
                select(func.count()).where(
                    invoices.c.portal_id == portal.id,
                    invoices.c.period == period,
                    invoices.c.status == "draft",
                )
            ).scalar_one()
            if waiting:
                raise ApprovalRequiredError(approval_required_message(portal.id, period))
            return ApprovedFinalization(approval)
        changes = changes_since(approval, draft_digests(connection, portal.id, period))
        if not changes:
            with audit_context(actor=f"{approval.approved_by} (approval {approval.id})"):
                outcome = finalize_period(
                    connection,
                    portal,
                    period,
                    is_taken=is_taken,
                    today=today,
                    approved=list(approval.invoices),
                )
            settle(connection, approval, "finalized", _summary(outcome))
            return ApprovedFinalization(approval, outcome)
    reason = (
        f"portal {portal.id}: billing period {period_label(period)}: approval {approval.id} "
        f"by {approval.approved_by} no longer matches the drafts, nothing was finalized: "
        + "; ".join(changes[:10])
        + (f"; and {len(changes) - 10} more" if len(changes) > 10 else "")
        + f" — review again and approve (`datagate review --portal {portal.id} "
        f"--period {period_label(period)}`)"
    )
    with engine.begin() as connection:
        settle(connection, approval, "refused", reason)
        record_event(
            connection,
            portal.id,
            APPROVAL_REFUSED,
            period=period,
            actor="datagate",
            details={
                "approval": approval.id,
                "approved_by": approval.approved_by,
                "changes": changes,
            },
        )
    raise ApprovalStaleError(reason)


def _summary(outcome: FinalizeOutcome) -> str:
    parts = [f"finalized {len(outcome.finalized)}"]
    if outcome.blocked:
        parts.append(f"waiting on earlier invoices (rule 4) {len(outcome.blocked)}")
    if outcome.held:
        parts.append(f"held {len(outcome.held)}")
    return ", ".join(parts)
