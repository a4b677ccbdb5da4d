"""Draft invoices: computed by the engine, stored with their lines and ledger rows.

Drafts of a period are recomputed from scratch on every run (docs/billing.md rule 3): the old
drafts, their lines and their ledger rows are replaced in one transaction. Final invoices
are never touched, and an agreement that already has a final invoice for the period gets
no new draft for it (its late additions are caught up by the next period).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from datagate_pipelines import DatagateError
from datagate_pipelines.billing import (
    LEDGER_TERMS,
    LINE_COLUMNS,
    BillingInputError,
    BillingResult,
    BillingSettings,
    bill_period,
    period_label,
)
from datagate_pipelines.billing.periods import add_months
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.invoicing.holds import apply_manual_holds
from datagate_pipelines.invoicing.inputs import load_billing_inputs
from datagate_pipelines.schemas import billing as schemas
from datagate_pipelines.schemas.checks import records
from datagate_pipelines.warehouse.models import (
    billing_ledger,
    billing_periods,
    invoice_lines,
    invoices,
)
from datagate_pipelines.warehouse.upsert import upsert


class BillingOrderError(DatagateError):
    """Periods are billed in order: the ledger of P depends on every period before it."""


def billing_settings(portal: PortalSettings) -> BillingSettings:
    return BillingSettings(
        billing_start=portal.billing_start,
        in_advance_months=portal.sync.in_advance_months,
        allow_pro_rata=portal.sync.allow_pro_rata,
        use_default_agreement=portal.sync.use_default_agreement,
        payment_terms_days=portal.invoicing.payment_terms_days,
        credit_past_changes=portal.invoicing.credit_past_changes,
    )


def check_period_order(connection: Connection, portal: PortalSettings, period: date) -> None:
    if period < portal.billing_start:
        raise BillingOrderError(
            f"portal {portal.id}: billing period {period_label(period)} is before billing_start "
            f"{period_label(portal.billing_start)}"
        )
    if period == portal.billing_start:
        return
    previous = add_months(period, -1)
    computed = connection.execute(
        select(billing_periods.c.period).where(
            billing_periods.c.portal_id == portal.id, billing_periods.c.period == previous
        )
    ).first()
    if computed is None:
        raise BillingOrderError(
            f"portal {portal.id}: bill {period_label(previous)} before {period_label(period)} "
            "(each period's ledger depends on the one before)"
        )


@dataclass
class DraftOutcome:
    result: BillingResult
    kept_final: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def compute_drafts(
    connection: Connection, portal: PortalSettings, period: date, *, run_id: str | None = None
) -> DraftOutcome:
    """Run the engine for the period and store its drafts (replacing the previous drafts)."""
    check_period_order(connection, portal, period)
    inputs = load_billing_inputs(connection, portal.id, period)
    try:
        result = bill_period(period, billing_settings(portal), **inputs)
    except BillingInputError as error:  # name the portal and period: the engine knows neither
        raise BillingInputError(
            f"portal {portal.id}, period {period_label(period)}: {error}"
        ) from None
    # The frames are checked at the boundary before they are stored; a failure is a bug in
    # the engine, not bad input, so it stops the run (lazily, listing every failing row).
    schemas.invoices.validate(result.invoices, lazy=True)
    schemas.invoice_lines.validate(result.invoice_lines, lazy=True)
    final_agreements = set(
        connection.execute(
            select(invoices.c.agreement_key).where(
                invoices.c.portal_id == portal.id,
                invoices.c.period == period,
                invoices.c.status == "final",
            )
        ).scalars()
    )
    _delete_drafts(connection, portal.id, period)
    fresh = result.invoices[~result.invoices["agreement_key"].isin(final_agreements)]
    keys = set(fresh["invoice_key"])
    now = datetime.now(UTC)
    invoice_rows = [
        {
            "portal_id": portal.id,
            "period": period,
            "invoice_key": row["invoice_key"],
            "customer_id": row["customer_id"],
            "customer_name": row["customer_name"],
            "agreement_key": row["agreement_key"],
            "halo_contract_id": row["halo_contract_id"],
            "status": row["status"],
            "hold_reasons": list(row["hold_reasons"]),
            "invoice_date": row["invoice_date"],
            "due_date": row["due_date"],
            "subtotal": row["subtotal"],
            "tax": row["tax"],
            "total": row["total"],
            "computed_at": now,
        }
        for row in records(fresh)
    ]
    if invoice_rows:
        connection.execute(insert(invoices), invoice_rows)
    ids = (
        dict(
            connection.execute(
                select(invoices.c.invoice_key, invoices.c.id).where(
                    invoices.c.portal_id == portal.id, invoices.c.invoice_key.in_(keys)
                )
            ).all()
        )
        if keys
        else {}
    )
    line_rows = [
        {**_line(row), "invoice_id": ids[row["invoice_key"]]}
        for row in records(result.invoice_lines)
        if row["invoice_key"] in keys
    ]
    if line_rows:
        connection.execute(insert(invoice_lines), line_rows)
    ledger_rows = [
        {
            "portal_id": portal.id,
            "product_id": row["product_id"],
            "service_month": row["service_month"],
            "period": period,
            "invoice_id": ids[row["invoice_key"]],
            **{name: row[name] for name in LEDGER_TERMS},
        }
        for row in records(result.ledger)
        if row["invoice_key"] in keys
    ]
    if ledger_rows:
        connection.execute(insert(billing_ledger), ledger_rows)
    # Operators' holds outlive the recomputation (docs/billing.md rules 4 and 5 apply to them).
    held = int((fresh["status"] == "held").sum()) + apply_manual_holds(
        connection, portal.id, period
    )
    upsert(
        connection,
        billing_periods,
        [
            {
                "portal_id": portal.id,
                "period": period,
                "computed_at": now,
                "run_id": run_id,
                "invoices": len(invoice_rows) + len(final_agreements),
                "held": held,
            }
        ],
        key=("portal_id", "period"),
        update_columns=("computed_at", "run_id", "invoices", "held"),
    )
    return DraftOutcome(
        result,
        sorted(final_agreements),
        {
            "invoices": len(invoice_rows),
            "held": held,
            "lines": len(line_rows),
            "ledger_rows": len(ledger_rows),
            "final_kept": len(final_agreements),
            "rejects": len(result.rejects),
        },
    )


# A stored line is the engine's line without its invoice key (the row names its invoice).
LINE_FIELDS = tuple(name for name in LINE_COLUMNS if name != "invoice_key")


def _line(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row.get(name) for name in LINE_FIELDS}


def _delete_drafts(connection: Connection, portal_id: str, period: date) -> None:
    draft_ids = select(invoices.c.id).where(
        invoices.c.portal_id == portal_id,
        invoices.c.period == period,
        invoices.c.status.in_(("draft", "held")),
    )
    connection.execute(delete(billing_ledger).where(billing_ledger.c.invoice_id.in_(draft_ids)))
    connection.execute(delete(invoice_lines).where(invoice_lines.c.invoice_id.in_(draft_ids)))
    connection.execute(
        delete(invoices).where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.status.in_(("draft", "held")),
        )
    )
