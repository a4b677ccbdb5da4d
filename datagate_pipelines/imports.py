"""CSV imports: tax rates, product templates and usage charges.

Each file has a header row. A bad row is reported with its line number and reason and the
good rows are kept; a file that cannot be read at all (missing, wrong header) is an error.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select

from datagate_pipelines.billing.periods import add_months, period_label
from datagate_pipelines.billing.tax import normalize_tax_code, normalize_zip
from datagate_pipelines.errors import ImportFileError
from datagate_pipelines.warehouse.models import items, product_templates, tax_rates, usage_charges
from datagate_pipelines.warehouse.upsert import upsert

TAX_RATE_COLUMNS = ("zip", "tax_code", "jurisdiction", "rate")
PRODUCT_TEMPLATE_COLUMNS = ("item_id", "item_name", "tax_code", "income_account")
USAGE_COLUMNS = (
    "customer_id",
    "customer_name",
    "site_id",
    "description",
    "amount",
    "tax_code",
    "usage_date",
)


@dataclass(frozen=True)
class BadRow:
    line: int
    field: str | None
    reason: str

    @property
    def entity(self) -> str:
        return "csv row"

    @property
    def record_id(self) -> str:
        return f"line {self.line}"

    def __str__(self) -> str:
        where = f" {self.field}" if self.field else ""
        return f"line {self.line}{where}: {self.reason}"


@dataclass
class ImportReport:
    """What an import did (or, with dry_run, would do)."""

    kind: str
    source: str
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    bad: list[BadRow] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        return (
            f"{self.kind} from {self.source}: {verb} {self.new} new, {self.changed} changed, "
            f"{self.unchanged} unchanged; {len(self.bad)} bad row(s)"
        )


class RowError(ValueError):
    def __init__(self, field: str | None, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(reason)


def read_csv(
    text_or_path: str | Path, required: Iterable[str]
) -> tuple[str, list[tuple[int, dict[str, str]]]]:
    """(source name, [(line number, row)]) with the header checked."""
    if isinstance(text_or_path, Path) or "\n" not in str(text_or_path):
        path = Path(text_or_path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ImportFileError(f"{path}: no such file") from None
        except UnicodeDecodeError:
            raise ImportFileError(f"{path}: not UTF-8 text") from None
        source = str(path)
    else:
        text, source = str(text_or_path), "<text>"
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportFileError(
            f"{source}: header lacks column(s) {', '.join(missing)} (has: {', '.join(header)})"
        )
    rows = []
    for row in reader:
        cleaned = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if any(cleaned.values()):
            rows.append((reader.line_num, cleaned))
    return source, rows


def _decimal(value: str, name: str, places: int) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise RowError(name, f"not a number: {value!r}") from None
    if not number.is_finite():
        raise RowError(name, f"not a number: {value!r}")
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise RowError(name, f"{value} has more than {places} decimal places")
    return number


def _int(value: str, name: str, *, required: bool = True) -> int | None:
    if not value:
        if required:
            raise RowError(name, "is empty")
        return None
    if not value.lstrip("-").isdigit():
        raise RowError(name, f"not a whole number: {value!r}")
    return int(value)


def _required(row: Mapping[str, str], name: str) -> str:
    value = row.get(name, "")
    if not value:
        raise RowError(name, "is empty")
    return value


def _parse(
    rows: list[tuple[int, dict[str, str]]],
    parse: Callable[[dict[str, str]], dict[str, Any]],
    report: ImportReport,
) -> list[tuple[int, dict[str, Any]]]:
    good = []
    for line, row in rows:
        try:
            good.append((line, parse(row)))
        except RowError as exc:
            report.bad.append(BadRow(line, exc.field, exc.reason))
    return good


def _count(
    report: ImportReport,
    old: Mapping[Any, Mapping[str, Any]],
    key: Any,
    new: Mapping[str, Any],
    compared: Iterable[str],
) -> None:
    previous = old.get(key)
    if previous is None:
        report.new += 1
    elif any(previous[c] != new[c] for c in compared):
        report.changed += 1
    else:
        report.unchanged += 1


# --- tax rates ------------------------------------------------------------------------


def import_tax_rates(
    connection: Connection, source: str | Path, *, dry_run: bool = False
) -> ImportReport:
    """zip,tax_code,jurisdiction,rate — one row per jurisdiction; a (zip, code)'s rate is the sum."""
    name, rows = read_csv(source, TAX_RATE_COLUMNS)
    report = ImportReport("tax rates", name, dry_run=dry_run)

    def parse(row: dict[str, str]) -> dict[str, Any]:
        zip_code = normalize_zip(_required(row, "zip"))
        code = normalize_tax_code(_required(row, "tax_code"))
        rate = _decimal(_required(row, "rate"), "rate", 8)
        if not Decimal(0) <= rate < Decimal(1):
            raise RowError("rate", f"{rate} is not a fraction between 0 and 1 (e.g. 0.0725)")
        return {
            "zip": zip_code,
            "tax_code": code,
            "jurisdiction": _required(row, "jurisdiction"),
            "rate": rate,
        }

    good = _parse(rows, parse, report)
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
        _count(report, old, (row["zip"], row["tax_code"], row["jurisdiction"]), row, ["rate"])
    if not dry_run:
        now = datetime.now(UTC)
        upsert(
            connection,
            tax_rates,
            [{**r, "imported_at": now} for r in unique],
            key=("zip", "tax_code", "jurisdiction"),
        )
    return report


# --- product templates ----------------------------------------------------------------


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
        item_id = _int(row.get("item_id", ""), "item_id", required=False)
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

    good = [row for _line, row in _parse(rows, parse, report)]
    old = {
        r.item_id: r._asdict()
        for r in connection.execute(
            select(product_templates).where(product_templates.c.portal_id == portal_id)
        )
    }
    for row in good:
        _count(report, old, row["item_id"], row, ["tax_code", "income_account"])
    if not dry_run:
        now = datetime.now(UTC)
        upsert(
            connection,
            product_templates,
            [{"portal_id": portal_id, **r, "imported_at": now} for r in good],
            key=("portal_id", "item_id"),
        )
    return report


# --- usage ----------------------------------------------------------------------------


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
            used_on = date.fromisoformat(_required(row, "usage_date"))
        except ValueError:
            raise RowError(
                "usage_date", f"not a date (YYYY-MM-DD): {row['usage_date']!r}"
            ) from None
        if not period <= used_on < end:
            raise RowError(
                "usage_date", f"{used_on} is outside the billing period {period_label(period)}"
            )
        amount = _decimal(_required(row, "amount"), "amount", 2)
        return {
            "usage_id": usage_id(portal_id, period, name, row),
            "period": period,
            "customer_id": _int(row.get("customer_id", ""), "customer_id"),
            "site_id": _int(row.get("site_id", ""), "site_id", required=False),
            "contract_id": _int(row.get("contract_id", ""), "contract_id", required=False),
            "description": _required(row, "description"),
            "amount": amount,
            "tax_code": normalize_tax_code(row["tax_code"]) if row.get("tax_code") else None,
            "usage_date": used_on,
            "source": Path(name).name,
        }

    good = [row for _line, row in _parse(rows, parse, report)]
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
        _count(report, old, row["usage_id"], row, ["amount"])
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
