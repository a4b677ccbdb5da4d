"""Product-template import: HaloPSA item → tax code (and optional income account)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from datagate_pipelines.billing.codes import normalize_tax_code
from datagate_pipelines.imports.csv_files import (
    ImportReport,
    RowError,
    count_change,
    int_field,
    parse_rows,
    read_csv,
)
from datagate_pipelines.warehouse.models import items, product_templates
from datagate_pipelines.warehouse.upsert import upsert

PRODUCT_TEMPLATE_COLUMNS = ("item_id", "item_name", "tax_code", "income_account")


def import_product_templates(
    connection: Connection, portal_id: str, source: str | Path, *, dry_run: bool = False
) -> ImportReport:
    """item_id,item_name,tax_code,income_account — HaloPSA item → tax code (+ income account).

    `item_id` may be empty when `item_name` names exactly one of the portal's items.
    """
    name, rows = read_csv(source, PRODUCT_TEMPLATE_COLUMNS)
    report = ImportReport("product templates", name, dry_run=dry_run)
    known = {
        r.halo_id: r.name
        for r in connection.execute(
            select(items.c.halo_id, items.c.name).where(items.c.portal_id == portal_id)
        )
    }
    by_name: dict[str, list[int]] = {}
    for item_id, item_name in known.items():
        by_name.setdefault(item_name.casefold(), []).append(item_id)

    def parse(row: dict[str, str]) -> dict[str, Any]:
        item_id = int_field(row.get("item_id", ""), "item_id", required=False)
        item_name = row.get("item_name") or None
        if item_id is None:
            if not item_name:
                raise RowError("item_id", "neither item_id nor item_name is given")
            matches = by_name.get(item_name.casefold(), [])
            if len(matches) != 1:
                found = "no" if not matches else f"{len(matches)}"
                raise RowError(
                    "item_name", f"{found} HaloPSA item(s) named {item_name!r}: give item_id"
                )
            item_id = matches[0]
        elif known and item_id not in known:
            raise RowError(
                "item_id",
                f"HaloPSA item {item_id} is not known for this portal (run a sync first?)",
            )
        tax_code = row.get("tax_code") or None
        return {
            "item_id": item_id,
            "item_name": item_name or known.get(item_id),
            "tax_code": normalize_tax_code(tax_code) if tax_code else None,
            "income_account": row.get("income_account") or None,
        }

    good = [row for _line, row in parse_rows(rows, parse, report)]
    old = {
        r.item_id: r._asdict()
        for r in connection.execute(
            select(product_templates).where(product_templates.c.portal_id == portal_id)
        )
    }
    for row in good:
        count_change(report, old, row["item_id"], row, ["tax_code", "income_account"])
    if not dry_run:
        now = datetime.now(UTC)
        upsert(
            connection,
            product_templates,
            [{"portal_id": portal_id, **r, "imported_at": now} for r in good],
            key=("portal_id", "item_id"),
        )
    return report
