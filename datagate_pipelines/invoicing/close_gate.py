"""A nightly close waits for the night's sync: a period is not finalized on stale data.

The nightly billing schedule tells its closing run which sync tick it follows (the run tag
`datagate/synced-since`). The run finalizes only when the portal's latest successful sync
started at or after that tick; otherwise nothing is finalized, numbered or exported, the
refusal is written to the audit trail (`close_refused`, which `portals status` shows until
the period is closed) and the run fails with one line naming the portal, the period and the
sync it waited for. Runs launched by hand carry no tick and are not held back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, Engine, func, select

from datagate_pipelines import DatagateError
from datagate_pipelines.billing import period_label
from datagate_pipelines.warehouse.audit import CLOSE_REFUSED, record_event
from datagate_pipelines.warehouse.models import audit_events, billing_periods
from datagate_pipelines.warehouse.sync_runs import last_successful_sync_start

#: Who refused, in the audit trail.
ACTOR = "datagate (nightly close)"


class SyncNotFreshError(DatagateError):
    """The night's sync of the portal has not succeeded: the period is not closed."""


def parse_sync_tick(text: str) -> datetime:
    """The sync tick a closing run carries, an ISO timestamp with its offset."""
    try:
        tick = datetime.fromisoformat(text)
    except ValueError:
        tick = None
    if tick is None or tick.tzinfo is None:
        raise DatagateError(
            f"the run's sync tick {text!r} is not an ISO timestamp with an offset "
            "(e.g. 2026-08-02T02:00:00+00:00)"
        )
    return tick


def refusal_message(
    portal_id: str, period: date, synced_since: datetime, last_sync: datetime | None
) -> str:
    label = period_label(period)
    return (
        f"portal {portal_id}: billing period {label} not closed: waits for a successful sync "
        f"started at or after {synced_since.isoformat()} (the night's sync); last successful "
        f"sync started {last_sync.isoformat() if last_sync else 'never'}. Sync "
        f"(`datagate sync --portal {portal_id}`), then `datagate bill --portal {portal_id} "
        f"--period {label} --export`, or let the next night close it"
    )


def require_synced_since(
    engine: Engine, portal_id: str, period: date, synced_since: datetime, *, run_id: str | None
) -> None:
    """Return when the portal's latest successful sync started at or after `synced_since`;
    else record the refusal (committed, so it outlives the failed run) and raise
    SyncNotFreshError."""
    with engine.begin() as connection:
        last_sync = last_successful_sync_start(connection, portal_id)
        if last_sync is not None and last_sync >= synced_since:
            return
        message = refusal_message(portal_id, period, synced_since, last_sync)
        record_event(
            connection,
            portal_id,
            CLOSE_REFUSED,
            period=period,
            details={
                "synced_since": synced_since,
                "last_successful_sync": last_sync,
                "message": message,
            },
            actor=ACTOR,
            run_id=run_id,
        )
    raise SyncNotFreshError(message)


@dataclass(frozen=True)
class RefusedClose:
    """A period whose last nightly close was refused, and which is still not closed."""

    portal_id: str
    period: date
    refused_at: datetime
    synced_since: str
    last_successful_sync: str | None

    def as_json(self) -> dict[str, str | None]:
        return {
            "period": period_label(self.period),
            "refused_at": self.refused_at.isoformat(),
            "waited_for_sync_since": self.synced_since,
            "last_successful_sync": self.last_successful_sync,
        }


def refused_closes(connection: Connection) -> list[RefusedClose]:
    """Every period not finalized whose nightly close was refused: the latest refusal of
    each, by portal and period."""
    latest = (
        select(func.max(audit_events.c.id))
        .where(audit_events.c.action == CLOSE_REFUSED)
        .group_by(audit_events.c.portal_id, audit_events.c.period)
    )
    finalized = select(billing_periods.c.period).where(
        billing_periods.c.portal_id == audit_events.c.portal_id,
        billing_periods.c.period == audit_events.c.period,
        billing_periods.c.finalized_at.is_not(None),
    )
    rows = connection.execute(
        select(audit_events)
        .where(audit_events.c.id.in_(latest), ~finalized.exists())
        .order_by(audit_events.c.portal_id, audit_events.c.period)
    )
    return [
        RefusedClose(
            row.portal_id,
            row.period,
            row.occurred_at,
            row.details["synced_since"],
            row.details.get("last_successful_sync"),
        )
        for row in rows
    ]
