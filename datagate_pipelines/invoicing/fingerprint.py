"""The fingerprint of a period's drafts: what an operator reviewed, in 16 characters.

Each invoice not yet final (draft or held) gets a digest of everything that would go out:
its status and hold reasons, customer, agreement, totals and every line. The period's
fingerprint combines the digests, so any change to any draft changes it, and the same
drafts recomputed give the same fingerprint. An approval keeps the digests it approved,
so a change before finalization can be named invoice by invoice.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from datagate_pipelines.warehouse.models import invoice_lines, invoices

FINGERPRINT_LENGTH = 16
NOT_FINAL = ("draft", "held")
# Every stored column of a line but its row ids: what the drafts say, as written.
_LINE_FIELDS = tuple(c.name for c in invoice_lines.columns if c.name not in ("id", "invoice_id"))


@dataclass(frozen=True)
class DraftDigest:
    """One draft as approved: its digest, and what an operator recognises it by."""

    digest: str
    status: str
    total: str

    def as_json(self) -> dict[str, str]:
        return {"digest": self.digest, "status": self.status, "total": self.total}


def _hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def draft_digests(connection: Connection, portal_id: str, period: date) -> dict[str, DraftDigest]:
    """Per invoice key, the digest of each draft or held invoice of the period."""
    rows = connection.execute(
        select(invoices).where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.status.in_(NOT_FINAL),
        )
    ).all()
    lines: dict[int, list[tuple]] = defaultdict(list)
    ids = [row.id for row in rows]
    for start in range(0, len(ids), 500):  # SQLite caps the bound parameters
        for line in connection.execute(
            select(invoice_lines).where(invoice_lines.c.invoice_id.in_(ids[start : start + 500]))
        ):
            lines[line.invoice_id].append(tuple(getattr(line, name) for name in _LINE_FIELDS))
    digests = {}
    for row in rows:
        content = {
            "status": row.status,
            "hold_reasons": list(row.hold_reasons or []),
            "customer": [row.customer_id, row.customer_name],
            "agreement": [row.agreement_key, row.halo_contract_id],
            "dates": [row.invoice_date, row.due_date],
            "money": [row.subtotal, row.tax, row.total],
            "lines": sorted(lines[row.id]),
        }
        digests[row.invoice_key] = DraftDigest(_hash(content), row.status, f"{row.total:.2f}")
    return digests


def fingerprint(digests: dict[str, DraftDigest]) -> str:
    """The period's fingerprint from its drafts' digests (order does not matter)."""
    return _hash(sorted((key, d.digest) for key, d in digests.items()))[:FINGERPRINT_LENGTH]
