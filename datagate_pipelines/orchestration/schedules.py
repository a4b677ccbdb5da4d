"""Nightly schedules: sync every portal; refresh open drafts and close the last period."""

import os
from datetime import UTC, date, datetime

import dagster as dg

# Dagster's own cron arithmetic (the one its schedules tick by; croniter is not a dependency).
from dagster._utils.schedules import reverse_cron_string_iterator
from sqlalchemy import select

from datagate_pipelines.billing.periods import add_months, period_label
from datagate_pipelines.exporting.status import periods_to_export
from datagate_pipelines.orchestration.jobs import EXPORT_ASSETS, PORTAL_TAG
from datagate_pipelines.orchestration.partitions import billing_partition, portal_partitions
from datagate_pipelines.orchestration.tags import SYNCED_SINCE_TAG
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.models import billing_periods

SYNC_CRON = os.environ.get("DATAGATE_SYNC_CRON", "0 2 * * *")
BILLING_CRON = os.environ.get("DATAGATE_BILLING_CRON", "0 4 * * *")
# Syncs go ahead of billing runs (priority 0) in the queue: a portal's billing then never
# starts before its sync, even when that sync is a run retry queued after the billing runs
# (retries keep their run's tags). Forced syncs and approvals go first of all (10). When
# the night's sync failed for good, the closing run refuses to finalize (SYNCED_SINCE_TAG).
SYNC_PRIORITY = "1"


def night_sync_tick(billing_tick: datetime, sync_cron: str | None = None) -> datetime:
    """The sync tick a billing tick follows: the latest tick of `sync_cron` (default
    DATAGATE_SYNC_CRON) at or before it, in UTC — the same night, or the evening before
    when the sync runs late."""
    cron = sync_cron or SYNC_CRON
    return next(reverse_cron_string_iterator(billing_tick.timestamp(), cron, "UTC"))


def _portals(context: dg.ScheduleEvaluationContext) -> list[str]:
    return sorted(context.instance.get_dynamic_partitions(portal_partitions.name))


