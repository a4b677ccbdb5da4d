"""Tax-rate import: zip, tax code, jurisdiction, rate (docs/billing.md, Tax).

A file is refused whole when any row is bad, including two rows that give one (zip, tax
code, jurisdiction) different rates. A row repeated exactly is taken once, with a warning.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Connection, select

from datagate_pipelines.billing.codes import normalize_tax_code, normalize_zip
from datagate_pipelines.imports.csv_files import RowCheck, RowProblem, read_csv
from datagate_pipelines.imports.report import ImportReport, take_once
from datagate_pipelines.warehouse.bulk import upsert
from datagate_pipelines.warehouse.models import tax_rates

TAX_RATE_COLUMNS = ("zip", "tax_code", "jurisdiction", "rate")
RateKey = tuple[str, str, str]


def import_tax_rates(
    connection: Connection, source: str | Path, *, dry_run: bool = False
) -> ImportReport:
    """zip,tax_code,jurisdiction,rate — one row per jurisdiction; a (zip, code)'s rate is the
    sum. Raises ImportRefused (nothing written) when any row is bad."""
    csv_file = read_csv(source, TAX_RATE_COLUMNS)
    report = ImportReport("tax rates", csv_file.name, dry_run=dry_run, bad=list(csv_file.bad))
    rates: dict[RateKey, tuple[int, Decimal]] = {}  # key → (first line, rate)
    written = {row.line: row.values.get("rate", "") for row in csv_file.rows}

    def conflict(
        key: RateKey, line: int, _rate: Decimal, first_line: int, _first: Decimal
    ) -> RowProblem:
        return RowProblem(
            line,
            "rate",
            f"{written[line]} conflicts with line {first_line} ({written[first_line]}) "
            f"for zip {key[0]}, tax code {key[1]}, jurisdiction {key[2]}",
        )

    for row in csv_file.rows:
        check = RowCheck(row)
        parsed = _parse(check)
        report.bad += check.problems
        if parsed is not None:
            take_once(report, rates, parsed[0], row.line, parsed[1], conflict)
    report.refuse_if_bad()

    stored = {
        (r.zip, r.tax_code, r.jurisdiction): r.rate
        for r in connection.execute(
            select(
                tax_rates.c.zip, tax_rates.c.tax_code, tax_rates.c.jurisdiction, tax_rates.c.rate
            )
        )
    }
    changed = [key for key, (_line, rate) in rates.items() if stored.get(key) != rate]
    new = sum(1 for key in changed if key not in stored)
    report.counts = {
        "new": new,
        "updated": len(changed) - new,
        "unchanged": len(rates) - len(changed),
    }
    if changed and not dry_run:
        now = datetime.now(UTC)
        upsert(
            connection,
            tax_rates,
            [
                {
                    "zip": z,
                    "tax_code": c,
                    "jurisdiction": j,
                    "rate": rates[(z, c, j)][1],
                    "imported_at": now,
                }
                for z, c, j in changed
            ],
            key=("zip", "tax_code", "jurisdiction"),
        )
        report.wrote = True
    return report


def _parse(check: RowCheck) -> tuple[RateKey, Decimal] | None:
    zip_code = check.text("zip", max_length=32)
    code = check.text("tax_code", max_length=64)
    jurisdiction = check.text("jurisdiction", max_length=200)
    rate = _rate(check)
    if not check.ok or zip_code is None or code is None or jurisdiction is None or rate is None:
        return None
    return (str(normalize_zip(zip_code)), str(normalize_tax_code(code)), jurisdiction), rate


def _rate(check: RowCheck) -> Decimal | None:
    raw = check.values.get("rate", "")
    if raw.endswith("%"):
        check.fail("rate", f"{raw} is a percentage: write it as a fraction (7.25% is 0.0725)")
        return None
    rate = check.decimal("rate", 8)
    if rate is not None and not Decimal(0) <= rate < Decimal(1):
        check.fail("rate", f"{raw} is not a fraction between 0 and 1 (7.25% is 0.0725)")
        return None
    return rate
