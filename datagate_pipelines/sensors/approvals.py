"""Approvals: an operator's approval becomes a finalize_approved run at the top of the queue."""

import dagster as dg

from datagate_pipelines.billing import period_label
from datagate_pipelines.invoicing.approval import (
    launched_approvals,
    mark_failed,
    mark_launched,
    pending_approvals,
)
from datagate_pipelines.orchestration.jobs import APPROVAL_TAG, PORTAL_TAG
from datagate_pipelines.orchestration.partitions import billing_partition, portal_partitions
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource

# Above the nightly runs (priority 0), like force syncs: the run queue starts it first.
APPROVAL_PRIORITY = "10"
BROKEN = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


def settle_broken_runs(instance: dg.DagsterInstance, engine) -> None:  # type: ignore[no-untyped-def]
    """An approval whose run ended without settling it (it broke before finalizing: QBO
    unreachable, the process killed) is marked failed, so it can be given again."""
    with engine.begin() as connection:
        for approval in launched_approvals(connection):
            runs = instance.get_runs(
                filters=dg.RunsFilter(tags={"dagster/run_key": approval.run_key}), limit=1
            )
            if runs and runs[0].status in BROKEN:
                mark_failed(
                    connection,
                    approval.id,
                    runs[0].run_id,
                    f"run {runs[0].run_id} ended {runs[0].status.value} before finalizing: "
                    "approve again once its cause is fixed",
                )


@dg.sensor(
    job_name="finalize_approved",
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Picks up approvals (`datagate approve`, the approve_period job) and launches a "
    "finalize_approved run for the portal and period with a higher dagster/priority; an "
    "approval whose run broke before finalizing is marked failed.",
)
def approvals(
    context: dg.SensorEvaluationContext, portals: PortalsResource, warehouse: WarehouseResource
) -> dg.SensorResult:
    engine = warehouse.engine()
    settle_broken_runs(context.instance, engine)
    with engine.connect() as connection:
        waiting = pending_approvals(connection)
    if not waiting:
        return dg.SensorResult(skip_reason="no approvals waiting")
    registry = portals.registry()
    known = set(registry.ids) & set(context.instance.get_dynamic_partitions(portal_partitions.name))
    run_requests = []
    with engine.begin() as connection:
        for approval in waiting:
            if approval.portal_id not in known:
                reason = f"portal {approval.portal_id!r} is not a registered portal"
                mark_failed(connection, approval.id, "", reason)
                context.log.warning(f"approval {approval.id} failed: {reason}")
                continue
            run_key = f"approval:{approval.id}"
            mark_launched(connection, approval.id, run_key)
            run_requests.append(
                dg.RunRequest(
                    run_key=run_key,
                    partition_key=billing_partition(approval.portal_id, approval.period),
                    run_config={
                        "ops": {
                            "invoices": {"config": {"finalize": True, "approval_id": approval.id}}
                        }
                    },
                    tags={
                        PORTAL_TAG: approval.portal_id,
                        APPROVAL_TAG: str(approval.id),
                        "dagster/priority": APPROVAL_PRIORITY,
                        "datagate/period": period_label(approval.period),
                        "datagate/approved-by": approval.approved_by,
                    },
                )
            )
    return dg.SensorResult(run_requests=run_requests)
