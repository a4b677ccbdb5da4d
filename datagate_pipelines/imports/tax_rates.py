"""Tax-rate import: zip, tax code, jurisdiction, rate (docs/billing.md, Tax)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from datagate_pipelines.billing.codes import normalize_tax_code, normalize_zip
from datagate_pipelines.imports.csv_files import (
    BadRow,
    ImportReport,
    RowError,
    count_change,
    decimal_field,
    parse_rows,
    read_csv,
    required_field,
)
from datagate_pipelines.warehouse.models import tax_rates
from datagate_pipelines.warehouse.upsert import upsert

TAX_RATE_COLUMNS = ("zip", "tax_code", "jurisdiction", "rate")


def import_tax_rates(
    connection: Connection, source: str | Path, *, dry_run: bool = False
) -> ImportReport:
    """zip,tax_code,jurisdiction,rate — one row per jurisdiction; a (zip, code)'s rate is the sum."""
    name, rows = read_csv(source, TAX_RATE_COLUMNS)
    report = ImportReport("tax rates", name, dry_run=dry_run)

    def parse(row: dict[str, str]) -> dict[str, Any]:
        zip_code = normalize_zip(required_field(row, "zip"))
        code = normalize_tax_code(required_field(row, "tax_code"))
        rate = decimal_field(required_field(row, "rate"), "rate", 8)
        if not Decimal(0) <= rate < Decimal(1):
            raise RowError("rate", f"{rate} is not a fraction between 0 and 1 (e.g. 0.0725)")
        return {
            "zip": zip_code,
            "tax_code": code,
            "jurisdiction": required_field(row, "jurisdiction"),
            "rate": rate,
        }

    good = parse_rows(rows, parse, report)
    seen: dict[tuple[str, str, str], int] = {}
    unique = []
    for line, row in good:
        key = (row["zip"], row["tax_code"], row["jurisdiction"])
        if key in seen:
            report.bad.append(
                BadRow(
                    line, "jurisdiction", f"repeats line {seen[key]} for the same zip and tax code"
                )
            )
            continue
        seen[key] = line
        unique.append(row)
    old = {
        (r.zip, r.tax_code, r.jurisdiction): r._asdict()
        for r in connection.execute(select(tax_rates))
    }
    for row in unique:
        count_change(report, old, (row["zip"], row["tax_code"], row["jurisdiction"]), row, ["rate"])
    if not dry_run:
        now = datetime.now(UTC)
        upsert(
            connection,
            tax_rates,
            [{**r, "imported_at": now} for r in unique],
            key=("zip", "tax_code", "jurisdiction"),
        )
    return report
