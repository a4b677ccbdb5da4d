"""Tax into a QBO company outside the US (`qbo.tax_mode: tax_codes`, docs/qbo-api.md §3.6):
our tax table created there once as tax codes and rates, each line naming its code, our
tax per rate; QBO's own figure kept and shown where it rounds differently. SQLite and
PostgreSQL; real finalized invoices; the QBO simulator as a Canadian company."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.exporting.qbo_references import link_period_references
from datagate_pipelines.exporting.qbo_tax import (
    apply_tax_codes,
    plan_tax_codes,
    split_tax,
)
from datagate_pipelines.exporting.verify import verify_qbo
from datagate_pipelines.invoicing.report import invoice_documents
from datagate_pipelines.warehouse import models as m
from tests.exporting.stack import (
    IN_PROCESS_URL,
    JULY,
    QBO_URL,
    finalized_invoices,
    portal_config,
    qbo_client,
    qbo_sim,
)

TAX_CODES = "      tax_mode: tax_codes\n"
CODE_NAME = "TEL County 1.25% + State 6.25%"


def canadian(**settings):
    sim = qbo_sim(country="CA", tax_codes=[{"name": "Exempt", "rate": "0", "agency": "CRA"}])
    for key, value in settings.items():
        setattr(sim.backend.settings, key, value)
    return sim


@pytest.fixture
def tax_portal():
    return portal_config(IN_PROCESS_URL, QBO_URL, qbo_extra=TAX_CODES)


def export(engine, qbo, portal):
    with qbo_client(qbo) as client:
        refs = link_period_references(engine, client, portal.settings, JULY)
        assert not any(r.failed for r in refs.values())
        return export_to_qbo(engine, client, portal.settings, JULY)


def apply(engine, qbo, portal, *, dry_run=False):
    with qbo_client(qbo) as client:
        plan = plan_tax_codes(engine, client, portal.settings)
        outcome = None if dry_run else apply_tax_codes(engine, client, portal.settings, plan)
    return plan, outcome


def test_split_tax_sums_exactly_and_rounds_half_away():
    assert split_tax(Decimal("0.08"), [Decimal("0.0625"), Decimal("0.0125")]) == [
        Decimal("0.07"),
        Decimal("0.01"),
    ]
    assert sum(split_tax(Decimal("1.00"), [Decimal("0.05")] * 3)) == Decimal("1.00")
    # -0.625 and -0.125 round to -0.63 and -0.13: the cent over goes off the largest.
    assert split_tax(Decimal("-0.75"), [Decimal("0.0625"), Decimal("0.0125")]) == [
        Decimal("-0.62"),
        Decimal("-0.13"),
    ]


def test_our_tax_table_becomes_qbo_tax_codes_once(engine, halo, tax_portal):
    finalized_invoices(engine, halo, tax_portal)
    qbo = canadian()
    plan, _ = apply(engine, qbo, tax_portal, dry_run=True)
    # Every zip has the same two jurisdictions: one QBO code serves them all.
    assert [(c.name, c.state) for c in plan.codes] == [(CODE_NAME, "create")]
    assert len(plan.codes[0].keys) > 3 and plan.exempt_id is not None and not plan.problems
    assert qbo.company.find("TaxCode", Name=CODE_NAME) is None  # a dry run writes nothing
    _, outcome = apply(engine, qbo, tax_portal)
    assert outcome.created == [CODE_NAME] and not outcome.failed
    code = qbo.company.find("TaxCode", Name=CODE_NAME)
    rates = [
        qbo.company.get("TaxRate", d["TaxRateRef"]["value"])
        for d in code["SalesTaxRateList"]["TaxRateDetail"]
    ]
    assert sorted((r["Name"], r["RateValue"]) for r in rates) == [
        ("County 1.25%", Decimal("1.25")),
        ("State 6.25%", Decimal("6.25")),
    ]
    agencies = {a["DisplayName"] for a in qbo.company.records("TaxAgency")}
    assert {"County", "State"} <= agencies
    counts = {e: len(qbo.company.records(e)) for e in ("TaxCode", "TaxRate", "TaxAgency")}
    plan, again = apply(engine, qbo, tax_portal)
    assert plan.codes[0].state == "linked" and again.linked == 1 and not again.created
    assert {e: len(qbo.company.records(e)) for e in counts} == counts


def test_invoices_name_their_tax_codes_and_carry_our_tax_per_rate(engine, halo, tax_portal):
    finals = finalized_invoices(engine, halo, tax_portal)
    qbo = canadian()
    apply(engine, qbo, tax_portal)
    outcome = export(engine, qbo, tax_portal)
    assert outcome.exported == len(finals) and not outcome.failed
    code = qbo.company.find("TaxCode", Name=CODE_NAME)["Id"]
    exempt = qbo.company.find("TaxCode", Name="Exempt")["Id"]
    by_number = {i["DocNumber"]: i for i in qbo.company.records("Invoice")}
    with engine.connect() as c:
        lines = c.execute(select(m.invoice_lines)).all()
    taxable = Counter()  # invoice id → (codes its lines should name)
    for r in lines:
        taxable[(r.invoice_id, bool(r.tax_rate) and r.tax_code != "NONTAXABLE")] += 1
    for final in finals:
        invoice = by_number[final.doc_number]
        assert invoice["GlobalTaxCalculation"] == "TaxExcluded"
        assert (
            invoice["TotalAmt"] == final.total and invoice["TxnTaxDetail"]["TotalTax"] == final.tax
        )
        sales = [x for x in invoice["Line"] if x["DetailType"] == "SalesItemLineDetail"]
        named = Counter(x["SalesItemLineDetail"]["TaxCodeRef"]["value"] for x in sales)
        assert (
            named
            == Counter({code: taxable[(final.id, True)], exempt: taxable[(final.id, False)]})
            - Counter()
        )
        tax_lines = invoice["TxnTaxDetail"]["TaxLine"]
        assert sum(t["Amount"] for t in tax_lines) == final.tax
    with engine.connect() as c:
        rows = c.execute(select(m.exports).where(m.exports.c.target == "qbo")).all()
    assert all(
        r.external_tax == f.tax
        for r, f in zip(sorted(rows, key=lambda r: r.invoice_id), finals, strict=True)
    )
    with engine.connect() as c:
        documents = invoice_documents(c, "acme", JULY, targets=("qbo",))
    assert all(d["qbo_tax_difference"] is None for d in documents)


def test_where_qbo_rounds_per_rate_its_figure_is_kept_and_shown_not_failed(
    engine, halo, tax_portal
):
    finals = finalized_invoices(engine, halo, tax_portal)
    # One invoice whose taxed lines are 0.33 each: 0.02 tax per line (7.5%, rounded once
    # per line), while QBO rounds per rate over their sum.
    with engine.begin() as c:
        all_lines = c.execute(select(m.invoice_lines)).all()
        victim = next(
            f
            for f in finals
            if all(r.amount >= 0 for r in all_lines if r.invoice_id == f.id)
            and sum(1 for r in all_lines if r.invoice_id == f.id and r.tax) >= 2
        )
        lines = [r for r in all_lines if r.invoice_id == victim.id and r.tax]
        c.execute(
            update(m.invoice_lines)
            .where(m.invoice_lines.c.id.in_([r.id for r in lines]))
            .values(
                qty=Decimal(1),
                unit_price=Decimal("0.33"),
                amount=Decimal("0.33"),
                tax=Decimal("0.02"),
            )
        )
        rows = c.execute(
            select(m.invoice_lines).where(m.invoice_lines.c.invoice_id == victim.id)
        ).all()
        subtotal = sum(r.amount for r in rows)
        tax = sum(r.tax for r in rows)
        c.execute(
            update(m.invoices)
            .where(m.invoices.c.id == victim.id)
            .values(subtotal=subtotal, tax=tax, total=subtotal + tax)
        )
    net = Decimal("0.33") * len(lines)
    qbo_tax = sum(
        (
            (net * Decimal(r)).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
            for r in ("0.0625", "0.0125")
        ),
        Decimal(0),
    )
    expected = qbo_tax - Decimal("0.02") * len(lines)
    qbo = canadian(honour_sent_tax_lines=False)
    apply(engine, qbo, tax_portal)
    outcome = export(engine, qbo, tax_portal)
    assert not outcome.failed and outcome.exported == len(finals)
    with engine.connect() as c:
        row = c.execute(select(m.exports).where(m.exports.c.invoice_id == victim.id)).one()
        documents = invoice_documents(c, "acme", JULY, targets=("qbo",))
    assert row.status == "exported" and row.external_tax == tax + expected
    shown = next(d for d in documents if d["number"] == victim.doc_number)
    if expected:
        assert shown["qbo_tax_difference"] == f"{expected:.2f}"
    with qbo_client(qbo) as client:
        assert verify_qbo(engine, client, tax_portal.settings, JULY).passed


def test_lines_whose_tax_code_qbo_does_not_have_fail_with_the_reason(engine, halo, tax_portal):
    finals = finalized_invoices(engine, halo, tax_portal)
    qbo = qbo_sim(country="CA")  # no Exempt code, and the table not applied
    plan, _ = apply(engine, qbo, tax_portal, dry_run=True)
    assert any("'Exempt' (qbo.exempt_tax_code) does not exist" in p for p in plan.problems)
    outcome = export(engine, qbo, tax_portal)
    assert len(outcome.failed) == len(finals) and not qbo.company.records("Invoice")
    reason = next(iter(outcome.failed.values()))
    assert "has no QBO tax code: run `datagate qbo tax-codes --portal acme`" in reason
