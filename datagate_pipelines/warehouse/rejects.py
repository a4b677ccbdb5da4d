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


def log_rejects(
    context: Any, portal_id: str, items: list[RejectLike], *, examples: int = 3
) -> None:
    """One warning per kind of problem (entity, field), with a count and a few examples,
    rather than one line per row."""
    groups: dict[tuple[str, str | None], list[RejectLike]] = {}
    for item in items:
        groups.setdefault((item.entity, item.field), []).append(item)
    for (entity, field), group in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = "; ".join(f"{r.record_id}: {r.reason}" for r in group[:examples])
        more = f" (and {len(group) - examples} more)" if len(group) > examples else ""
        context.log.warning(
            f"portal {portal_id}: {len(group)} {entity} row(s) rejected on {field or 'the record'} — {shown}{more}"
        )
