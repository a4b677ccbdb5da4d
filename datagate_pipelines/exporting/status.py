"""Which final invoices are not (yet) where they belong: the failed and missing exports.

One answer for every place that shows it — `datagate invoices`, `portals status`, the
`bill --export` exit code, the demo's summary — and for the nightly schedule, which keeps
launching the export step of a period until none is left (docs/operations.md, Exports).
A final invoice needs one export per target of its portal (HaloPSA always, QBO when the
portal has a `qbo:` section); it is missing when no row says it was exported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from datagate_pipelines.warehouse.models import exports, invoices, purchasing_exports


def failure_text(code: str | None, error: str | None) -> str | None:
    """The target's code and message, once: `6000 QBO refused …`."""
    if not error:
        return code
    return f"{code} {error}" if code and code not in error else error


@dataclass(frozen=True)
class OpenExport:
    """A final invoice not exported to one target: failed (with the target's code and
    message, since when), or not attempted yet (`status` pending or missing)."""

    portal_id: str
    period: date
    invoice_key: str
    doc_number: str
    target: str
    status: str  # failed | pending | missing
    code: str | None
    error: str | None
    failing_since: datetime | None

    def line(self) -> str:
        """`1003 → qbo: 6000 QBO refused credit 1003 …` — one line for the CLI."""
        why = failure_text(self.code, self.error) or (
            "failed" if self.status == "failed" else "not exported yet"
        )
        return f"{self.doc_number} ({self.invoice_key}) → {self.target}: {why}"


def open_exports(
    connection: Connection,
    targets: Mapping[str, tuple[str, ...]],
    *,
    period: date | None = None,
) -> list[OpenExport]:
    """The open exports of the portals in `targets` (portal id → its export targets), of
    one period or of all, oldest period first, then by number and target."""
    found: list[OpenExport] = []
    for portal_id, portal_targets in sorted(targets.items()):
        for target in portal_targets:
            joined = invoices.outerjoin(
                exports, and_(exports.c.invoice_id == invoices.c.id, exports.c.target == target)
            )
            query = (
                select(
                    invoices.c.period,
                    invoices.c.invoice_key,
                    invoices.c.doc_number,
                    invoices.c.number,
                    exports.c.status,
                    exports.c.error_code,
                    exports.c.last_error,
                    exports.c.failed_since,
                )
                .select_from(joined)
                .where(
                    invoices.c.portal_id == portal_id,
                    invoices.c.status == "final",
                    or_(exports.c.status.is_(None), exports.c.status != "exported"),
                )
            )
            if period is not None:
                query = query.where(invoices.c.period == period)
            for row in connection.execute(query):
                found.append(
                    OpenExport(
                        portal_id=portal_id,
                        period=row.period,
                        invoice_key=row.invoice_key,
                        doc_number=row.doc_number,
                        target=target,
                        status=row.status or "missing",
                        code=row.error_code,
                        error=row.last_error,
                        failing_since=row.failed_since,
                    )
                )
        if "qbo" in portal_targets:
            found.extend(_failed_applications(connection, portal_id, period))
    found.sort(key=lambda e: (e.portal_id, e.period, e.doc_number, e.target))
    return found


#: A credit note's application to its invoice in QBO (exporting/credit_applications.py).
QBO_APPLY = "qbo_apply"


def _failed_applications(
    connection: Connection, portal_id: str, period: date | None
) -> list[OpenExport]:
    """Credit notes whose application in QBO failed: open until a later export applies them."""
    query = (
        select(
            invoices.c.period,
            invoices.c.invoice_key,
            invoices.c.doc_number,
            exports.c.status,
            exports.c.error_code,
            exports.c.last_error,
            exports.c.failed_since,
        )
        .join(exports, exports.c.invoice_id == invoices.c.id)
        .where(
            invoices.c.portal_id == portal_id,
            invoices.c.status == "final",
            invoices.c.voided_at.is_(None),
            exports.c.target == QBO_APPLY,
            exports.c.status == "failed",
        )
    )
    if period is not None:
        query = query.where(invoices.c.period == period)
    return [
        OpenExport(
            portal_id=portal_id,
            period=row.period,
            invoice_key=row.invoice_key,
            doc_number=row.doc_number,
            target=QBO_APPLY,
            status=row.status,
            code=row.error_code,
            error=row.last_error,
            failing_since=row.failed_since,
        )
        for row in connection.execute(query)
    ]


def periods_to_export(
    connection: Connection, targets: Mapping[str, tuple[str, ...]]
) -> dict[str, list[date]]:
    """Per portal, the periods (any age) with an open export: not done until exported."""
    periods: dict[str, set[date]] = {}
    for export in open_exports(connection, targets):
        periods.setdefault(export.portal_id, set()).add(export.period)
    return {portal_id: sorted(days) for portal_id, days in periods.items()}


def export_states(
    connection: Connection, portal_id: str, period: date, targets: tuple[str, ...]
) -> dict[str, list[dict[str, Any]]]:
    """Per final invoice of the period (by invoice key), one entry per target:
    `{target, status, id, type, code, error}` — exported (id and type in the target),
    failed (the target's code; error = code and message), pending, or missing."""
    finals = connection.execute(
        select(invoices.c.id, invoices.c.invoice_key).where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.status == "final",
        )
    ).all()
    rows: dict[int, dict[str, Any]] = {invoice_id: {} for invoice_id, _key in finals}
    for start in range(0, len(finals), 500):  # SQLite caps the bound parameters
        chunk = [invoice_id for invoice_id, _key in finals[start : start + 500]]
        for row in connection.execute(select(exports).where(exports.c.invoice_id.in_(chunk))):
            rows[row.invoice_id][row.target] = row
    states: dict[str, list[dict[str, Any]]] = {}
    for invoice_id, key in finals:
        entries = []
        for target in targets:
            row = rows[invoice_id].get(target)
            exported = row is not None and row.status == "exported"
            entries.append(
                {
                    "target": target,
                    "status": "missing" if row is None else row.status,
                    "id": row.external_id if exported else None,
                    "type": row.external_type if row is not None else None,
                    "code": None if row is None or exported else row.error_code,
                    "error": None
                    if row is None or exported
                    else failure_text(row.error_code, row.last_error),
                }
            )
        states[key] = entries
    return states


@dataclass(frozen=True)
class FailedPurchasing:
    """A purchase order or bill QBO does not have because its export failed."""

    portal_id: str
    document: str  # purchase_order | bill
    halo_po_id: int
    code: str | None
    error: str | None
    failing_since: datetime | None


def failed_purchasing(connection: Connection) -> list[FailedPurchasing]:
    """Every failed purchase-order and bill export, of every portal."""
    return [
        FailedPurchasing(
            row.portal_id,
            row.document,
            row.halo_po_id,
            row.error_code,
            row.last_error,
            row.failed_since,
        )
        for row in connection.execute(
            select(purchasing_exports)
            .where(purchasing_exports.c.status == "failed")
            .order_by(purchasing_exports.c.portal_id, purchasing_exports.c.halo_po_id)
        )
    ]
