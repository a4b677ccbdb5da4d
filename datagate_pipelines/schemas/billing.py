"""Pandera schemas of the billing frames: the engine's output before it is stored, and the
products the catalog hands to billing."""

from __future__ import annotations

import pandera.pandas as pa

from datagate_pipelines.schemas.checks import day, ident, money, quantity, rate, text

products = pa.DataFrameSchema(
    {
        "product_id": pa.Column(str, unique=True),
        "source_line_id": ident(),
        "customer_id": ident(),
        "site_id": ident(nullable=True),
        "contract_id": ident(nullable=True),
        "item_id": ident(nullable=True),
        "description": text(nullable=False),
        "qty": quantity(),
        "unit_price": quantity(),
        "start_date": day(nullable=False),
        "end_date": day(),
        "billing_cycle": text(nullable=False),
        "ended_reason": text(),
    },
    name="products",
)

invoices = pa.DataFrameSchema(
    {
        "invoice_key": pa.Column(str, unique=True),
        "customer_id": ident(),
        "customer_name": text(nullable=False),
        "agreement_key": pa.Column(str),
        "halo_contract_id": ident(nullable=True),
        "invoice_date": day(nullable=False),
        "due_date": day(nullable=False),
        "subtotal": money(),
        "tax": money(),
        "total": money(),
        "status": pa.Column(str, pa.Check.isin(["draft", "held"])),
        "hold_reasons": pa.Column(object),
    },
    checks=[
        pa.Check(
            lambda f: (f["subtotal"] + f["tax"] == f["total"]).all(), error="total = subtotal + tax"
        ),
        pa.Check(
            lambda f: ((f["status"] == "held") == f["hold_reasons"].map(bool)).all(),
            error="held invoices, and only they, have hold reasons",
        ),
    ],
    name="invoices",
)

invoice_lines = pa.DataFrameSchema(
    {
        "invoice_key": pa.Column(str),
        "line_no": pa.Column("int64", pa.Check.ge(1)),
        "kind": pa.Column(str, pa.Check.isin(["recurring", "usage", "credit", "rebill"])),
        "product_id": text(),
        "usage_id": text(),
        "description": pa.Column(object),
        "service_month": day(),
        "site_id": ident(nullable=True),
        "qty": quantity(nullable=True),
        "unit_price": quantity(nullable=True),
        "amount": money(),
        "tax_code": text(),
        "tax_zip": text(),
        "tax_rate": rate(),
        "tax": money(),
        "corrects_invoice": text(),  # repair lines: the number of the invoice corrected
    },
    unique=["invoice_key", "line_no"],
    name="invoice_lines",
)
