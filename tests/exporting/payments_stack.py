"""Helpers for the payment tests: final invoices exported for real, payments made in the QBO
simulator the way a bookkeeper (or HaloPSA's customer portal) would record them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from datagate_pipelines.exporting.halopsa import export_to_halopsa
from datagate_pipelines.exporting.payments import refresh_payments
from datagate_pipelines.exporting.qbo import export_to_qbo
from datagate_pipelines.exporting.qbo_references import link_period_references
from datagate_pipelines.warehouse import models as m
from tests.exporting.stack import JULY, halo_client, qbo_client


def export_everywhere(engine: Engine, portal, qbo, halo=None) -> None:
    """The period's final invoices exported to QBO (and to HaloPSA when `halo` is given)."""
    with qbo_client(qbo) as client:
        link_period_references(engine, client, portal.settings, JULY)
        export_to_qbo(engine, client, portal.settings, JULY)
    if halo is not None:
        with halo_client(halo) as client:
            export_to_halopsa(engine, client, portal.settings, JULY)


def qbo_invoice_ids(engine: Engine) -> dict[int, str]:
    """Our invoice id → its QBO invoice Id."""
    with engine.connect() as c:
        return dict(
            c.execute(
                select(m.exports.c.invoice_id, m.exports.c.external_id).where(
                    m.exports.c.target == "qbo"
                )
            ).all()
        )


def pay(qbo, qbo_invoice_id: str, amount: Decimal | str, **fields: Any) -> dict:
    """A Payment in QBO applying `amount` to one invoice."""
    invoice = qbo.company.read("Invoice", qbo_invoice_id)
    amount = Decimal(str(amount))
    return qbo.company.create(
        "Payment",
        {
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": fields.pop("TotalAmt", amount),
            "Line": [
                {"Amount": amount, "LinkedTxn": [{"TxnId": qbo_invoice_id, "TxnType": "Invoice"}]}
            ],
            **fields,
        },
    )


def credit(qbo, qbo_invoice_id: str, amount: Decimal | str) -> tuple[dict, dict]:
    """A credit memo for the invoice's customer, applied to it with a $0 payment (§B4)."""
    invoice = qbo.company.read("Invoice", qbo_invoice_id)
    item = next(
        line["SalesItemLineDetail"]["ItemRef"]
        for line in invoice["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    )
    amount = Decimal(str(amount))
    memo = qbo.company.create(
        "CreditMemo",
        {
            "CustomerRef": invoice["CustomerRef"],
            "Line": [
                {
                    "Amount": amount,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": item},
                }
            ],
        },
    )
    payment = qbo.company.create(
        "Payment",
        {
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": 0,
            "Line": [
                {"Amount": amount, "LinkedTxn": [{"TxnId": qbo_invoice_id, "TxnType": "Invoice"}]},
                {"Amount": amount, "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]},
            ],
        },
    )
    return memo, payment


def refresh(engine: Engine, qbo, portal, **client_options: Any):
    """One payment refresh with a fresh client; the outcome."""
    with qbo_client(qbo, **client_options) as client:
        return refresh_payments(engine, client, portal.settings)


def invoice_rows(engine: Engine) -> dict[int, Any]:
    with engine.connect() as c:
        return {r.id: r for r in c.execute(select(m.invoices))}


def rows(engine: Engine, table) -> list:
    with engine.connect() as c:
        return c.execute(select(table).order_by(table.c.id)).all()
