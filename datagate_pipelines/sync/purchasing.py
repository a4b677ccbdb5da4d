"""Suppliers' and purchase orders' details, read only where the list is not enough.

docs/halopsa-api.md §A1: a supplier list row lacks `accounts_id`, `address` and `notes`, and
carries no change stamp. Each list row is hashed and compared with the hash stored with the
supplier: only new or changed rows cost a `GET /Supplier/{id}`, and every detail in a full
sync asked for or once as old as the portal's `sync.full_every_days` (that brings in changes
seen only in detail fields); the others reuse the stored detail. §A2: purchase-order list
rows are full objects; a row without `lines` is read whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.halopsa.errors import HaloPSANotFoundError
from datagate_pipelines.sync.halopsa_rows import DETAIL_READ_AT, LIST_HASH
from datagate_pipelines.warehouse.mirror import content_hash
from datagate_pipelines.warehouse.models import halo_suppliers

#: Details this old are read again even when the list row did not change: the periodic
#: reconciliation of detail-only fields (by default; the assets pass the portal's
#: full-sync cadence, see docs/operations.md).
DETAIL_MAX_AGE = timedelta(days=7)


@dataclass
class DetailReads:
    """How many records needed their detail read, and how many reused the stored one."""

    read: int = 0
    reused: int = 0
    gone: int = 0  # listed, then not found when read (deleted in between)

    def counts(self) -> dict[str, int]:
        return {"details_read": self.read, "details_reused": self.reused, "details_gone": self.gone}


def with_supplier_details(
    client: HaloPSAClient,
    connection: Connection,
    portal_id: str,
    rows: Sequence[Any],
    *,
    now: datetime,
    full: bool = False,
    max_age: timedelta = DETAIL_MAX_AGE,
) -> tuple[list[Any], DetailReads]:
    """Each supplier list row merged with its detail record (read now, or reused when the
    row's hash is the stored one and the stored detail is recent), plus the row's hash and
    when its detail was read, for `halopsa_rows.decode_suppliers`. A `full` sync reads
    every detail again."""
    stored = {
        r.halo_id: r
        for r in connection.execute(
            select(
                halo_suppliers.c.halo_id,
                halo_suppliers.c.list_hash,
                halo_suppliers.c.detail_read_at,
                halo_suppliers.c.raw,
            ).where(halo_suppliers.c.portal_id == portal_id)
        )
    }
    reads = DetailReads()
    out: list[Any] = []
    for row in rows:
        if not isinstance(row, Mapping) or not isinstance(row.get("id"), int):
            out.append(row)  # the decoder rejects it with its reason
            continue
        digest = content_hash(row)
        known = stored.get(row["id"])
        fresh = (
            not full
            and known is not None
            and known.list_hash == digest
            and known.detail_read_at is not None
            and now - known.detail_read_at < max_age
        )
        if fresh:
            detail, read_at = dict(known.raw), known.detail_read_at
            reads.reused += 1
        else:
            try:
                detail, read_at = client.get("Supplier", row["id"]), now
                reads.read += 1
            except HaloPSANotFoundError:
                detail, read_at = {}, None
                reads.gone += 1
        out.append({**detail, **row, LIST_HASH: digest, DETAIL_READ_AT: read_at})
    return out, reads


def with_purchase_order_lines(
    client: HaloPSAClient, rows: Sequence[Any]
) -> tuple[list[Any], DetailReads]:
    """Purchase orders whose list row came without `lines` are read whole."""
    reads = DetailReads()
    out: list[Any] = []
    for row in rows:
        if isinstance(row, Mapping) and isinstance(row.get("id"), int) and "lines" not in row:
            try:
                row = {**row, **client.get("PurchaseOrder", row["id"])}
                reads.read += 1
            except HaloPSANotFoundError:
                reads.gone += 1
        else:
            reads.reused += 1
        out.append(row)
    return out, reads
