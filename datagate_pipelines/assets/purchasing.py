"""Purchasing: HaloPSA suppliers and purchase orders, read into the warehouse and sent to
QBO as vendors, purchase orders and bills (exporting/vendors.py, exporting/purchasing.py).

Portal-partitioned, in the nightly sync (the `halopsa` and `purchasing` groups of
`portal_sync`). A portal without a `purchasing:` section (or, for the QBO assets, without
`qbo:`) skips them with a log line, not an error. Safe to repeat or to kill: every create is
looked up first and recorded at once.
"""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from datagate_pipelines.assets.exports import SKIPPED, failures_markdown
from datagate_pipelines.assets.failures import api_retry_policy, fail_fast_unless_transient
from datagate_pipelines.assets.halopsa import (
    Mirrored,
    SyncConfig,
    full_sync_requested,
    mirror_entity,
    read_metadata,
    stats_delta,
)
from datagate_pipelines.config import Portal
from datagate_pipelines.exporting.purchasing import export_purchases, select_purchases
from datagate_pipelines.exporting.vendors import link_vendors, load_suppliers, write_vendor_ids
from datagate_pipelines.orchestration.partitions import portal_partitions
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.schemas import halopsa as schemas
from datagate_pipelines.sync import halopsa_rows as decode
from datagate_pipelines.sync.purchasing import with_purchase_order_lines, with_supplier_details
from datagate_pipelines.warehouse import models
from datagate_pipelines.warehouse.portals import register_portal
from datagate_pipelines.warehouse.request_log import recording

API_RETRY_POLICY = api_retry_policy()
OWNERS = ["team:billing-ops"]
NO_PURCHASING = {"skipped": "no purchasing section in portals.yaml"}


def _skips(context: dg.AssetExecutionContext, portal: Portal, *, qbo: bool) -> bool:
    missing = [
        name
        for name, section in (
            ("purchasing", portal.settings.purchasing),
            ("qbo", portal.settings.qbo),
        )
        if section is None and (qbo or name == "purchasing")
    ]
    if missing:
        # Purchasing is optional: a portal without it need not hear about it every night.
        context.log.debug(
            f"portal {portal.id} has no {' or '.join(missing)} section in portals.yaml: "
            "purchasing is off, skipped"
        )
    return bool(missing)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "halo_suppliers",
            description="HaloPSA suppliers; details read only for new or changed list rows "
            "(list rows carry no change stamp).",
            group_name="halopsa",
            kinds={"halopsa", "sqlalchemy"},
            owners=OWNERS,
            partitions_def=portal_partitions,
            tags={"datagate/stage": "ingest"},
            skippable=True,
        ),
        dg.AssetSpec(
            "halo_purchase_orders",
            description="HaloPSA purchase orders and their lines; an order with a bad line is "
            "rejected whole.",
            group_name="halopsa",
            kinds={"halopsa", "sqlalchemy"},
            owners=OWNERS,
            partitions_def=portal_partitions,
            tags={"datagate/stage": "ingest"},
            skippable=True,
        ),
    ],
    can_subset=True,
    retry_policy=API_RETRY_POLICY,
    pool="halopsa",
)
def halopsa_purchasing(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
) -> Iterator[dg.MaterializeResult]:
    """Mirror the portal's suppliers and purchase orders, with rejects, like every HaloPSA
    asset (assets/halopsa.py)."""
    with fail_fast_unless_transient():
        portal = portals.portal(context.partition_key)
        if _skips(context, portal, qbo=False):
            for key in sorted(k.to_user_string() for k in context.selected_asset_keys):
                yield dg.MaterializeResult(asset_key=key, metadata=NO_PURCHASING)
            return
        settings = portal.settings.purchasing
        assert settings is not None
        engine = warehouse.engine()
        data_as_of = datetime.now(UTC)
        with engine.begin() as connection:
            register_portal(connection, portal)
        # A full sync asked for reads every supplier's detail again; otherwise a detail
        # is read again when it is as old as the portal's full-sync cadence.
        full = full_sync_requested(context, config)
        max_age = timedelta(days=portal.settings.sync.full_every_days)
        selected = {key.to_user_string() for key in context.selected_asset_keys}
        with (
            recording(engine) as recorder,
            halopsa.client(portal, recorder=recorder, run_id=context.run_id) as client,
        ):
            for asset in ("halo_suppliers", "halo_purchase_orders"):
                if asset not in selected:
                    continue
                started = time.monotonic()
                before = client.stats.as_dict()
                if asset == "halo_suppliers":
                    rows = list(client.suppliers())
                    with engine.connect() as connection:
                        raw, reads = with_supplier_details(
                            client,
                            connection,
                            portal.id,
                            rows,
                            now=data_as_of,
                            full=full,
                            max_age=max_age,
                        )
                    mirrored = [
                        Mirrored(
                            models.halo_suppliers, schemas.suppliers, decode.decode_suppliers(raw)
                        )
                    ]
                else:
                    raw, reads = with_purchase_order_lines(client, list(client.purchase_orders()))
                    headers, lines = decode.decode_purchase_orders(
                        raw,
                        quantity_field=settings.quantity_field,
                        unit_cost_field=settings.unit_cost_field,
                    )
                    mirrored = [
                        Mirrored(models.halo_purchase_orders, schemas.purchase_orders, headers),
                        Mirrored(
                            models.halo_purchase_order_lines, schemas.purchase_order_lines, lines
                        ),
                    ]
                metadata, rejected = mirror_entity(
                    context, engine, portal.id, asset, mirrored, data_as_of
                )
                calls = stats_delta(before, client.stats.as_dict())
                metadata.update(read_metadata(calls, started, rejected, data_as_of))
                metadata.update({k: dg.MetadataValue.int(v) for k, v in reads.counts().items()})
                context.log.info(
                    f"portal {portal.id}: {asset}: {len(raw)} record(s), {reads.read} read in "
                    f"detail, {rejected} rejected, {int(calls['calls'])} call(s)"
                )
                yield dg.MaterializeResult(asset_key=asset, metadata=metadata)


