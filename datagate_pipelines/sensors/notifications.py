"""Telling the portal's operators: failed runs, and periods waiting too long for approval.

Both are Dagster sensors delivering through the notifier resource (email, webhooks;
resources/notifier.py). Dagster's ready-made `make_email_on_run_failure_sensor` sends
every failure to one fixed list and only over an authenticated TLS connection; a portal's
runs must reach that portal's operators, so the failure sensor is Dagster's own
`run_failure_sensor` routing by the run's portal tag.

A delivery that fails is loud: the sensor's tick fails (red in the UI) when nothing could
be delivered, and logs each failed channel otherwise.
"""

import json
from datetime import UTC, date, datetime

import dagster as dg

from datagate_pipelines.billing import period_label
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.invoicing.approval import WaitingPeriod, periods_awaiting_approval
from datagate_pipelines.orchestration.jobs import PORTAL_TAG
from datagate_pipelines.resources.notifier import Delivery, NotificationError, NotifierResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource

RUN_FAILURE = "run_failure"
APPROVAL_REMINDER = "approval_reminder"


def _loud(context: dg.SensorEvaluationContext, deliveries: list[Delivery]) -> None:
    errors = [error for delivery in deliveries for error in delivery.errors]
    for error in errors:
        context.log.error(f"notification not delivered: {error}")
    if errors and not any(delivery.anything for delivery in deliveries):
        raise NotificationError("no notification was delivered: " + "; ".join(errors))


def _portal_of(run: dg.DagsterRun) -> str | None:
    if run.tags.get(PORTAL_TAG):
        return run.tags[PORTAL_TAG]
    partition = run.tags.get("dagster/partition", "")
    return partition.split("|")[-1] or None


def _root_cause(error) -> str:  # type: ignore[no-untyped-def]
    """The innermost error's last line (Dagster wraps what the step raised)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = [line for line in (error.message or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def failure_notice(
    run: dg.DagsterRun, message: str, steps: list[str], link: str | None
) -> tuple[str, str]:
    """Subject and body of a failed run's notice."""
    portal_id = _portal_of(run) or "no portal"
    partition = run.tags.get("dagster/partition")
    subject = (
        f"datagate: {run.job_name} failed ({portal_id}{f', {partition}' if partition else ''})"
    )
    lines = [
        f"The {run.job_name} run {run.run_id} of portal {portal_id} failed.",
        f"Partition: {partition}" if partition else "",
        f"Why: {message}",
        *(f"Step {step}" for step in steps[:10]),
        f"Run: {link}" if link else "",
    ]
    return subject, "\n".join(line for line in lines if line)


@dg.run_failure_sensor(
    name="run_failure_notices",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Any failed run is sent to its portal's operators (portals.yaml `notify`) and "
    "the deployment's recipients (DATAGATE_NOTIFY_EMAIL, DATAGATE_NOTIFY_WEBHOOK_URL), by email "
    "and webhook.",
)
def run_failure_notices(
    context: dg.RunFailureSensorContext, portals: PortalsResource, notifier: NotifierResource
):
    run = context.dagster_run
    portal_id = _portal_of(run)
    portal = portals.registry().portals.get(portal_id or "")
    settings = portal.settings if portal else None
    if not notifier.configured(settings):
        return dg.SkipReason(f"no notification channel for portal {portal_id or '-'}")
    steps = [
        f"{event.step_key}: {_root_cause(event.event_specific_data.error)}"
        for event in context.get_step_failure_events()
        if event.event_specific_data and event.event_specific_data.error
    ]
    subject, body = failure_notice(
        run, context.failure_event.message or "", steps, notifier.link(f"runs/{run.run_id}")
    )
    delivery = notifier.send(
        settings, subject, body, kind=RUN_FAILURE, facts={"run_id": run.run_id, "job": run.job_name}
    )
    _loud(context, [delivery])  # type: ignore[arg-type]
    return None


def reminder(portal: PortalSettings, waiting: WaitingPeriod, today: date, link: str | None):
    label = period_label(waiting.period)
    subject = f"datagate: {portal.name} {label} has waited {waiting.days(today)} days for approval"
    body = "\n".join(
        line
        for line in [
            f"Billing period {label} of portal {portal.id} ({portal.name}) closed on "
            f"{waiting.since.isoformat()} and waits for approval: {waiting.drafts} draft "
            f"invoice(s), total {waiting.total:.2f}. Nothing is numbered or exported until then.",
            f"Review: datagate review --portal {portal.id} --period {label}",
            f"Approve: datagate approve --portal {portal.id} --period {label} --fingerprint <from the review>",
            f"In the UI: {link}" if link else "",
        ]
        if line
    )
    return subject, body


@dg.sensor(
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reminds a portal's operators of a closed period waiting for approval longer than "
    "review.remind_after_days (default 3), then again every as many days (cursor: when each "
    "period was last reminded).",
)
def approval_reminders(
    context: dg.SensorEvaluationContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    notifier: NotifierResource,
):
    today = datetime.now(UTC).date()
    manual = {
        portal_id: portal.settings
        for portal_id, portal in portals.registry().portals.items()
        if portal.settings.invoicing.approval == "manual"
    }
    with warehouse.engine().connect() as connection:
        waiting = periods_awaiting_approval(connection, manual, today)
    reminded: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    deliveries, sent = [], []
    for period in waiting:
        portal = manual[period.portal_id]
        every = portal.review.remind_after_days
        key = f"{period.portal_id}|{period_label(period.period)}"
        last = reminded.get(key)
        if period.days(today) <= every:
            continue
        if last and (today - date.fromisoformat(last)).days < every:
            continue
        if not notifier.configured(portal):
            context.log.warning(f"{key} waits for approval, and nobody can be told (no notify)")
            continue
        link = notifier.link("assets/invoice_review")
        subject, body = reminder(portal, period, today, link)
        delivery = notifier.send(
            portal,
            subject,
            body,
            kind=APPROVAL_REMINDER,
            facts={"period": period_label(period.period), "waiting_days": period.days(today)},
        )
        deliveries.append(delivery)
        if delivery.anything:
            reminded[key] = today.isoformat()
            sent.append(key)
    still = {f"{p.portal_id}|{period_label(p.period)}" for p in waiting}
    cursor = json.dumps({k: v for k, v in sorted(reminded.items()) if k in still})
    _loud(context, deliveries)
    if not sent:
        return dg.SensorResult(skip_reason="no period to remind of", cursor=cursor)
    context.log.info(f"reminded: {', '.join(sent)}")
    return dg.SensorResult(cursor=cursor)
