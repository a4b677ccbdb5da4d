"""Product-template import: HaloPSA item → tax code (and optional income account).

The templates are where an item's tax code lives: billing reads them at every run
(invoicing/inputs.py), so an import takes effect on the next billing run. A file is refused
whole when any row is bad: an item unknown to the portal, a name that matches no item or
several, two rows giving one item different templates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, select

from datagate_pipelines.billing.codes import normalize_tax_code
from datagate_pipelines.imports.csv_files import RowCheck, RowProblem, read_csv
from datagate_pipelines.imports.report import ImportReport, take_once
from datagate_pipelines.warehouse.bulk import upsert
from datagate_pipelines.warehouse.models import items, product_templates

PRODUCT_TEMPLATE_COLUMNS = ("item_id", "item_name", "tax_code", "income_account")
# What to do with a row for an item that already has a template (the seed's "Ignore").
Existing = Literal["update", "ignore"]
EXISTING_CHOICES: tuple[Existing, ...] = ("update", "ignore")

Template = tuple[str | None, str | None]  # (tax code, income account)


def import_product_templates(
    connection: Connection,
    portal_id: str,
    source: str | Path,
    *,
    existing: Existing = "update",
    dry_run: bool = False,
) -> ImportReport:
    """item_id,item_name,tax_code,income_account — `item_id` may be empty when `item_name`
    names exactly one of the portal's items. Rows for items that already have a template
    replace it (`existing="update"`) or are left out (`"ignore"`). Raises ImportRefused
    (nothing written) when any row is bad."""
    csv_file = read_csv(source, PRODUCT_TEMPLATE_COLUMNS)
    report = ImportReport(
        "product templates", csv_file.name, dry_run=dry_run, bad=list(csv_file.bad)
    )
    known = dict(
        connection.execute(
            select(items.c.halo_id, items.c.name).where(items.c.portal_id == portal_id)
        ).all()
    )
    by_name: dict[str, list[int]] = {}
    for item_id, name in known.items():
        by_name.setdefault(name.strip().casefold(), []).append(item_id)

    rows: dict[int, tuple[int, Template]] = {}  # item → (first line, template)
    names: dict[int, str] = {}
    for row in csv_file.rows:
        check = RowCheck(row)
        item_id = _item(check, portal_id, known, by_name)
        item_name = check.text("item_name", max_length=300, required=False)
        code = check.text("tax_code", max_length=64, required=False)
        account = check.text("income_account", max_length=200, required=False)
        report.bad += check.problems
        if item_id is None or not check.ok:
            continue
        template = (normalize_tax_code(code), account)
        names.setdefault(item_id, item_name or known[item_id])
        take_once(report, rows, item_id, row.line, template, _conflict)
    report.refuse_if_bad()

    stored: dict[int, Template] = {
        r.item_id: (r.tax_code, r.income_account)
        for r in connection.execute(
            select(
                product_templates.c.item_id,
                product_templates.c.tax_code,
                product_templates.c.income_account,
            ).where(product_templates.c.portal_id == portal_id)
        )
    }
    new = [item for item in rows if item not in stored]
    ignored = [item for item in rows if item in stored and existing == "ignore"]
    updated = [
        item
        for item in rows
        if item in stored and existing == "update" and stored[item] != rows[item][1]
    ]
    report.counts = {
        "new": len(new),
        "updated": len(updated),
        "unchanged": len(rows) - len(new) - len(updated) - len(ignored),
        "ignored": len(ignored),
    }
    if ignored:
        report.detail = " (ignored: items that already have a template)"
    if (new or updated) and not dry_run:
        now = datetime.now(UTC)
        upsert(
            connection,
            product_templates,
            [
                {
                    "portal_id": portal_id,
                    "item_id": item,
                    "item_name": names[item],
                    "tax_code": rows[item][1][0],
                    "income_account": rows[item][1][1],
                    "imported_at": now,
                }
                for item in new + updated
            ],
            key=("portal_id", "item_id"),
        )
        report.wrote = True
    return report


def _item(
    check: RowCheck, portal_id: str, known: dict[int, str], by_name: dict[str, list[int]]
) -> int | None:
    """The row's HaloPSA item: by item_id, else by a name that matches exactly one item."""
    if check.values.get("item_id"):
        item_id = check.whole_number("item_id")
        if item_id is not None and item_id not in known:
            check.fail(
                "item_id",
                f"no HaloPSA item {item_id} in portal {portal_id} "
                f"(run `datagate sync --portal {portal_id}` first?)",
            )
            return None
        return item_id
    name = check.values.get("item_name", "")
    if not name:
        check.fail("item_id", "is empty, and so is item_name: give either")
        return None
    matches = by_name.get(name.casefold(), [])
    if len(matches) == 1:
        return matches[0]
    check.fail(
        "item_name",
        f"no HaloPSA item named {name!r} in portal {portal_id}"
        if not matches
        else f"{len(matches)} HaloPSA items are named {name!r} (ids "
        f"{', '.join(map(str, sorted(matches)))}): give item_id",
    )
    return None


def _conflict(
    item_id: int, line: int, template: Template, first_line: int, first: Template
) -> RowProblem:
    return RowProblem(
        line,
        "tax_code" if first[0] != template[0] else "income_account",
        f"item {item_id} is also on line {first_line} with another template "
        f"({_describe(first)} there, {_describe(template)} here)",
    )


def _describe(template: Template) -> str:
    code, account = template
    return f"tax code {code or '(none)'}, income account {account or '(none)'}"
