"""Derive a portal's domain records (customers, sites, products, agreements) from the mirror.

Each function reads the HaloPSA mirror tables, decides with pure code, and writes the
domain tables in the caller's transaction — only the rows that changed. HaloPSA is the
master record for customers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, delete, select, update

from datagate_pipelines.billing.agreements import build_agreements
from datagate_pipelines.config import PortalSettings
from datagate_pipelines.schemas import billing as schemas
from datagate_pipelines.schemas.checks import gate, records, to_frame
from datagate_pipelines.sync.products import keep_first_noticed_end, select_products
from datagate_pipelines.warehouse.bulk import CHUNK_ROWS, upsert
from datagate_pipelines.warehouse.models import (
    agreements,
    contracts,
    customers,
    halo_clients,
    halo_sites,
    item_groups,
    items,
    product_sites,
    products,
    recurring_invoice_lines,
    sites,
)
from datagate_pipelines.warehouse.rejects import Reject


@dataclass
class SyncOutcome:
    counts: dict[str, int] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)


#: Set on every derivation; a row that differs from its stored version only there is not
#: written again (a sync of an unchanged tenant writes nothing).
STAMPS = frozenset({"created_at", "updated_at"})


def changed_rows(
    rows: list[dict[str, Any]], existing: dict[Any, dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    """The rows that are new or differ from their stored version beyond the time stamps."""
    return [
        row
        for row in rows
        if (old := existing.get(row[key])) is None
        or any(old.get(column) != value for column, value in row.items() if column not in STAMPS)
    ]


def _live(table: Any, portal_id: str) -> Any:
    return select(table).where(table.c.portal_id == portal_id, table.c.deleted_at.is_(None))


def sync_customers(connection: Connection, portal: PortalSettings) -> SyncOutcome:
    """Opted-in clients become customers; unticked, inactive or vanished ones are deactivated."""
    now = datetime.now(UTC)
    pid = portal.id
    site_rows = {r.halo_id: r for r in connection.execute(_live(halo_sites, pid))}
    existing = {
        r.halo_client_id: r._asdict()
        for r in connection.execute(select(customers).where(customers.c.portal_id == pid))
    }
    rows, live_ids = [], set()
    for client in connection.execute(
        _live(halo_clients, pid).where(halo_clients.c.opted_in.is_(True))
    ):
        live_ids.add(client.halo_id)
        main_site = site_rows.get(client.main_site_id) if client.main_site_id else None
        old = existing.get(client.halo_id)
        row = {
            "portal_id": pid,
            "halo_client_id": client.halo_id,
            "name": client.name,
            "active": not client.inactive,
            "main_site_id": client.main_site_id,
            "address": main_site.address if main_site else None,
            "zip": main_site.postcode if main_site else None,
            # Set when the customer is first created; an existing customer keeps its own.
            "use_site_zip_tax": (
                old["use_site_zip_tax"] if old else portal.sync.use_site_zip_tax_for_new_customers
            ),
            "opening_balance": old["opening_balance"] if old else None,
            "opening_balance_date": old["opening_balance_date"] if old else None,
            "created_at": old["created_at"] if old else now,
            "updated_at": now,
        }
        if portal.sync.synchronize_opening_balance:
            row["opening_balance"] = client.start_balance
            row["opening_balance_date"] = client.start_date
        rows.append(row)
    written = changed_rows(rows, existing, "halo_client_id")
    upsert(connection, customers, written, key=("portal_id", "halo_client_id"))
    gone = [cid for cid, old in existing.items() if cid not in live_ids and old["active"]]
    if gone:
        connection.execute(
            update(customers)
            .where(customers.c.portal_id == pid, customers.c.halo_client_id.in_(gone))
            .values(active=False, updated_at=now)
        )
    return SyncOutcome(
        {
            "customers": len(rows),
            "written": len(written),
            "active": sum(1 for r in rows if r["active"]),
            "new": sum(1 for r in rows if r["halo_client_id"] not in existing),
            "deactivated": len(gone),
        }
    )


def sync_sites(connection: Connection, portal: PortalSettings) -> SyncOutcome:
    """The customers' sites. With `update_site` off, sites we already have are left alone."""
    now = datetime.now(UTC)
    pid = portal.id
    customer_ids = set(
        connection.execute(
            select(customers.c.halo_client_id).where(customers.c.portal_id == pid)
        ).scalars()
    )
    existing = {
        r.halo_site_id: r._asdict()
        for r in connection.execute(select(sites).where(sites.c.portal_id == pid))
    }
    rows = []
    for site in connection.execute(_live(halo_sites, pid)):
        if site.client_id not in customer_ids:
            continue
        old = existing.get(site.halo_id)
        if old is not None and not portal.sync.update_site:
            continue
        rows.append(
            {
                "portal_id": pid,
                "halo_site_id": site.halo_id,
                "customer_id": site.client_id,
                "name": site.name,
                "address": site.address,
                "zip": site.postcode,
                "created_at": old["created_at"] if old else now,
                "updated_at": now,
            }
        )
    written = changed_rows(rows, existing, "halo_site_id")
    upsert(connection, sites, written, key=("portal_id", "halo_site_id"))
    return SyncOutcome(
        {
            "sites": len(rows),
            "sites_written": len(written),
            "new": sum(1 for r in rows if r["halo_site_id"] not in existing),
        }
    )


