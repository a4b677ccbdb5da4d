"""Export bookkeeping: one row per (document, target system) — `exports` for invoices,
`purchasing_exports` for purchase orders and bills (`Ledger` says which).

The row is written (status `pending`, with its `request_id`) and committed before the
first request for that invoice is sent, and the outcome right after the answer:

    pending ──> exported (external_id, external_number, external_type)
       │  └──> failed (last_error, error_code, failed_since, attempts) ──> exported later
       └────────────────────────────────────────┘

A failed export stays failed — and counted wherever failures show — until a later run
exports it: nothing is ever dropped or marked done by hand.

The `request_id` is chosen once per (invoice, target) and reused by every retry and re-run,
so QBO replays a create it already executed instead of executing it twice. It changes only
after the target answered with a definite refusal (a validation fault): then nothing was
created, and the next attempt — maybe with corrected data — must not replay the refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Table, func, select, update

from datagate_pipelines.qbo.request_ids import request_id_for
from datagate_pipelines.warehouse.bulk import upsert
from datagate_pipelines.warehouse.models import exports

HALOPSA = "halopsa"
QBO = "qbo"
TARGETS = (HALOPSA, QBO)

MAX_ERROR_LENGTH = 2000


class Exportable(Protocol):
    """A document the ledger keeps: an invoice, a purchase order, a bill."""

    @property
    def id(self) -> int: ...

    @property
    def portal_id(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def doc_number(self) -> str: ...


@dataclass(frozen=True)
class Ledger:
    """Where one kind of document's exports are kept: a table with one row per (document,
    target) and the same bookkeeping columns (`status`, `external_id`, `external_number`,
    `request_id`, `attempts`, `last_error`, `updated_at`, `exported_at`).

    `id_column` names the document in that table; `scope` adds fixed key values (the kind
    of a purchasing document); `portal_column` is set where ids are unique per portal only.
    """

    table: Table
    id_column: str
    scope: tuple[tuple[str, str], ...] = ()
    portal_column: str | None = None

    def key_of(self, document: Exportable) -> dict[str, Any]:
        values: dict[str, Any] = {self.id_column: document.id, **dict(self.scope)}
        if self.portal_column is not None:
            values[self.portal_column] = document.portal_id
        return values

    def where(self, document: Exportable, target: str) -> list[Any]:
        columns = self.table.c
        return [columns.target == target] + [
            columns[name] == value for name, value in self.key_of(document).items()
        ]

    def first_request_id(self, document: Exportable, target: str) -> str:
        """The first request id of an export (36 characters, which fits QBO's batch
        limit), derived from what identifies the document for good: its key and number."""
        return request_id_for(
            document.portal_id, f"{document.key}|{document.doc_number}", f"{target}:create"
        )


#: Invoices' exports (`exports`, one row per invoice and target).
INVOICES = Ledger(exports, "invoice_id")


def next_request_id(portal_id: str, request_id: str) -> str:
    """The request id after a definite refusal: derived from the previous one."""
    return request_id_for(portal_id, request_id, "again")


def combined_request_id(portal_id: str, request_ids: Iterable[str]) -> str:
    """One request id for a batch of creates: the same members give the same id."""
    return request_id_for(portal_id, ",".join(sorted(request_ids)), "batch")


@dataclass(frozen=True)
class ExportRow:
    invoice_id: int  # the document's id (an invoice's, or a HaloPSA purchase order's)
    target: str
    status: str
    external_id: str | None
    external_number: str | None
    request_id: str
    attempts: int
    last_error: str | None
    error_code: str | None = None
    failed_since: datetime | None = None
    external_type: str | None = None


def _row(r, id_column: str = "invoice_id") -> ExportRow:  # type: ignore[no-untyped-def]
    return ExportRow(
        getattr(r, id_column),
        r.target,
        r.status,
        r.external_id,
        r.external_number,
        r.request_id,
        r.attempts,
        r.last_error,
        r.error_code,
        r.failed_since,
        r.external_type,
    )


def exports_for(
    connection: Connection,
    invoice_ids: Iterable[int],
    target: str,
    *,
    ledger: Ledger = INVOICES,
    portal_id: str | None = None,
) -> dict[int, ExportRow]:
    """The export rows of these documents for `target`, by document id (`portal_id` is
    needed where the ledger's ids are unique per portal only)."""
    ids = list(invoice_ids)
    table, column = ledger.table, ledger.table.c[ledger.id_column]
    scope = [table.c[name] == value for name, value in ledger.scope]
    if ledger.portal_column is not None:
        scope.append(table.c[ledger.portal_column] == portal_id)
    out: dict[int, ExportRow] = {}
    for start in range(0, len(ids), 500):
        for r in connection.execute(
            select(table).where(
                table.c.target == target, column.in_(ids[start : start + 500]), *scope
            )
        ):
            out[getattr(r, ledger.id_column)] = _row(r, ledger.id_column)
    return out


def open_exports(
    connection: Connection,
    documents: Iterable[Exportable],
    target: str,
    *,
    ledger: Ledger = INVOICES,
) -> dict[int, ExportRow]:
    """Make sure every document has its export row (pending, with its request id); return
    the rows. An existing row is left as it is: its request id is the one to reuse."""
    documents = list(documents)
    if not documents:
        return {}
    now = datetime.now(UTC)
    key_columns = (*ledger.key_of(documents[0]), "target")
    upsert(
        connection,
        ledger.table,
        [
            {
                **ledger.key_of(d),
                "target": target,
                "status": "pending",
                "request_id": ledger.first_request_id(d, target),
                "attempts": 0,
                "updated_at": now,
            }
            for d in documents
        ],
        key=key_columns,
        update_columns=(),
    )
    return exports_for(
        connection,
        (d.id for d in documents),
        target,
        ledger=ledger,
        portal_id=documents[0].portal_id,
    )


def record_exported(
    connection: Connection,
    document: Exportable,
    target: str,
    *,
    external_id: str,
    external_number: str | None,
    external_type: str | None = None,
    ledger: Ledger = INVOICES,
    **extra: Any,
) -> None:
    """The target has the document: remember its id, number and record type there (and
    `extra` columns of the ledger, e.g. the target's own total)."""
    now = datetime.now(UTC)
    connection.execute(
        update(ledger.table)
        .where(*ledger.where(document, target))
        .values(
            status="exported",
            external_id=str(external_id),
            external_number=external_number,
            external_type=external_type,
            last_error=None,
            error_code=None,
            failed_since=None,
            updated_at=now,
            exported_at=now,
            **extra,
        )
    )


def record_failed(
    connection: Connection,
    document: Exportable,
    target: str,
    reason: str,
    *,
    refused: bool,
    external_id: str | None = None,
    code: str | None = None,
    ledger: Ledger = INVOICES,
) -> None:
    """An attempt failed. `refused`: the target answered that it did not create anything,
    so the next attempt gets a new request id; otherwise (no answer, 5xx) the outcome is
    unknown and the request id is kept, so a replay can tell. `external_id` records a
    record that exists but is wrong (e.g. its total differs from ours); `code` is the
    target's own error code when it gave one (QBO's fault code, HaloPSA's HTTP status)."""
    now = datetime.now(UTC)
    table = ledger.table
    where = ledger.where(document, target)
    request_id = connection.execute(select(table.c.request_id).where(*where)).scalar_one()
    values = {
        "status": "failed",
        "attempts": table.c.attempts + 1,
        "last_error": reason[:MAX_ERROR_LENGTH],
        "error_code": code,
        "failed_since": func.coalesce(table.c.failed_since, now),
        "updated_at": now,
    }
    if refused:
        values["request_id"] = next_request_id(document.portal_id, request_id)
    if external_id is not None:
        values["external_id"] = str(external_id)
    connection.execute(update(table).where(*where).values(**values))


@dataclass
class ExportOutcome:
    """What one export run did, by document key (for logs, metadata and tests)."""

    target: str
    ledger: Ledger = INVOICES
    created: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)  # existed already; recorded now
    already: list[str] = field(default_factory=list)  # recorded as exported before
    failed: dict[str, str] = field(default_factory=dict)
    skipped_held: int = 0
    skipped_draft: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def exported(self) -> int:
        return len(self.created) + len(self.found)

    def counts(self) -> dict[str, int]:
        return {
            "exported": len(self.created),
            "already_there": len(self.found) + len(self.already),
            "failed": len(self.failed),
            "skipped_held": self.skipped_held,
            "skipped_draft": self.skipped_draft,
        }
