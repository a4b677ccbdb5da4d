"""Billing: draft invoices per (portal, billing period), finalization and numbering.

`invoice_lines` runs the pure engine and stores the drafts; `invoices` finalizes a closed
period when asked (config `finalize`), checks the money and describes the period. A nightly
close (run tag `datagate/synced-since`) finalizes only after the night's sync
(invoicing/close_gate.py).
"""

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

import dagster as dg
import pandas as pd
from sqlalchemy import Engine, select

from datagate_pipelines.assets.failures import fail_fast_unless_transient, warehouse_retry_policy
from datagate_pipelines.billing import period_label
from datagate_pipelines.config import Portal, PortalSettings
from datagate_pipelines.invoicing.approved import finalize_approved
from datagate_pipelines.invoicing.close_gate import parse_sync_tick, require_synced_since
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.finalize import FinalizeOutcome, finalize_period
from datagate_pipelines.invoicing.integrity import read_integrity
from datagate_pipelines.orchestration.partitions import portal_and_period, portal_period_partitions
from datagate_pipelines.orchestration.tags import SYNCED_SINCE_TAG
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.audit import audit_context
from datagate_pipelines.warehouse.models import invoices as invoices_table
from datagate_pipelines.warehouse.rejects import Reject, log_rejects, record_rejects
from datagate_pipelines.warehouse.request_log import recording

WAREHOUSE_RETRY_POLICY = warehouse_retry_policy()

# Both mappings are beta in Dagster 1.13 (docs/dagster.md §7 verified them for this design).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    _BY_PORTAL = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="portal")

    # P-1 of the same portal: with these self-dependencies an asset backfill bills (and
    # finalizes) periods in order. Other launchers ignore them, so drafts.py checks too.
    PREVIOUS_PERIOD = dg.MultiPartitionMapping(
        {
            "period": dg.DimensionPartitionMapping(
                "period", dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
            ),
            "portal": dg.DimensionPartitionMapping("portal", dg.IdentityPartitionMapping()),
        }
    )


tax_rates = dg.AssetSpec(
    "tax_rates",
    description="Tax rates by zip, tax code and jurisdiction (`datagate import tax-rates FILE`).",
    group_name="billing",
    kinds={"csv"},
)
product_templates = dg.AssetSpec(
    "product_templates",
    description="HaloPSA item → tax code and income account (`datagate import products FILE`).",
    group_name="billing",
    kinds={"csv"},
)
usage_charges = dg.AssetSpec(
    "usage_charges",
    description="Usage charges per portal and period (`datagate import usage FILE`).",
    group_name="billing",
    kinds={"csv"},
    partitions_def=portal_period_partitions,
)


