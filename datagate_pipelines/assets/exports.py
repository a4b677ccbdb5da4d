"""Exports: a period's final invoices into HaloPSA and QuickBooks Online, payments read back.

Thin adapters over `datagate_pipelines.exporting`: build the client, call, describe. They
run after `invoices` (whose blocking money checks gate them) and are safe to repeat or to
kill: every create is looked up first and recorded at once (see exporting/ledger.py).
A portal without a `qbo:` section skips the QBO assets with a log line, not an error.
"""

import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import dagster as dg

from datagate_pipelines.assets.failures import api_retry_policy, fail_fast_unless_transient
from datagate_pipelines.billing import period_label
from datagate_pipelines.config import Portal
from datagate_pipelines.exporting.halopsa import export_to_halopsa
from datagate_pipelines.exporting.ledger import ExportOutcome
from datagate_pipelines.exporting.payments import read_payments
from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.exporting.qbo_references import (
    CUSTOMER,
    ITEM,
    TERM,
    link_customers,
    link_items,
    link_terms,
    period_needs,
)
from datagate_pipelines.exporting.verify import Verification, verify_halopsa, verify_qbo
from datagate_pipelines.partitions import portal_period_partitions
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.request_log import recording

API_RETRY_POLICY = api_retry_policy()
GROUP = "exports"
OWNERS = ["team:billing-ops"]
REFERENCE_ASSETS = {CUSTOMER: "qbo_customers", ITEM: "qbo_items", TERM: "qbo_terms"}


def partition(context: dg.AssetExecutionContext) -> tuple[str, date]:
    keys = context.partition_key.keys_by_dimension
    return keys["portal"], date.fromisoformat(keys["period"])


def _skip_qbo(context: dg.AssetExecutionContext, portal: Portal) -> bool:
    if portal.settings.qbo is not None:
        return False
    context.log.info(
        f"portal {portal.id} has no qbo section in portals.yaml: QBO export is off, skipped"
    )
    return True


def _call_metadata(stats: dict[str, float], started: float) -> dict[str, dg.MetadataValue]:
    return {
        "api_calls": dg.MetadataValue.int(int(stats["calls"])),
        "rate_limited_429s": dg.MetadataValue.int(int(stats["rate_limited"])),
        "retries": dg.MetadataValue.int(int(stats["retries"])),
        "duration_seconds": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
    }


def _export_metadata(outcome: ExportOutcome) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, Any] = {
        name: dg.MetadataValue.int(value) for name, value in outcome.counts().items()
    }
    if outcome.failed:
        metadata["failures"] = dg.MetadataValue.md(
            "\n".join(f"- `{key}`: {reason}" for key, reason in list(outcome.failed.items())[:50])
        )
    return metadata


def _log_failures(context: dg.AssetExecutionContext, portal_id: str, outcome: ExportOutcome):
    for key, reason in list(outcome.failed.items())[:10]:
        context.log.warning(
            f"portal {portal_id}: {outcome.target} export of {key} failed: {reason}"
        )


