"""The request log: every HTTP attempt to HaloPSA or QBO, written to `api_requests`.

Records arrive already redacted (clients/http.py never puts a secret in one). They are
buffered and written in batches so logging does not double the cost of a sync. The log
grows by a row per call; `prune_requests` drops the rows older than the retention kept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select

from datagate_pipelines.apiclient.records import ApiRequestRecord
from datagate_pipelines.warehouse.models import api_requests


class WarehouseRequestRecorder:
    """A `RequestRecorder` that stores records in the warehouse; call `flush()` at the end."""

    def __init__(self, engine: Engine, *, batch_size: int = 100, direction: str = "outbound"):
        self.engine = engine
        self.batch_size = batch_size
        self.direction = direction
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.written = 0

    def __call__(self, record: ApiRequestRecord, /) -> None:
        row = {
            "system": record.system,
            "direction": self.direction,
            "portal_id": record.portal,
            "run_id": record.run_id,
            "method": record.method,
            "path": record.path[:1000],
            "query": dict(record.params) or None,
            "status": record.status,
            "duration_ms": round(record.duration_ms),
            "attempt": record.attempt,
            "error": record.error,
            "started_at": record.started_at,
        }
        with self._lock:
            self._pending.append(row)
            full = len(self._pending) >= self.batch_size
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self._pending = self._pending, []
        if rows:
            with self.engine.begin() as connection:
                connection.execute(insert(api_requests), rows)
            self.written += len(rows)


@contextmanager
def recording(engine: Engine, **kwargs: Any) -> Iterator[WarehouseRequestRecorder]:
    """A recorder that is flushed however the block ends, so failed runs keep their log."""
    recorder = WarehouseRequestRecorder(engine, **kwargs)
    try:
        yield recorder
    finally:
        recorder.flush()


def prune_requests(
    connection: Connection,
    before: datetime,
    *,
    portal_id: str | None = None,
    dry_run: bool = False,
) -> int:
    """Delete the requests started before `before` (of one portal, or of all and of none);
    returns how many there were. `dry_run` only counts them."""
    condition = api_requests.c.started_at < before
    if portal_id is not None:
        condition = condition & (api_requests.c.portal_id == portal_id)
    if dry_run:
        return connection.execute(select(func.count()).where(condition)).scalar_one()
    return connection.execute(delete(api_requests).where(condition)).rowcount
