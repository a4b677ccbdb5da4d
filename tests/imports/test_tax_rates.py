"""Tax-rate imports: taken whole or refused whole, conflicting rates refused, counts exact."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from datagate_pipelines.imports.report import ImportRefused
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.warehouse import models as m

HEADER = "zip,tax_code,jurisdiction,rate\n"
GOOD = "94107,TEL,CA,0.06\n"


def stored(engine) -> list[tuple]:
    with engine.connect() as c:
        return sorted(
            (r.zip, r.tax_code, r.jurisdiction, r.rate) for r in c.execute(select(m.tax_rates))
        )


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            '94110,TEL,CA,"1,5"',
            "line 3, column rate: not a number: '1,5' (write the decimal point as '.')",
        ),
        ("94110,TEL,CA,abc", "line 3, column rate: not a number: 'abc'"),
        (
            "94110,TEL,CA,7.25",
            "line 3, column rate: 7.25 is not a fraction between 0 and 1 (7.25% is 0.0725)",
        ),
        (
            "94110,TEL,CA,7.25%",
            "line 3, column rate: 7.25% is a percentage: write it as a fraction (7.25% is 0.0725)",
        ),
        (
            "94110,TEL,CA,-0.01",
            "line 3, column rate: -0.01 is not a fraction between 0 and 1 (7.25% is 0.0725)",
        ),
        (
            "94110,TEL,CA,0.123456789",
            "line 3, column rate: 0.123456789 has more than 8 decimal places",
        ),
        (",TEL,CA,0.01", "line 3, column zip: is empty"),
        ("94110,,CA,0.01", "line 3, column tax_code: is empty"),
        ("94110,TEL,CA", "line 3, column rate: the row has 3 values, the header 4 (missing: rate)"),
        ("94110,TEL,CA,0.01,x", "line 3: the row has 5 values, the header only 4"),
        (
            "94107-1234,TEL,CA,0.07",
            "line 3, column rate: 0.07 conflicts with line 2 (0.06) for zip 94107, tax code TEL, jurisdiction CA",
        ),
    ],
    ids=[
        "comma decimal",
        "not a number",
        "percent as number",
        "percent sign",
        "negative",
        "too precise",
        "no zip",
        "no tax code",
        "missing column",
        "extra column",
        "conflicting rate",
    ],
)
def test_a_bad_row_refuses_the_whole_file(engine, row, problem):
    with pytest.raises(ImportRefused) as refused, engine.begin() as c:
        import_tax_rates(c, HEADER + GOOD + row + "\n")
    assert [str(p) for p in refused.value.report.bad] == [problem]
    assert str(refused.value) == "<text>: 1 bad row, nothing imported"
    assert stored(engine) == []


def test_every_bad_row_is_listed_at_once_and_a_dry_run_refuses_the_same(engine, tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text(HEADER + "94107,TEL,CA,abc\n" + GOOD + ",TEL,SF,x\n")
    refusals = []
    for dry_run in (True, False):
        with pytest.raises(ImportRefused) as refused, engine.begin() as c:
            import_tax_rates(c, path, dry_run=dry_run)
        refusals.append((str(refused.value), [str(p) for p in refused.value.report.bad]))
    assert (
        refusals[0]
        == refusals[1]
        == (
            f"{path}: 2 bad rows, nothing imported",
            [
                "line 2, column rate: not a number: 'abc'",
                "line 4, column rate: not a number: 'x'",
                "line 4, column zip: is empty",
            ],
        )
    )
    assert stored(engine) == []


def test_counts_new_updated_unchanged_and_a_repeated_row_is_taken_once(engine):
    with engine.begin() as c:
        first = import_tax_rates(c, HEADER + GOOD + "94107,TEL,SF,0.0125\n")
    assert first.counts == {"new": 2, "updated": 0, "unchanged": 0} and first.wrote
    again = HEADER + GOOD + "94107,TEL,SF,0.02\n94110,TEL,CA,0.06\n94107,TEL,CA,0.0600\n"
    with engine.begin() as c:
        dry = import_tax_rates(c, again, dry_run=True)
    assert stored(engine)[1][3] == Decimal("0.0125")  # the dry run wrote nothing
    with engine.begin() as c:
        real = import_tax_rates(c, again)
    assert dry.counts == real.counts == {"new": 1, "updated": 1, "unchanged": 1}
    assert [str(w) for w in real.warnings] == ["line 5: repeats line 2; taken once"]
    assert real.summary() == "tax rates from <text>: imported 1 new, 1 updated, 1 unchanged"
    assert dry.summary() == "tax rates from <text>: would import 1 new, 1 updated, 1 unchanged"
    assert stored(engine) == [
        ("94107", "TEL", "CA", Decimal("0.06")),
        ("94107", "TEL", "SF", Decimal("0.02")),
        ("94110", "TEL", "CA", Decimal("0.06")),
    ]
    with engine.begin() as c:
        same = import_tax_rates(c, HEADER + GOOD)
    assert same.counts == {"new": 0, "updated": 0, "unchanged": 1} and not same.wrote