def _check(name: str, verification: Verification) -> dg.AssetCheckResult:
    """Passed, or failed: ERROR when a recorded export is gone or differs, WARN when some
    invoices are only not exported (yet): their reasons are in the export's metadata."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=verification.passed,
        severity=(
            dg.AssetCheckSeverity.ERROR if verification.mismatched else dg.AssetCheckSeverity.WARN
        ),
        metadata={
            "checked": dg.MetadataValue.int(verification.checked),
            "not_exported": dg.MetadataValue.json(verification.not_exported[:20]),
            "mismatched": dg.MetadataValue.json(verification.mismatched[:20]),
        },
    )


# --- HaloPSA ---------------------------------------------------------------------------------


@dg.asset(
    partitions_def=portal_period_partitions,
    deps=["invoices"],
    check_specs=[
        dg.AssetCheckSpec(
            "halo_exports_match",
            asset="halo_invoice_export",
            description="Every final invoice of the period has its HaloPSA invoice (id "
            "recorded), live, with our DocNumber as its third-party number and our total.",
        )
    ],
    group_name=GROUP,
    kinds={"halopsa"},
    owners=OWNERS,
    retry_policy=API_RETRY_POLICY,
    pool="halopsa",
    description="The period's final invoices exported back to HaloPSA against their contract "
    "(BILLING.md), each exactly once: looked up before it is created, recorded right after.",
)
def halo_invoice_export(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
) -> Iterator[Any]:
    portal_id, period = partition(context)
    started = time.monotonic()
    with fail_fast_unless_transient():
        portal = portals.portal(portal_id)
        engine = warehouse.engine()
        with (
            recording(engine) as recorder,
            halopsa.client(portal, recorder=recorder, run_id=context.run_id) as client,
        ):
            outcome = export_to_halopsa(engine, client, portal.settings, period)
            verification = verify_halopsa(engine, client, portal.settings, period)
            stats = client.stats.as_dict()
    _log_failures(context, portal_id, outcome)
    yield dg.MaterializeResult(
        metadata={
            "period": dg.MetadataValue.text(period_label(period)),
            **_export_metadata(outcome),
            **_call_metadata(stats, started),
        }
    )
    yield _check("halo_exports_match", verification)


# --- QBO: customers, items, terms ------------------------------------------------------------


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            REFERENCE_ASSETS[CUSTOMER],
            deps=["invoices"],
            description="QBO customers for the period's customers: the stored link, else the "
            "exact DisplayName, else created; a name taken by someone else is matched or made "
            "distinct (6240).",
            group_name=GROUP,
            kinds={"quickbooks"},
            owners=OWNERS,
            partitions_def=portal_period_partitions,
        ),
        dg.AssetSpec(
            REFERENCE_ASSETS[ITEM],
            deps=["invoices"],
            description="One QBO Service item per HaloPSA item billed in the period, posting "
            "to its income account (per item group, else product template, else the portal's).",
            group_name=GROUP,
            kinds={"quickbooks"},
            owners=OWNERS,
            partitions_def=portal_period_partitions,
        ),
        dg.AssetSpec(
            REFERENCE_ASSETS[TERM],
            description="The QBO payment term Net N for the portal's payment_terms_days.",
            group_name=GROUP,
            kinds={"quickbooks"},
            owners=OWNERS,
            partitions_def=portal_period_partitions,
        ),
    ],
    can_subset=True,
    retry_policy=API_RETRY_POLICY,
    pool="qbo",
)
def qbo_references(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    qbo: QBOResource,
) -> Iterator[dg.MaterializeResult]:
    """Find or create what the period's QBO invoices refer to, and link it."""
    portal_id, period = partition(context)
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    with fail_fast_unless_transient():
        portal = portals.portal(portal_id)
        if _skip_qbo(context, portal):
            for asset in sorted(selected):
                yield dg.MaterializeResult(
                    asset_key=asset, metadata={"skipped": "no qbo section in portals.yaml"}
                )
            return
        engine = warehouse.engine()
        with engine.connect() as connection:
            needs = period_needs(connection, portal.id, period)
        steps = {
            CUSTOMER: lambda c: link_customers(engine, c, portal.settings, needs.customers),
            ITEM: lambda c: link_items(
                engine, c, portal.settings, needs.item_ids, needs.generic_items
            ),
            TERM: lambda c: link_terms(engine, c, portal.settings),
        }
        with (
            recording(engine) as recorder,
            qbo.client(portal, engine=engine, recorder=recorder, run_id=context.run_id) as client,
        ):
            for entity, step in steps.items():
                asset = REFERENCE_ASSETS[entity]
                if asset not in selected:
                    continue
                started = time.monotonic()
                before = client.stats.as_dict()
                outcome = step(client)
                after = client.stats.as_dict()
                for key, reason in list(outcome.failed.items())[:10]:
                    context.log.warning(f"portal {portal_id}: {asset} {key}: {reason}")
                metadata: dict[str, Any] = {
                    name: dg.MetadataValue.int(value) for name, value in outcome.counts().items()
                }
                if outcome.failed:
                    metadata["failures"] = dg.MetadataValue.md(
                        "\n".join(f"- `{k}`: {r}" for k, r in list(outcome.failed.items())[:50])
                    )
                delta = {k: after[k] - before.get(k, 0) for k in after}
                yield dg.MaterializeResult(
                    asset_key=asset, metadata={**metadata, **_call_metadata(delta, started)}
                )


