"""Mirror tables written by change: a listing writes only the records whose content changed.

Each mirrored record carries the hash of its content (its decoded columns and HaloPSA's raw
record). A listing's records are compared with the stored hashes first: unchanged ones cost
no write, so the warehouse's work follows what changed in HaloPSA, not the tenant's size.
Deletions need a complete listing (every record of the entity): a record missing from one
gets `deleted_at`; an incremental listing (only what changed) deletes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, select, update

from datagate_pipelines.warehouse.bulk import CHUNK_ROWS, upsert


def content_hash(row: Mapping[str, Any]) -> str:
    """The hash of a record's content: any change of any field (nested ones too) changes it."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    content_hash: str | None
    deleted: bool


def stored_records(connection: Connection, table: Table, portal_id: str) -> dict[int, Stored]:
    """Every mirrored record of the portal: its content hash and whether it is deleted."""
    return {
        row.halo_id: Stored(row.content_hash, row.deleted_at is not None)
        for row in connection.execute(
            select(table.c.halo_id, table.c.content_hash, table.c.deleted_at).where(
                table.c.portal_id == portal_id
            )
        )
    }


def hashed(rows: Iterable[Mapping[str, Any]]) -> dict[int, str]:
    """Decoded rows' content hashes, by HaloPSA id."""
    return {row["halo_id"]: content_hash(row) for row in rows}


def needs_writing(hashes: Mapping[int, str], stored: Mapping[int, Stored]) -> set[int]:
    """The ids whose record is new, changed, or back after being deleted."""
    return {
        halo_id
        for halo_id, digest in hashes.items()
        if (known := stored.get(halo_id)) is None or known.deleted or known.content_hash != digest
    }


def mirror_changes(
    connection: Connection,
    table: Table,
    portal_id: str,
    rows: Sequence[dict[str, Any]],
    *,
    hashes: Mapping[int, str],
    stored: Mapping[int, Stored],
    seen_ids: Iterable[int],
    seen_at: datetime,
    complete: bool,
) -> dict[str, int]:
    """Write the changed records of a listing; with a `complete` listing, mark the records
    missing from it deleted.

    `rows` are the changed records that passed their checks (`needs_writing`); `hashes`
    those of every record the listing decoded; `seen_ids` every id it held, decodable or
    not (a record that fails its checks is still there upstream: never marked deleted).
    """
    payload = [
        {
            **row,
            "portal_id": portal_id,
            "content_hash": hashes[row["halo_id"]],
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
    deleted = 0
    if complete:
        present = set(seen_ids)
        gone = [i for i, known in stored.items() if not known.deleted and i not in present]
        for start in range(0, len(gone), CHUNK_ROWS):
            deleted += connection.execute(
                update(table)
                .where(
                    table.c.portal_id == portal_id,
                    table.c.halo_id.in_(gone[start : start + CHUNK_ROWS]),
                )
                .values(deleted_at=seen_at)
            ).rowcount
    inserted = sum(1 for r in rows if r["halo_id"] not in stored)
    restored = sum(1 for r in rows if (k := stored.get(r["halo_id"])) is not None and k.deleted)
    return {
        "listed": len(hashes),
        "rows": len(rows),
        "inserted": inserted,
        "updated": len(rows) - inserted,
        "unchanged": len(hashes) - len(needs_writing(hashes, stored)),
        "restored": restored,
        "deleted": deleted,
    }


def mirror_snapshot(
    connection: Connection,
    table: Table,
    portal_id: str,
    rows: Sequence[dict[str, Any]],
    *,
    seen_ids: Iterable[int],
    seen_at: datetime,
) -> dict[str, int]:
    """Write a complete listing whole, every record whatever its hash (seeding a mirror);
    `seen_ids` are listed ids that could not be decoded: kept, not marked deleted."""
    hashes = hashed(rows)
    counts = mirror_changes(
        connection,
        table,
        portal_id,
        rows,
        hashes=hashes,
        stored=stored_records(connection, table, portal_id),
        seen_ids=[*seen_ids, *hashes],
        seen_at=seen_at,
        complete=True,
    )
    return {name: counts[name] for name in ("rows", "inserted", "updated", "restored", "deleted")}
