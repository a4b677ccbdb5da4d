"""Sync runs, the last successful sync of each portal, and how each entity was last read.

A sync is incremental or full. A full one reads every entity whole (the only way deletions
show) and is due every `sync.full_every_days` or when asked for; an incremental one reads
only what changed where HaloPSA can filter by change date (sync/incremental.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from datagate_pipelines.warehouse.bulk import upsert
from datagate_pipelines.warehouse.models import portals, sync_entities, sync_runs


@dataclass(frozen=True)
class SyncMode:
    """Whether a sync run reads everything whole, and why (None when it is incremental)."""

    full: bool
    reason: str | None = None


def last_full_sync(connection: Connection, portal_id: str) -> datetime | None:
    """The data time of the portal's last successful full sync."""
    return connection.execute(
        select(func.max(sync_runs.c.data_as_of)).where(
            sync_runs.c.portal_id == portal_id,
            sync_runs.c.full.is_(True),
            sync_runs.c.status == "succeeded",
        )
    ).scalar()


def sync_mode(
    connection: Connection,
    portal_id: str,
    *,
    requested: bool,
    full_every_days: int,
    now: datetime,
) -> SyncMode:
    """Full when asked for, when the portal never had a full sync, or when its last one is
    `full_every_days` old; else incremental."""
    if requested:
        return SyncMode(True, "requested")
    last = last_full_sync(connection, portal_id)
    if last is None:
        return SyncMode(True, "no full sync yet")
    if now - last >= timedelta(days=full_every_days):
        return SyncMode(
            True,
            f"scheduled: the last full sync read {last:%Y-%m-%d %H:%M} UTC (every {full_every_days} d)",
        )
    return SyncMode(False)


def start_sync(
    connection: Connection,
    portal_id: str,
    run_id: str | None,
    data_as_of: datetime,
    *,
    full_requested: bool = False,
    full_every_days: int = 7,
) -> SyncMode:
    """Note that a run is reading HaloPSA as of `data_as_of` (once per run), and decide
    whether it is a full sync; a retried step gets the run's first decision."""
    exists = connection.execute(
        select(sync_runs.c.full, sync_runs.c.full_reason).where(
            sync_runs.c.portal_id == portal_id, sync_runs.c.run_id == run_id
        )
    ).first()
    if exists is not None:
        return SyncMode(bool(exists.full), exists.full_reason)
    mode = sync_mode(
        connection,
        portal_id,
        requested=full_requested,
        full_every_days=full_every_days,
        now=data_as_of,
    )
    connection.execute(
        insert(sync_runs).values(
            portal_id=portal_id,
            run_id=run_id,
            started_at=datetime.now(UTC),
            status="running",
            data_as_of=data_as_of,
            full=mode.full,
            full_reason=mode.reason,
        )
    )
    return mode


@dataclass(frozen=True)
class EntityRead:
    """How an entity was last read: its data time, and whether incremental reads are off."""

    read_as_of: datetime
    read_kind: str
    incremental_off_reason: str | None = None
    incremental_off_at: datetime | None = None


def entity_reads(connection: Connection, portal_id: str) -> dict[str, EntityRead]:
    return {
        row.entity: EntityRead(
            row.read_as_of, row.read_kind, row.incremental_off_reason, row.incremental_off_at
        )
        for row in connection.execute(
            select(sync_entities).where(sync_entities.c.portal_id == portal_id)
        )
    }


def record_entity_read(
    connection: Connection,
    portal_id: str,
    run_id: str | None,
    entity: str,
    *,
    read_as_of: datetime,
    kind: str,
    summary: dict[str, Any],
    incremental_off: str | None = None,
) -> None:
    """After an entity's records are written: the next incremental read starts from
    `read_as_of`; `incremental_off` (why HaloPSA's filter cannot be trusted) stops
    incremental reads of it until a full sync succeeds. The run's record keeps `summary`."""
    row: dict[str, Any] = {
        "portal_id": portal_id,
        "entity": entity,
        "read_as_of": read_as_of,
        "read_kind": kind,
    }
    if incremental_off is not None:
        row.update(incremental_off_reason=incremental_off, incremental_off_at=read_as_of)
    upsert(connection, sync_entities, [row], key=("portal_id", "entity"))
    current = connection.execute(
        select(sync_runs.c.id, sync_runs.c.reads).where(
            sync_runs.c.portal_id == portal_id, sync_runs.c.run_id == run_id
        )
    ).first()
    if current is not None:
        connection.execute(
            update(sync_runs)
            .where(sync_runs.c.id == current.id)
            .values(reads={**(current.reads or {}), entity: summary})
        )


def incremental_off(connection: Connection) -> dict[str, dict[str, str]]:
    """Per portal, the entities read in full because HaloPSA ignored their change filter."""
    off: dict[str, dict[str, str]] = {}
    for row in connection.execute(
        select(
            sync_entities.c.portal_id,
            sync_entities.c.entity,
            sync_entities.c.incremental_off_reason,
        ).where(sync_entities.c.incremental_off_reason.is_not(None))
    ):
        off.setdefault(row.portal_id, {})[row.entity] = row.incremental_off_reason
    return off


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
    if row.full:
        # A full sync succeeded: HaloPSA's change filters get another chance.
        connection.execute(
            update(sync_entities)
            .where(sync_entities.c.portal_id == portal_id)
            .values(incremental_off_reason=None, incremental_off_at=None)
        )
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


def last_successful_sync_start(connection: Connection, portal_id: str) -> datetime | None:
    """When the portal's latest successful sync started (a nightly close waits for one that
    started after the night's sync tick: invoicing/close_gate.py)."""
    return connection.execute(
        select(func.max(sync_runs.c.started_at)).where(
            sync_runs.c.portal_id == portal_id, sync_runs.c.status == "succeeded"
        )
    ).scalar()
