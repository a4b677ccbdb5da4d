"""Reading import files: CSV with a header row, each bad row reported with its line, field and reason."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from datagate_pipelines import DatagateError


class ImportFileError(DatagateError):
    """An import file (CSV) that cannot be read at all; bad rows are reported, not raised."""


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


def decimal_field(value: str, name: str, places: int) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise RowError(name, f"not a number: {value!r}") from None
    if not number.is_finite():
        raise RowError(name, f"not a number: {value!r}")
    if number != number.quantize(Decimal(1).scaleb(-places)):
        raise RowError(name, f"{value} has more than {places} decimal places")
    return number


def int_field(value: str, name: str, *, required: bool = True) -> int | None:
    if not value:
        if required:
            raise RowError(name, "is empty")
        return None
    if not value.lstrip("-").isdigit():
        raise RowError(name, f"not a whole number: {value!r}")
    return int(value)


def required_field(row: Mapping[str, str], name: str) -> str:
    value = row.get(name, "")
    if not value:
        raise RowError(name, "is empty")
    return value


def parse_rows(
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


def count_change(
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
