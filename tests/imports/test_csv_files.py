"""Reading import files: the header, rows that do not fit it, empty files, and each field
parser's refusals (a bad value is named with its line and column, never guessed at)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from datagate_pipelines.imports.csv_files import (
    CsvRow,
    ImportFileError,
    RowCheck,
    RowProblem,
    read_csv,
)

COLUMNS = ("zip", "tax_code", "rate")


@pytest.mark.parametrize(
    "content",
    ["", "\n\n", "\ufeff", "zip,tax_code,rate\n", "zip,tax_code,rate\n\n,,\n"],
    ids=["no bytes", "blank lines", "BOM only", "header only", "header and empty rows"],
)
def test_an_empty_file_says_it_is_empty(tmp_path, content):
    path = tmp_path / "rates.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"^.*rates\.csv: the file is empty"):
        read_csv(path, COLUMNS)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "zip,tax_code",
            "the header lacks column(s) rate (expected zip,tax_code,rate[,note])",
        ),
        (
            "zip,tax_code,rate,rat",
            "unknown column(s) rat (expected zip,tax_code,rate[,note])",
        ),
        (
            "zip,zip,tax_code,rate",
            "column(s) zip appear more than once (expected zip,tax_code,rate[,note])",
        ),
        (
            "zip;tax_code;rate",
            "the header lacks column(s) zip, tax_code, rate; unknown column(s) zip;tax_code;rate "
            "(expected zip,tax_code,rate[,note]); the file seems separated by semicolons, "
            "and import files use commas",
        ),
    ],
)
def test_a_wrong_header_refuses_the_file(header, message):
    with pytest.raises(ImportFileError) as refused:
        read_csv(f"{header}\n94107,TEL,0.06\n", COLUMNS, optional=("note",))
    assert str(refused.value) == f"<text>: {message}"


def test_rows_are_numbered_by_the_line_they_start_on_and_misfits_are_bad_rows():
    csv_file = read_csv(
        'zip,tax_code,rate\n\n94107,TEL,0.06\n"941\n10",TEL,0.02\n94111,TEL\n94112,TEL,0.01,x\n'
        " 94113 , TEL ,0.03\n",
        COLUMNS,
    )
    assert [(row.line, row.values["zip"]) for row in csv_file.rows] == [
        (3, "94107"),
        (4, "941\n10"),
        (8, "94113"),
    ]
    assert csv_file.rows[2].values == {"zip": "94113", "tax_code": "TEL", "rate": "0.03"}
    assert [str(p) for p in csv_file.bad] == [
        "line 6, column rate: the row has 2 values, the header 3 (missing: rate)",
        "line 7: the row has 4 values, the header only 3",
    ]


def test_a_file_that_is_not_utf8_or_not_there_is_refused(tmp_path):
    path = tmp_path / "rates.csv"
    path.write_bytes("zip,tax_code,rate\n94107,TÉL,0.06\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="not UTF-8 text"):
        read_csv(path, COLUMNS)
    with pytest.raises(ImportFileError, match=r"missing\.csv: no such file"):
        read_csv(tmp_path / "missing.csv", COLUMNS)


def check(value: str) -> RowCheck:
    return RowCheck(CsvRow(7, {"x": value}))


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        ("12.34", 2, Decimal("12.34")),
        ("-0.5", 2, Decimal("-0.50")),
        ("+3", 2, Decimal("3.00")),
        (".25", 2, Decimal("0.25")),
        ("-0.00", 2, Decimal("0.00")),
        ("0.0725", 8, Decimal("0.07250000")),
        ("1,5", 2, "not a number: '1,5' (write the decimal point as '.')"),
        ("abc", 2, "not a number: 'abc'"),
        ("1e3", 2, "not a number: '1e3'"),
        ("$4.00", 2, "not a number: '$4.00'"),
        ("1_000", 2, "not a number: '1_000'"),
        ("NaN", 2, "not a number: 'NaN'"),
        ("12.345", 2, "12.345 has more than 2 decimal places"),
        ("1000000000000", 2, "1000000000000 is too large"),
        ("", 2, "is empty"),
    ],
)
def test_decimal_fields(value, places, expected):
    row = check(value)
    parsed = row.decimal("x", places)
    if isinstance(expected, Decimal):
        assert row.ok and parsed == expected and str(parsed) == str(expected)
    else:
        assert parsed is None and row.problems == [RowProblem(7, "x", expected)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-07-20", date(2026, 7, 20)),
        ("20/07/2026", "not a date (YYYY-MM-DD): '20/07/2026'"),
        ("2026-02-30", "not a date (YYYY-MM-DD): '2026-02-30'"),
        ("20260720", "not a date (YYYY-MM-DD): '20260720'"),
        ("2026-07-20T10:00", "not a date (YYYY-MM-DD): '2026-07-20T10:00'"),
    ],
)
def test_date_fields(value, expected):
    row = check(value)
    parsed = row.day("x")
    if isinstance(expected, date):
        assert row.ok and parsed == expected
    else:
        assert parsed is None and row.problems == [RowProblem(7, "x", expected)]


@pytest.mark.parametrize(
    ("value", "required", "expected"),
    [
        ("42", True, 42),
        ("", False, None),
        ("", True, "is empty"),
        ("4.0", True, "not a whole number: '4.0'"),
        ("12a", True, "not a whole number: '12a'"),
    ],
)
def test_whole_number_fields(value, required, expected):
    row = check(value)
    parsed = row.whole_number("x", required=required)
    if expected is None or isinstance(expected, int):
        assert row.ok and parsed == expected
    else:
        assert parsed is None and row.problems == [RowProblem(7, "x", expected)]


def test_a_text_longer_than_its_column_is_a_problem_not_a_database_error():
    row = check("x" * 65)
    assert row.text("x", max_length=64) is None
    assert row.problems == [RowProblem(7, "x", "is longer than 64 characters")]