def sync_products(connection: Connection, portal: PortalSettings, *, as_of: date) -> SyncOutcome:
    """Recurring-invoice lines → products and product sites (lines are never deleted)."""
    if not portal.sync.enable_product_sync:
        return SyncOutcome({"skipped_product_sync_disabled": 1})
    pid = portal.id
    now = datetime.now(UTC)
    customer_rows = {
        r.halo_client_id: r._asdict()
        for r in connection.execute(select(customers).where(customers.c.portal_id == pid))
    }
    contract_rows = {
        r.halo_id: r._asdict()
        for r in connection.execute(select(contracts).where(contracts.c.portal_id == pid))
    }
    item_rows = {r.halo_id: r._asdict() for r in connection.execute(_live(items, pid))}
    group_names = {
        r.halo_id: r.name
        for r in connection.execute(
            select(item_groups.c.halo_id, item_groups.c.name).where(item_groups.c.portal_id == pid)
        )
    }
    lines = [
        r._asdict()
        for r in connection.execute(
            select(recurring_invoice_lines).where(recurring_invoice_lines.c.portal_id == pid)
        )
    ]
    selection = select_products(
        lines,
        customers=customer_rows,
        contracts=contract_rows,
        items=item_rows,
        item_groups=group_names,
        settings=portal.sync,
        billing_start=portal.billing_start,
        as_of=as_of,
    )
    existing = {
        r.product_id: r._asdict()
        for r in connection.execute(select(products).where(products.c.portal_id == pid))
    }
    chosen = [keep_first_noticed_end(p, existing.get(p["product_id"])) for p in selection.products]
    # The products frame is what billing reads: checked at the boundary, bad rows rejected.
    frame, schema_rejects = gate(
        to_frame(chosen, schemas.products),
        schemas.products,
        entity="product",
        id_column="product_id",
    )
    rows = [
        {
            "portal_id": pid,
            **product,
            "created_at": existing[product["product_id"]]["created_at"]
            if product["product_id"] in existing
            else now,
            "updated_at": now,
        }
        for product in records(frame)
    ]
    written = changed_rows(rows, existing, "product_id")
    upsert(connection, products, written, key=("portal_id", "product_id"))
    rejects = [*selection.rejects, *schema_rejects]
    return SyncOutcome(
        {
            "products": len(rows),
            "written": len(written),
            "new": sum(1 for r in rows if r["product_id"] not in existing),
            "ended_by_sync": sum(1 for r in rows if r["ended_reason"]),
            "filtered_out": selection.filtered_out,
            "rejected": len(rejects),
        },
        rejects,
    )


def sync_product_sites(connection: Connection, portal: PortalSettings) -> SyncOutcome:
    """Each product's site (the contract site of the recurring-invoice line), when we know it."""
    pid = portal.id
    rows = connection.execute(
        select(products.c.product_id, products.c.site_id)
        .join(
            sites,
            (sites.c.portal_id == products.c.portal_id)
            & (sites.c.halo_site_id == products.c.site_id),
        )
        .where(products.c.portal_id == pid)
    ).all()
    wanted = {r.product_id: r.site_id for r in rows}
    stored = dict(
        connection.execute(
            select(product_sites.c.product_id, product_sites.c.site_id).where(
                product_sites.c.portal_id == pid
            )
        ).all()
    )
    gone = [product for product in stored if product not in wanted]
    for start in range(0, len(gone), CHUNK_ROWS):
        connection.execute(
            delete(product_sites).where(
                product_sites.c.portal_id == pid,
                product_sites.c.product_id.in_(gone[start : start + CHUNK_ROWS]),
            )
        )
    written = [
        {"portal_id": pid, "product_id": product, "site_id": site}
        for product, site in wanted.items()
        if stored.get(product) != site
    ]
    upsert(connection, product_sites, written, key=("portal_id", "product_id"))
    return SyncOutcome({"product_sites": len(rows), "written": len(written), "removed": len(gone)})


def sync_agreements(connection: Connection, portal: PortalSettings) -> SyncOutcome:
    """Default agreement per customer, or one per contract (plus a "no contract" one)."""
    pid = portal.id
    now = datetime.now(UTC)
    frame = pd.DataFrame(
        connection.execute(
            select(products.c.customer_id, products.c.contract_id).where(
                products.c.portal_id == pid
            )
        ).all(),
        columns=["customer_id", "contract_id"],
    )
    if frame.empty:
        return SyncOutcome({"agreements": 0})
    frame["contract_id"] = frame["contract_id"].astype("Int64")
    # "Imported" contracts: those our products came from (they passed the contract filter).
    imported = frame.dropna(subset=["contract_id"]).drop_duplicates()
    built = build_agreements(frame, imported, portal.sync.use_default_agreement)
    existing = set(
        connection.execute(
            select(agreements.c.agreement_key).where(agreements.c.portal_id == pid)
        ).scalars()
    )
    rows = []
    for record in built.to_dict("records"):
        key = record["agreement_key"]
        kind = (
            "contract"
            if key.startswith("contract:")
            else ("no_contract" if key.endswith("no-contract") else "default")
        )
        halo_contract = record["halo_contract_id"]
        halo_contract = None if pd.isna(halo_contract) else int(halo_contract)
        rows.append(
            {
                "portal_id": pid,
                "agreement_key": key,
                "customer_id": int(record["customer_id"]),
                "kind": kind,
                "contract_id": halo_contract if kind == "contract" else None,
                "halo_export_contract_id": halo_contract,
                "created_at": now,
                "updated_at": now,
            }
        )
    upsert(
        connection,
        agreements,
        rows,
        key=("portal_id", "agreement_key"),
        update_columns=(
            "customer_id",
            "kind",
            "contract_id",
            "halo_export_contract_id",
            "updated_at",
        ),
    )
    return SyncOutcome(
        {"agreements": len(rows), "new": sum(1 for r in rows if r["agreement_key"] not in existing)}
    )