@dg.asset(
    partitions_def=portal_period_partitions,
    deps=[
        dg.AssetDep("agreements", partition_mapping=_BY_PORTAL),
        dg.AssetDep("product_sites", partition_mapping=_BY_PORTAL),
        dg.AssetDep("invoice_lines", partition_mapping=PREVIOUS_PERIOD),
        "tax_rates",
        "product_templates",
        "usage_charges",
    ],
    group_name="billing",
    kinds={"pandas", "sqlalchemy"},
    owners=["team:billing-ops"],
    retry_policy=WAREHOUSE_RETRY_POLICY,
    description="Draft invoices and their lines for the period, recomputed from scratch by the "
    "billing engine (docs/billing.md); final invoices are kept as they are. Needs the previous period billed.",
)
def invoice_lines(
    context: dg.AssetExecutionContext, portals: PortalsResource, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    portal_id, period = portal_and_period(context)
    portal = portals.portal(portal_id).settings
    with fail_fast_unless_transient(), warehouse.engine().begin() as connection:
        outcome = compute_drafts(connection, portal, period, run_id=context.run_id)
        rejects = [Reject(**r) for r in outcome.result.rejects.to_dict("records")]
        record_rejects(
            connection,
            portal_id,
            f"invoice_lines:{period_label(period)}",
            rejects,
            run_id=context.run_id,
        )
    log_rejects(context, portal_id, rejects)
    counts = ", ".join(f"{name} {value}" for name, value in outcome.counts.items())
    context.log.info(f"portal {portal_id} {period_label(period)}: drafts: {counts}")
    return dg.MaterializeResult(
        metadata={name: dg.MetadataValue.int(value) for name, value in outcome.counts.items()}
    )


class InvoicesConfig(dg.Config):
    finalize: bool = False
    """Finalize and number the period's drafts (only once the period has ended). With
    invoicing.approval: manual, only the drafts an approval approved (`datagate approve`)."""
    approval_id: int | None = None
    """The approval to carry out (set by the approvals sensor); default: the period's open one."""


CHECKS = [
    dg.AssetCheckSpec(
        "invoice_totals_add_up",
        asset="invoices",
        blocking=True,
        description="Every invoice: subtotal = sum of line amounts, tax = sum of line taxes, total = subtotal + tax.",
    ),
    dg.AssetCheckSpec(
        "service_months_billed_once",
        asset="invoices",
        blocking=True,
        description="No (product, service month) the period bills is billed by another bill "
        "in the portal's billing ledger (each period checks its own bills).",
    ),
    dg.AssetCheckSpec(
        "invoice_numbers_unique",
        asset="invoices",
        blocking=True,
        description="No invoice number or DocNumber is used twice in the portal.",
    ),
    dg.AssetCheckSpec(
        "held_invoices",
        asset="invoices",
        description="Invoices on hold for the period, with their reasons (a warning, not a failure).",
    ),
]


@dg.asset(
    partitions_def=portal_period_partitions,
    deps=[invoice_lines, dg.AssetDep("invoices", partition_mapping=PREVIOUS_PERIOD)],
    check_specs=CHECKS,
    group_name="billing",
    kinds={"sqlalchemy"},
    owners=["team:billing-ops"],
    # Finalizing again after a lost connection is safe: it is one transaction, and final
    # invoices are kept as they are (their numbers too).
    retry_policy=WAREHOUSE_RETRY_POLICY,
    description="The period's invoices: drafts, held invoices with their reasons, and — with "
    "config finalize: true once the period has ended — final invoices with their numbers.",
)
def invoices(
    context: dg.AssetExecutionContext,
    config: InvoicesConfig,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    qbo: QBOResource,
):
    portal_id, period = portal_and_period(context)
    portal = portals.portal(portal_id).settings
    engine = warehouse.engine()
    if config.finalize:
        synced_since = context.run.tags.get(SYNCED_SINCE_TAG)
        if synced_since is not None:
            # A nightly close: not on data the night's sync did not refresh. The drafts
            # (invoice_lines) are refreshed already; nothing is finalized or exported.
            with fail_fast_unless_transient():
                require_synced_since(
                    engine,
                    portal_id,
                    period,
                    parse_sync_tick(synced_since),
                    run_id=context.run_id,
                )
        with (
            fail_fast_unless_transient(),
            audit_context(run_id=context.run_id),
            numbers_taken_in_qbo(
                portals.portal(portal_id), qbo, engine, context.run_id
            ) as is_taken,
        ):
            done = _finalize(engine, portal, period, config.approval_id, is_taken)
        context.log.info(
            f"portal {portal_id} {period_label(period)}: finalized {len(done.finalized)}, "
            f"held {len(done.held)}, blocked {len(done.blocked)}"
        )
        for key, reasons in done.blocked.items():
            context.log.warning(f"portal {portal_id}: {key} not finalized: {'; '.join(reasons)}")
    with engine.connect() as connection:
        frame = pd.DataFrame(
            connection.execute(
                select(invoices_table).where(
                    invoices_table.c.portal_id == portal_id, invoices_table.c.period == period
                )
            )
            .mappings()
            .all()
        )
        found = read_integrity(connection, portal_id, period)
    yield dg.MaterializeResult(metadata=period_metadata(frame, period))
    yield _totals_check(frame, found.line_sums)
    twice = found.billed_twice
    yield dg.AssetCheckResult(
        check_name="service_months_billed_once",
        passed=not twice,
        metadata={
            "duplicates": dg.MetadataValue.json([[p, m.isoformat()] for p, m in twice[:20]]),
            "proof": _proof(found.billed_once_by, "the period's bills, each against the ledger"),
        },
    )
    yield dg.AssetCheckResult(
        check_name="invoice_numbers_unique",
        passed=not found.numbers_reused,
        metadata={
            "reused": dg.MetadataValue.json(found.numbers_reused[:20]),
            "proof": _proof(found.numbers_unique_by, "the portal's invoice numbers"),
        },
    )
    held = frame[frame["status"] == "held"] if not frame.empty else frame
    yield dg.AssetCheckResult(
        check_name="held_invoices",
        passed=held.empty,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "held": dg.MetadataValue.int(len(held)),
            "reasons": dg.MetadataValue.md(
                "\n".join(
                    f"- {r.customer_name} ({r.agreement_key}): {'; '.join(r.hold_reasons)}"
                    for r in held.itertuples()
                )
                or "none"
            ),
        },
    )


