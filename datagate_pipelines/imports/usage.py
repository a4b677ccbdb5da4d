"""Usage import: a period's usage charges per customer (docs/billing.md, Usage)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select

from datagate_pipelines.billing.codes import normalize_tax_code
from datagate_pipelines.billing.periods import add_months, period_label
from datagate_pipelines.imports.csv_files import (
    ImportReport,
    RowError,
    count_change,
    decimal_field,
    int_field,
    parse_rows,
    read_csv,
    required_field,
)
from datagate_pipelines.warehouse.models import usage_charges
from datagate_pipelines.warehouse.upsert import upsert

USAGE_COLUMNS = (
    "customer_id",
    "customer_name",
    "site_id",
    "description",
    "amount",
    "tax_code",
    "usage_date",
)


def usage_id(portal_id: str, period: date, source: str, row: Mapping[str, str]) -> str:
    """Stable per (file, row content): re-importing the same file does not double the usage."""
    digest = hashlib.sha256(
        "\x1f".join(
            [
                portal_id,
                period.isoformat(),
                Path(source).name,
                *[f"{k}={row[k]}" for k in sorted(row)],
            ]
        ).encode()
    )
    return f"u:{digest.hexdigest()[:40]}"


def import_usage(
    connection: Connection,
    portal_id: str,
    period: date,
    source: str | Path,
    *,
    dry_run: bool = False,
) -> ImportReport:
    """customer_id,customer_name,site_id,description,amount,tax_code,usage_date[,contract_id].

    Importing a file for a period replaces that file's earlier import for the period.
    """
    name, rows = read_csv(source, USAGE_COLUMNS)
    report = ImportReport("usage", name, dry_run=dry_run)
    end = add_months(period, 1)

    def parse(row: dict[str, str]) -> dict[str, Any]:
        try:
            used_on = date.fromisoformat(required_field(row, "usage_date"))
        except ValueError:
            raise RowError(
                "usage_date", f"not a date (YYYY-MM-DD): {row['usage_date']!r}"
            ) from None
        if not period <= used_on < end:
            raise RowError(
                "usage_date", f"{used_on} is outside the billing period {period_label(period)}"
            )
        amount = decimal_field(required_field(row, "amount"), "amount", 2)
        return {
            "usage_id": usage_id(portal_id, period, name, row),
            "period": period,
            "customer_id": int_field(row.get("customer_id", ""), "customer_id"),
            "site_id": int_field(row.get("site_id", ""), "site_id", required=False),
            "contract_id": int_field(row.get("contract_id", ""), "contract_id", required=False),
            "description": required_field(row, "description"),
            "amount": amount,
            "tax_code": normalize_tax_code(row["tax_code"]) if row.get("tax_code") else None,
            "usage_date": used_on,
            "source": Path(name).name,
        }

    good = [row for _line, row in parse_rows(rows, parse, report)]
    old = {
        r.usage_id: r._asdict()
        for r in connection.execute(
            select(usage_charges).where(
                usage_charges.c.portal_id == portal_id,
                usage_charges.c.period == period,
                usage_charges.c.source == Path(name).name,
            )
        )
    }
    for row in good:
        count_change(report, old, row["usage_id"], row, ["amount"])
    if not dry_run:
        connection.execute(
            delete(usage_charges).where(
                usage_charges.c.portal_id == portal_id,
                usage_charges.c.period == period,
                usage_charges.c.source == Path(name).name,
            )
        )
        now = datetime.now(UTC)
        upsert(
            connection,
            usage_charges,
            [{"portal_id": portal_id, **r, "imported_at": now} for r in good],
            key=("portal_id", "usage_id"),
        )
    return report
