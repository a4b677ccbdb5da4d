"""Keeps the `portal` partitions in step with portals.yaml (and the warehouse's registry)."""

import dagster as dg

from datagate_pipelines import DatagateError
from datagate_pipelines.orchestration.partitions import FIRST_PERIOD, portal_partitions
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.portals import mark_removed, register_portal


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a portal partition for every valid portal in portals.yaml and removes the "
    "partitions of portals taken out of it (their data stays in the warehouse). Invalid entries "
    "are logged with their field and reason and leave existing partitions alone.",
)
def portal_registry(
    context: dg.SensorEvaluationContext, portals: PortalsResource, warehouse: WarehouseResource
) -> dg.SensorResult:
    try:
        registry = portals.registry()
    except DatagateError as exc:
        # An unreadable file must not delete every portal: skip this tick.
        return dg.SensorResult(skip_reason=f"portals.yaml unreadable: {exc}")
    for error in registry.errors:
        context.log.warning(f"invalid portal entry: {error}")
    for portal_id in registry.ids:
        start = registry.get(portal_id).settings.billing_start
        if start < FIRST_PERIOD:  # the period partitions were made before this portal came
            context.log.warning(
                f"portal {portal_id}: billing_start {start:%Y-%m} is before the first period "
                f"partition {FIRST_PERIOD:%Y-%m}; reload the code location to add its periods"
            )
    configured = set(registry.ids)
    # A portal whose entry is broken keeps its partition (its data and runs stay reachable).
    broken = {e.portal_id for e in registry.errors if e.portal_id}
    existing = set(context.instance.get_dynamic_partitions(portal_partitions.name))
    added = sorted(configured - existing)
    removed = sorted(existing - configured - broken)
    with warehouse.engine().begin() as connection:
        for portal_id in configured:
            register_portal(connection, registry.get(portal_id))
        for portal_id in removed:
            mark_removed(connection, portal_id)
    for portal_id in added:
        context.log.info(f"portal {portal_id}: added (new in portals.yaml)")
    for portal_id in removed:
        context.log.info(f"portal {portal_id}: removed from portals.yaml; its data is kept")
    requests = []
    if added:
        requests.append(portal_partitions.build_add_request(added))
    if removed:
        requests.append(portal_partitions.build_delete_request(removed))
    if not requests:
        return dg.SensorResult(skip_reason=f"{len(configured)} portal(s), no change")
    return dg.SensorResult(dynamic_partitions_requests=requests)
