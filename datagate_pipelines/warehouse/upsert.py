"""Mirror tables kept equal to HaloPSA's listings; the upsert itself lives in warehouse/bulk.py."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, select, update

from datagate_pipelines.warehouse.bulk import upsert

# SQLite allows 32,766 bound parameters per statement; stay well below for wide tables.
CHUNK_ROWS = 400


def mirror_snapshot(
    connection: Connection,
    table: Table,
    portal_id: str,
    rows: Sequence[dict[str, Any]],
    *,
    seen_ids: Iterable[int],
    seen_at: datetime,
) -> dict[str, int]:
    """Make a mirror table match a complete HaloPSA listing for one portal.

    Rows are upserted; ids that were listed but could not be decoded keep their old data
    and count as seen; records missing from the listing get `deleted_at` (never removed).
    Call it only with a complete listing: a partial one would mark the rest as deleted.
    """
    existing = {
        row.halo_id: row.deleted_at
        for row in connection.execute(
            select(table.c.halo_id, table.c.deleted_at).where(table.c.portal_id == portal_id)
        )
    }
    payload = [
        {
            **row,
            "portal_id": portal_id,
            "first_seen_at": seen_at,
            "last_seen_at": seen_at,
            "deleted_at": None,
        }
        for row in rows
    ]
    upsert(
        connection,
        table,
        payload,
        key=("portal_id", "halo_id"),
        update_columns=[c for c in (payload[0] if payload else {}) if c != "first_seen_at"],
    )
    decoded = {row["halo_id"] for row in rows}
    undecodable = [i for i in set(seen_ids) - decoded if i in existing]
    for start in range(0, len(undecodable), CHUNK_ROWS):
        connection.execute(
            update(table)
            .where(
                table.c.portal_id == portal_id,
                table.c.halo_id.in_(undecodable[start : start + CHUNK_ROWS]),
            )
            .values(last_seen_at=seen_at)
        )
    deleted = connection.execute(
        update(table)
        .where(
            and_(
                table.c.portal_id == portal_id,
                table.c.last_seen_at < seen_at,
                table.c.deleted_at.is_(None),
            )
        )
        .values(deleted_at=seen_at)
    ).rowcount
    new_ids = decoded - set(existing)
    restored = sum(1 for r in rows if existing.get(r["halo_id"]) is not None)
    return {
        "rows": len(rows),
        "inserted": len(new_ids),
        "updated": len(rows) - len(new_ids),
        "restored": restored,
        "deleted": deleted or 0,
    }
