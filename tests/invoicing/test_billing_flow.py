"""docs/billing.md's worked example through the warehouse: sync → imports → drafts → finalize."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pandera.errors import SchemaErrors
from sqlalchemy import select, text

from datagate_pipelines.billing import BillingInputError
from datagate_pipelines.imports.product_templates import import_product_templates
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.imports.usage import import_usage
from datagate_pipelines.invoicing import drafts as drafts_module
from datagate_pipelines.invoicing.drafts import BillingOrderError, compute_drafts
from datagate_pipelines.invoicing.finalize import PeriodOpenError, finalize_period
from datagate_pipelines.invoicing.inputs import load_billing_inputs
from datagate_pipelines.invoicing.integrity import read_integrity
from datagate_pipelines.warehouse import models as m
from tests.conftest import rolled_back
from tests.sync.halo_records import bayside_tenant, line
from tests.sync.test_apply import portal, sync_all

TAX_RATES = """zip,tax_code,jurisdiction,rate
94107,TEL,CA,0.06
94107,TEL,SF,0.0125
94110,TEL,CA,0.06
94110,TEL,SF-Mission,0.02
"""
TEMPLATES = """item_id,item_name,tax_code,income_account
50,,TEL,
51,,TEL,
52,,NONTAXABLE,Hardware
53,,TEL,
"""
USAGE = """customer_id,customer_name,site_id,description,amount,tax_code,usage_date
1,Bayside Dental,10,July call usage,12.34,TEL,2026-07-20
"""
JULY, AUGUST, SEPTEMBER = date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1)


@pytest.fixture
def bayside(engine, tmp_path):
    p = portal()
    sync_all(engine, p, bayside_tenant())
    usage = tmp_path / "usage-2026-07.csv"
    usage.write_text(USAGE)
    with engine.begin() as c:
        import_tax_rates(c, TAX_RATES)
        import_product_templates(c, "acme", TEMPLATES)
        import_usage(c, "acme", JULY, usage, imported_by="test")
    return p  # no second sync: billing reads the tax codes from the templates


def invoice(engine, period):
    with engine.connect() as c:
        inv = c.execute(select(m.invoices).where(m.invoices.c.period == period)).one()
        lines = c.execute(
            select(m.invoice_lines.c.description, m.invoice_lines.c.amount, m.invoice_lines.c.tax)
            .where(m.invoice_lines.c.invoice_id == inv.id)
            .order_by(m.invoice_lines.c.line_no)
        ).all()
    return inv, lines


def test_worked_example_july(engine, bayside):
    with engine.begin() as c:
        outcome = compute_drafts(c, bayside.settings, JULY)
    assert outcome.counts["invoices"] == 1
    inv, lines = invoice(engine, JULY)
    assert (inv.status, inv.subtotal, inv.tax, inv.total) == (
        "draft",
        Decimal("350.85"),
        Decimal("25.61"),
        Decimal("376.46"),
    )
    assert (inv.invoice_date, inv.due_date) == (date(2026, 8, 1), date(2026, 8, 31))
    assert inv.halo_contract_id == 100
    assert sorted((str(a), str(t)) for _d, a, t in lines) == sorted(
        [
            ("249.50", "18.09"),
            ("79.98", "6.40"),
            ("5.81", "0.00"),
            ("3.22", "0.23"),
            ("12.34", "0.89"),
        ]
    )


def test_rerun_recomputes_drafts_and_finalized_periods_never_change(engine, bayside):
    for _ in range(2):
        with engine.begin() as c:
            compute_drafts(c, bayside.settings, JULY)
    with engine.connect() as c:
        assert c.execute(select(m.invoices)).all().__len__() == 1
        assert len(c.execute(select(m.billing_ledger)).all()) == 4
    with engine.begin() as c:
        done = finalize_period(c, bayside.settings, JULY, today=date(2026, 8, 2))
    assert done.numbers == {"2026-07:customer:1": "1001"}
    with engine.begin() as c:
        outcome = compute_drafts(c, bayside.settings, JULY)
        again = finalize_period(c, bayside.settings, JULY, today=date(2026, 8, 2))
    assert outcome.counts["invoices"] == 0 and outcome.kept_final == ["customer:1"]
    assert again.finalized == []
    inv, _ = invoice(engine, JULY)
    assert (inv.status, inv.doc_number, inv.total) == ("final", "1001", Decimal("376.46"))
    with engine.connect() as c:
        assert c.execute(select(m.portals.c.next_invoice_number)).scalar_one() == 1002


def test_periods_are_billed_in_order_and_open_periods_are_not_finalized(engine, bayside):
    with pytest.raises(BillingOrderError, match="bill 2026-07 before 2026-08"), engine.begin() as c:
        compute_drafts(c, bayside.settings, AUGUST)
    with pytest.raises(BillingOrderError, match="before billing_start"), engine.begin() as c:
        compute_drafts(c, bayside.settings, date(2026, 6, 1))
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
    with pytest.raises(PeriodOpenError, match="still open"), engine.begin() as c:
        finalize_period(c, bayside.settings, JULY, today=date(2026, 7, 31))


def test_august_then_catch_up_of_a_late_product(engine, bayside):
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
        finalize_period(c, bayside.settings, JULY, today=date(2026, 9, 2))
        compute_drafts(c, bayside.settings, AUGUST)
        finalize_period(
            c, bayside.settings, AUGUST, today=date(2026, 9, 2), is_taken=lambda doc: doc == "1002"
        )
    inv, lines = invoice(engine, AUGUST)
    assert [str(a) for _d, a, _t in lines] == ["249.50", "79.98", "15.00"]
    assert inv.doc_number == "1003"  # 1002 is already used in QBO
    # "Extra DID" entered in HaloPSA after August was finalized, starting 2026-08-05.
    tenant = bayside_tenant()
    tenant["recurring_invoices"][0]["lines"].append(
        line(8, 50, 5, 1.50, site_id=10, start="2026-08-05T00:00:00")
    )
    sync_all(engine, bayside, tenant)
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, SEPTEMBER)
    _inv, lines = invoice(engine, SEPTEMBER)
    did = [(str(a), str(t)) for d, a, t in lines if d == "line 8"]
    assert did == [("6.53", "0.47"), ("7.50", "0.54"), ("7.50", "0.54")]


def test_missing_tax_data_holds_the_invoice_and_blocks_later_finalization(engine, bayside):
    with engine.begin() as c:
        c.execute(m.tax_rates.delete().where(m.tax_rates.c.zip == "94110"))
        compute_drafts(c, bayside.settings, JULY)
        done = finalize_period(c, bayside.settings, JULY, today=date(2026, 9, 2))
    inv, _ = invoice(engine, JULY)
    assert inv.status == "held" and inv.number is None
    assert any("94110" in reason for reason in inv.hold_reasons)
    assert done.held == ["2026-07:customer:1"] and done.finalized == []
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, AUGUST)
        later = finalize_period(c, bayside.settings, AUGUST, today=date(2026, 9, 2))
    assert later.finalized == [] and "customer:1" in later.blocked


def test_the_loader_passes_stored_integers_and_product_keys(engine, bayside):
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
    with engine.connect() as c:
        frames = load_billing_inputs(c, "acme", AUGUST)
        stored = dict(c.execute(select(m.products.c.product_id, m.products.c.qty)).all())
    products, ledger, usage = frames["products"], frames["ledger"], frames["usage"]
    # Exact numbers as the warehouse stores them: no Decimal built, none lost.
    assert "qty" not in products and "amount" not in usage
    assert all(type(v) is int for v in products["qty_e4"].tolist())
    assert {
        pid: Decimal(q).scaleb(-4)
        for pid, q in zip(products["product_id"], products["qty_e4"], strict=True)
    } == stored
    # The ledger names its products by the line id the products carry (its product_id is
    # for repair lines only, billing/repairs.py).
    assert ledger["product_key"].dtype.kind == "i"
    assert set(ledger["product_key"]) <= set(products["product_key"])
    # Every row once: in a run, or row by row where a repair may concern it.
    runs = ledger[ledger["through_month"].notna()]
    months = sum(
        (t.year - s.year) * 12 + t.month - s.month + 1
        for s, t in zip(runs["service_month"], runs["through_month"], strict=True)
    )
    assert months + ledger["through_month"].isna().sum() == len(select_ledger_rows(engine))


def select_ledger_rows(engine):
    with engine.connect() as c:
        return c.execute(select(m.billing_ledger)).all()


def test_an_input_the_engine_refuses_names_the_portal_and_period(engine, bayside, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise BillingInputError("customers: duplicate customer_id [1]")

    monkeypatch.setattr("datagate_pipelines.invoicing.drafts.bill_period", refuse)
    with engine.begin() as c, pytest.raises(BillingInputError) as refused:
        compute_drafts(c, bayside.settings, JULY)
    assert str(refused.value) == "portal acme, period 2026-07: customers: duplicate customer_id [1]"


@pytest.mark.parametrize(
    ("column", "bad"),
    [("amount", Decimal("1.001")), ("line_no", 0)],  # the database would refuse one, not the other
)
def test_an_engine_result_failing_its_checks_stores_nothing(
    engine, bayside, monkeypatch, column, bad
):
    """The engine's output is checked before the drafts are replaced; a line that fails (a
    bug in the engine) fails the run with the check's errors, naming the column, and the
    earlier drafts stay as they were."""
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
    before = [invoice(engine, JULY), len(select_ledger_rows(engine))]
    real = drafts_module.bill_period

    def broken(*args, **kwargs):
        result = real(*args, **kwargs)
        result.invoice_lines.loc[result.invoice_lines.index[-1], column] = bad
        return result

    monkeypatch.setattr(drafts_module, "bill_period", broken)
    with pytest.raises(SchemaErrors, match=column), engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
    assert [invoice(engine, JULY), len(select_ledger_rows(engine))] == before


def test_a_template_imported_after_the_sync_counts_at_the_next_billing_run(engine, tmp_path):
    """docs/operations.md, "Clear a hold": no sync between the template and the re-bill."""
    p = portal()
    sync_all(engine, p, bayside_tenant())
    without_fax_line = TEMPLATES.replace("53,,TEL,\n", "")
    with engine.begin() as c:
        import_tax_rates(c, TAX_RATES)
        import_product_templates(c, "acme", without_fax_line)
        compute_drafts(c, p.settings, JULY)
    held, _ = invoice(engine, JULY)
    assert held.status == "held" and held.hold_reasons == ["no tax code for product line:4"]
    with engine.begin() as c:
        import_product_templates(c, "acme", "item_id,item_name,tax_code,income_account\n53,,TEL,\n")
        compute_drafts(c, p.settings, JULY)
    inv, lines = invoice(engine, JULY)
    assert (inv.status, inv.hold_reasons) == ("draft", [])
    assert ("line 4", Decimal("3.22"), Decimal("0.23")) in lines


def test_the_integrity_reads_sum_the_periods_own_lines(engine, bayside):
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
        finalize_period(c, bayside.settings, JULY, today=date(2026, 8, 2))
        compute_drafts(c, bayside.settings, AUGUST)
    with engine.connect() as c:
        july = read_integrity(c, "acme", JULY)
        august = read_integrity(c, "acme", AUGUST)
    july_invoice, _ = invoice(engine, JULY)
    august_invoice, _ = invoice(engine, AUGUST)
    assert july.line_sums == {july_invoice.id: (Decimal("350.85"), Decimal("25.61"))}
    assert set(august.line_sums) == {august_invoice.id}
    assert august.line_sums[august_invoice.id] == (august_invoice.subtotal, august_invoice.tax)
    assert july.billed_twice == august.billed_twice == []
    assert july.numbers_reused == []
    # Both are the warehouse's unique indexes' to enforce: proved, not read.
    assert july.billed_once_by == "uq_billing_ledger_billed_pair"
    assert july.numbers_unique_by is not None


def test_a_pair_billed_twice_is_found_by_either_periods_check(engine, bayside):
    """The unique index forbids it; the check is there for a warehouse that lost the index.
    Dropped inside a transaction that is rolled back (both databases' DDL is transactional)."""
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
        finalize_period(c, bayside.settings, JULY, today=date(2026, 8, 2))
        compute_drafts(c, bayside.settings, AUGUST)
    august_invoice, _ = invoice(engine, AUGUST)
    with rolled_back(engine) as c:
        c.execute(text("DROP INDEX uq_billing_ledger_billed_pair"))
        july_bill = (
            c.execute(
                select(m.billing_ledger)
                .where(m.billing_ledger.c.period == JULY, m.billing_ledger.c.kind == "bill")
                .order_by(m.billing_ledger.c.product_id, m.billing_ledger.c.service_month)
                .limit(1)
            )
            .mappings()
            .one()
        )
        again = {k: v for k, v in july_bill.items() if k != "id"}
        c.execute(
            m.billing_ledger.insert().values(
                {**again, "period": AUGUST, "invoice_id": august_invoice.id}
            )
        )
        pair = (july_bill["product_id"], july_bill["service_month"])
        assert read_integrity(c, "acme", JULY).billed_once_by is None  # so the bills are read
        assert read_integrity(c, "acme", JULY).billed_twice == [pair]
        assert read_integrity(c, "acme", AUGUST).billed_twice == [pair]
    with engine.connect() as c:
        found = read_integrity(c, "acme", AUGUST)
    assert (found.billed_once_by, found.billed_twice) == ("uq_billing_ledger_billed_pair", [])


def test_a_number_used_twice_is_found_where_no_index_forbids_it(engine, bayside):
    """PostgreSQL only: SQLite keeps a UNIQUE constraint's index as long as the table."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite drops a table's UNIQUE constraint only by rebuilding the table")
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, JULY)
        finalize_period(c, bayside.settings, JULY, today=date(2026, 8, 2))
        compute_drafts(c, bayside.settings, AUGUST)
        finalize_period(c, bayside.settings, AUGUST, today=date(2026, 9, 2))
    with rolled_back(engine) as c:
        c.execute(text("ALTER TABLE invoices DROP CONSTRAINT uq_invoices_portal_id_doc_number"))
        c.execute(m.invoices.update().values(doc_number="1001"))
        found = read_integrity(c, "acme", AUGUST)
    assert (found.numbers_unique_by, found.numbers_reused) == (None, ["1001"])
    with engine.connect() as c:
        assert read_integrity(c, "acme", AUGUST).numbers_unique_by is not None
