"""Finalization: drafts of a closed period become final invoices with numbers.

A number is given once and never reused: the portal's next number is stored in the same
transaction that finalizes, before anything is exported. Each finalized invoice is an
audit event in that transaction too.

With `invoicing.approval: manual` only approved drafts are finalized: the caller passes
the approved invoice keys (invoicing/approval.py), and a call without them is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pandas as pd
from sqlalchemy import Connection, select, update

from datagate_pipelines import DatagateError
from datagate_pipelines.billing import (
    FINAL_STATUSES,
    assign_numbers,
    blocked_agreements,
    invoice_date,
    period_label,
)
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.warehouse.audit import FINALIZE, record_events
from datagate_pipelines.warehouse.bulk import update_rows
from datagate_pipelines.warehouse.models import billing_periods, invoices, portals


class PeriodOpenError(DatagateError):
    """A period is finalized only once it has ended."""


class ApprovalRequiredError(DatagateError):
    """A portal with `invoicing.approval: manual` finalizes approved drafts only."""


def approval_required_message(portal_id: str, period: date) -> str:
    label = period_label(period)
    return (
        f"portal {portal_id}: billing period {label} waits for approval (invoicing.approval: "
        f"manual): `datagate review --portal {portal_id} --period {label}`, then "
        f"`datagate approve --portal {portal_id} --period {label}`"
    )


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
    approved: Collection[str] | None = None,
) -> FinalizeOutcome:
    """Finalize and number every draft of the period that rules 4 and 5 allow (and, when
    `approved` is given, that is among those invoice keys).

    `is_taken(doc_number)` says whether the number already exists elsewhere (QBO's
    DocNumbers); taken numbers are skipped.
    """
    if approved is None and portal.invoicing.approval == "manual":
        raise ApprovalRequiredError(approval_required_message(portal.id, period))
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
    # Only earlier invoices not yet final can block (billing/finalization.py): the
    # database leaves out the final history, which grows by a period's invoices a month.
    history = pd.DataFrame(
        connection.execute(
            select(invoices.c.agreement_key, invoices.c.period, invoices.c.status).where(
                invoices.c.portal_id == portal.id,
                invoices.c.period < period,
                invoices.c.status.not_in(sorted(FINAL_STATUSES)),
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
                invoices.c.total,
            ).where(
                invoices.c.portal_id == portal.id,
                invoices.c.period == period,
                invoices.c.status != "final",
            )
        ).all(),
        columns=["invoice_key", "customer_id", "customer_name", "agreement_key", "status", "total"],
    )
    outcome = FinalizeOutcome(
        blocked={k: v for k, v in blocked.items() if k in set(candidates["agreement_key"])},
        held=sorted(candidates.loc[candidates["status"] == "held", "invoice_key"]),
    )
    ready = candidates[
        (candidates["status"] == "draft") & ~candidates["agreement_key"].isin(blocked)
    ]
    if approved is not None:
        ready = ready[ready["invoice_key"].isin(set(approved))]
    if ready.empty:
        return outcome
    assignments = assign_numbers(
        ready, next_number=next_number, prefix=portal.invoicing.number_prefix, is_taken=is_taken
    )
    now = datetime.now(UTC)
    totals = dict(zip(ready["invoice_key"], ready["total"], strict=True))
    numbered = assignments.numbers
    keys, doc_numbers = numbered["invoice_key"].tolist(), numbered["doc_number"].tolist()
    update_rows(
        connection,
        invoices,
        [
            {
                "portal_id": portal.id,
                "invoice_key": key,
                "status": "final",
                "number": int(number),
                "doc_number": doc_number,
                "finalized_at": now,
            }
            for key, number, doc_number in zip(
                keys, numbered["number"].tolist(), doc_numbers, strict=True
            )
        ],
        key=("portal_id", "invoice_key"),
    )
    outcome.finalized.extend(keys)
    outcome.numbers.update(zip(keys, doc_numbers, strict=True))
    record_events(
        connection,
        portal.id,
        FINALIZE,
        [
            {
                "period": period,
                "invoice_key": key,
                "details": {
                    "before": {"status": "draft"},
                    "after": {"status": "final", "number": doc_number},
                    "total": totals[key],
                    "approval": portal.invoicing.approval,
                },
            }
            for key, doc_number in zip(keys, doc_numbers, strict=True)
        ],
    )
    connection.execute(
        update(portals)
        .where(portals.c.id == portal.id)
        .values(next_invoice_number=assignments.next_number)
    )
    if (
        not outcome.blocked
        and not outcome.held
        and len(ready) == int((candidates["status"] == "draft").sum())
    ):
        connection.execute(
            update(billing_periods)
            .where(billing_periods.c.portal_id == portal.id, billing_periods.c.period == period)
            .values(finalized_at=now)
        )
    return outcome
