"""Sync runs and the last successful sync of each portal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from datagate_pipelines.warehouse.models import portals, sync_runs


def start_sync(
    connection: Connection, portal_id: str, run_id: str | None, data_as_of: datetime
) -> None:
    """Note that a run is reading HaloPSA as of `data_as_of` (once per run)."""
    exists = connection.execute(
        select(sync_runs.c.id).where(
            sync_runs.c.portal_id == portal_id, sync_runs.c.run_id == run_id
        )
    ).first()
    if exists is None:
        connection.execute(
            insert(sync_runs).values(
                portal_id=portal_id,
                run_id=run_id,
                started_at=datetime.now(UTC),
                status="running",
                data_as_of=data_as_of,
            )
        )


def finish_sync(
    connection: Connection,
    portal_id: str,
    run_id: str | None,
    *,
    succeeded: bool,
    stats: dict[str, Any] | None = None,
) -> datetime | None:
    """Close the run's sync record; on success move the portal's last successful sync.

    Returns the data time recorded as the last successful sync, or None when this run did
    not read HaloPSA (then it was not a sync).
    """
    row = connection.execute(
        select(sync_runs).where(sync_runs.c.portal_id == portal_id, sync_runs.c.run_id == run_id)
    ).first()
    if row is None:
        return None
    connection.execute(
        update(sync_runs)
        .where(sync_runs.c.id == row.id)
        .values(
            status="succeeded" if succeeded else "failed",
            finished_at=datetime.now(UTC),
            stats=stats,
        )
    )
    if not succeeded:
        return None
    connection.execute(
        update(portals)
        .where(
            portals.c.id == portal_id,
            (portals.c.last_successful_sync_at.is_(None))
            | (portals.c.last_successful_sync_at < row.data_as_of),
        )
        .values(last_successful_sync_at=row.data_as_of)
    )
    return row.data_as_of


def last_successful_sync(connection: Connection, portal_id: str) -> datetime | None:
    return connection.execute(
        select(portals.c.last_successful_sync_at).where(portals.c.id == portal_id)
    ).scalar()