# --- QBO: invoices and payments ----------------------------------------------------------------


@dg.asset(
    partitions_def=portal_period_partitions,
    deps=["invoices", *REFERENCE_ASSETS.values()],
    check_specs=[
        dg.AssetCheckSpec(
            "qbo_exports_match",
            asset="qbo_invoice_export",
            description="Every final invoice of the period has its QBO invoice (id recorded) "
            "with our DocNumber (unchanged since export) and TotalAmt = our total.",
        )
    ],
    group_name=GROUP,
    kinds={"quickbooks"},
    owners=OWNERS,
    retry_policy=API_RETRY_POLICY,
    pool="qbo",
    description="The period's final invoices exported into QBO in batches of 30, each exactly "
    "once (looked up by DocNumber first; creates carry a requestid); TotalAmt verified.",
)
def qbo_invoice_export(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    qbo: QBOResource,
) -> Iterator[Any]:
    portal_id, period = partition(context)
    started = time.monotonic()
    with fail_fast_unless_transient():
        portal = portals.portal(portal_id)
        if _skip_qbo(context, portal):
            yield dg.MaterializeResult(metadata={"skipped": "no qbo section in portals.yaml"})
            yield dg.AssetCheckResult(
                check_name="qbo_exports_match",
                passed=True,
                metadata={"skipped": "no qbo section in portals.yaml"},
            )
            return
        engine = warehouse.engine()
        with (
            recording(engine) as recorder,
            qbo.client(portal, engine=engine, recorder=recorder, run_id=context.run_id) as client,
        ):
            outcome = export_to_qbo(engine, client, portal.settings, period)
            verification = verify_qbo(engine, client, portal.settings, period)
            stats = client.stats.as_dict()
    _log_failures(context, portal_id, outcome)
    yield dg.MaterializeResult(
        metadata={
            "period": dg.MetadataValue.text(period_label(period)),
            **_export_metadata(outcome),
            **_call_metadata(stats, started),
        }
    )
    yield _check("qbo_exports_match", verification)


@dg.asset(
    partitions_def=portal_period_partitions,
    deps=["qbo_invoice_export"],
    group_name=GROUP,
    kinds={"quickbooks"},
    owners=OWNERS,
    retry_policy=API_RETRY_POLICY,
    pool="qbo",
    description="Each exported invoice's Balance read back from QBO: paid, partly paid or "
    "unpaid on our invoice (voided when it was voided in QBO).",
)
def invoice_payments(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    qbo: QBOResource,
) -> dg.MaterializeResult:
    portal_id, period = partition(context)
    started = time.monotonic()
    with fail_fast_unless_transient():
        portal = portals.portal(portal_id)
        if _skip_qbo(context, portal):
            return dg.MaterializeResult(metadata={"skipped": "no qbo section in portals.yaml"})
        engine = warehouse.engine()
        with (
            recording(engine) as recorder,
            qbo.client(portal, engine=engine, recorder=recorder, run_id=context.run_id) as client,
        ):
            outcome = read_payments(engine, client, portal.settings, period)
            stats = client.stats.as_dict()
    for key in outcome.missing[:10]:
        context.log.warning(f"portal {portal_id}: the QBO invoice of {key} is gone from QBO")
    return dg.MaterializeResult(
        metadata={
            **{name: dg.MetadataValue.int(value) for name, value in outcome.counts().items()},
            **_call_metadata(stats, started),
        }
    )