def _finalize(
    engine: Engine,
    portal: PortalSettings,
    period: date,
    approval_id: int | None,
    is_taken: Callable[[str], bool],
) -> FinalizeOutcome:
    """Manual approval: what an approval approved (invoicing/approval.py); auto: every draft."""
    if portal.invoicing.approval == "manual":
        return finalize_approved(
            engine, portal, period, approval_id=approval_id, is_taken=is_taken
        ).outcome
    with audit_context(actor="datagate (approval: auto)"), engine.begin() as connection:
        return finalize_period(connection, portal, period, is_taken=is_taken)


@contextmanager
def numbers_taken_in_qbo(
    portal: Portal, qbo: QBOResource, engine: Engine, run_id: str
) -> Iterator[Callable[[str], bool]]:
    """Which DocNumbers the portal's QBO company already uses (none without QBO), so
    numbering skips them. Opened before the finalization transaction: a token refresh
    must not wait on the warehouse's write lock."""
    if portal.settings.qbo is None:
        yield lambda _doc_number: False
        return
    with recording(engine) as recorder:
        lookup = qbo.doc_number_lookup(portal, engine=engine, recorder=recorder, run_id=run_id)
        try:
            yield lookup
        finally:
            lookup.close()


def _proof(index: str | None, read: str) -> dg.MetadataValue:
    """How a uniqueness check knows: the database's unique index, or the rows it read."""
    if index:
        return dg.MetadataValue.text(f"enforced by the warehouse's unique index {index}")
    return dg.MetadataValue.text(f"no unique index enforces it here: read {read}")


def _totals_check(frame: pd.DataFrame, line_sums: dict[int, tuple]) -> dg.AssetCheckResult:
    wrong = []
    for row in frame.itertuples() if not frame.empty else []:
        amount, tax = line_sums.get(row.id, (0, 0))
        if row.subtotal != amount or row.tax != tax or row.total != row.subtotal + row.tax:
            wrong.append(
                f"{row.invoice_key}: subtotal {row.subtotal} vs lines {amount}, tax {row.tax} vs {tax}, total {row.total}"
            )
    return dg.AssetCheckResult(
        check_name="invoice_totals_add_up",
        passed=not wrong,
        metadata={"mismatches": dg.MetadataValue.json(wrong[:20])},
    )


def period_metadata(frame: pd.DataFrame, period: date) -> dict[str, dg.MetadataValue]:
    """A Markdown table of the period and its totals (money shown exactly, as text)."""
    if frame.empty:
        return {
            "invoices": dg.MetadataValue.int(0),
            "period": dg.MetadataValue.text(period_label(period)),
        }
    header = "| customer | agreement | number | subtotal | tax | total | status | hold reason |\n|---|---|---|---:|---:|---:|---|---|\n"
    body = "".join(
        f"| {r.customer_name} | {r.agreement_key} | {r.doc_number or ''} | {r.subtotal} | {r.tax} | {r.total} "
        f"| {r.status} | {'; '.join(r.hold_reasons)} |\n"
        for r in frame.sort_values(["customer_name", "agreement_key"]).itertuples()
    )
    subtotal, tax, total = (
        sum(frame[c], start=type(frame[c].iloc[0])(0)) for c in ("subtotal", "tax", "total")
    )
    body += f"| **total** | | | **{subtotal}** | **{tax}** | **{total}** | | |\n"
    counts = frame["status"].value_counts()
    return {
        "period": dg.MetadataValue.text(period_label(period)),
        "invoices": dg.MetadataValue.int(len(frame)),
        "draft": dg.MetadataValue.int(int(counts.get("draft", 0))),
        "held": dg.MetadataValue.int(int(counts.get("held", 0))),
        "final": dg.MetadataValue.int(int(counts.get("final", 0))),
        "total": dg.MetadataValue.text(str(total)),
        # Integer cents, so the UI can chart billed totals without a float in sight.
        "total_cents": dg.MetadataValue.int(int(total * 100)),
        "summary": dg.MetadataValue.md(header + body),
    }
