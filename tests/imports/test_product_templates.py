"""Product-template imports: items the portal has, one template per item, --existing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from datagate_pipelines.imports.product_templates import import_product_templates
from datagate_pipelines.imports.report import ImportRefused
from datagate_pipelines.warehouse import models as m

HEADER = "item_id,item_name,tax_code,income_account\n"
GOOD = "50,,TEL,\n"


def templates(engine) -> dict[int, tuple]:
    with engine.connect() as c:
        return {
            r.item_id: (r.item_name, r.tax_code, r.income_account)
            for r in c.execute(select(m.product_templates))
        }


def add_item(engine, halo_id: int, name: str) -> None:
    now = datetime(2026, 7, 20, tzinfo=UTC)
    with engine.begin() as c:
        c.execute(
            insert(m.items).values(
                portal_id="acme",
                halo_id=halo_id,
                name=name,
                is_recurring=True,
                raw={},
                first_seen_at=now,
                last_seen_at=now,
            )
        )


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            "99,,TEL,",
            "line 3, column item_id: no HaloPSA item 99 in portal acme "
            "(run `datagate sync --portal acme` first?)",
        ),
        ("5O,,TEL,", "line 3, column item_id: not a whole number: '5O'"),
        (",,TEL,", "line 3, column item_id: is empty, and so is item_name: give either"),
        (
            ",Fax lines,TEL,",
            "line 3, column item_name: no HaloPSA item named 'Fax lines' in portal acme",
        ),
        (
            ",sip trunk,TEL,",
            "line 3, column item_name: 2 HaloPSA items are named 'sip trunk' (ids 51, 77): give item_id",
        ),
        (
            "50,,NONTAXABLE,",
            "line 3, column tax_code: item 50 is also on line 2 with another template (tax code "
            "TEL, income account (none) there, tax code NONTAXABLE, income account (none) here)",
        ),
        (
            ",Hosted PBX seat,TEL,Voice",
            "line 3, column income_account: item 50 is also on line 2 with another template (tax "
            "code TEL, income account (none) there, tax code TEL, income account Voice here)",
        ),
        (
            "51,SIP trunk",
            "line 3, column tax_code: the row has 2 values, the header 4 (missing: tax_code, income_account)",
        ),
    ],
    ids=[
        "unknown item",
        "bad id",
        "no item",
        "unknown name",
        "ambiguous name",
        "conflicting tax code",
        "conflicting account by name",
        "missing columns",
    ],
)
def test_a_bad_row_refuses_the_whole_file(engine, bayside, row, problem):
    add_item(engine, 77, "SIP Trunk")
    with pytest.raises(ImportRefused) as refused, engine.begin() as c:
        import_product_templates(c, "acme", HEADER + GOOD + row + "\n")
    assert [str(p) for p in refused.value.report.bad] == [problem]
    assert templates(engine) == {}


def test_existing_templates_are_updated_or_ignored_and_counted(engine, bayside):
    with engine.begin() as c:
        import_product_templates(c, "acme", HEADER + "50,,TEL,\n51,,TEL,\n")
    again = (
        HEADER
        + "50,,TEL,\n51,,NONTAXABLE,Voice\n52,,NONTAXABLE,Hardware\n52,,NONTAXABLE,Hardware\n"
    )
    reports = {}
    for existing in ("ignore", "update"):
        with engine.begin() as c:
            reports[existing, "dry"] = import_product_templates(
                c, "acme", again, existing=existing, dry_run=True
            )
    assert templates(engine) == {
        50: ("Hosted PBX seat", "TEL", None),
        51: ("SIP trunk", "TEL", None),
    }
    with engine.begin() as c:
        ignored = import_product_templates(c, "acme", again, existing="ignore")
    assert (
        ignored.counts
        == reports["ignore", "dry"].counts
        == {
            "new": 1,
            "updated": 0,
            "unchanged": 0,
            "ignored": 2,
        }
    )
    assert ignored.summary() == (
        "product templates from <text>: imported 1 new, 0 updated, 0 unchanged, 2 ignored "
        "(ignored: items that already have a template)"
    )
    assert [str(w) for w in ignored.warnings] == ["line 5: repeats line 4; taken once"]
    assert templates(engine)[51] == ("SIP trunk", "TEL", None)
    assert templates(engine)[52] == ("Managed router", "NONTAXABLE", "Hardware")
    with engine.begin() as c:
        updated = import_product_templates(c, "acme", again)  # update is the default
    assert reports["update", "dry"].counts == {"new": 1, "updated": 1, "unchanged": 1, "ignored": 0}
    assert updated.counts == {"new": 0, "updated": 1, "unchanged": 2, "ignored": 0}
    assert templates(engine)[51] == ("SIP trunk", "NONTAXABLE", "Voice")
