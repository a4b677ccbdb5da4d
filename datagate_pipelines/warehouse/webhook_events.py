"""QBO webhook events: stored by the receiver exactly once, turned into runs by the sensor.

An event already stored is a replay (Intuit sends a notification again when it got no 200
in time): the same CloudEvents id, or the same entity, operation and lastUpdated. The table's
unique constraints decide it, so replicas of the receiver racing each other store it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from datagate_pipelines.warehouse.models import qbo_webhook_events

# Rows per INSERT: well under SQLite's bound-parameter limit for this table's 11 columns.
_CHUNK = 500


@dataclass(frozen=True)
class StoredEvent:
    id: int
    portal_id: str
    entity: str
    entity_id: str
    operation: str
    received_at: datetime


def store_events(connection: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the events that are not stored yet; how many were new (the rest are replays).

    Each row has `portal_id, realm_id, event_id, format, entity, entity_id, operation,
    last_updated, deleted_id, received_at`.
    """
    if not rows:
        return 0
    dialect = connection.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stored = 0
    for start in range(0, len(rows), _CHUNK):
        statement = (
            insert(qbo_webhook_events)
            .values(list(rows[start : start + _CHUNK]))
            .on_conflict_do_nothing()
            .returning(qbo_webhook_events.c.id)
        )
        stored += len(connection.execute(statement).all())
    return stored


def events_after(connection: Connection, after_id: int) -> list[StoredEvent]:
    """Events stored after `after_id`, oldest first (the sensor's cursor)."""
    rows = connection.execute(
        select(
            qbo_webhook_events.c.id,
            qbo_webhook_events.c.portal_id,
            qbo_webhook_events.c.entity,
            qbo_webhook_events.c.entity_id,
            qbo_webhook_events.c.operation,
            qbo_webhook_events.c.received_at,
        )
        .where(qbo_webhook_events.c.id > after_id)
        .order_by(qbo_webhook_events.c.id)
    ).all()
    return [StoredEvent(*row) for row in rows]


def mark_events(
    connection: Connection, ids: Iterable[int], *, run_key: str | None, note: str
) -> None:
    """Record what became of events: the run that reads them, or why none does."""
    ids = list(ids)
    for start in range(0, len(ids), _CHUNK):
        connection.execute(
            update(qbo_webhook_events)
            .where(qbo_webhook_events.c.id.in_(ids[start : start + _CHUNK]))
            .values(run_key=run_key, note=note[:300], handled_at=datetime.now(UTC))
        )


def last_webhooks(connection: Connection) -> dict[str, datetime]:
    """When each portal last received a webhook event (for `datagate portals status`)."""
    return dict(
        connection.execute(
            select(
                qbo_webhook_events.c.portal_id, func.max(qbo_webhook_events.c.received_at)
            ).group_by(qbo_webhook_events.c.portal_id)
        ).all()
    )
