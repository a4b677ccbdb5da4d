"""Draft invoices: computed by the engine, stored with their lines and ledger rows.

Drafts of a period are recomputed from scratch on every run (docs/billing.md rule 3): the old
drafts, their lines and their ledger rows are replaced in one transaction. Final invoices
are never touched, and an agreement that already has a final invoice for the period gets
no new draft for it (its late additions are caught up by the next period).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd
from sqlalchemy import Connection, delete, select

from datagate_pipelines import DatagateError
from datagate_pipelines.billing import (
    INVOICE_COLUMNS,
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
from datagate_pipelines.schemas.checks import values
from datagate_pipelines.warehouse.bulk import insert_columns, upsert
from datagate_pipelines.warehouse.models import (
    billing_ledger,
    billing_periods,
    invoice_lines,
    invoices,
)


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
    inputs = load_billing_inputs(
        connection, portal.id, period, repairs=portal.invoicing.credit_past_changes
    )
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
    now = datetime.now(UTC)
    count = len(fresh)
    invoice_data = {
        "portal_id": [portal.id] * count,
        "period": [period] * count,
        **{name: values(fresh[name]) for name in INVOICE_FIELDS},
        "hold_reasons": [list(reasons) for reasons in fresh["hold_reasons"]],
        "computed_at": [now] * count,
    }
    insert_columns(connection, invoices, invoice_data)
    ids = (
        dict(
            connection.execute(
                select(invoices.c.invoice_key, invoices.c.id).where(
                    invoices.c.portal_id == portal.id,
                    invoices.c.period == period,
                    invoices.c.status.in_(("draft", "held")),
                )
            ).all()
        )
        if count
        else {}
    )
    lines = _of_fresh(result.invoice_lines, ids)
    insert_columns(
        connection,
        invoice_lines,
        {
            "invoice_id": values(lines["invoice_key"].map(ids)),
            **{name: values(lines[name]) for name in LINE_FIELDS},
        },
    )
    ledger = _of_fresh(result.ledger, ids)
    insert_columns(
        connection,
        billing_ledger,
        {
            "portal_id": [portal.id] * len(ledger),
            "product_id": values(ledger["product_id"]),
            "service_month": values(ledger["service_month"]),
            "period": [period] * len(ledger),
            "invoice_id": values(ledger["invoice_key"].map(ids)),
            **{name: values(ledger[name]) for name in LEDGER_TERMS},
        },
    )
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
                "invoices": count + len(final_agreements),
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
            "invoices": count,
            "held": held,
            "lines": len(lines),
            "ledger_rows": len(ledger),
            "final_kept": len(final_agreements),
            "rejects": len(result.rejects),
        },
    )


# A stored line is the engine's line without its invoice key (the row names its invoice).
LINE_FIELDS = tuple(name for name in LINE_COLUMNS if name != "invoice_key")
# An invoice's columns as the engine gives them (portal, period and hold reasons apart).
INVOICE_FIELDS = tuple(name for name in INVOICE_COLUMNS if name not in ("period", "hold_reasons"))


def _of_fresh(frame: pd.DataFrame, ids: dict[str, int]) -> pd.DataFrame:
    """The rows of the invoices just stored (not of agreements already final)."""
    return frame[frame["invoice_key"].isin(ids.keys())] if ids else frame.iloc[:0]


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
