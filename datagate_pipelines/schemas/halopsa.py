"""Pandera schemas of the HaloPSA mirror frames: the contract between decoding and storage."""

from __future__ import annotations

import pandera.pandas as pa

from datagate_pipelines.schemas.checks import day, flag, ident, money, quantity, rate, text

_HALO_ID = {"halo_id": ident(unique=True), "raw": pa.Column(object)}

clients = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "name": text(nullable=False),
        "inactive": flag(),
        "opted_in": flag(),
        "main_site_id": ident(nullable=True),
        "start_balance": money(nullable=True),
        "start_date": day(),
    },
    name="halo_clients",
)

sites = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "client_id": ident(),
        "name": text(nullable=False),
        "postcode": text(),
        "address": text(),
        "inactive": flag(),
    },
    name="halo_sites",
)

contracts = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "client_id": ident(),
        "ref": text(),
        "contract_type_id": ident(nullable=True),
        "contract_type_name": text(),
        "site_id": ident(nullable=True),
        "start_date": day(),
        "end_date": day(),
        "active": flag(),
    },
    name="halo_contracts",
)

item_groups = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "name": text(nullable=False),
        "nominal_code": text(),
        "purchase_nominal_code": text(),
    },
    name="halo_asset_groups",
)

items = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "name": text(nullable=False),
        "item_group_id": ident(nullable=True),
        "halo_tax_id": ident(nullable=True),
        "is_recurring": flag(),
        "base_price": quantity(nullable=True),
        "nominal_code": text(),
        "purchase_nominal_code": text(),
    },
    name="halo_items",
)

taxes = pa.DataFrameSchema(
    {**_HALO_ID, "name": text(nullable=False), "code": text(), "rate_percent": rate()},
    name="halo_taxes",
)

recurring_invoices = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "client_id": ident(),
        "site_id": ident(nullable=True),
        "contract_id": ident(nullable=True),
        "period": ident(nullable=True),
    },
    name="halo_recurring_invoices",
)

recurring_invoice_lines = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "recurring_invoice_id": ident(),
        "client_id": ident(),
        "item_id": ident(nullable=True),
        "description": text(),
        "qty": quantity(),
        "unit_price": quantity(),
        "halo_tax_code": text(),
        "contract_id": ident(nullable=True),
        "site_id": ident(nullable=True),
        "start_date": day(),
        "end_date": day(),
        "is_inactive": flag(),
        "period": ident(nullable=True),
    },
    name="halo_recurring_invoice_lines",
)

suppliers = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "name": text(nullable=False),
        "inactive": flag(),
        "accounts_id": text(),
        "email": text(),
        "phone": text(),
        "address": text(),
        "currency_code": ident(nullable=True),
        "list_hash": text(nullable=False),
        "detail_read_at": text(),
    },
    name="halo_suppliers",
)

purchase_orders = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "po_ref": text(),
        "supplier_id": ident(),
        "status": ident(nullable=True),
        "goodsin_status": ident(nullable=True),
        "order_date": day(),
        "due_date": day(),
        "currency_code": ident(nullable=True),
        "total": money(nullable=True),
        "supplier_invoice": text(),
        "supplier_invoice_date": day(),
    },
    name="halo_purchase_orders",
)

purchase_order_lines = pa.DataFrameSchema(
    {
        **_HALO_ID,
        "purchase_order_id": ident(),
        "line_no": ident(),
        "item_id": ident(nullable=True),
        "description": text(),
        "qty": quantity(),
        "unit_cost": quantity(),
        "amount": money(),
        "nominal_code": text(),
    },
    name="halo_purchase_order_lines",
)
