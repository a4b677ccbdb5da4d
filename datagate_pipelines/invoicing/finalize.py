"""Finalization: drafts of a closed period become final invoices with numbers.

A number is given once and never reused: the portal's next number is stored in the same
transaction that finalizes, before anything is exported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd
from sqlalchemy import Connection, select, update

from datagate_pipelines import DatagateError
from datagate_pipelines.billing import (
    assign_numbers,
    blocked_agreements,
    invoice_date,
    period_label,
)
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.warehouse.models import billing_periods, invoices, portals


class PeriodOpenError(DatagateError):
    """A period is finalized only once it has ended."""


@dataclass
class FinalizeOutcome:
    finalized: list[str] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, list[str]] = field(default_factory=dict)
    held: list[str] = field(default_factory=list)


def finalize_period(
    connection: Connection,
    portal: PortalSettings,
    period: date,
    *,
    is_taken: Callable[[str], bool] = lambda doc_number: False,
    today: date | None = None,
) -> FinalizeOutcome:
    """Finalize and number every draft of the period that rules 4 and 5 allow.

    `is_taken(doc_number)` says whether the number already exists elsewhere (QBO's
    DocNumbers); taken numbers are skipped.
    """
    today = today or datetime.now(UTC).date()
    if invoice_date(period) > today:
        raise PeriodOpenError(
            f"portal {portal.id}: billing period {period_label(period)} is still open "
            f"(it can be finalized from {invoice_date(period).isoformat()})"
        )
    # Serialize finalizations of one portal (PostgreSQL row lock; SQLite has one writer).
    next_number = connection.execute(
        select(portals.c.next_invoice_number).where(portals.c.id == portal.id).with_for_update()
    ).scalar_one()
    history = pd.DataFrame(
        connection.execute(
            select(invoices.c.agreement_key, invoices.c.period, invoices.c.status).where(
                invoices.c.portal_id == portal.id
            )
        ).all(),
        columns=["agreement_key", "period", "status"],
    )
    blocked = blocked_agreements(history, period)
    candidates = pd.DataFrame(
        connection.execute(
            select(
                invoices.c.invoice_key,
                invoices.c.customer_id,
                invoices.c.customer_name,
                invoices.c.agreement_key,
                invoices.c.status,
            ).where(
                invoices.c.portal_id == portal.id,
                invoices.c.period == period,
                invoices.c.status != "final",
            )
        ).all(),
        columns=["invoice_key", "customer_id", "customer_name", "agreement_key", "status"],
    )
    outcome = FinalizeOutcome(
        blocked={k: v for k, v in blocked.items() if k in set(candidates["agreement_key"])},
        held=sorted(candidates.loc[candidates["status"] == "held", "invoice_key"]),
    )
    ready = candidates[
        (candidates["status"] == "draft") & ~candidates["agreement_key"].isin(blocked)
    ]
    if ready.empty:
        return outcome
    assignments = assign_numbers(
        ready, next_number=next_number, prefix=portal.invoicing.number_prefix, is_taken=is_taken
    )
    now = datetime.now(UTC)
    for row in assignments.numbers.itertuples():
        connection.execute(
            update(invoices)
            .where(invoices.c.portal_id == portal.id, invoices.c.invoice_key == row.invoice_key)
            .values(
                status="final", number=int(row.number), doc_number=row.doc_number, finalized_at=now
            )
        )
        outcome.finalized.append(row.invoice_key)
        outcome.numbers[row.invoice_key] = row.doc_number
    connection.execute(
        update(portals)
        .where(portals.c.id == portal.id)
        .values(next_invoice_number=assignments.next_number)
    )
    if not outcome.blocked and not outcome.held:
        connection.execute(
            update(billing_periods)
            .where(billing_periods.c.portal_id == portal.id, billing_periods.c.period == period)
            .values(finalized_at=now)
        )
    return outcome
