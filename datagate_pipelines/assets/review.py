"""The variance review of a period, where operators look before approving.

`invoice_review` explains every agreement's change since the previous period (the pure
work is billing/variance.py, the reading invoicing/review.py) and describes it in the
asset's metadata: the flagged invoices, the changes by kind, the period total against the
previous one and the totals of the last periods. Its check warns while flagged invoices
are unreviewed.
"""

import warnings
from datetime import date
from decimal import Decimal

import dagster as dg
from sqlalchemy import Connection, func, select

from datagate_pipelines.assets.failures import warehouse_retry_policy
from datagate_pipelines.billing import period_label
from datagate_pipelines.billing.periods import add_months
from datagate_pipelines.invoicing.review import PeriodReview, period_review
from datagate_pipelines.orchestration.partitions import portal_and_period, portal_period_partitions
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse.models import invoices as invoices_table

#: Rows of the flagged-invoice table in the metadata; the rest are counted.
MAX_TABLE_ROWS = 50

# The same period and the one before, of the same portal (beta in Dagster 1.13, as in
# assets/billing.py).
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    THIS_AND_PREVIOUS_PERIOD = dg.MultiPartitionMapping(
        {
            "period": dg.DimensionPartitionMapping(
                "period", dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0)
            ),
            "portal": dg.DimensionPartitionMapping("portal", dg.IdentityPartitionMapping()),
        }
    )
#: Periods in the "total by period" chart.
CHART_PERIODS = 12
BAR_WIDTH = 30


@dg.asset(
    partitions_def=portal_period_partitions,
    deps=[dg.AssetDep("invoices", partition_mapping=THIS_AND_PREVIOUS_PERIOD)],
    check_specs=[
        dg.AssetCheckSpec(
            "flagged_invoices_reviewed",
            asset="invoice_review",
            description="Warns while flagged invoices are unreviewed: not approved as they "
            "stand, not left out of an approval, not held by hand, not final.",
        )
    ],
    group_name="billing",
    kinds={"sqlalchemy"},
    owners=["team:billing-ops"],
    retry_policy=warehouse_retry_policy(),
    description="What changed since the previous period, agreement by agreement and line by "
    "line (new and gone agreements, products added, ended, pro-rated, caught up, repaired, "
    "quantity and price changes, usage, holds), with the invoices flagged for a look "
    "(review.flag_change_percent / flag_change_amount in portals.yaml) and the drafts' "
    "fingerprint. The same as `datagate review`; approve with `datagate approve` or the "
    "approve_period job.",
)
def invoice_review(
    context: dg.AssetExecutionContext, portals: PortalsResource, warehouse: WarehouseResource
):
    portal_id, period = portal_and_period(context)
    portal = portals.portal(portal_id).settings
    with warehouse.engine().connect() as connection:
        review = period_review(connection, portal, period)
        history = totals_by_period(connection, portal_id, period)
    unreviewed = review.unreviewed_flagged()
    context.log.info(
        f"portal {portal_id} {period_label(period)}: {len(review.variance.invoices)} agreements, "
        f"{len(review.variance.flagged)} flagged ({len(unreviewed)} unreviewed), "
        f"fingerprint {review.fingerprint or '-'}"
    )
    yield dg.MaterializeResult(metadata=review_metadata(review, history))
    yield dg.AssetCheckResult(
        check_name="flagged_invoices_reviewed",
        passed=not unreviewed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "unreviewed": dg.MetadataValue.int(len(unreviewed)),
            "invoices": dg.MetadataValue.md(
                "\n".join(
                    f"- {v.customer_name} ({v.invoice_key or v.agreement_key}): "
                    f"{'; '.join(v.flags)}"
                    for v in unreviewed[:MAX_TABLE_ROWS]
                )
                or "none"
            ),
        },
    )


def totals_by_period(
    connection: Connection, portal_id: str, period: date
) -> list[tuple[date, Decimal]]:
    """The portal's invoice totals of the last CHART_PERIODS periods up to `period`."""
    first = add_months(period, 1 - CHART_PERIODS)
    rows = connection.execute(
        select(invoices_table.c.period, func.sum(invoices_table.c.total))
        .where(
            invoices_table.c.portal_id == portal_id,
            invoices_table.c.period >= first,
            invoices_table.c.period <= period,
        )
        .group_by(invoices_table.c.period)
        .order_by(invoices_table.c.period)
    ).all()
    # Money sums come back as Decimals on both databases (the Money type), cents exact.
    return [(row[0], Decimal(row[1]).quantize(Decimal("0.01"))) for row in rows]


def review_metadata(
    review: PeriodReview, history: list[tuple[date, Decimal]]
) -> dict[str, dg.MetadataValue]:
    variance = review.variance
    counts = variance.counts()
    percent = variance.change_percent
    return {
        "state": dg.MetadataValue.text(review.state()),
        "fingerprint": dg.MetadataValue.text(review.fingerprint or "-"),
        "agreements": dg.MetadataValue.int(len(variance.invoices)),
        "flagged": dg.MetadataValue.int(len(variance.flagged)),
        "unreviewed_flagged": dg.MetadataValue.int(len(review.unreviewed_flagged())),
        "total": dg.MetadataValue.text(f"{variance.total:.2f}"),
        "previous_total": dg.MetadataValue.text(f"{variance.previous_total:.2f}"),
        "change": dg.MetadataValue.text(
            f"{variance.change:+.2f}" + (f" ({percent:+.2f}%)" if percent is not None else "")
        ),
        # Integer cents: the UI plots numeric metadata by partition, without a float.
        "total_cents": dg.MetadataValue.int(int(variance.total * 100)),
        "changes_by_kind": dg.MetadataValue.md(
            "| change | count |\n|---|---:|\n"
            + "".join(f"| {kind} | {count} |\n" for kind, count in counts.items())
        ),
        "flagged_invoices": dg.MetadataValue.md(flagged_table(review)),
        "total_by_period": dg.MetadataValue.md(totals_chart(history)),
    }


def flagged_table(review: PeriodReview) -> str:
    flagged = review.variance.flagged
    if not flagged:
        return "No invoice is flagged."
    rows = [
        "| customer | agreement | invoice | previous | total | change | % | why | reviewed |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for v in flagged[:MAX_TABLE_ROWS]:
        previous = "" if v.previous_total is None else f"{v.previous_total:.2f}"
        percent = "" if v.change_percent is None else f"{v.change_percent:+.2f}"
        rows.append(
            f"| {v.customer_name} | {v.agreement_key} | {v.invoice_key or '—'} | {previous} "
            f"| {v.total:.2f} | {v.change:+.2f} | {percent} | {'; '.join(v.flags)} "
            f"| {'yes' if review.is_reviewed(v) else 'no'} |"
        )
    if len(flagged) > MAX_TABLE_ROWS:
        rows.append(f"\nand {len(flagged) - MAX_TABLE_ROWS} more flagged invoices")
    return "\n".join(rows)


def totals_chart(history: list[tuple[date, Decimal]]) -> str:
    """The period totals as a bar chart in Markdown (bars from exact numbers)."""
    if not history:
        return "No invoices yet."
    largest = max(abs(total) for _period, total in history) or Decimal(1)
    rows = ["| period | total | |", "|---|---:|---|"]
    for period, total in history:
        bar = "█" * int(abs(total) * BAR_WIDTH // largest)
        rows.append(f"| {period_label(period)} | {total:.2f} | {bar} |")
    return "\n".join(rows)
