"""Load what the billing engine needs for one portal and period from the warehouse."""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    Select,
    and_,
    extract,
    func,
    not_,
    select,
    type_coerce,
)

from datagate_pipelines.warehouse.models import (
    billing_ledger,
    customers,
    invoices,
    product_templates,
    products,
    sites,
    tax_rates,
    usage_charges,
)

NULLABLE_IDS = ("site_id", "contract_id")
# What a ledger row billed, in cents or × 10**4 (NULL only if its line is gone).
LEDGER_INTEGERS = ("qty_e4", "unit_price_e4", "amount_cents", "tax_cents")


def _frame(connection: Connection, query: Select, columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(connection.execute(query).all(), columns=columns)
    for column in NULLABLE_IDS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    # Object columns keep Decimals and dates exactly as the database returned them.
    return frame.astype({c: object for c in frame.columns if frame[c].dtype == object})


def _stored_integer(column, name: str):
    """An exact-number column as the integer the warehouse stores (warehouse/types.py), not
    a Decimal built per row: the engine's integer form (billing/inputs.py)."""
    return type_coerce(column, BigInteger).label(name)


def _month_number(value):
    return extract("year", value) * 12 + extract("month", value)


def _ledger_runs(connection: Connection, portal_id: str, period: date) -> pd.DataFrame:
    """The portal's ledger in the engine's run form (billing/recurring.py): a product
    billed every month for two years is one row (its first and last month), not 24 —
    the database aggregates, Python reads a row per product. Products whose months have
    gaps (rare: a ledger edited by hand) come as one row per month.

    Pairs of `period` itself count only on final invoices: its drafts are recomputed (and
    re-running it for held invoices never bills a final pair again)."""
    ledger = billing_ledger
    drafts_of_period = select(invoices.c.id).where(
        invoices.c.portal_id == portal_id,
        invoices.c.period == period,
        invoices.c.status != "final",
    )
    counted = and_(
        ledger.c.portal_id == portal_id,
        # Bills of invoices that stand: repairs (rule 6) and voided invoices' released
        # rows (rule 7) do not bill a pair.
        ledger.c.kind == "bill",
        ledger.c.released_at.is_(None),
        not_(and_(ledger.c.period == period, ledger.c.invoice_id.in_(drafts_of_period))),
    )
    per_product = (
        select(
            ledger.c.product_id,
            func.min(ledger.c.service_month).label("first"),
            func.max(ledger.c.service_month).label("last"),
            func.count().label("months"),
        )
        .where(counted)
        .group_by(ledger.c.product_id)
        .subquery()
    )
    contiguous = (
        _month_number(per_product.c.last) - _month_number(per_product.c.first) + 1
        == per_product.c.months
    )
    runs = pd.DataFrame(
        connection.execute(
            select(
                per_product.c.product_id,
                products.c.source_line_id,
                per_product.c.first,
                per_product.c.last,
                contiguous,
            )
            .join(
                products,
                and_(
                    products.c.portal_id == portal_id,
                    products.c.product_id == per_product.c.product_id,
                ),
            )
            # In product order, as the products are read (the engine's fast path).
            .order_by(per_product.c.product_id)
        ).all(),
        columns=["product_id", "product_key", "service_month", "through_month", "contiguous"],
    )
    gapped = runs.loc[~runs["contiguous"].astype(bool), ["product_id", "product_key"]]
    runs = runs[runs["contiguous"].astype(bool)]
    if len(gapped):
        months = pd.DataFrame(
            [
                row
                for start in range(0, len(gapped), 1000)
                for row in connection.execute(
                    select(ledger.c.product_id, ledger.c.service_month).where(
                        counted,
                        ledger.c.product_id.in_(
                            gapped["product_id"].iloc[start : start + 1000].tolist()
                        ),
                    )
                )
            ],
            columns=["product_id", "service_month"],
        ).merge(gapped, on="product_id")
        months["through_month"] = months["service_month"]
        runs = pd.concat([runs, months]).sort_values(["product_id", "service_month"], kind="stable")
    frame = runs[["product_key", "service_month", "through_month"]].reset_index(drop=True)
    return frame.astype({c: object for c in ("service_month", "through_month")})


def _ledger_rows(connection: Connection, portal_id: str) -> pd.DataFrame:
    """The portal's ledger row by row, for rule 6's repairs."""
    # `final` marks pairs on final invoices: never billed again, even by a re-run of their
    # own period (the engine otherwise recomputes that period's pairs from scratch). Each
    # row says what it billed and carries its product's current owners and dates, which
    # rule 6 compares (billing/repairs.py); `invoice` is the number a repair corrects.
    # A voided invoice's pairs are not billed any more (rule 7): the agreement's next
    # invoice bills them again, as catch-up (the run form leaves out their released rows).
    frame = _frame(
        connection,
        select(
            products.c.source_line_id,
            billing_ledger.c.service_month,
            billing_ledger.c.period,
            invoices.c.status == "final",
            billing_ledger.c.product_id,
            billing_ledger.c.kind,
            products.c.customer_id,
            products.c.site_id,
            products.c.contract_id,
            products.c.description,
            _stored_integer(billing_ledger.c.qty, "qty_e4"),
            _stored_integer(billing_ledger.c.unit_price, "unit_price_e4"),
            _stored_integer(billing_ledger.c.amount, "amount_cents"),
            _stored_integer(billing_ledger.c.tax, "tax_cents"),
            billing_ledger.c.tax_code,
            billing_ledger.c.tax_zip,
            billing_ledger.c.tax_rate,
            invoices.c.doc_number,
            products.c.start_date,
            products.c.end_date,
        )
        .join(invoices, invoices.c.id == billing_ledger.c.invoice_id)
        .join(
            products,
            and_(
                products.c.portal_id == billing_ledger.c.portal_id,
                products.c.product_id == billing_ledger.c.product_id,
            ),
        )
        .where(billing_ledger.c.portal_id == portal_id, invoices.c.voided_at.is_(None))
        .order_by(billing_ledger.c.product_id, billing_ledger.c.service_month),
        [
            "product_key",
            "service_month",
            "period",
            "final",
            "product_id",
            "kind",
            "customer_id",
            "site_id",
            "contract_id",
            "description",
            "qty_e4",
            "unit_price_e4",
            "amount_cents",
            "tax_cents",
            "tax_code",
            "tax_zip",
            "tax_rate",
            "invoice",
            "start_date",
            "end_date",
        ],
    )
    return frame.astype(dict.fromkeys(LEDGER_INTEGERS, "Int64"))


def load_billing_inputs(
    connection: Connection, portal_id: str, period: date, *, repairs: bool = True
) -> dict[str, pd.DataFrame]:
    """Frames in the engine's boundary format (billing/inputs.py), exact numbers in their
    integer form; the ledger names its products by product_key (the HaloPSA line id),
    joined by the database rather than on text in Python.

    With `repairs` (rule 6, `invoicing.credit_past_changes`) the ledger comes row by row
    with what each row billed, which repairs compare; without, as runs of months (one row
    per product however long its history: billing/recurring.py's run form)."""
    # Customers no longer billed are listed too (billed false): an invoice of theirs can
    # still hold repair lines (docs/billing.md rule 6).
    customer_frame = _frame(
        connection,
        select(
            customers.c.halo_client_id,
            customers.c.name,
            customers.c.zip,
            customers.c.use_site_zip_tax,
            customers.c.active.is_(True),
        ).where(customers.c.portal_id == portal_id),
        ["customer_id", "name", "zip", "use_site_zip_tax", "billed"],
    )
    active = set(customer_frame["customer_id"][customer_frame["billed"].astype(bool)])
    product_frame = _frame(
        connection,
        select(
            products.c.product_id,
            products.c.customer_id,
            products.c.site_id,
            products.c.contract_id,
            products.c.description,
            _stored_integer(products.c.qty, "qty_e4"),
            _stored_integer(products.c.unit_price, "unit_price_e4"),
            # The item's template gives the tax code at billing time, so a template
            # imported after the sync counts at the next run (imports/product_templates.py).
            product_templates.c.tax_code,
            products.c.start_date,
            products.c.end_date,
            products.c.billing_cycle,
            products.c.ended_reason.is_not(None),
            # product_id is "line:<source_line_id>": one key per product.
            products.c.source_line_id,
        )
        .outerjoin(
            product_templates,
            and_(
                product_templates.c.portal_id == products.c.portal_id,
                product_templates.c.item_id == products.c.item_id,
            ),
        )
        .where(products.c.portal_id == portal_id)
        # The engine's fast paths expect ids in order (billing/ids.py).
        .order_by(products.c.product_id),
        [
            "product_id",
            "customer_id",
            "site_id",
            "contract_id",
            "description",
            "qty_e4",
            "unit_price_e4",
            "tax_code",
            "start_date",
            "end_date",
            "billing_cycle",
            "ended_by_sync",
            "product_key",
        ],
    )
    # Inactive or unticked customers are not billed (docs/billing.md, Terms); that is not an error.
    # Nor are lines the sync ended before they started (a cancelled order, not bad data).
    never_started = product_frame["ended_by_sync"] & (
        product_frame["end_date"] < product_frame["start_date"]
    )
    product_frame = product_frame[product_frame["customer_id"].isin(active) & ~never_started]
    product_frame = product_frame.drop(columns="ended_by_sync").reset_index(drop=True)
    # The contracts the portal imported: those its products come from.
    contract_frame = (
        product_frame.dropna(subset=["contract_id"])[["contract_id", "customer_id"]]
        .drop_duplicates()
        .reset_index(drop=True)
    )
    site_frame = _frame(
        connection,
        select(sites.c.halo_site_id, sites.c.customer_id, sites.c.zip).where(
            sites.c.portal_id == portal_id
        ),
        ["site_id", "customer_id", "zip"],
    )
    ledger_frame = (
        _ledger_rows(connection, portal_id)
        if repairs
        else _ledger_runs(connection, portal_id, period)
    )
    usage_frame = _frame(
        connection,
        select(
            usage_charges.c.usage_id,
            usage_charges.c.customer_id,
            usage_charges.c.site_id,
            usage_charges.c.contract_id,
            usage_charges.c.description,
            _stored_integer(usage_charges.c.amount, "amount_cents"),
            usage_charges.c.tax_code,
            usage_charges.c.usage_date,
        ).where(usage_charges.c.portal_id == portal_id, usage_charges.c.period == period),
        [
            "usage_id",
            "customer_id",
            "site_id",
            "contract_id",
            "description",
            "amount_cents",
            "tax_code",
            "usage_date",
        ],
    )
    rate_frame = _frame(
        connection,
        select(tax_rates.c.zip, tax_rates.c.tax_code, tax_rates.c.jurisdiction, tax_rates.c.rate),
        ["zip", "tax_code", "jurisdiction", "rate"],
    )
    return {
        "products": product_frame,
        "customers": customer_frame,
        "sites": site_frame,
        "contracts": contract_frame,
        "ledger": ledger_frame,
        "usage": usage_frame,
        "tax_rates": rate_frame,
    }
