"""What changed in a QBO company since a cursor: change data capture, with the paging it
lacks (docs/qbo-api.md §6.1, §B7).

One CDC call answers for every entity asked, up to 1000 objects in all, deleted ones as
`{"status": "Deleted"}` stubs, and reaches back 30 days at most. When an answer holds 1000
objects it may be cut short, and in which order QBO cuts is not documented; so each entity
is then read again through the query endpoint, `MetaData.LastUpdatedTime >= cursor`,
ordered and paged 1000 rows at a time, which does not depend on that order. The stubs of
the capped answer are kept (queries do not return deleted records). A cursor older than the
30 days raises `CursorTooOldError`: the caller reads what it needs another way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from datagate_pipelines import DatagateError
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.errors import QBOFaultError

#: How far back CDC reaches, and the most objects one answer holds (§6.1, §B7).
CDC_LOOKBACK = timedelta(days=30)
CDC_MAX_OBJECTS = 1000
#: Cursors this close to the 30-day edge are treated as too old: clocks differ, runs take time.
LOOKBACK_MARGIN = timedelta(hours=1)


class CursorTooOldError(DatagateError):
    """QBO refused the cursor: more than 30 days back (§6.1)."""


@dataclass
class Changes:
    """The records changed since the cursor: the newest version of each, by entity and Id;
    the Ids deleted; QBO's clock when the reading began."""

    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    deleted: dict[str, set[str]] = field(default_factory=dict)
    server_time: datetime | None = None
    capped: bool = False

    def add(self, entity: str, record: dict[str, Any]) -> None:
        record_id = str(record.get("Id", ""))
        if not record_id:
            return
        if str(record.get("status", "")).lower() == "deleted":
            self.deleted.setdefault(entity, set()).add(record_id)
            return
        known = self.records.setdefault(entity, {})
        if record_id not in known or _sync_token(record) >= _sync_token(known[record_id]):
            known[record_id] = record

    def of(self, entity: str) -> dict[str, dict[str, Any]]:
        return self.records.get(entity, {})

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.records.values()) + sum(
            len(d) for d in self.deleted.values()
        )


def too_old(since: datetime, server_now: datetime) -> bool:
    """Whether a cursor is beyond CDC's reach (with a margin)."""
    return server_now - since > CDC_LOOKBACK - LOOKBACK_MARGIN


def read_changes(client: QBOClient, entities: Sequence[str], since: datetime) -> Changes:
    """Every change to `entities` since `since`: one CDC call, and when its answer is full,
    each entity read by paged query (see the module's docstring)."""
    try:
        answer, time = client.cdc(entities, since)
    except QBOFaultError as error:
        if "changedsince" in f"{error.element} {error.detail} {error.message}".lower():
            raise CursorTooOldError(
                f"qbo portal {client.portal}: CDC refused changedSince {since.isoformat()}: "
                f"{error.message}"
            ) from error
        raise
    changes = Changes(server_time=parse_time(time))
    for entity, records in answer.items():
        for record in records:
            changes.add(entity, record)
    if sum(len(records) for records in answer.values()) >= CDC_MAX_OBJECTS:
        changes.capped = True
        for entity in entities:
            statement = (
                f"SELECT * FROM {entity} WHERE "
                f"{QBOClient.condition('MetaData.LastUpdatedTime', '>=', since)} "
                "ORDERBY MetaData.LastUpdatedTime"
            )
            for record in client.query(statement):
                changes.add(entity, record)
    return changes


def parse_time(text: Any) -> datetime | None:
    """A QBO timestamp (`2015-08-10T11:44:02.957-07:00`) as an aware UTC datetime."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _sync_token(record: dict[str, Any]) -> int:
    try:
        return int(str(record.get("SyncToken", "-1")))
    except ValueError:
        return -1
