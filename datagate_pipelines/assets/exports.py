"""Exports: a period's final invoices into HaloPSA and QuickBooks Online (payments come
back per portal: assets/payments.py).

Thin adapters over `datagate_pipelines.exporting`: build the client, call, describe. They
run after `invoices` (whose blocking money checks gate them) and are safe to repeat or to
kill: every create is looked up first and recorded at once (see exporting/ledger.py).
A portal without a `qbo:` section skips the QBO assets with a log line, not an error.
"""

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
from sqlalchemy import Engine

from datagate_pipelines.assets.failures import api_retry_policy, fail_fast_unless_transient
from datagate_pipelines.billing import period_label
from datagate_pipelines.config import Portal
from datagate_pipelines.exporting.halopsa import export_to_halopsa
from datagate_pipelines.exporting.ledger import ExportOutcome
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
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.orchestration.partitions import portal_and_period, portal_period_partitions
from datagate_pipelines.orchestration.tags import FAILED_EXPORTS
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.audit import audit_context
from datagate_pipelines.warehouse.request_log import recording

# Checks partitioned like their asset judge the partition just exported (Dagster 1.13: a
# preview feature, docs/dagster.md §2 "Asset checks"); its warning says nothing to act on.
warnings.filterwarnings(
    "ignore", message=".*partitions_def on an AssetCheckSpec.*", category=dg.PreviewWarning
)

API_RETRY_POLICY = api_retry_policy()
GROUP = "exports"
OWNERS = ["team:billing-ops"]
REFERENCE_ASSETS = {CUSTOMER: "qbo_customers", ITEM: "qbo_items", TERM: "qbo_terms"}


@dataclass(frozen=True)
class ExportStep:
    """What every export asset works with: the portal and period of its partition, the
    warehouse, and when it started (for the calls' metadata)."""

    context: dg.AssetExecutionContext
    portal: Portal
    period: date
    engine: Engine
    started: float

    def skips_qbo(self) -> bool:
        """Whether the portal has no `qbo:` section (QBO export off); logged, not an error."""
        if self.portal.settings.qbo is not None:
            return False
        self.context.log.info(
            f"portal {self.portal.id} has no qbo section in portals.yaml: QBO export is off, "
            "skipped"
        )
        return True

    @contextmanager
    def halopsa_client(self, halopsa: HaloPSAResource) -> Iterator[HaloPSAClient]:
        with (
            recording(self.engine) as recorder,
            halopsa.client(self.portal, recorder=recorder, run_id=self.context.run_id) as client,
        ):
            yield client

    @contextmanager
    def qbo_client(self, qbo: QBOResource) -> Iterator[QBOClient]:
        with (
            recording(self.engine) as recorder,
            qbo.client(
                self.portal, engine=self.engine, recorder=recorder, run_id=self.context.run_id
            ) as client,
        ):
            yield client

    def call_metadata(self, stats: dict[str, float]) -> dict[str, dg.MetadataValue]:
        return {
            "api_calls": dg.MetadataValue.int(int(stats["calls"])),
            "rate_limited_429s": dg.MetadataValue.int(int(stats["rate_limited"])),
            "retries": dg.MetadataValue.int(int(stats["retries"])),
            "duration_seconds": dg.MetadataValue.float(round(time.monotonic() - self.started, 3)),
        }


@contextmanager
def export_step(
    context: dg.AssetExecutionContext, portals: PortalsResource, warehouse: WarehouseResource
) -> Iterator[ExportStep]:
    """The step of one export asset; configuration and API errors that will not fix
    themselves fail it at once, transient ones go to its retry policy."""
    portal_id, period = portal_and_period(context)
    started = time.monotonic()
    with fail_fast_unless_transient(), audit_context(run_id=context.run_id, actor="datagate"):
        yield ExportStep(context, portals.portal(portal_id), period, warehouse.engine(), started)


SKIPPED = {"skipped": "no qbo section in portals.yaml"}


def failures_markdown(failed: dict[str, str]) -> dg.MetadataValue:
    return dg.MetadataValue.md(
        "\n".join(f"- `{key}`: {reason}" for key, reason in list(failed.items())[:50])
    )


def _exported(
    step: ExportStep, outcome: ExportOutcome, stats: dict[str, float]
) -> dg.MaterializeResult:
    """The export's materialization: counts, failures (also logged), calls."""
    for key, reason in list(outcome.failed.items())[:10]:
        step.context.log.warning(
            f"portal {step.portal.id}: {outcome.target} export of {key} failed: {reason}"
        )
    metadata: dict[str, Any] = {
        "period": dg.MetadataValue.text(period_label(step.period)),
        **{name: dg.MetadataValue.int(value) for name, value in outcome.counts().items()},
    }
    if outcome.failed:
        metadata["failures"] = failures_markdown(outcome.failed)
    return dg.MaterializeResult(metadata={**metadata, **step.call_metadata(stats)})


def _problems(verification: Verification) -> list[str]:
    return [*verification.not_exported, *verification.mismatched]


def _check(name: str, verification: Verification) -> dg.AssetCheckResult:
    """This partition's exports: passed, or failed with ERROR severity when any of its final
    invoices is not in the target (refused, not sent) or differs there, naming the first."""
    problems = _problems(verification)
    return dg.AssetCheckResult(
        check_name=name,
        passed=verification.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{verification.checked} final invoice(s) checked, all in {verification.target}"
            if verification.passed
            else f"{len(problems)} of {verification.checked} final invoice(s) not right in "
            f"{verification.target}: " + "; ".join(problems[:3])
        ),
        metadata={
            "checked": dg.MetadataValue.int(verification.checked),
            "not_exported": dg.MetadataValue.json(verification.not_exported[:20]),
            "mismatched": dg.MetadataValue.json(verification.mismatched[:20]),
        },
    )


