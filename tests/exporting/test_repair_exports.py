"""Repair lines (docs/billing.md rule 6) leave with the next invoice: to QBO as negative
lines of the invoice (or, when its total goes negative, inside a credit memo) and to
HaloPSA, each naming the invoice it corrects; totals as ours. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select, update

from datagate_pipelines.exporting.halopsa import export_to_halopsa
from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.exporting.qbo_references import link_period_references
from datagate_pipelines.exporting.verify import verify_halopsa, verify_qbo
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.invoicing.finalize import finalize_period
from datagate_pipelines.warehouse import models as m
from tests.exporting.stack import halo_client, qbo_client

AUGUST = date(2026, 8, 1)


def test_repair_lines_are_exported_with_the_next_invoice(engine, halo, qbo, portal, finals):
    corrected = finals[0]
    with engine.begin() as c:
        [(product_id,)] = c.execute(
            select(m.invoice_lines.c.product_id)
            .where(
                m.invoice_lines.c.invoice_id == corrected.id, m.invoice_lines.c.kind == "recurring"
            )
            .order_by(m.invoice_lines.c.line_no)
            .limit(1)
        ).all()
        # Ended on 10 August after August was billed: credit August, bill 10 days of it.
        c.execute(
            update(m.products)
            .where(m.products.c.product_id == product_id)
            .values(end_date=date(2026, 8, 10))
        )
        compute_drafts(c, portal.settings, AUGUST)
        finalize_period(c, portal.settings, AUGUST, today=date(2026, 9, 2))
        invoice = c.execute(
            select(m.invoices).where(
                m.invoices.c.period == AUGUST, m.invoices.c.customer_id == corrected.customer_id
            )
        ).one()
        repairs = c.execute(
            select(m.invoice_lines).where(
                m.invoice_lines.c.invoice_id == invoice.id,
                m.invoice_lines.c.kind.in_(("credit", "rebill")),
            )
        ).all()
    assert [r.kind for r in repairs] == ["credit", "rebill"]
    assert {r.corrects_invoice for r in repairs} == {corrected.doc_number}
    credit = repairs[0]

    for _ in range(2):  # exactly once
        with halo_client(halo) as client:
            assert not export_to_halopsa(engine, client, portal.settings, AUGUST).failed
        with qbo_client(qbo) as client:
            link_period_references(engine, client, portal.settings, AUGUST)
            assert not export_to_qbo(engine, client, portal.settings, AUGUST).failed

    kind = "CreditMemo" if invoice.total < 0 else "Invoice"
    [sent] = [r for r in qbo.company.records(kind) if r["DocNumber"] == invoice.doc_number]
    sign = -1 if invoice.total < 0 else 1
    assert Decimal(str(sent["TotalAmt"])) == sign * invoice.total
    credit_lines = [
        line
        for line in sent["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
        and f"credit, invoice {corrected.doc_number}" in line["Description"]
    ]
    assert [Decimal(str(line["Amount"])) for line in credit_lines] == [sign * credit.amount]

    [note] = [
        r
        for r in halo.backend.table("Invoice").values()
        if r["thirdpartyinvoicenumber"] == invoice.doc_number
    ]
    assert any(
        f"credit, invoice {corrected.doc_number}" in line.get("item_longdescription", "")
        for line in note["lines"]
    )
    with qbo_client(qbo) as client:
        assert verify_qbo(engine, client, portal.settings, AUGUST).passed
    with halo_client(halo) as client:
        assert verify_halopsa(engine, client, portal.settings, AUGUST).passed
