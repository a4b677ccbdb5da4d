"""QBO webhooks → `payments` runs: the events the receiver stored become a run for their
portal, coalesced so that a burst of events makes one run (docs/qbo-api.md §6.2)."""

from collections import defaultdict

import dagster as dg

from datagate_pipelines.orchestration.jobs import PORTAL_TAG
from datagate_pipelines.orchestration.partitions import portal_partitions
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.webhook_events import events_after, mark_events

#: The entities whose changes move payments; others (Customer, Item, …) start no run.
PAYMENT_ENTITIES = frozenset({"Invoice", "Payment", "CreditMemo"})
TRIGGER_TAG = "datagate/trigger"


def _waiting_run(instance: dg.DagsterInstance, portal_id: str) -> dg.DagsterRun | None:
    """The portal's payments run that has not started yet (it will read these changes too)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name="payments",
            tags={PORTAL_TAG: portal_id},
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        ),
        limit=1,
    )
    return runs[0] if runs else None


@dg.sensor(
    job_name="payments",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns the QBO webhook events `datagate webhooks serve` stored (cursor: the last "
    "event id) into a payments run for their portal. Events for a portal whose payments run has "
    "not started yet join it; a run in progress gets one run queued behind it (one run per "
    "portal at a time). Changes to other entities, and events of portals no longer in "
    "portals.yaml, are marked and start nothing.",
)
def qbo_webhooks(
    context: dg.SensorEvaluationContext, portals: PortalsResource, warehouse: WarehouseResource
) -> dg.SensorResult:
    engine = warehouse.engine()
    with engine.connect() as connection:
        events = events_after(connection, int(context.cursor or 0))
    if not events:
        return dg.SensorResult(skip_reason="no new QBO webhook events")
    registry = portals.registry()
    with_qbo = {pid for pid in registry.ids if registry.get(pid).settings.qbo}
    by_portal: dict[str, list[int]] = defaultdict(list)
    ignored: dict[str, list[int]] = defaultdict(list)
    for event in events:
        if event.portal_id not in with_qbo:
            ignored[f"portal {event.portal_id} is not a portal with QBO in portals.yaml"].append(
                event.id
            )
        elif event.entity not in PAYMENT_ENTITIES:
            ignored[f"{event.entity} changes do not move payments"].append(event.id)
        else:
            by_portal[event.portal_id].append(event.id)
    run_requests = []
    with engine.begin() as connection:
        for note, ids in ignored.items():
            mark_events(connection, ids, run_key=None, note=note)
        for portal_id, ids in sorted(by_portal.items()):
            waiting = _waiting_run(context.instance, portal_id)
            if waiting is not None:
                key = waiting.tags.get("dagster/run_key", waiting.run_id)
                mark_events(connection, ids, run_key=key, note=f"joined run {waiting.run_id}")
                context.log.info(
                    f"portal {portal_id}: {len(ids)} event(s) joined run {waiting.run_id}"
                )
                continue
            run_key = f"qbo-webhook:{portal_id}:{ids[-1]}"
            mark_events(connection, ids, run_key=run_key, note="run requested")
            run_requests.append(
                dg.RunRequest(
                    run_key=run_key,
                    partition_key=portal_id,
                    tags={PORTAL_TAG: portal_id, TRIGGER_TAG: "webhook"},
                )
            )
    # A portal new in portals.yaml may be heard from before portal_registry adds its
    # partition: add it here; the daemon adds partitions before it launches runs.
    partitions = set(context.instance.get_dynamic_partitions(portal_partitions.name))
    new = sorted(set(by_portal) - partitions)
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[portal_partitions.build_add_request(new)] if new else [],
        cursor=str(events[-1].id),
    )