def _fail_unless_exported(step: ExportStep, verification: Verification) -> None:
    """Fail the step (and so the run) when an invoice of the partition did not make it:
    the materialization and the check above are recorded already. Retrying would not
    help — a refusal needs the data fixed — and the next export run retries it anyway."""
    problems = _problems(verification)
    if not problems:
        return
    raise dg.Failure(
        description=f"portal {step.portal.id} {period_label(step.period)}: {len(problems)} "
        f"invoice(s) not exported to {verification.target}: " + "; ".join(problems[:3]),
        metadata={FAILED_EXPORTS: dg.MetadataValue.int(len(problems))},
        allow_retries=False,
    )


# --- HaloPSA -------------------------------------------------------------------------------------


@dg.asset(
    partitions_def=portal_period_partitions,
    deps=["invoices"],
    check_specs=[
        dg.AssetCheckSpec(
            "halo_exports_match",
            asset="halo_invoice_export",
            partitions_def=portal_period_partitions,
            description="This partition: every final invoice has its HaloPSA invoice or credit "
            "note (id recorded), live, with our DocNumber as its third-party number and our "
            "total. ERROR when any is refused, missing or different.",
        )
    ],
    group_name=GROUP,
    kinds={"halopsa"},
    owners=OWNERS,
    retry_policy=API_RETRY_POLICY,
    pool="halopsa",
    description="The period's final invoices exported back to HaloPSA against their contract "
    "(docs/billing.md), each exactly once: looked up before it is created, recorded right after; "
    "a negative total goes as a credit note. Any invoice not exported fails the step, with the "
    "reasons.",
)
def halo_invoice_export(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    halopsa: HaloPSAResource,
) -> Iterator[Any]:
    with export_step(context, portals, warehouse) as step, step.halopsa_client(halopsa) as client:
        settings = step.portal.settings
        outcome = export_to_halopsa(step.engine, client, settings, step.period)
        verification = verify_halopsa(step.engine, client, settings, step.period)
    yield _exported(step, outcome, client.stats.as_dict())
    yield _check("halo_exports_match", verification)
    _fail_unless_exported(step, verification)


# --- QBO: customers, items, terms ----------------------------------------------------------------


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
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    with export_step(context, portals, warehouse) as step:
        if step.skips_qbo():
            for asset in sorted(selected):
                yield dg.MaterializeResult(asset_key=asset, metadata=SKIPPED)
            return
        engine, settings = step.engine, step.portal.settings
        with engine.connect() as connection:
            needs = period_needs(connection, settings.id, step.period)
        links = {
            CUSTOMER: lambda c: link_customers(engine, c, settings, needs.customers),
            ITEM: lambda c: link_items(engine, c, settings, needs.item_ids, needs.generic_items),
            TERM: lambda c: link_terms(engine, c, settings),
        }
        with step.qbo_client(qbo) as client:
            for entity, link in links.items():
                asset = REFERENCE_ASSETS[entity]
                if asset not in selected:
                    continue
                started = time.monotonic()
                before = client.stats.as_dict()
                outcome = link(client)
                after = client.stats.as_dict()
                for key, reason in list(outcome.failed.items())[:10]:
                    context.log.warning(f"portal {settings.id}: {asset} {key}: {reason}")
                metadata: dict[str, Any] = {
                    name: dg.MetadataValue.int(value) for name, value in outcome.counts().items()
                }
                if outcome.failed:
                    metadata["failures"] = failures_markdown(outcome.failed)
                delta = {k: after[k] - before.get(k, 0) for k in after}
                metadata.update(step.call_metadata(delta))
                metadata["duration_seconds"] = dg.MetadataValue.float(
                    round(time.monotonic() - started, 3)
                )
                yield dg.MaterializeResult(asset_key=asset, metadata=metadata)


# --- QBO: invoices ------------------------------------------------------------------------------


@dg.asset(
    partitions_def=portal_period_partitions,
    deps=["invoices", *REFERENCE_ASSETS.values()],
    check_specs=[
        dg.AssetCheckSpec(
            "qbo_exports_match",
            asset="qbo_invoice_export",
            partitions_def=portal_period_partitions,
            description="This partition: every final invoice has its QBO invoice, or credit "
            "memo for a negative total (id recorded), with our DocNumber (unchanged since "
            "export) and our total. ERROR when any is refused, missing or different.",
        )
    ],
    group_name=GROUP,
    kinds={"quickbooks"},
    owners=OWNERS,
    retry_policy=API_RETRY_POLICY,
    pool="qbo",
    description="The period's final invoices exported into QBO in batches of 30, each exactly "
    "once (looked up by DocNumber first; creates carry a requestid), negative totals as credit "
    "memos; TotalAmt verified. Any invoice QBO refuses fails the step, with QBO's code and "
    "message.",
)
def qbo_invoice_export(
    context: dg.AssetExecutionContext,
    portals: PortalsResource,
    warehouse: WarehouseResource,
    qbo: QBOResource,
) -> Iterator[Any]:
    with export_step(context, portals, warehouse) as step:
        if step.skips_qbo():
            yield dg.MaterializeResult(metadata=SKIPPED)
            yield dg.AssetCheckResult(check_name="qbo_exports_match", passed=True, metadata=SKIPPED)
            return
        with step.qbo_client(qbo) as client:
            settings = step.portal.settings
            outcome = export_to_qbo(step.engine, client, settings, step.period)
            verification = verify_qbo(step.engine, client, settings, step.period)
    yield _exported(step, outcome, client.stats.as_dict())
    yield _check("qbo_exports_match", verification)
    _fail_unless_exported(step, verification)
