"""Reading import files: CSV with a header row, every bad row found with its line, column
and reason (a file is refused whole, so all of them are reported at once, not the first)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from datagate_pipelines import DatagateError


class ImportFileError(DatagateError):
    """An import file that cannot be taken at all: unreadable, empty, or a wrong header."""


@dataclass(frozen=True, order=True)
class RowProblem:
    """A bad row (or a warning about one): its line in the file, the column, the reason."""

    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class CsvRow:
    line: int  # where the row starts in the file (1 is the header)
    values: dict[str, str]


@dataclass
class CsvFile:
    name: str  # as the operator named it (messages); "<text>" for CSV given as a string
    rows: list[CsvRow] = field(default_factory=list)
    bad: list[RowProblem] = field(default_factory=list)  # rows that do not fit the header

    @property
    def file_name(self) -> str:
        return Path(self.name).name


def read_csv(source: str | Path, required: Iterable[str], optional: Iterable[str] = ()) -> CsvFile:
    """The file's data rows (values trimmed) under a header that has every `required`
    column and no column outside `required` and `optional`.

    `source` is a path, or the CSV itself as a string when it holds a line break.
    """
    text, name = _text(source)
    if not text.strip():
        raise ImportFileError(f"{name}: the file is empty")
    required, optional = tuple(required), tuple(optional)
    reader = csv.reader(io.StringIO(text))
    csv_file = CsvFile(name)
    header: list[str] | None = None
    end_of_previous = 0
    try:
        for cells in reader:
            line, end_of_previous = end_of_previous + 1, reader.line_num
            values = [cell.strip() for cell in cells]
            if not any(values):  # blank lines and rows of empty cells carry nothing
                continue
            if header is None:
                header = _checked_header(values, required, optional, name)
                continue
            if len(values) != len(header):
                csv_file.bad.append(_misfit(line, values, header))
                continue
            csv_file.rows.append(CsvRow(line, dict(zip(header, values, strict=True))))
    except csv.Error as exc:
        raise ImportFileError(
            f"{name} line {reader.line_num}: not readable as CSV ({exc})"
        ) from None
    if header is None or not (csv_file.rows or csv_file.bad):
        raise ImportFileError(f"{name}: the file is empty (a header and no rows)")
    return csv_file


def _text(source: str | Path) -> tuple[str, str]:
    if isinstance(source, str) and "\n" in source:
        return source, "<text>"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8-sig"), str(source)
    except FileNotFoundError:
        raise ImportFileError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{source}: a directory, not a file") from None
    except UnicodeDecodeError:
        raise ImportFileError(f"{source}: not UTF-8 text (save the CSV as UTF-8)") from None


def _checked_header(
    header: list[str], required: tuple[str, ...], optional: tuple[str, ...], name: str
) -> list[str]:
    problems = []
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        problems.append(f"column(s) {', '.join(repeated)} appear more than once")
    missing = [c for c in required if c not in header]
    if missing:
        problems.append(f"the header lacks column(s) {', '.join(missing)}")
    unknown = [c for c in header if c not in required and c not in optional]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if problems:
        expected = ",".join(required) + "".join(f"[,{c}]" for c in optional)
        hint = ""
        if len(header) == 1 and ";" in header[0]:
            hint = "; the file seems separated by semicolons, and import files use commas"
        raise ImportFileError(f"{name}: {'; '.join(problems)} (expected {expected}){hint}")
    return header


def _misfit(line: int, values: list[str], header: list[str]) -> RowProblem:
    if len(values) < len(header):
        missing = header[len(values) :]
        return RowProblem(
            line,
            missing[0],
            f"the row has {len(values)} values, the header {len(header)} "
            f"(missing: {', '.join(missing)})",
        )
    return RowProblem(
        line, None, f"the row has {len(values)} values, the header only {len(header)}"
    )


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_WHOLE = re.compile(r"[+-]?\d+")
# Exact columns are stored as scaled 64-bit integers; keep far below that.
_LARGEST = Decimal(10) ** 12


class RowCheck:
    """One row's fields parsed; each problem is kept (with its column), not only the first.

    A field that cannot be parsed comes back as None, so the caller can go on checking the
    others and decide at the end with `ok`.
    """

    def __init__(self, row: CsvRow):
        self.line = row.line
        self.values = row.values
        self.problems: list[RowProblem] = []

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, column: str | None, reason: str) -> None:
        self.problems.append(RowProblem(self.line, column, reason))

    def text(self, column: str, *, max_length: int, required: bool = True) -> str | None:
        value = self.values.get(column, "")
        if not value:
            if required:
                self.fail(column, "is empty")
            return None
        if len(value) > max_length:
            self.fail(column, f"is longer than {max_length} characters")
            return None
        return value

    def whole_number(self, column: str, *, required: bool = True) -> int | None:
        value = self.text(column, max_length=20, required=required)
        if value is None:
            return None
        if not _WHOLE.fullmatch(value):
            self.fail(column, f"not a whole number: {value!r}")
            return None
        return int(value)

    def decimal(self, column: str, places: int) -> Decimal | None:
        """A plain decimal number (`12.34`, `-0.5`); `1,5`, `1e3` or `$4` are refused."""
        value = self.text(column, max_length=40)
        if value is None:
            return None
        if not _NUMBER.fullmatch(value):
            hint = (
                " (write the decimal point as '.')" if re.fullmatch(r"[+-]?\d+,\d+", value) else ""
            )
            self.fail(column, f"not a number: {value!r}{hint}")
            return None
        number = Decimal(value)
        if number != number.quantize(Decimal(1).scaleb(-places)):
            self.fail(column, f"{value} has more than {places} decimal places")
            return None
        if abs(number) >= _LARGEST:
            self.fail(column, f"{value} is too large")
            return None
        # Quantized, and -0 made 0: the same amount always reads the same (fingerprints).
        return number.quantize(Decimal(1).scaleb(-places)) + 0

    def day(self, column: str) -> date | None:
        value = self.text(column, max_length=30)
        if value is None:
            return None
        try:
            if not _DAY.fullmatch(value):
                raise ValueError
            return date.fromisoformat(value)
        except ValueError:
            self.fail(column, f"not a date (YYYY-MM-DD): {value!r}")
            return None
