"""Force-sync requests: filed by operators, turned into top-priority runs by the sensor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from datagate_pipelines.warehouse.models import force_sync_requests


@dataclass(frozen=True)
class ForceSyncRequest:
    id: int
    portal_id: str
    requested_by: str
    requested_at: datetime
    full: bool = False


def file_request(
    connection: Connection, portal_id: str, requested_by: str, *, full: bool = False
) -> int:
    result = connection.execute(
        insert(force_sync_requests).values(
            portal_id=portal_id,
            requested_by=requested_by,
            requested_at=datetime.now(UTC),
            status="pending",
            full=full,
        )
    )
    return int(result.inserted_primary_key[0])


def pending_requests(connection: Connection, after_id: int = 0) -> list[ForceSyncRequest]:
    rows = connection.execute(
        select(force_sync_requests)
        .where(force_sync_requests.c.status == "pending", force_sync_requests.c.id > after_id)
        .order_by(force_sync_requests.c.id)
    ).all()
    return [
        ForceSyncRequest(r.id, r.portal_id, r.requested_by, r.requested_at, bool(r.full))
        for r in rows
    ]


def mark_requests(
    connection: Connection,
    ids: list[int],
    status: str,
    *,
    run_key: str | None = None,
    error: str | None = None,
) -> None:
    if ids:
        connection.execute(
            update(force_sync_requests)
            .where(force_sync_requests.c.id.in_(ids))
            .values(status=status, run_id=run_key, error=error, handled_at=datetime.now(UTC))
        )


def open_requests_by_portal(connection: Connection) -> dict[str, int]:
    """Pending or launched (not yet run) requests per portal, for `datagate portals status`."""
    counts: dict[str, int] = {}
    for row in connection.execute(
        select(force_sync_requests.c.portal_id).where(
            force_sync_requests.c.status.in_(("pending", "launched"))
        )
    ):
        counts[row.portal_id] = counts.get(row.portal_id, 0) + 1
    return counts


def launched_requests(connection: Connection) -> dict[str, list[int]]:
    """Requests whose run was launched (or joined) and not yet settled, by run key or id."""
    launched: dict[str, list[int]] = {}
    for row in connection.execute(
        select(force_sync_requests.c.id, force_sync_requests.c.run_id).where(
            force_sync_requests.c.status.in_(("launched", "coalesced")),
            force_sync_requests.c.handled_at.is_not(None),
            force_sync_requests.c.error.is_(None),
        )
    ):
        if row.run_id:
            launched.setdefault(row.run_id, []).append(row.id)
    return launched
