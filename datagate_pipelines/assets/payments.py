"""Payments: QBO → warehouse → HaloPSA, per portal (the `payments` job).

Thin adapters over `exporting.payments` and `exporting.halopsa_payments`: build the client,
call, describe. The nightly schedule runs them for every portal with a QBO company, and the
`qbo_webhooks` sensor when QBO reports a change. Both are safe to repeat or to kill.
"""

import time
from typing import Any

import dagster as dg

from datagate_pipelines.assets.failures import api_retry_policy, fail_fast_unless_transient
from datagate_pipelines.exporting.halopsa_payments import write_back_payments
from datagate_pipelines.exporting.payments import refresh_payments
from datagate_pipelines.orchestration.partitions import portal_partitions
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.request_log import recording

GROUP = "payments"
OWNERS = ["team:billing-ops"]
API_RETRY_POLICY = api_retry_policy()
NO_QBO = {"skipped": "no qbo section in portals.yaml"}


def _listed(items: list[str], limit: int = 20) -> dg.MetadataValue:
    more = f"\n- … and {len(items) - limit} more" if len(items) > limit else ""
    return dg.MetadataValue.md("\n".join(f"- {item}" for item in items[:limit]) + more)


@dg.asset(
    partitions_def=portal_partitions,
    deps=["qbo_invoice_export"],
    group_name=GROUP,
    kinds={"quickbooks"},
    owners=OWNERS,
    retry_policy=API_RETRY_POLICY,
    pool="qbo",
    description="Payments recorded in QBO since the portal's last refresh (change data capture; "
    "our open invoices when the cursor is older than 30 days): one row per payment "
    "application, history kept, and each invoice's payment status and balance.",
)
def qbo_payments(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    qbo: QBOResource,
) -> dg.MaterializeResult:
    started = time.monotonic()
    with fail_fast_unless_transient():
        portal = portals.portal(context.partition_key)
        if portal.settings.qbo is None:
            context.log.info(f"portal {portal.id} has no qbo section: no payments to read")
            return dg.MaterializeResult(metadata=NO_QBO)
        engine = warehouse.engine()
        with (
            recording(engine) as recorder,
            qbo.client(portal, engine=engine, recorder=recorder, run_id=context.run_id) as client,
        ):
            refresh = refresh_payments(engine, client, portal.settings, run_id=context.run_id)
    summary = ", ".join(f"{k} {v}" for k, v in refresh.counts().items() if v)
    context.log.info(
        f"portal {portal.id}: payments read by {refresh.mode} in {refresh.api_calls} QBO "
        f"call(s): {summary or 'nothing changed'}"
    )
    if refresh.reason:
        context.log.warning(f"portal {portal.id}: {refresh.mode}: {refresh.reason}")
    for item in refresh.unmatched[:10]:
        context.log.warning(f"portal {portal.id}: {item}: an invoice we never exported; kept")
    metadata: dict[str, Any] = {
        "mode": dg.MetadataValue.text(refresh.mode),
        "api_calls": dg.MetadataValue.int(refresh.api_calls),
        # The budget (docs/qbo-api.md §6.1): ≤ 2 calls when nothing changed, else about
        # one per 1,000 changed objects.
        "calls_per_1000_changed": dg.MetadataValue.float(
            round(refresh.api_calls * 1000 / max(refresh.changed_objects, 1), 2)
        ),
        **{name: dg.MetadataValue.int(value) for name, value in refresh.counts().items()},
        "cursor": dg.MetadataValue.text(refresh.cursor.isoformat() if refresh.cursor else ""),
        "duration_seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
    }
    if refresh.reason:
        metadata["why_not_cdc"] = dg.MetadataValue.text(refresh.reason)
    for name, items in (
        ("unmatched_payments", refresh.unmatched),
        ("deleted_in_qbo_invoices", refresh.deleted_in_qbo),
        ("changed_invoices", refresh.changed),
    ):
        if items:
            metadata[name] = _listed(items)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=portal_partitions,
    deps=[qbo_payments, "halo_invoice_export"],
    group_name=GROUP,
    kinds={"halopsa"},
    owners=OWNERS,
    retry_policy=API_RETRY_POLICY,
    pool="halopsa",
    description="Each QBO payment application recorded on its HaloPSA invoice "
    "(/api/InvoicePayment), exactly once: looked up by our reference before it is created; "
    "changed or removed ones replaced.",
)
def halo_invoice_payments(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
) -> dg.MaterializeResult:
    started = time.monotonic()
    with fail_fast_unless_transient():
        portal = portals.portal(context.partition_key)
        if portal.settings.qbo is None:
            return dg.MaterializeResult(metadata=NO_QBO)
        if not portal.settings.payments.halopsa_write_back:
            context.log.info(f"portal {portal.id}: payments.halopsa_write_back is off")
            return dg.MaterializeResult(
                metadata={"skipped": "payments.halopsa_write_back is false in portals.yaml"}
            )
        engine = warehouse.engine()
        with (
            recording(engine) as recorder,
            halopsa.client(portal, recorder=recorder, run_id=context.run_id) as client,
        ):
            outcome = write_back_payments(engine, client, portal.settings)
    metadata: dict[str, Any] = {
        **{name: dg.MetadataValue.int(value) for name, value in outcome.counts().items()},
        "api_calls": dg.MetadataValue.int(int(client.stats.calls)),
        "duration_seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
    }
    if outcome.failed:
        metadata["failures"] = _listed([f"{k}: {v}" for k, v in outcome.failed.items()])
    if outcome.waiting:
        metadata["waiting"] = _listed([f"{k}: {v}" for k, v in outcome.waiting.items()])
    return dg.MaterializeResult(metadata=metadata)
