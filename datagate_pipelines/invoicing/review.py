"""The review of a period, read from the warehouse: the variance explained, the flags, the
fingerprint of the drafts, where approval stands — one answer for `datagate review`
(text, JSON, CSV) and the `invoice_review` asset.

The variance itself is pure (billing/variance.py); this module loads its inputs and says
which flagged invoices are still unreviewed: a flagged invoice counts as reviewed once an
operator acted on it — it is approved as it stands now (or left out of an approval), held
by hand, or final. A customer no longer billed has no invoice to act on: its flag counts
as reviewed once the period was approved.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from datagate_pipelines.billing import FINAL_STATUSES, period_label
from datagate_pipelines.billing.periods import add_months
from datagate_pipelines.billing.variance import (
    InvoiceVariance,
    PeriodVariance,
    ProductDates,
    ReviewInvoice,
    ReviewLine,
    Thresholds,
    review_period,
)
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.invoicing.approval import Approval, approvals_of
from datagate_pipelines.invoicing.fingerprint import draft_digests, fingerprint
from datagate_pipelines.invoicing.holds import active_holds
from datagate_pipelines.warehouse.models import billing_periods, invoice_lines, invoices, products


def load_invoices(connection: Connection, portal_id: str, period: date) -> list[ReviewInvoice]:
    """The period's invoices, whatever their status, with their lines."""
    rows = connection.execute(
        # Credit notes (rule 7) share their invoice's agreement: they are corrections, not
        # the agreement's invoice for the period.
        select(invoices).where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.credit_of.is_(None),
        )
    ).all()
    ids = [row.id for row in rows]
    lines: dict[int, list[ReviewLine]] = defaultdict(list)
    for start in range(0, len(ids), 500):  # SQLite caps the bound parameters
        for line in connection.execute(
            select(invoice_lines)
            .where(invoice_lines.c.invoice_id.in_(ids[start : start + 500]))
            .order_by(invoice_lines.c.invoice_id, invoice_lines.c.line_no)
        ):
            lines[line.invoice_id].append(
                ReviewLine(
                    kind=line.kind,
                    description=line.description,
                    amount=line.amount,
                    product_id=line.product_id,
                    service_month=line.service_month,
                    qty=line.qty,
                    unit_price=line.unit_price,
                )
            )
    return [
        ReviewInvoice(
            invoice_key=row.invoice_key,
            agreement_key=row.agreement_key,
            customer_id=row.customer_id,
            customer_name=row.customer_name,
            status=row.status,
            total=row.total,
            lines=tuple(lines[row.id]),
            hold_reasons=tuple(row.hold_reasons or ()),
        )
        for row in rows
    ]


def load_product_dates(connection: Connection, portal_id: str) -> dict[str, ProductDates]:
    return {
        row.product_id: ProductDates(row.start_date, row.end_date, row.ended_reason)
        for row in connection.execute(
            select(
                products.c.product_id,
                products.c.start_date,
                products.c.end_date,
                products.c.ended_reason,
            ).where(products.c.portal_id == portal_id)
        )
    }


