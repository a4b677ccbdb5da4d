"""Rejected rows: kept with their reason, never dropped silently."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, delete, insert

from datagate_pipelines.warehouse.models import rejects


@dataclass(frozen=True)
class Reject:
    """A record refused, with the field at fault and a reason an operator can act on."""

    entity: str
    record_id: str | None
    field: str | None
    reason: str
    raw: Mapping[str, Any] | None = None


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
    replace: bool = True,
) -> int:
    """Store rejects. With `replace`, they supersede the previous run's rejects of the same
    (portal, asset): the table then shows what is wrong now, and the source data itself is
    kept in the mirror tables."""
    now = datetime.now(UTC)
    if replace:
        connection.execute(
            delete(rejects).where(rejects.c.portal_id == portal_id, rejects.c.asset == asset)
        )
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
