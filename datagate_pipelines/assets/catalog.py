"""A portal's billing catalog, derived from the HaloPSA mirror: customers, sites, products,
product sites and agreements. HaloPSA is the master record; these assets only decide."""

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import Connection

from datagate_pipelines.assets.failures import fail_fast_unless_transient, warehouse_retry_policy
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.orchestration.partitions import portal_partitions
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.sync import apply
from datagate_pipelines.warehouse.rejects import log_rejects, record_rejects
from datagate_pipelines.warehouse.sync_runs import finish_sync

Step = Callable[[Connection, PortalSettings], apply.SyncOutcome]


def _run_step(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    step: Step,
    *,
    finish: bool = False,
) -> dg.MaterializeResult:
    portal = portals.portal(context.partition_key).settings
    asset = context.asset_key.to_user_string()
    with fail_fast_unless_transient(), warehouse.engine().begin() as connection:
        outcome = step(connection, portal)
        record_rejects(connection, portal.id, asset, outcome.rejects, run_id=context.run_id)
        metadata: dict[str, dg.MetadataValue] = {
            name: dg.MetadataValue.int(value) for name, value in outcome.counts.items()
        }
        metadata["rejects"] = dg.MetadataValue.int(len(outcome.rejects))
        if finish:
            synced = finish_sync(connection, portal.id, context.run_id, succeeded=True)
            if synced is not None:
                metadata["last_successful_sync"] = dg.MetadataValue.timestamp(synced)
    log_rejects(context, portal.id, outcome.rejects)
    counts = ", ".join(f"{name} {value}" for name, value in outcome.counts.items())
    context.log.info(f"portal {portal.id}: {asset}: {counts}")
    return dg.MaterializeResult(metadata=metadata)


_COMMON = dict(
    partitions_def=portal_partitions,
    retry_policy=warehouse_retry_policy(),
    group_name="catalog",
    kinds={"sqlalchemy"},
    owners=["team:billing-ops"],
)


@dg.asset(
    deps=["halo_clients", "halo_sites"],
    description="Datagate customers: the HaloPSA clients ticked with the Datagate field. "
    "Inactive or unticked ones are kept but not billed; the zip is the main site's postcode.",
    **_COMMON,
)
def customers(
    context: dg.AssetExecutionContext, portals: PortalsResource, warehouse: WarehouseResource
):
    return _run_step(context, portals, warehouse, apply.sync_customers)


@dg.asset(
    deps=[customers, "halo_sites"],
    description="The customers' sites (the tax location of site-zip customers). "
    "With update_site off, sites already imported are not overwritten.",
    **_COMMON,
)
def sites(
    context: dg.AssetExecutionContext, portals: PortalsResource, warehouse: WarehouseResource
):
    return _run_step(context, portals, warehouse, apply.sync_sites)


@dg.asset(
    deps=[
        customers,
        "halo_contracts",
        "halo_items",
        "halo_asset_groups",
        "halo_recurring_invoices",
    ],
    description="Products: the recurring-invoice lines that pass the portal's product sync, "
    "contract-type and item-group filters. Inactive or vanished lines are end-dated, never deleted.",
    **_COMMON,
)
def products(
    context: dg.AssetExecutionContext, portals: PortalsResource, warehouse: WarehouseResource
):
    today = datetime.now(UTC).date()
    return _run_step(
        context, portals, warehouse, lambda c, p: apply.sync_products(c, p, as_of=today)
    )


@dg.asset(
    deps=[products, sites],
    description="Each product's site: the site of its recurring-invoice line.",
    **_COMMON,
)
def product_sites(
    context: dg.AssetExecutionContext, portals: PortalsResource, warehouse: WarehouseResource
):
    return _run_step(context, portals, warehouse, apply.sync_product_sites)


@dg.asset(
    # Last in the sync: it records the portal's last successful sync.
    deps=[products, product_sites],
    description="Agreements: one per customer (use_default_agreement) or one per contract plus a "
    "'no contract' one, with the HaloPSA contract each invoice is exported against. Completes the sync.",
    **_COMMON,
)
def agreements(
    context: dg.AssetExecutionContext, portals: PortalsResource, warehouse: WarehouseResource
):
    return _run_step(context, portals, warehouse, apply.sync_agreements, finish=True)
