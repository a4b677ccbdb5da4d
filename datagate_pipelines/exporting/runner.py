"""The exactly-once export of documents to one target, whatever the target or document.

Every export (invoices to HaloPSA and QBO, purchase orders and bills to QBO) runs the same
steps around its own lookups and creates:
1. load the documents (a period's final invoices) and make sure each has its ledger row
   (pending, with its request id) — committed before any request is sent;
2. leave out what is recorded as exported; count held and draft invoices (never sent);
3. hand the rest to the target's `send`, which looks each one up before creating it and
   records every outcome (`record_outcome`, `record_failure`) right after the answer;
4. log the failures. What `send` raises (the target stopped answering) propagates: what
   was recorded stays, and the next run starts again from step 1.

Each invoice the target now has is an audit event (`export`), written with its record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection

from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.documents import (
    InvoiceDocument,
    load_final_invoices,
    not_exportable,
)
from datagate_pipelines.exporting.ledger import (
    INVOICES,
    Exportable,
    ExportOutcome,
    ExportRow,
    Ledger,
    open_exports,
    record_exported,
    record_failed,
)
from datagate_pipelines.warehouse.audit import EXPORT, record_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingExports:
    """The documents a target does not have yet (as far as we have recorded), and their
    export rows (their request ids) by document id."""

    documents: list[Any]
    rows: Mapping[int, ExportRow]


#: A target's half: look up, create and record the pending documents into the outcome.
Send = Callable[[PendingExports, ExportOutcome], None]


def run_export(
    db: Database,
    target: str,
    portal_id: str,
    period: date,
    send: Send,
    *,
    only: Collection[int] | None = None,
) -> ExportOutcome:
    """Export the period's final invoices (or those of them in `only`, by id: a credit
    note issued on its own) to `target` through `send` (steps above)."""
    invoice_ids = None if only is None else list(only)

    def load(connection: Connection) -> tuple[list[InvoiceDocument], dict[str, int]]:
        documents = load_final_invoices(connection, portal_id, period, invoice_ids=invoice_ids)
        return documents, not_exportable(connection, portal_id, period)

    return export_documents(db, target, INVOICES, load, send, label=f"{portal_id} {period}")


#: Loads the documents to export and how many were left out (held, draft …) by reason.
Load = Callable[[Connection], tuple[list[Any], dict[str, int]]]


def export_documents(
    db: Database, target: str, ledger: Ledger, load: Load, send: Send, *, label: str
) -> ExportOutcome:
    """Steps 1–4 above for any kind of document kept in `ledger`."""
    outcome = ExportOutcome(target, ledger)
    with transaction(db) as connection:
        documents, skipped = load(connection)
        rows = open_exports(connection, documents, target, ledger=ledger)
    outcome.skipped_held, outcome.skipped_draft = skipped.get("held", 0), skipped.get("draft", 0)
    pending = []
    for document in documents:
        if rows[document.id].status == "exported":
            outcome.already.append(document.key)
        else:
            pending.append(document)
    if pending:
        send(PendingExports(pending, rows), outcome)
    if outcome.failed:
        logger.warning(
            "%s %s: %d document(s) not exported: %s",
            target,
            label,
            len(outcome.failed),
            "; ".join(f"{k}: {v}" for k, v in list(outcome.failed.items())[:5]),
        )
    return outcome


def record_outcome(
    connection: Any,
    outcome: ExportOutcome,
    document: Exportable,
    *,
    external_id: str,
    external_number: str | None,
    external_type: str | None = None,
    created: bool,
    **extra: Any,
) -> None:
    """The target has the document (we created it, or found it there): record it."""
    record_exported(
        connection,
        document,
        outcome.target,
        external_id=external_id,
        external_number=external_number,
        external_type=external_type,
        ledger=outcome.ledger,
        **extra,
    )
    if isinstance(document, InvoiceDocument):  # purchasing documents are not in the trail
        record_event(
            connection,
            document.portal_id,
            EXPORT,
            period=document.period,
            invoice_key=document.invoice_key,
            details={
                "target": outcome.target,
                "number": document.doc_number,
                "total": document.total,
                "after": {"id": external_id, "number": external_number, "type": external_type},
                # found: it was there already (an earlier run created it and died before recording)
                "created": created,
            },
        )
    (outcome.created if created else outcome.found).append(document.key)


def record_failure(
    connection: Any,
    outcome: ExportOutcome,
    document: Exportable,
    reason: str,
    *,
    refused: bool,
    external_id: str | None = None,
    code: str | None = None,
) -> None:
    """The document is not exported, and why (`ledger.record_failed` says what `refused`,
    `external_id` and `code` mean)."""
    record_failed(
        connection,
        document,
        outcome.target,
        reason,
        refused=refused,
        external_id=external_id,
        code=code,
        ledger=outcome.ledger,
    )
    outcome.failed[document.key] = reason
