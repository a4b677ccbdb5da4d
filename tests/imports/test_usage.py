"""Usage imports: refused whole on any bad row, never twice the same charges, identical rows
inside one file are two charges; batches listed and taken back while the period is draft."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from datagate_pipelines.imports.product_templates import import_product_templates
from datagate_pipelines.imports.report import ImportRefused
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.imports.usage import UsageAlreadyImportedError, import_usage
from datagate_pipelines.imports.usage_batches import (
    UsageBatchError,
    UsagePeriodClosedError,
    list_batches,
    remove_batch,
)
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.finalize import finalize_period
from datagate_pipelines.warehouse import models as m
from tests.invoicing.test_billing_flow import TAX_RATES, TEMPLATES

JULY = date(2026, 7, 1)
HEADER = "customer_id,customer_name,site_id,description,amount,tax_code,usage_date\n"
CALLS = "1,Bayside Dental,10,July call usage,12.34,TEL,2026-07-20\n"
FAX = "1,Bayside Dental,11,Fax pages,3.10,TEL,2026-07-02\n"
SMS = "1,Bayside Dental,,SMS bundle,5.00,TEL,2026-07-31\n"


def import_file(engine, folder, name, content, **options):
    path = folder / name
    path.write_text(content)
    with engine.begin() as c:
        return import_usage(c, "acme", JULY, path, imported_by="alice", **options)


def charges(engine) -> list[tuple]:
    with engine.connect() as c:
        return sorted(
            (r.source_line, r.description, r.amount) for r in c.execute(select(m.usage_charges))
        )


def batches(engine):
    with engine.connect() as c:
        return list_batches(c, "acme", JULY)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            '1,Bayside Dental,10,Calls,"1,5",TEL,2026-07-20',
            "line 3, column amount: not a number: '1,5' (write the decimal point as '.')",
        ),
        (
            "1,Bayside Dental,10,Calls,abc,TEL,2026-07-20",
            "line 3, column amount: not a number: 'abc'",
        ),
        (
            "1,Bayside Dental,10,Calls,1.005,TEL,2026-07-20",
            "line 3, column amount: 1.005 has more than 2 decimal places",
        ),
        (
            "1,Bayside Dental,10,Calls,1.00,TEL,07/20/2026",
            "line 3, column usage_date: not a date (YYYY-MM-DD): '07/20/2026'",
        ),
        (
            "1,Bayside Dental,10,Calls,1.00,TEL,2026-08-01",
            "line 3, column usage_date: 2026-08-01 is outside the billing period 2026-07",
        ),
        (
            "2,Harbor Vets,,Calls,1.00,TEL,2026-07-20",
            "line 3, column customer_id: no customer 2 in portal acme "
            "(not ticked Datagate in HaloPSA, or not synced yet)",
        ),
        (
            "3,Old Mill,,Calls,1.00,TEL,2026-07-20",
            "line 3, column customer_id: customer 3 (Old Mill) is inactive: its usage would not be billed",
        ),
        (
            "1,Bayside Dental,20,Calls,1.00,TEL,2026-07-20",
            "line 3, column site_id: no site 20 in portal acme",
        ),
        (
            "1,Bayside Dental,10,,1.00,TEL,2026-07-20",
            "line 3, column description: is empty",
        ),
        (
            "1,Bayside Dental,10,Calls,1.00",
            "line 3, column tax_code: the row has 5 values, the header 7 (missing: tax_code, usage_date)",
        ),
    ],
    ids=[
        "comma decimal",
        "not a number",
        "sub-cent",
        "bad date",
        "outside the period",
        "unknown customer",
        "inactive customer",
        "unknown site",
        "no description",
        "missing column",
    ],
)
def test_a_bad_row_refuses_the_whole_file(engine, bayside, tmp_path, row, problem):
    with pytest.raises(ImportRefused) as refused:
        import_file(engine, tmp_path, "usage-2026-07.csv", HEADER + CALLS + row + "\n")
    assert [str(p) for p in refused.value.report.bad] == [problem]
    assert str(refused.value) == f"{tmp_path / 'usage-2026-07.csv'}: 1 bad row, nothing imported"
    assert charges(engine) == [] and batches(engine) == []


@pytest.mark.parametrize(
    ("contract", "problem"),
    [
        ("200", "line 2, column contract_id: contract 200 belongs to customer 2, not to 1"),
        ("999", "line 2, column contract_id: no contract 999 in portal acme"),
    ],
)
def test_a_contract_must_be_the_customers_own(engine, bayside, tmp_path, contract, problem):
    content = HEADER.replace("\n", ",contract_id\n") + CALLS.replace("\n", f",{contract}\n")
    with pytest.raises(ImportRefused) as refused:
        import_file(engine, tmp_path, "usage.csv", content)
    assert [str(p) for p in refused.value.report.bad] == [problem]
    report = import_file(engine, tmp_path, "usage.csv", content.replace(f",{contract}\n", ",101\n"))
    assert report.counts == {"charges": 1}


def test_every_problem_of_every_row_is_listed(engine, bayside, tmp_path):
    with pytest.raises(ImportRefused) as refused:
        import_file(
            engine,
            tmp_path,
            "usage.csv",
            HEADER + "x,,10,,abc,TEL,2026-08-05\n" + CALLS + "2,,,Calls,1.00,TEL,2026-07-01\n",
        )
    assert [str(p) for p in refused.value.report.bad] == [
        "line 2, column amount: not a number: 'abc'",
        "line 2, column customer_id: not a whole number: 'x'",
        "line 2, column description: is empty",
        "line 2, column usage_date: 2026-08-05 is outside the billing period 2026-07",
        "line 4, column customer_id: no customer 2 in portal acme "
        "(not ticked Datagate in HaloPSA, or not synced yet)",
    ]
    assert str(refused.value).endswith("usage.csv: 2 bad rows, nothing imported")


def test_a_dry_run_reports_what_the_import_does_and_writes_nothing(engine, bayside, tmp_path):
    dry = import_file(engine, tmp_path, "usage.csv", HEADER + CALLS + FAX + CALLS, dry_run=True)
    assert charges(engine) == [] and batches(engine) == []
    real = import_file(engine, tmp_path, "usage.csv", HEADER + CALLS + FAX + CALLS)
    assert (dry.counts, dry.warnings, dry.bad) == (real.counts, real.warnings, real.bad)
    batch_id = batches(engine)[0].id
    prefix = f"usage from {tmp_path / 'usage.csv'}:"
    rest = "3 charges (total 27.78) for portal acme, period 2026-07,"
    assert dry.summary() == f"{prefix} would import {rest} as a new batch"
    assert real.summary() == f"{prefix} imported {rest} as batch {batch_id}"


def test_the_same_charges_under_another_name_are_refused_naming_the_first_batch(
    engine, bayside, tmp_path
):
    import_file(engine, tmp_path, "usage-2026-07.csv", HEADER + CALLS + FAX)
    (first,) = batches(engine)
    # Other rows order, another customer_name spelling, 3.1 for 3.10: the same charges.
    renamed = HEADER + FAX.replace("3.10", "3.1").replace("Bayside Dental", "BAYSIDE") + CALLS
    for dry_run in (True, False):
        with pytest.raises(UsageAlreadyImportedError) as refused:
            import_file(engine, tmp_path, "carrier-export.csv", renamed, dry_run=dry_run)
        assert str(refused.value) == (
            f"{tmp_path / 'carrier-export.csv'}: these charges were imported already as batch "
            f"{first.id} (usage-2026-07.csv, 2 charge(s), total 15.44, imported "
            f"{first.imported_at:%Y-%m-%d %H:%M} UTC by alice); nothing imported (to replace "
            f"that import, remove its batch first: datagate usage remove --portal acme "
            f"--period 2026-07 --batch {first.id})"
        )
    assert len(charges(engine)) == 2 and len(batches(engine)) == 1


def test_rows_identical_to_earlier_charges_are_refused_unless_allowed(engine, bayside, tmp_path):
    import_file(engine, tmp_path, "week-1.csv", HEADER + CALLS + FAX)
    (first,) = batches(engine)
    overlap = HEADER + SMS + FAX
    with pytest.raises(ImportRefused) as refused:
        import_file(engine, tmp_path, "week-2.csv", overlap)
    assert [str(p) for p in refused.value.report.bad] == [
        f"line 3: identical to a charge already imported in batch {first.id} (week-1.csv line 3)"
    ]
    assert str(refused.value).endswith(
        "week-2.csv: 1 bad row, nothing imported; "
        "if they are new charges, import with --allow-duplicates"
    )
    assert len(charges(engine)) == 2
    report = import_file(engine, tmp_path, "week-2.csv", overlap, allow_duplicates=True)
    assert [str(w) for w in report.warnings] == [
        f"line 3: identical to a charge already imported in batch {first.id} (week-1.csv line 3)"
        "; imported anyway"
    ]
    assert charges(engine) == [
        (2, "July call usage", Decimal("12.34")),
        (2, "SMS bundle", Decimal("5.00")),
        (3, "Fax pages", Decimal("3.10")),
        (3, "Fax pages", Decimal("3.10")),
    ]


def bill_july(engine, bayside):
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
        invoice = c.execute(select(m.invoices).where(m.invoices.c.period == JULY)).one()
        lines = c.execute(
            select(m.invoice_lines.c.description, m.invoice_lines.c.amount)
            .where(m.invoice_lines.c.invoice_id == invoice.id, m.invoice_lines.c.kind == "usage")
            .order_by(m.invoice_lines.c.line_no)
        ).all()
    return invoice, [(d, a) for d, a in lines]


def test_identical_rows_in_one_file_are_two_charges_billed_with_a_warning(
    engine, bayside, tmp_path
):
    report = import_file(engine, tmp_path, "usage.csv", HEADER + CALLS + FAX + CALLS)
    assert [str(w) for w in report.warnings] == [
        "line 4: identical to line 2: both are imported, as two charges"
    ]
    assert report.counts == {"charges": 3}
    _invoice, lines = bill_july(engine, bayside)
    assert sorted(lines) == [
        ("Fax pages", Decimal("3.10")),
        ("July call usage", Decimal("12.34")),
        ("July call usage", Decimal("12.34")),
    ]


def test_a_batch_is_taken_back_and_its_content_can_be_imported_again(engine, bayside, tmp_path):
    import_file(engine, tmp_path, "usage.csv", HEADER + CALLS + FAX)
    import_file(engine, tmp_path, "sms.csv", HEADER + SMS)
    wrong, _sms = batches(engine)
    _invoice, lines = bill_july(engine, bayside)
    assert len(lines) == 3
    with engine.begin() as c:
        removed = remove_batch(c, "acme", JULY, wrong.id, removed_by="bob")
    assert (removed.removed_by, removed.row_count, removed.total) == ("bob", 2, Decimal("15.44"))
    assert charges(engine) == [(2, "SMS bundle", Decimal("5.00"))]
    _invoice, lines = bill_july(engine, bayside)
    assert lines == [("SMS bundle", Decimal("5.00"))]
    with engine.begin() as c, pytest.raises(UsageBatchError, match="was removed already"):
        remove_batch(c, "acme", JULY, wrong.id, removed_by="bob")
    with engine.begin() as c, pytest.raises(UsageBatchError, match=r"no usage batch 999999 \("):
        remove_batch(c, "acme", JULY, 999999, removed_by="bob")
    # The corrected file, then the same content as the removed batch: both are new again.
    import_file(engine, tmp_path, "usage-fixed.csv", HEADER + CALLS.replace("12.34", "12.43"))
    import_file(engine, tmp_path, "usage.csv", HEADER + CALLS + FAX)
    listed = [(b.source, b.row_count, b.removed_by) for b in batches(engine)]
    assert listed == [
        ("usage.csv", 2, "bob"),
        ("sms.csv", 1, None),
        ("usage-fixed.csv", 1, None),
        ("usage.csv", 2, None),
    ]


def test_a_period_with_final_invoices_refuses_imports_and_removals(engine, bayside, tmp_path):
    with engine.begin() as c:
        import_tax_rates(c, TAX_RATES)
        import_product_templates(c, "acme", TEMPLATES)
    import_file(engine, tmp_path, "usage.csv", HEADER + CALLS)
    (batch,) = batches(engine)
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
        finalize_period(c, bayside.settings, JULY, today=date(2026, 8, 2))
    for dry_run in (True, False):
        with pytest.raises(UsagePeriodClosedError) as refused:
            import_file(engine, tmp_path, "late.csv", HEADER + FAX, dry_run=dry_run)
        assert str(refused.value) == (
            "portal acme, period 2026-07 has 1 final invoice(s): its usage can no longer "
            "change; nothing imported"
        )
    with engine.begin() as c, pytest.raises(UsagePeriodClosedError) as refused:
        remove_batch(c, "acme", JULY, batch.id, removed_by="bob")
    assert str(refused.value).endswith(f"can no longer change; batch {batch.id} not removed")
    assert charges(engine) == [(2, "July call usage", Decimal("12.34"))]
    assert batches(engine)[0].removed_at is None
