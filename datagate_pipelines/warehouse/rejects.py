"""Rejected rows: kept with their reason, never dropped silently."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, insert

from datagate_pipelines.warehouse.models import rejects


class RejectLike(Protocol):
    entity: str
    record_id: str | None
    field: str | None
    reason: str


def _jsonable(raw: Any) -> Any:
    if raw is None:
        return None
    # Raw records may hold Decimals or dates; keep what HaloPSA sent, readable.
    return json.loads(json.dumps(raw, default=str))


def record_rejects(
    connection: Connection,
    portal_id: str,
    asset: str,
    items: Iterable[RejectLike],
    *,
    run_id: str | None = None,
) -> int:
    now = datetime.now(UTC)
    rows = [
        {
            "portal_id": portal_id,
            "run_id": run_id,
            "asset": asset,
            "entity": item.entity,
            "record_id": None if item.record_id is None else str(item.record_id)[:100],
            "field": item.field,
            "reason": item.reason,
            "raw": _jsonable(getattr(item, "raw", None)),
            "created_at": now,
        }
        for item in items
    ]
    if rows:
        connection.execute(insert(rejects), rows)
    return len(rows)
