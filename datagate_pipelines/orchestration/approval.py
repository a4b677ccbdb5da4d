"""Approving a period from the Dagster UI: the `approve_period` job.

It does what `datagate approve` does, through the same call (invoicing/approval.py): every
check first, then the approval recorded with who, when, the note and the fingerprint of
the drafts approved. The approvals sensor then launches the `finalize_approved` run for the
period at the top of the queue, as it does for the CLI.
"""

import re
from datetime import date

import dagster as dg
from pydantic import Field

from datagate_pipelines import DatagateError
from datagate_pipelines.billing import period_label
from datagate_pipelines.invoicing.approval import approve_period as record_approval
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.audit import audit_context

DESCRIPTION = """Approve a closed billing period's drafts, exactly as `datagate approve` does.

In the launchpad, fill in the config of the `approve` op: `portal` (the portal id),
`period` (YYYY-MM), `approved_by` (your name, kept in the audit trail), and optionally
`fingerprint` (from `datagate review` or the invoice_review asset's metadata: refused when
the drafts changed since), `note`, and `except_invoices` (invoice keys to leave out). Then
launch. The approval is recorded, and within seconds the approvals sensor launches the
finalize_approved run for that portal and period at the top of the queue: it finalizes,
numbers and exports the approved drafts, or refuses — naming what changed — when the drafts
changed in between."""


class ApprovePeriodConfig(dg.Config):
    portal: str = Field(description="The portal id, from portals.yaml.")
    period: str = Field(description="The billing period, YYYY-MM.")
    approved_by: str = Field(
        description="Who approves: kept with the approval and in the audit trail."
    )
    note: str = Field(default="", description="Why, or anything the audit trail should say.")
    except_invoices: list[str] = Field(
        default_factory=list, description="Invoice keys to leave out (they stay drafts)."
    )
    fingerprint: str = Field(
        default="",
        description="The drafts' fingerprint the review showed; empty: the drafts as they are now.",
    )


def parse_period(value: str) -> date:
    match = re.fullmatch(r"(\d{4})-(\d{2})(?:-01)?", value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise DatagateError(f"period {value!r} is not a billing period (YYYY-MM)")
    return date(int(match.group(1)), int(match.group(2)), 1)


@dg.op(description="Record the approval (checked first; nothing is written when a check fails).")
def approve(
    context: dg.OpExecutionContext,
    config: ApprovePeriodConfig,
    portals: PortalsResource,
    warehouse: WarehouseResource,
) -> None:
    try:
        period = parse_period(config.period)
        portal = portals.portal(config.portal).settings
        with (
            audit_context(run_id=context.run_id),
            warehouse.engine().begin() as connection,
        ):
            approval = record_approval(
                connection,
                portal,
                period,
                approved_by=config.approved_by.strip() or "unknown",
                note=config.note,
                reviewed_fingerprint=config.fingerprint or None,
                excepted=config.except_invoices,
            )
    except DatagateError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.log.info(
        f"approval {approval.id} recorded for portal {portal.id} {period_label(period)} by "
        f"{approval.approved_by}: {len(approval.invoices)} invoices, total {approval.total:.2f}, "
        f"fingerprint {approval.fingerprint}; the approvals sensor launches finalize_approved"
    )


@dg.job(description=DESCRIPTION, tags={"datagate/kind": "approval"})
def approve_period() -> None:
    approve()
