"""Usage import batches: every usage import is one batch (who, when, which file, how many
charges, their total, a fingerprint of the content). A batch can be listed and taken back
while its period is still draft; once the period has final invoices its usage is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from datagate_pipelines import DatagateError
from datagate_pipelines.billing.finalization import FINAL_STATUSES
from datagate_pipelines.billing.periods import period_label
from datagate_pipelines.warehouse.models import (
    billing_periods,
    invoices,
    portals,
    usage_batches,
    usage_charges,
)


class UsagePeriodClosedError(DatagateError):
    """The period has final invoices: its usage can no longer be imported or removed."""


class UsageBatchError(DatagateError):
    """A batch that is not there to remove, or was removed already."""


@dataclass(frozen=True)
class UsageBatch:
    id: int
    portal_id: str
    period: date
    fingerprint: str
    source: str
    row_count: int
    total: Decimal
    imported_by: str
    imported_at: datetime
    removed_by: str | None
    removed_at: datetime | None

    def describe(self) -> str:
        return (
            f"batch {self.id} ({self.source}, {self.row_count} charge(s), total {self.total}, "
            f"imported {self.imported_at:%Y-%m-%d %H:%M} UTC by {self.imported_by})"
        )


def _batches(connection: Connection, *where: Any) -> list[UsageBatch]:
    rows = connection.execute(select(usage_batches).where(*where).order_by(usage_batches.c.id))
    return [UsageBatch(**row._asdict()) for row in rows]


def list_batches(connection: Connection, portal_id: str, period: date) -> list[UsageBatch]:
    """The period's batches in import order, removed ones included (they stay listed)."""
    return _batches(
        connection, usage_batches.c.portal_id == portal_id, usage_batches.c.period == period
    )


def live_batch_with(
    connection: Connection, portal_id: str, period: date, fingerprint: str
) -> UsageBatch | None:
    """The batch of the period, not removed, whose content has this fingerprint."""
    found = _batches(
        connection,
        usage_batches.c.portal_id == portal_id,
        usage_batches.c.period == period,
        usage_batches.c.fingerprint == fingerprint,
        usage_batches.c.removed_at.is_(None),
    )
    return found[0] if found else None


def lock_usage_period(connection: Connection, portal_id: str, period: date, refused: str) -> None:
    """Refuse (saying `refused`) once the period has final invoices; otherwise hold the
    portal's row until the transaction ends, so a finalization of the portal waits for this
    change (finalize.py takes the same lock) instead of racing it."""
    connection.execute(select(portals.c.id).where(portals.c.id == portal_id).with_for_update())
    final = connection.execute(
        select(func.count())
        .select_from(invoices)
        .where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.status.in_(FINAL_STATUSES),
        )
    ).scalar_one()
    finalized = connection.execute(
        select(billing_periods.c.finalized_at).where(
            billing_periods.c.portal_id == portal_id, billing_periods.c.period == period
        )
    ).scalar()
    if final or finalized is not None:
        state = f"has {final} final invoice(s)" if final else "is finalized"
        raise UsagePeriodClosedError(
            f"portal {portal_id}, period {period_label(period)} {state}: its usage can no "
            f"longer change; {refused}"
        )


def remove_batch(
    connection: Connection, portal_id: str, period: date, batch_id: int, *, removed_by: str
) -> UsageBatch:
    """Take a batch back: its charges are deleted, the batch stays listed as removed."""
    where = f"portal {portal_id}, period {period_label(period)}"
    found = _batches(
        connection,
        usage_batches.c.id == batch_id,
        usage_batches.c.portal_id == portal_id,
        usage_batches.c.period == period,
    )
    if not found:
        raise UsageBatchError(
            f"{where}: no usage batch {batch_id} (`datagate usage list --portal {portal_id} "
            f"--period {period_label(period)}` shows them)"
        )
    batch = found[0]
    if batch.removed_at is not None:
        raise UsageBatchError(
            f"{where}: batch {batch_id} was removed already, "
            f"{batch.removed_at:%Y-%m-%d %H:%M} UTC by {batch.removed_by}"
        )
    lock_usage_period(connection, portal_id, period, f"batch {batch_id} not removed")
    connection.execute(delete(usage_charges).where(usage_charges.c.batch_id == batch_id))
    removed_at = datetime.now(UTC)
    connection.execute(
        update(usage_batches)
        .where(usage_batches.c.id == batch_id)
        .values(removed_by=removed_by, removed_at=removed_at)
    )
    return _batches(connection, usage_batches.c.id == batch_id)[0]