@dg.schedule(
    job_name="portal_sync",
    cron_schedule=SYNC_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly HaloPSA sync of every portal (DATAGATE_SYNC_CRON, default 02:00 UTC).",
)
def nightly_sync(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.date().isoformat()
    return [
        dg.RunRequest(
            run_key=f"nightly-sync:{portal_id}:{day}",
            partition_key=portal_id,
            tags={PORTAL_TAG: portal_id, "dagster/priority": SYNC_PRIORITY},
        )
        for portal_id in _portals(context)
    ]


def billing_run_requests(
    portal_ids: list[str],
    today: date,
    closed_periods: dict[str, set[date]],
    billing_starts: dict[str, date],
    unexported: dict[str, list[date]] | None = None,
    *,
    needs_approval: set[str] | frozenset[str] = frozenset(),
    synced_since: datetime | None = None,
) -> list[dg.RunRequest]:
    """Per portal: close last month once (finalize + export), refresh this month's drafts,
    and export again every period (of any age) with a final invoice whose export failed or
    is missing — only the export steps of the billing job, until nothing is left open.

    A portal in `needs_approval` (invoicing.approval: manual) gets last month only as far
    as ready for review: its drafts (and review) refreshed each night until an approval
    finalizes it; nothing is numbered or exported without one.

    A closing run carries `synced_since` (the night's sync tick) as a tag: it finalizes only
    once the portal's latest successful sync started at or after it, else it fails and the
    period stays open, so the next night requests it again."""
    open_period = today.replace(day=1)
    last_period = add_months(open_period, -1)
    requests = []
    for portal_id in portal_ids:
        closing = last_period not in closed_periods.get(portal_id, set())
        for period in (unexported or {}).get(portal_id, []):
            if closing and period == last_period:
                continue  # tonight's closing run exports it anyway
            requests.append(
                dg.RunRequest(
                    run_key=f"export:{portal_id}:{period_label(period)}:{today}",
                    partition_key=billing_partition(portal_id, period),
                    asset_selection=[dg.AssetKey(name) for name in EXPORT_ASSETS],
                    tags={
                        PORTAL_TAG: portal_id,
                        "datagate/period": period_label(period),
                        "datagate/kind": "exports",
                    },
                )
            )
        start = billing_starts.get(portal_id)
        if start is None:
            continue
        for period, closing_run in ((last_period, True), (open_period, False)):
            if period < start or (closing_run and period in closed_periods.get(portal_id, set())):
                continue
            finalize = closing_run and portal_id not in needs_approval
            kind = "close" if finalize else ("review" if closing_run else "refresh")
            tags = {
                PORTAL_TAG: portal_id,
                "datagate/period": period_label(period),
                "datagate/finalize": str(finalize).lower(),
            }
            if finalize and synced_since is not None:
                tags[SYNCED_SINCE_TAG] = synced_since.astimezone(UTC).isoformat()
            requests.append(
                dg.RunRequest(
                    run_key=f"{kind}:{portal_id}:{period_label(period)}:{today}",
                    partition_key=billing_partition(portal_id, period),
                    run_config={"ops": {"invoices": {"config": {"finalize": finalize}}}},
                    tags=tags,
                )
            )
    return requests


@dg.schedule(
    job_name="billing",
    cron_schedule=BILLING_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly billing (DATAGATE_BILLING_CRON, default 04:00 UTC): finalize and export the "
    "period that just closed — once; later nights find it closed —, refresh the open period's "
    "drafts, and retry the exports of every period with a failed or missing export. Portals with "
    "invoicing.approval: manual get the closed period as far as ready for review (drafts and "
    "invoice_review refreshed nightly) until `datagate approve` finalizes it. A close waits for "
    "the night's sync (the latest DATAGATE_SYNC_CRON tick): when the portal's last successful "
    "sync started before it, the drafts are refreshed but nothing is finalized or exported, the "
    "run fails saying so, and the next night tries again (or sync, then `datagate bill --export`).",
)
def nightly_billing(
    context: dg.ScheduleEvaluationContext, portals: PortalsResource, warehouse: WarehouseResource
):
    tick = context.scheduled_execution_time or datetime.now(UTC)
    today = tick.date()
    registry = portals.registry()
    portal_ids = [p for p in _portals(context) if p in registry.portals]
    with warehouse.engine().connect() as connection:
        closed: dict[str, set[date]] = {}
        for row in connection.execute(
            select(billing_periods.c.portal_id, billing_periods.c.period).where(
                billing_periods.c.finalized_at.is_not(None)
            )
        ):
            closed.setdefault(row.portal_id, set()).add(row.period)
        targets = {p: registry.get(p).settings.export_targets for p in portal_ids}
        unexported = periods_to_export(connection, targets)
    starts = {p: registry.get(p).settings.billing_start for p in portal_ids}
    manual = {p for p in portal_ids if registry.get(p).settings.invoicing.approval == "manual"}
    requests = billing_run_requests(
        portal_ids,
        today,
        closed,
        starts,
        unexported,
        needs_approval=manual,
        synced_since=night_sync_tick(tick),
    )
    return requests or dg.SkipReason("no portals to bill")


PAYMENTS_CRON = os.environ.get("DATAGATE_PAYMENTS_CRON", "0 5 * * *")


def payment_run_requests(portal_ids: list[str], day: date) -> list[dg.RunRequest]:
    """One `payments` run per portal with a QBO company."""
    return [
        dg.RunRequest(
            run_key=f"nightly-payments:{portal_id}:{day.isoformat()}",
            partition_key=portal_id,
            tags={PORTAL_TAG: portal_id, "datagate/trigger": "schedule"},
        )
        for portal_id in portal_ids
    ]


@dg.schedule(
    job_name="payments",
    cron_schedule=PAYMENTS_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly payments (DATAGATE_PAYMENTS_CRON, default 05:00 UTC): every portal with a "
    "QBO company reads what QBO recorded since its last refresh and writes it back to HaloPSA.",
)
def nightly_payments(context: dg.ScheduleEvaluationContext, portals: PortalsResource):
    day = (context.scheduled_execution_time or datetime.now(UTC)).date()
    registry = portals.registry()
    portal_ids = [
        p
        for p in _portals(context)
        if p in registry.portals and registry.get(p).settings.qbo is not None
    ]
    return payment_run_requests(portal_ids, day) or dg.SkipReason("no portals with QBO")