@dataclass
class PeriodReview:
    """A period's variance plus what the operator needs to act on it."""

    portal: PortalSettings
    variance: PeriodVariance
    fingerprint: str | None  # None: no drafts left (all final, or nothing billed)
    computed: bool
    approvals: list[Approval]
    reviewed: set[str]  # invoice keys an operator acted on
    drafts: int = 0  # invoices not final and not held: what an approval would approve

    @property
    def period(self) -> date:
        return self.variance.period

    def is_reviewed(self, v: InvoiceVariance) -> bool:
        if v.invoice_key is None:
            return any(a.status in ("pending", "launched", "finalized") for a in self.approvals)
        return v.invoice_key in self.reviewed

    def unreviewed_flagged(self) -> list[InvoiceVariance]:
        return [v for v in self.variance.flagged if not self.is_reviewed(v)]

    def invoices(self, *, flagged_only: bool = False) -> list[InvoiceVariance]:
        return self.variance.flagged if flagged_only else self.variance.invoices

    def state(self) -> str:
        """never billed | final | auto (no approval) | approved (its run to come) |
        held (only held invoices left) | ready for review."""
        if not self.computed:
            return "never billed"
        if self.fingerprint is None:
            return "final"
        if self.portal.invoicing.approval == "auto":
            return "auto"
        if any(a.status in ("pending", "launched") for a in self.approvals):
            return "approved"
        if not self.drafts:
            return "held"
        return "ready for review"

    def as_json(self, *, flagged_only: bool = False) -> dict[str, Any]:
        variance = self.variance
        return {
            "portal": self.portal.id,
            "period": period_label(self.period),
            "previous_period": period_label(add_months(self.period, -1)),
            "approval": self.portal.invoicing.approval,
            "state": self.state(),
            "fingerprint": self.fingerprint,
            "total": _money(variance.total),
            "previous_total": _money(variance.previous_total),
            "change": _money(variance.change),
            "change_percent": _percent(variance.change_percent),
            "thresholds": {
                "flag_change_percent": str(self.portal.review.flag_change_percent),
                "flag_change_amount": _money(self.portal.review.flag_change_amount),
            },
            "counts": variance.counts(),
            "flagged": len(variance.flagged),
            "unreviewed_flagged": len(self.unreviewed_flagged()),
            "approvals": [
                {
                    "id": a.id,
                    "by": a.approved_by,
                    "at": a.approved_at.isoformat(),
                    "status": a.status,
                    "fingerprint": a.fingerprint,
                    "invoices": len(a.invoices),
                    "excepted": a.excepted,
                    "note": a.note,
                    "outcome": a.outcome,
                }
                for a in self.approvals
            ],
            "invoices": [self._invoice_json(v) for v in self.invoices(flagged_only=flagged_only)],
        }

    def _invoice_json(self, v: InvoiceVariance) -> dict[str, Any]:
        return {
            "invoice_key": v.invoice_key,
            "previous_invoice_key": v.previous_invoice_key,
            "customer": {"halo_id": v.customer_id, "name": v.customer_name},
            "agreement": v.agreement_key,
            "status": v.status,
            "total": _money(v.total),
            "previous_total": None if v.previous_total is None else _money(v.previous_total),
            "change": _money(v.change),
            "change_percent": _percent(v.change_percent),
            "flags": v.flags,
            "reviewed": self.is_reviewed(v),
            "hold_reasons": list(v.hold_reasons),
            "changes": [
                {"kind": c.kind, "text": c.text, "product_id": c.product_id} for c in v.changes
            ],
        }

    def csv_text(self, *, flagged_only: bool = False) -> str:
        """One row per explained change (an invoice without changes: one row), for a
        spreadsheet: money as plain decimals."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [
                "portal",
                "period",
                "customer_id",
                "customer",
                "agreement",
                "invoice_key",
                "status",
                "previous_total",
                "total",
                "change",
                "change_percent",
                "flagged",
                "flags",
                "change_kind",
                "explanation",
            ]
        )
        for v in self.invoices(flagged_only=flagged_only):
            head = [
                self.portal.id,
                period_label(self.period),
                v.customer_id,
                v.customer_name,
                v.agreement_key,
                v.invoice_key or "",
                v.status,
                "" if v.previous_total is None else _money(v.previous_total),
                _money(v.total),
                _money(v.change),
                _percent(v.change_percent) or "",
                "yes" if v.flagged else "no",
                "; ".join(v.flags),
            ]
            for change in v.changes or [None]:
                writer.writerow(
                    [*head, change.kind if change else "", change.text if change else ""]
                )
        return out.getvalue()


def period_review(connection: Connection, portal: PortalSettings, period: date) -> PeriodReview:
    """Review the portal's period against the one before (reads only)."""
    previous = add_months(period, -1)
    variance = review_period(
        period,
        load_invoices(connection, portal.id, period),
        load_invoices(connection, portal.id, previous),
        products=load_product_dates(connection, portal.id),
        in_advance_months=portal.sync.in_advance_months,
        thresholds=Thresholds(
            percent=portal.review.flag_change_percent, amount=portal.review.flag_change_amount
        ),
    )
    digests = draft_digests(connection, portal.id, period)
    computed = (
        connection.execute(
            select(billing_periods.c.period).where(
                billing_periods.c.portal_id == portal.id, billing_periods.c.period == period
            )
        ).first()
        is not None
    )
    history = approvals_of(connection, portal.id, period)
    reviewed = {v.invoice_key for v in variance.invoices if v.status in FINAL_STATUSES}
    reviewed |= set(active_holds(connection, portal.id)) & {
        v.invoice_key for v in variance.invoices
    }
    for approval in history:
        if approval.status not in ("pending", "launched", "finalized"):
            continue
        reviewed |= set(approval.excepted) & set(digests)
        reviewed |= {
            key
            for key, approved in approval.invoices.items()
            if key in digests and digests[key].digest == approved["digest"]
        }
    return PeriodReview(
        portal=portal,
        variance=variance,
        fingerprint=fingerprint(digests) if digests else None,
        computed=computed,
        approvals=history,
        reviewed={key for key in reviewed if key},
        drafts=sum(1 for d in digests.values() if d.status == "draft"),
    )


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _percent(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"
