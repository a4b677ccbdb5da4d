"""Export bookkeeping: one `exports` row per (invoice, target system).

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

from sqlalchemy import Connection, func, select, update

from datagate_pipelines.exporting.documents import InvoiceDocument
from datagate_pipelines.qbo.request_ids import request_id_for
from datagate_pipelines.warehouse.models import exports, invoices
from datagate_pipelines.warehouse.upsert import upsert

HALOPSA = "halopsa"
QBO = "qbo"
TARGETS = (HALOPSA, QBO)

MAX_ERROR_LENGTH = 2000


def initial_request_id(portal_id: str, invoice_key: str, doc_number: str, target: str) -> str:
    """The first request id of an export (36 characters, which fits QBO's batch limit),
    derived from what identifies the invoice for good: its key and its number."""
    return request_id_for(portal_id, f"{invoice_key}|{doc_number}", f"{target}:create")


def next_request_id(portal_id: str, request_id: str) -> str:
    """The request id after a definite refusal: derived from the previous one."""
    return request_id_for(portal_id, request_id, "again")


def combined_request_id(portal_id: str, request_ids: Iterable[str]) -> str:
    """One request id for a batch of creates: the same members give the same id."""
    return request_id_for(portal_id, ",".join(sorted(request_ids)), "batch")


@dataclass(frozen=True)
class ExportRow:
    invoice_id: int
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


def _row(r) -> ExportRow:  # type: ignore[no-untyped-def]
    return ExportRow(
        r.invoice_id,
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
    connection: Connection, invoice_ids: Iterable[int], target: str
) -> dict[int, ExportRow]:
    """The export rows of these invoices for `target`, by invoice id."""
    ids = list(invoice_ids)
    out: dict[int, ExportRow] = {}
    for start in range(0, len(ids), 500):
        for r in connection.execute(
            select(exports).where(
                exports.c.target == target, exports.c.invoice_id.in_(ids[start : start + 500])
            )
        ):
            out[r.invoice_id] = _row(r)
    return out


def open_exports(
    connection: Connection, documents: Iterable[InvoiceDocument], target: str
) -> dict[int, ExportRow]:
    """Make sure every invoice has its export row (pending, with its request id); return
    the rows. An existing row is left as it is: its request id is the one to reuse."""
    documents = list(documents)
    now = datetime.now(UTC)
    upsert(
        connection,
        exports,
        [
            {
                "invoice_id": d.id,
                "target": target,
                "status": "pending",
                "request_id": initial_request_id(d.portal_id, d.invoice_key, d.doc_number, target),
                "attempts": 0,
                "updated_at": now,
            }
            for d in documents
        ],
        key=("invoice_id", "target"),
        update_columns=(),
    )
    return exports_for(connection, (d.id for d in documents), target)


def record_exported(
    connection: Connection,
    invoice_id: int,
    target: str,
    *,
    external_id: str,
    external_number: str | None,
    external_type: str | None = None,
) -> None:
    """The target has the invoice: remember its id, number and record type there."""
    now = datetime.now(UTC)
    connection.execute(
        update(exports)
        .where(exports.c.invoice_id == invoice_id, exports.c.target == target)
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
        )
    )


def record_failed(
    connection: Connection,
    invoice_id: int,
    target: str,
    reason: str,
    *,
    refused: bool,
    external_id: str | None = None,
    code: str | None = None,
) -> None:
    """An attempt failed. `refused`: the target answered that it did not create anything,
    so the next attempt gets a new request id; otherwise (no answer, 5xx) the outcome is
    unknown and the request id is kept, so a replay can tell. `external_id` records a
    record that exists but is wrong (e.g. its total differs from ours); `code` is the
    target's own error code when it gave one (QBO's fault code, HaloPSA's HTTP status)."""
    now = datetime.now(UTC)
    request_id, portal_id = connection.execute(
        select(exports.c.request_id, invoices.c.portal_id)
        .join(invoices, invoices.c.id == exports.c.invoice_id)
        .where(exports.c.invoice_id == invoice_id, exports.c.target == target)
    ).one()
    values = {
        "status": "failed",
        "attempts": exports.c.attempts + 1,
        "last_error": reason[:MAX_ERROR_LENGTH],
        "error_code": code,
        "failed_since": func.coalesce(exports.c.failed_since, now),
        "updated_at": now,
    }
    if refused:
        values["request_id"] = next_request_id(portal_id, request_id)
    if external_id is not None:
        values["external_id"] = str(external_id)
    connection.execute(
        update(exports)
        .where(exports.c.invoice_id == invoice_id, exports.c.target == target)
        .values(**values)
    )


@dataclass
class ExportOutcome:
    """What one export run did, by invoice key (for logs, metadata and tests)."""

    target: str
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
