"""The exactly-once export of one portal's period to one target, whatever the target.

Both targets (HaloPSA, QBO) run the same steps around their own lookups and creates:
1. load the period's final invoices and make sure each has its `exports` row (pending,
   with its request id) — committed before any request is sent;
2. leave out what is recorded as exported; count held and draft invoices (never sent);
3. hand the rest to the target's `send`, which looks each one up before creating it and
   records every outcome (`record_outcome`, `record_failure`) right after the answer;
4. log the failures. What `send` raises (the target stopped answering) propagates: what
   was recorded stays, and the next run starts again from step 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.documents import (
    InvoiceDocument,
    load_final_invoices,
    not_exportable,
)
from datagate_pipelines.exporting.ledger import (
    ExportOutcome,
    ExportRow,
    open_exports,
    record_exported,
    record_failed,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingExports:
    """The invoices a target does not have yet (as far as we have recorded), and the
    export rows of the period (their request ids) by invoice id."""

    documents: list[InvoiceDocument]
    rows: Mapping[int, ExportRow]


#: A target's half: look up, create and record the pending invoices into the outcome.
Send = Callable[[PendingExports, ExportOutcome], None]


def run_export(
    db: Database, target: str, portal_id: str, period: date, send: Send
) -> ExportOutcome:
    """Export the period's final invoices to `target` through `send` (steps above)."""
    outcome = ExportOutcome(target)
    with transaction(db) as connection:
        documents = load_final_invoices(connection, portal_id, period)
        rows = open_exports(connection, documents, target)
        skipped = not_exportable(connection, portal_id, period)
    outcome.skipped_held, outcome.skipped_draft = skipped["held"], skipped["draft"]
    pending = []
    for document in documents:
        if rows[document.id].status == "exported":
            outcome.already.append(document.invoice_key)
        else:
            pending.append(document)
    if pending:
        send(PendingExports(pending, rows), outcome)
    if outcome.failed:
        logger.warning(
            "%s portal %s %s: %d invoice(s) not exported: %s",
            target,
            portal_id,
            period.isoformat(),
            len(outcome.failed),
            "; ".join(f"{k}: {v}" for k, v in list(outcome.failed.items())[:5]),
        )
    return outcome


def record_outcome(
    connection: Any,
    outcome: ExportOutcome,
    document: InvoiceDocument,
    *,
    external_id: str,
    external_number: str | None,
    external_type: str,
    created: bool,
) -> None:
    """The target has the document (we created it, or found it there): record it."""
    record_exported(
        connection,
        document.id,
        outcome.target,
        external_id=external_id,
        external_number=external_number,
        external_type=external_type,
    )
    (outcome.created if created else outcome.found).append(document.invoice_key)


def record_failure(
    connection: Any,
    outcome: ExportOutcome,
    document: InvoiceDocument,
    reason: str,
    *,
    refused: bool,
    external_id: str | None = None,
    code: str | None = None,
) -> None:
    """The invoice is not exported, and why (`ledger.record_failed` says what `refused`,
    `external_id` and `code` mean)."""
    record_failed(
        connection,
        document.id,
        outcome.target,
        reason,
        refused=refused,
        external_id=external_id,
        code=code,
    )
    outcome.failed[document.invoice_key] = reason
