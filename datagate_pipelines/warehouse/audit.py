"""The audit trail: who did what to which invoice, when, and in which run — append only.

Every approval, hold, release, finalization, export, credit and void writes one event
through `record_event` (or `record_events`, many at once), inside the transaction of the change it describes: the trail never
misses a change that happened, nor shows one that was rolled back. Nothing updates or
deletes its rows; triggers made by migration 0010 refuse it on SQLite and PostgreSQL.

Who: the `actor` given, else the one set by `audit_context` around a run's work, else the
operator at the terminal (`DATAGATE_OPERATOR`, else the login).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from datagate_pipelines.warehouse.bulk import insert_columns
from datagate_pipelines.warehouse.models import audit_events

# The actions of the trail. Issue "corrections" adds credits and voids through the same call.
APPROVE = "approve"
APPROVAL_REFUSED = "approval_refused"
HOLD = "hold"
RELEASE = "release"
FINALIZE = "finalize"
EXPORT = "export"
CREDIT = "credit"
VOID = "void"
# A nightly close refused because the night's sync had not succeeded (invoicing/close_gate.py).
CLOSE_REFUSED = "close_refused"

_run_id: ContextVar[str | None] = ContextVar("audit_run_id", default=None)
_actor: ContextVar[str | None] = ContextVar("audit_actor", default=None)


def current_operator() -> str:
    """The person at the terminal: DATAGATE_OPERATOR, else the login."""
    return os.environ.get("DATAGATE_OPERATOR") or getpass.getuser()


def current_run_id() -> str | None:
    """The run id set by the enclosing `audit_context`, if any."""
    return _run_id.get()


@contextmanager
def audit_context(*, run_id: str | None = None, actor: str | None = None) -> Iterator[None]:
    """Events recorded inside carry this run id (and actor) unless they name their own:
    a Dagster step sets it once, and the flows it calls need not pass it along."""
    run_token = _run_id.set(run_id if run_id is not None else _run_id.get())
    actor_token = _actor.set(actor if actor is not None else _actor.get())
    try:
        yield
    finally:
        _actor.reset(actor_token)
        _run_id.reset(run_token)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return value


def record_event(
    connection: Connection,
    portal_id: str,
    action: str,
    *,
    period: date | None = None,
    invoice_key: str | None = None,
    details: Mapping[str, Any] | None = None,
    actor: str | None = None,
    run_id: str | None = None,
) -> None:
    """Append one event: `details` holds what matters (before/after, numbers, targets);
    money as decimal strings, dates as ISO text."""
    record_events(
        connection,
        portal_id,
        action,
        [{"period": period, "invoice_key": invoice_key, "details": details}],
        actor=actor,
        run_id=run_id,
    )


def record_events(
    connection: Connection,
    portal_id: str,
    action: str,
    events: Sequence[Mapping[str, Any]],
    *,
    actor: str | None = None,
    run_id: str | None = None,
) -> int:
    """Append many events of one action at once (each a mapping of period, invoice_key
    and details), as `record_event` would one by one: one bulk write for a whole period."""
    if not events:
        return 0
    now = datetime.now(UTC)
    who = actor or _actor.get() or current_operator()
    run = run_id or _run_id.get()
    count = len(events)
    return insert_columns(
        connection,
        audit_events,
        {
            "portal_id": [portal_id] * count,
            "occurred_at": [now] * count,
            "actor": [who] * count,
            "action": [action] * count,
            "period": [e.get("period") for e in events],
            "invoice_key": [e.get("invoice_key") for e in events],
            "details": [_jsonable(dict(e.get("details") or {})) for e in events],
            "run_id": [run] * count,
        },
    )


@dataclass(frozen=True)
class AuditEvent:
    id: int
    portal_id: str
    occurred_at: datetime
    actor: str
    action: str
    period: date | None
    invoice_key: str | None
    details: dict[str, Any]
    run_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "portal": self.portal_id,
            "at": self.occurred_at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "period": self.period.strftime("%Y-%m") if self.period else None,
            "invoice_key": self.invoice_key,
            "details": self.details,
            "run_id": self.run_id,
        }


def read_events(
    connection: Connection,
    portal_id: str,
    *,
    since: datetime | None = None,
    invoice_key: str | None = None,
    action: str | None = None,
) -> list[AuditEvent]:
    """The portal's events in the order they happened, optionally from `since`, for one
    invoice or one action."""
    query = select(audit_events).where(audit_events.c.portal_id == portal_id)
    if since is not None:
        query = query.where(audit_events.c.occurred_at >= since)
    if invoice_key is not None:
        query = query.where(audit_events.c.invoice_key == invoice_key)
    if action is not None:
        query = query.where(audit_events.c.action == action)
    return [
        AuditEvent(
            r.id,
            r.portal_id,
            r.occurred_at,
            r.actor,
            r.action,
            r.period,
            r.invoice_key,
            r.details,
            r.run_id,
        )
        for r in connection.execute(query.order_by(audit_events.c.id))
    ]
