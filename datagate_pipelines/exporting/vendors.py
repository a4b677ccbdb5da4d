"""HaloPSA suppliers as QBO vendors, each linked exactly once (docs/qbo-api.md §B1).

Like customers (exporting/qbo_references.py): the link stored in `qbo_entities`
(entity `Vendor`, key = the HaloPSA supplier id), else a vendor found by its DisplayName
(escaped, compared without case, inactive ones too), else created in batches with
content-derived request ids. DisplayName is one namespace for customers, vendors and
employees (6240): a supplier whose name is taken — by a customer (a partner that is both),
an employee, or another of our suppliers — becomes `<name> (supplier <HaloPSA id>)`, a
deterministic suffix, and the link records the name used.

With `purchasing.write_vendor_ids`, each linked vendor's id is written back to the
supplier's `accounts_id` in HaloPSA (only where it differs), as HaloPSA's own accounting
sync does (docs/halopsa-api.md §A1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from datagate_pipelines.config import PortalSettings
from datagate_pipelines.exporting.database import Database, transaction
from datagate_pipelines.exporting.qbo_references import (
    NAME_MAX,
    DisplayNames,
    ReferenceOutcome,
    link_display_names,
    load_links,
    qbo_name,
)
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.halopsa.errors import HaloPSABadRequestError, HaloPSANotFoundError
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.warehouse.models import halo_suppliers

VENDOR = "Vendor"


@dataclass(frozen=True)
class SupplierInfo:
    halo_id: int
    name: str
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    accounts_id: str | None = None


def supplier_name(name: str, halo_id: int) -> str:
    """The deterministic DisplayName of a supplier whose own name is taken in QBO."""
    suffix = f" (supplier {halo_id})"
    return qbo_name(name)[: NAME_MAX - len(suffix)] + suffix


def vendor_body(supplier: SupplierInfo, display_name: str) -> dict[str, Any]:
    """The QBO Vendor for a supplier: its name, email, phone and address (HaloPSA keeps the
    address as one free-text string: its lines become BillAddr lines)."""
    body: dict[str, Any] = {"DisplayName": display_name, "CompanyName": display_name[:50]}
    if supplier.email:
        body["PrimaryEmailAddr"] = {"Address": supplier.email[:100]}
    if supplier.phone:
        body["PrimaryPhone"] = {"FreeFormNumber": supplier.phone[:30]}
    lines = [part.strip() for part in (supplier.address or "").splitlines() if part.strip()]
    if lines:
        body["BillAddr"] = {f"Line{i}": text[:500] for i, text in enumerate(lines[:5], start=1)}
    return body


def load_suppliers(
    connection: Connection, portal_id: str, *, also: Iterable[int] = ()
) -> dict[int, SupplierInfo]:
    """The portal's live active suppliers, and those in `also` (e.g. an inactive supplier
    a purchase order still names)."""
    wanted = set(also)
    out: dict[int, SupplierInfo] = {}
    for r in connection.execute(
        select(halo_suppliers)
        .where(halo_suppliers.c.portal_id == portal_id, halo_suppliers.c.deleted_at.is_(None))
        .order_by(halo_suppliers.c.halo_id)
    ):
        if not r.inactive or r.halo_id in wanted:
            out[r.halo_id] = SupplierInfo(
                r.halo_id, r.name, r.email, r.phone, r.address, r.accounts_id
            )
    return out


SUPPLIERS = DisplayNames(VENDOR, "supplier", "HaloPSA supplier", vendor_body, supplier_name)


def link_vendors(
    db: Database, client: QBOClient, portal: PortalSettings, wanted: Mapping[int, SupplierInfo]
) -> ReferenceOutcome:
    """Find or create a QBO vendor for every supplier in `wanted` (by HaloPSA supplier id),
    as customers are (`qbo_references.link_display_names`)."""
    return link_display_names(db, client, portal, SUPPLIERS, wanted)


@dataclass
class WriteBack:
    """Vendor ids written to HaloPSA suppliers' `accounts_id`."""

    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def write_vendor_ids(db: Database, halopsa: HaloPSAClient, portal: PortalSettings) -> WriteBack:
    """Put each linked vendor's QBO id in its supplier's `accounts_id`, where it differs
    (an update by id: safe to repeat). The mirror is updated too, so the next run writes
    nothing."""
    outcome = WriteBack()
    with transaction(db) as connection:
        links = load_links(connection, portal.id, VENDOR)
        current = dict(
            connection.execute(
                select(halo_suppliers.c.halo_id, halo_suppliers.c.accounts_id).where(
                    halo_suppliers.c.portal_id == portal.id,
                    halo_suppliers.c.deleted_at.is_(None),
                )
            ).all()
        )
    for key, vendor_id in sorted(links.items(), key=lambda kv: int(kv[0])):
        sid = int(key)
        if sid not in current or (current[sid] or "") == vendor_id:
            continue
        try:
            halopsa.upsert("Supplier", {"id": sid, "accounts_id": vendor_id})
        except (HaloPSABadRequestError, HaloPSANotFoundError) as error:
            outcome.failed[key] = f"portal {portal.id}: supplier {sid}: {error}"
            continue
        where = (halo_suppliers.c.portal_id == portal.id) & (halo_suppliers.c.halo_id == sid)
        with transaction(db) as connection:
            # The stored detail too: it is reused while the supplier's list row is unchanged.
            raw = connection.execute(select(halo_suppliers.c.raw).where(where)).scalar_one()
            connection.execute(
                halo_suppliers.update()
                .where(where)
                .values(accounts_id=vendor_id, raw={**raw, "accounts_id": vendor_id})
            )
        outcome.written.append(key)
    return outcome