def _metadata(
    outcome: Any, failed: dict[str, str], calls: dict[str, float], started: float
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        name: dg.MetadataValue.int(value) for name, value in outcome.counts().items()
    }
    if failed:
        metadata["failures"] = failures_markdown(failed)
    metadata.update(
        {
            "api_calls": dg.MetadataValue.int(int(calls["calls"])),
            "rate_limited_429s": dg.MetadataValue.int(int(calls["rate_limited"])),
            "retries": dg.MetadataValue.int(int(calls["retries"])),
            "duration_seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
        }
    )
    return metadata


@dg.asset(
    partitions_def=portal_partitions,
    deps=["halo_suppliers", "halo_purchase_orders"],
    group_name="purchasing",
    kinds={"quickbooks"},
    owners=OWNERS,
    retry_policy=API_RETRY_POLICY,
    pool="qbo",
    description="A QBO vendor for every active supplier (and every supplier a purchase order "
    "names): the stored link, else the DisplayName, else created; a name taken by a customer "
    "or an employee (6240) gets ' (supplier <id>)'. Optionally written back to HaloPSA.",
)
def qbo_vendors(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    qbo: QBOResource,
    halopsa: HaloPSAResource,
) -> dg.MaterializeResult:
    with fail_fast_unless_transient():
        portal = portals.portal(context.partition_key)
        if _skips(context, portal, qbo=True):
            return dg.MaterializeResult(metadata=NO_PURCHASING)
        settings, engine, started = portal.settings, warehouse.engine(), time.monotonic()
        with engine.connect() as connection:
            named = {d.supplier_id for d in select_purchases(connection, settings).purchase_orders}
            suppliers = load_suppliers(connection, settings.id, also=named)
        with (
            recording(engine) as recorder,
            qbo.client(portal, engine=engine, recorder=recorder, run_id=context.run_id) as client,
        ):
            outcome = link_vendors(engine, client, settings, suppliers)
        failed = dict(outcome.failed)
        if settings.purchasing is not None and settings.purchasing.write_vendor_ids:
            with (
                recording(engine) as recorder,
                halopsa.client(portal, recorder=recorder, run_id=context.run_id) as halo,
            ):
                written = write_vendor_ids(engine, halo, settings)
            failed.update(written.failed)
            context.log.info(
                f"portal {settings.id}: {len(written.written)} vendor id(s) written to HaloPSA"
            )
    for key, reason in list(failed.items())[:10]:
        context.log.warning(f"portal {settings.id}: qbo_vendors {key}: {reason}")
    return dg.MaterializeResult(
        metadata=_metadata(outcome, failed, client.stats.as_dict(), started)
    )


@dg.asset(
    partitions_def=portal_partitions,
    deps=["qbo_vendors", "halo_purchase_orders", "halo_items"],
    check_specs=[
        dg.AssetCheckSpec(
            "qbo_purchases_exported",
            asset="qbo_purchase_orders",
            description="Every purchase order due in QBO (and its bill) is there; the "
            "failures' reasons are in the asset's metadata.",
        )
    ],
    group_name="purchasing",
    kinds={"quickbooks"},
    owners=OWNERS,
    retry_policy=API_RETRY_POLICY,
    pool="qbo",
    description="Approved and sent HaloPSA purchase orders as QBO PurchaseOrders, and received "
    "or invoiced ones as Bills linked to them, each exactly once (looked up by DocNumber "
    "first; creates carry a requestid).",
)
def qbo_purchase_orders(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    qbo: QBOResource,
) -> Iterator[Any]:
    with fail_fast_unless_transient():
        portal = portals.portal(context.partition_key)
        if _skips(context, portal, qbo=True):
            yield dg.MaterializeResult(metadata=NO_PURCHASING)
            yield dg.AssetCheckResult(
                check_name="qbo_purchases_exported", passed=True, metadata=SKIPPED
            )
            return
        engine, started = warehouse.engine(), time.monotonic()
        with (
            recording(engine) as recorder,
            qbo.client(portal, engine=engine, recorder=recorder, run_id=context.run_id) as client,
        ):
            outcome = export_purchases(engine, client, portal.settings)
    failed = {**outcome.purchase_orders.failed, **outcome.bills.failed}
    for key, reason in list(failed.items())[:10]:
        context.log.warning(f"portal {portal.id}: qbo_purchase_orders {key}: {reason}")
    for warning in outcome.warnings[:10]:
        context.log.warning(f"portal {portal.id}: {warning}")
    metadata = _metadata(outcome, failed, client.stats.as_dict(), started)
    if outcome.warnings:
        metadata["warnings"] = dg.MetadataValue.md(
            "\n".join(f"- {w}" for w in outcome.warnings[:50])
        )
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name="qbo_purchases_exported",
        passed=not failed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed": dg.MetadataValue.json(dict(list(failed.items())[:20]))},
    )
