"""Force sync: an operator's request becomes a sync run at the top of the queue."""

from collections import defaultdict
from typing import Any

import dagster as dg
from sqlalchemy import update

from datagate_pipelines.orchestration.jobs import PORTAL_TAG
from datagate_pipelines.orchestration.partitions import portal_partitions
from datagate_pipelines.orchestration.tags import FULL_SYNC_TAG
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.force_sync import (
    launched_requests,
    mark_requests,
    pending_requests,
)
from datagate_pipelines.warehouse.models import force_sync_requests

# Above the nightly runs (priority 0): the run queue starts these first.
FORCE_SYNC_PRIORITY = "10"
FORCE_SYNC_TAG = "datagate/force-sync"


def _queued_force_sync(instance: dg.DagsterInstance, portal_id: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            tags={FORCE_SYNC_TAG: portal_id},
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        ),
        limit=1,
    )
    return runs[0] if runs else None


FINISHED = {
    dg.DagsterRunStatus.SUCCESS: "done",
    dg.DagsterRunStatus.FAILURE: "failed",
    dg.DagsterRunStatus.CANCELED: "failed",
}


def settle_finished_requests(instance: dg.DagsterInstance, engine: Any) -> None:
    """Launched requests become done (or failed) once their run has finished, so
    `datagate portals status` counts only requests still waiting."""
    with engine.begin() as connection:
        for key, ids in launched_requests(connection).items():
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": key}), limit=1)
            run = runs[0] if runs else instance.get_run_by_id(key)
            if run is None or run.status not in FINISHED:
                continue
            status = FINISHED[run.status]
            error = None if status == "done" else f"run {run.run_id} ended {run.status.value}"
            connection.execute(
                update(force_sync_requests)
                .where(force_sync_requests.c.id.in_(ids))
                .values(status=status, run_id=run.run_id, error=error)
            )


@dg.sensor(
    job_name="portal_sync",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Picks up `datagate force-sync` requests (cursor: the last request id) and launches "
    "a portal_sync run with a higher dagster/priority (a full one for `force-sync --full`). Requests for a portal whose forced run has "
    "not started yet join that run; a request for an unknown portal is marked failed.",
)
def force_sync(
    context: dg.SensorEvaluationContext, portals: PortalsResource, warehouse: WarehouseResource
) -> dg.SensorResult:
    after = int(context.cursor or 0)
    engine = warehouse.engine()
    settle_finished_requests(context.instance, engine)
    with engine.connect() as connection:
        requests = pending_requests(connection, after)
    if not requests:
        return dg.SensorResult(skip_reason="no force-sync requests")
    registry = portals.registry()
    known = set(registry.ids) & set(context.instance.get_dynamic_partitions(portal_partitions.name))
    by_portal: dict[str, list[int]] = defaultdict(list)
    run_requests = []
    with engine.begin() as connection:
        for request in requests:
            if request.portal_id not in known:
                reason = (
                    f"unknown portal {request.portal_id!r}: not a valid portal in {registry.path}"
                )
                mark_requests(connection, [request.id], "failed", error=reason)
                context.log.warning(f"force-sync request {request.id} failed: {reason}")
                continue
            by_portal[request.portal_id].append(request.id)
        for portal_id, ids in sorted(by_portal.items()):
            full = any(r.full for r in requests if r.id in ids)
            queued = _queued_force_sync(context.instance, portal_id)
            # A full request joins only a queued run that is full too.
            if queued is not None and (not full or queued.tags.get(FULL_SYNC_TAG) == "true"):
                mark_requests(connection, ids, "coalesced", run_key=queued.run_id)
                context.log.info(
                    f"portal {portal_id}: {len(ids)} request(s) joined queued run {queued.run_id}"
                )
                continue
            run_key = f"force-sync:{portal_id}:{ids[-1]}"
            mark_requests(connection, ids, "launched", run_key=run_key)
            run_requests.append(
                dg.RunRequest(
                    run_key=run_key,
                    partition_key=portal_id,
                    tags={
                        PORTAL_TAG: portal_id,
                        FORCE_SYNC_TAG: portal_id,
                        **({FULL_SYNC_TAG: "true"} if full else {}),
                        "dagster/priority": FORCE_SYNC_PRIORITY,
                        "datagate/requested-by": ",".join(
                            sorted({r.requested_by for r in requests if r.id in ids})
                        ),
                    },
                )
            )
    return dg.SensorResult(run_requests=run_requests, cursor=str(requests[-1].id))
