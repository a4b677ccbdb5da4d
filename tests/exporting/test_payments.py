"""Payments read back from QBO onto our invoices: paid, partly paid, unpaid, voided."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from datagate_pipelines.exporting.payments import payment_status, read_payments
from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.exporting.qbo_references import link_period_references
from datagate_pipelines.warehouse import models as m
from tests.exporting.stack import JULY, qbo_client


def test_status_from_balance():
    total = Decimal("376.46")
    assert payment_status(total, Decimal("0.00")) == "paid"
    assert payment_status(total, Decimal("100.00")) == "partly_paid"
    assert payment_status(total, total) == "unpaid"
    assert payment_status(total, Decimal("0.00"), voided=True) == "voided"


def test_balances_are_read_back_onto_our_invoices(engine, qbo, portal, finals):
    with qbo_client(qbo) as client:
        link_period_references(engine, client, portal.settings, JULY)
        export_to_qbo(engine, client, portal.settings, JULY)
    with engine.connect() as c:
        qbo_ids = dict(
            c.execute(
                select(m.exports.c.invoice_id, m.exports.c.external_id).where(
                    m.exports.c.target == "qbo"
                )
            ).all()
        )
    company = qbo.company
    paid, partly, voided = finals[0], finals[1], finals[2]
    for final, amount in ((paid, paid.total), (partly, Decimal("10.00"))):
        invoice = company.read("Invoice", qbo_ids[final.id])
        company.create(
            "Payment",
            {
                "CustomerRef": invoice["CustomerRef"],
                "TotalAmt": amount,
                "Line": [
                    {
                        "Amount": amount,
                        "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                    }
                ],
            },
        )
    invoice = company.read("Invoice", qbo_ids[voided.id])
    company.void("Invoice", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})

    with qbo_client(qbo) as client:
        outcome = read_payments(engine, client, portal.settings, JULY)
        assert client.stats.calls == 1  # one Id IN (…) query for the period
    assert outcome.counts() == {
        "paid": 1,
        "partly_paid": 1,
        "unpaid": len(finals) - 3,
        "voided": 1,
        "changed": len(finals),
        "missing_in_qbo": 0,
    }
    with engine.connect() as c:
        rows = {r.id: r for r in c.execute(select(m.invoices))}
    assert (rows[paid.id].payment_status, rows[paid.id].balance) == ("paid", Decimal("0.00"))
    assert (rows[partly.id].payment_status, rows[partly.id].balance) == (
        "partly_paid",
        partly.total - Decimal("10.00"),
    )
    assert rows[voided.id].payment_status == "voided"
    assert rows[finals[3].id].payment_status == "unpaid"
    with qbo_client(qbo) as client:
        assert read_payments(engine, client, portal.settings, JULY).changed == []
