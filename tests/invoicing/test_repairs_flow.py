"""Rule 6 through the warehouse: a date changed after its month was billed on a final
invoice is credited and billed again on the next invoice, once, naming the invoice it
corrects; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select, update

from datagate_pipelines.billing.periods import add_months
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.finalize import finalize_period
from datagate_pipelines.warehouse import models as m
from tests.invoicing.test_billing_flow import AUGUST, JULY, SEPTEMBER, bayside  # noqa: F401

OCTOBER = date(2026, 10, 1)


def bill_and_finalize(engine, portal, period):
    with engine.begin() as c:
        compute_drafts(c, portal.settings, period)
        return finalize_period(c, portal.settings, period, today=add_months(period, 1))


def repair_lines(engine, period):
    with engine.connect() as c:
        return c.execute(
            select(
                m.invoice_lines.c.kind,
                m.invoice_lines.c.description,
                m.invoice_lines.c.service_month,
                m.invoice_lines.c.amount,
                m.invoice_lines.c.tax,
                m.invoice_lines.c.corrects_invoice,
            )
            .join(m.invoices, m.invoices.c.id == m.invoice_lines.c.invoice_id)
            .where(m.invoices.c.period == period, m.invoice_lines.c.kind.in_(("credit", "rebill")))
            .order_by(m.invoice_lines.c.line_no)
        ).all()


def end_the_seat(engine, end):
    with engine.begin() as c:
        c.execute(
            update(m.products)
            .where(m.products.c.product_id == "line:1")  # the hosted PBX seat
            .values(end_date=end)
        )


def test_a_moved_end_date_is_repaired_once_on_the_next_invoice(engine, bayside):  # noqa: F811
    bill_and_finalize(engine, bayside, JULY)
    august = bill_and_finalize(engine, bayside, AUGUST)
    end_the_seat(engine, date(2026, 9, 10))
    for _ in range(2):  # a re-run recomputes the drafts: the repair is written once
        with engine.begin() as c:
            compute_drafts(c, bayside.settings, SEPTEMBER)
    [number] = august.numbers.values()
    lines = repair_lines(engine, SEPTEMBER)
    assert [(k, month, amount, tax, corrects) for k, _d, month, amount, tax, corrects in lines] == [
        ("credit", SEPTEMBER, Decimal("-249.50"), Decimal("-18.09"), number),
        ("rebill", SEPTEMBER, Decimal("83.17"), Decimal("6.03"), number),
    ]
    with engine.connect() as c:
        kinds = c.execute(
            select(m.billing_ledger.c.kind, m.billing_ledger.c.amount, m.billing_ledger.c.tax_rate)
            .where(m.billing_ledger.c.period == SEPTEMBER, m.billing_ledger.c.kind != "bill")
            .order_by(m.billing_ledger.c.kind)
        ).all()
    assert kinds == [
        ("credit", Decimal("-249.50"), Decimal("0.0725")),
        ("rebill", Decimal("83.17"), Decimal("0.0725")),
    ]
    bill_and_finalize(engine, bayside, SEPTEMBER)
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, OCTOBER)
    assert repair_lines(engine, OCTOBER) == []  # repaired once


def test_credit_past_changes_false_writes_no_repair(engine, bayside):  # noqa: F811
    from dataclasses import replace

    settings = bayside.settings
    frozen = replace(
        bayside,
        settings=settings.model_copy(
            update={
                "invoicing": settings.invoicing.model_copy(update={"credit_past_changes": False})
            }
        ),
    )
    bill_and_finalize(engine, frozen, JULY)
    bill_and_finalize(engine, frozen, AUGUST)
    end_the_seat(engine, date(2026, 9, 10))
    with engine.begin() as c:
        compute_drafts(c, frozen.settings, SEPTEMBER)
    assert repair_lines(engine, SEPTEMBER) == []


def test_a_customer_no_longer_billed_gets_its_repair_lines(engine, bayside):  # noqa: F811
    bill_and_finalize(engine, bayside, JULY)
    bill_and_finalize(engine, bayside, AUGUST)
    end_the_seat(engine, date(2026, 8, 31))
    with engine.begin() as c:
        c.execute(update(m.customers).values(active=False))
        compute_drafts(c, bayside.settings, SEPTEMBER)
    with engine.connect() as c:
        [invoice] = c.execute(select(m.invoices).where(m.invoices.c.period == SEPTEMBER)).all()
    assert [line[0] for line in repair_lines(engine, SEPTEMBER)] == ["credit"]
    assert invoice.total == Decimal("-267.59")


def test_the_invoices_report_shows_repair_lines_and_what_they_correct(engine, bayside):  # noqa: F811
    from datagate_pipelines.commands.reports import _repair_summaries
    from datagate_pipelines.invoicing.report import invoice_documents

    bill_and_finalize(engine, bayside, JULY)
    august = bill_and_finalize(engine, bayside, AUGUST)
    end_the_seat(engine, date(2026, 9, 10))
    bill_and_finalize(engine, bayside, SEPTEMBER)
    [number] = august.numbers.values()
    with engine.connect() as c:
        [doc] = invoice_documents(c, "acme", SEPTEMBER)
    repairs = [line for line in doc["lines"] if line["kind"] in ("credit", "rebill")]
    assert [(r["kind"], r["amount"], r["corrects_invoice"]) for r in repairs] == [
        ("credit", "-249.50", number),
        ("rebill", "83.17", number),
    ]
    assert all(line["corrects_invoice"] is None for line in doc["lines"] if line not in repairs)
    assert _repair_summaries([doc]) == [
        f"{doc['number']} corrects {number}: credit -249.50, rebill 83.17"
    ]
    assert doc["total"] == "-77.01"


def test_the_variance_review_lists_the_repaired_product(engine, bayside):  # noqa: F811
    from datagate_pipelines.invoicing.review import period_review

    bill_and_finalize(engine, bayside, JULY)
    bill_and_finalize(engine, bayside, AUGUST)
    end_the_seat(engine, date(2026, 9, 10))
    with engine.begin() as c:
        compute_drafts(c, bayside.settings, SEPTEMBER)
    with engine.connect() as c:
        [variance] = period_review(c, bayside.settings, SEPTEMBER).variance.invoices
    repaired = [change for change in variance.changes if change.kind == "repaired"]
    assert [change.text for change in repaired] == [
        "repaired 2026-09: line 1 (credit -249.50, rebill 83.17)"
    ]
