"""Load what the billing engine needs for one portal and period from the warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    cast,
    extract,
    func,
    not_,
    select,
    text,
    true,
    tuple_,
    type_coerce,
)

from datagate_pipelines.billing.periods import month_from_index
from datagate_pipelines.warehouse.bulk import insert_columns
from datagate_pipelines.warehouse.frames import read_columns
from datagate_pipelines.warehouse.models import (
    billed_pair_where,
    billing_ledger,
    customers,
    invoices,
    irregular_row_where,
    product_templates,
    products,
    sites,
    tax_rates,
    usage_charges,
)

NULLABLE_IDS = ("site_id", "contract_id")
# What a ledger row billed, in cents or × 10**4 (NULL only if its line is gone).
LEDGER_INTEGERS = ("qty_e4", "unit_price_e4", "amount_cents", "tax_cents")
# The ledger's rows read with what each billed, for repairs (billing/repairs.py).
LEDGER_ROW_COLUMNS = [
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
    *LEDGER_INTEGERS,
    "tax_code",
    "tax_zip",
    "tax_rate",
    "invoice",
    "start_date",
    "end_date",
    "month_number",
]


def _frame(connection: Connection, query: Select, columns: list[str]) -> pd.DataFrame:
    frame = read_columns(connection, query, columns)
    for column in NULLABLE_IDS:
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    # Object columns keep Decimals and dates exactly as the database returned them.
    return frame.astype({c: object for c in frame.columns if frame[c].dtype == object})


def _stored_integer(column, name: str):
    """An exact-number column as the integer the warehouse stores (warehouse/types.py), not
    a Decimal built per row: the engine's integer form (billing/inputs.py)."""
    return type_coerce(column, BigInteger).label(name)


# Past any month number: a product with no end is billed in full to the end of time.
NO_END = 10**6


def _month_number(value):
    return cast(extract("year", value) * 12 + extract("month", value), Integer)


def _counted(portal_id: str, period: date):
    """Ledger rows that bill or repair a pair: those of invoices that stand (a voided
    invoice's rows are released, rule 7), minus the drafts of `period` itself — they are
    recomputed (and re-running it for held invoices never bills a final pair again)."""
    ledger = billing_ledger
    drafts_of_period = select(invoices.c.id).where(
        invoices.c.portal_id == portal_id,
        invoices.c.period == period,
        invoices.c.status != "final",
    )
    return and_(
        ledger.c.portal_id == portal_id,
        ledger.c.released_at.is_(None),
        not_(and_(ledger.c.period == period, ledger.c.invoice_id.in_(drafts_of_period))),
    )


def _full_months():
    """Each product's first and last month billed in full under its current dates, as
    month numbers: a month a date change can touch lies outside (its start and end months
    included, but a start on the 1st). No start date: no such month."""
    start, end = products.c.start_date, products.c.end_date
    first = case(
        (start.is_(None), NO_END),
        else_=_month_number(start) + case((extract("day", start) == 1, 0), else_=1),
    )
    last = case((end.is_(None), NO_END), else_=_month_number(end) - 1)
    return first.label("full_from"), last.label("full_through")


def _billed_runs(
    connection: Connection, portal_id: str, period: date, *, full_months: bool
) -> pd.DataFrame:
    """Each product's billed months as runs of month numbers (`first`, `last`): the
    database aggregates, Python reads a row per product — a product billed every month for
    two years is one row, not 24. Products whose months have gaps (rare: a ledger edited by
    hand) come as one row per month. With `full_months`, each product's full months too
    (`_full_months`)."""
    ledger = billing_ledger
    counted = and_(_counted(portal_id, period), ledger.c.kind == "bill")
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
    first, last = _month_number(per_product.c.first), _month_number(per_product.c.last)
    bounds = list(_full_months()) if full_months else []
    runs = read_columns(
        connection,
        select(
            per_product.c.product_id,
            products.c.source_line_id,
            first,
            last,
            last - first + 1 == per_product.c.months,
            *bounds,
        )
        .join(
            products,
            and_(
                products.c.portal_id == portal_id,
                products.c.product_id == per_product.c.product_id,
            ),
        )
        # In product order, as the products are read (the engine's fast path).
        .order_by(per_product.c.product_id),
        ["product_id", "product_key", "first", "last", "contiguous"]
        + [bound.name for bound in bounds],
    )
    gapped = runs[~runs["contiguous"].astype(bool)].drop(columns=["first", "last"])
    runs = runs[runs["contiguous"].astype(bool)]
    if len(gapped):
        months = pd.DataFrame(
            [
                row
                for start in range(0, len(gapped), 1000)
                for row in connection.execute(
                    select(ledger.c.product_id, _month_number(ledger.c.service_month)).where(
                        counted,
                        ledger.c.product_id.in_(
                            gapped["product_id"].iloc[start : start + 1000].tolist()
                        ),
                    )
                )
            ],
            columns=["product_id", "first"],
        ).merge(gapped, on="product_id")
        months["last"] = months["first"]
        runs = pd.concat([runs, months]).sort_values(["product_id", "first"], kind="stable")
    return runs.drop(columns="contiguous").reset_index(drop=True)


def _months(numbers: pd.Series) -> np.ndarray:
    """Month numbers (year × 12 + month: SQL's, one above billing.periods' month index) as
    the first day of their month."""
    first_days = {n: month_from_index(n - 1) for n in numbers.unique()}
    return numbers.map(first_days).to_numpy(dtype=object)


def _run_form(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs of month numbers in the engine's run form (billing/recurring.py)."""
    return pd.DataFrame(
        {
            "product_id": runs["product_id"].to_numpy(),
            "product_key": runs["product_key"].to_numpy(dtype=np.int64),
            "service_month": _months(runs["first"]),
            "through_month": _months(runs["last"]),
        }
    )


def _ledger_runs(connection: Connection, portal_id: str, period: date) -> pd.DataFrame:
    """The portal's ledger in the engine's run form: with repairs off, what is billed is
    all the engine needs."""
    return _run_form(_billed_runs(connection, portal_id, period, full_months=False))


def _outside_full_months(runs: pd.DataFrame) -> pd.DataFrame:
    """The billed months of `runs` (with each product's full months) that lie outside the
    product's full months, as (product_id, month_number): a date change may concern them."""
    before = runs[runs["first"] < runs["full_from"]]
    after = runs[runs["last"] > runs["full_through"]]
    spans = pd.concat(
        [
            pd.DataFrame(
                {
                    "product_id": before["product_id"],
                    "first": before["first"],
                    "last": np.minimum(before["last"], before["full_from"] - 1),
                }
            ),
            pd.DataFrame(
                {
                    "product_id": after["product_id"],
                    "first": np.maximum(after["first"], after["full_through"] + 1),
                    "last": after["last"],
                }
            ),
        ],
        ignore_index=True,
    )
    lengths = (spans["last"] - spans["first"] + 1).to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {
            "product_id": np.repeat(spans["product_id"].to_numpy(dtype=object), lengths),
            "month_number": np.repeat(spans["first"].to_numpy(dtype=np.int64), lengths)
            + _steps(lengths),
        }
    )


def _steps(lengths: np.ndarray) -> np.ndarray:
    """0, 1, …, n − 1 for each run of n months, end to end: what to add to each run's first
    month, repeated n times, to list its months."""
    return np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def _candidate_table() -> Table:
    return Table(
        "datagate_candidate_pairs",
        MetaData(),
        Column("product_id", String(64), primary_key=True),
        Column("service_month", Date, primary_key=True),
        prefixes=["TEMPORARY"],
    )


@contextmanager
def _without_jit(connection: Connection) -> Iterator[None]:
    """PostgreSQL without JIT compilation for one query: the probes' plan looks dear (it
    counts a random read per pair), so JIT would spend about a second compiling a query
    that runs in less."""
    if connection.dialect.name != "postgresql":
        yield
        return
    before = connection.exec_driver_sql("SELECT current_setting('jit')").scalar_one()
    connection.exec_driver_sql("SELECT set_config('jit', 'off', true)")
    yield
    connection.exec_driver_sql("SELECT set_config('jit', %(before)s, true)", {"before": before})


def _bills_of_pairs(connection: Connection, candidates: Table, portal_id: str, period: date):
    """The FROM and the condition that give the counted bills of the candidate pairs, each
    pair an index probe (the index of billed pairs: its predicate is named word for word,
    as SQLite uses a partial index only then); and the rows' selectable."""
    ledger = billing_ledger
    bills = and_(
        ledger.c.portal_id == portal_id,
        _counted(portal_id, period),
        text(f"({billed_pair_where(ledger.name)})"),
    )
    if connection.dialect.name != "postgresql":
        # SQLite looks each pair of an IN list up in the index (the list drives the probes).
        listed = tuple_(ledger.c.product_id, ledger.c.service_month).in_(
            select(candidates.c.product_id, candidates.c.service_month)
        )
        return ledger, and_(bills, listed), ledger
    # PostgreSQL would rather hash the whole ledger than probe it a few hundred thousand
    # times; a lateral subquery it may not flatten (OFFSET 0) makes each pair a probe.
    rows = (
        select(ledger)
        .where(
            bills,
            ledger.c.product_id == candidates.c.product_id,
            ledger.c.service_month == candidates.c.service_month,
        )
        .offset(0)
        .lateral()
    )
    return candidates.join(rows, true()), true(), rows


def _with_terms(connection: Connection, source, where, ledger=billing_ledger) -> pd.DataFrame:
    """The ledger rows of `source` where `where` holds, with what each billed and their
    product's current owners and dates, which rule 6 compares (billing/repairs.py):
    LEDGER_ROW_COLUMNS and the row's id.

    `final` marks pairs on final invoices: never billed again, even by a re-run of their own
    period (the engine otherwise recomputes that period's pairs from scratch); `invoice` is
    the number a repair corrects. A voided invoice's pairs are not billed any more (rule 7):
    the agreement's next invoice bills them again, as catch-up."""
    query = (
        select(
            products.c.source_line_id,
            ledger.c.service_month,
            ledger.c.period,
            invoices.c.status == "final",
            ledger.c.product_id,
            ledger.c.kind,
            products.c.customer_id,
            products.c.site_id,
            products.c.contract_id,
            products.c.description,
            _stored_integer(ledger.c.qty, "qty_e4"),
            _stored_integer(ledger.c.unit_price, "unit_price_e4"),
            _stored_integer(ledger.c.amount, "amount_cents"),
            _stored_integer(ledger.c.tax, "tax_cents"),
            ledger.c.tax_code,
            ledger.c.tax_zip,
            ledger.c.tax_rate,
            invoices.c.doc_number,
            products.c.start_date,
            products.c.end_date,
            _month_number(ledger.c.service_month),
            ledger.c.id,
        )
        .select_from(
            source.join(invoices, invoices.c.id == ledger.c.invoice_id).join(
                products,
                and_(
                    products.c.portal_id == ledger.c.portal_id,
                    products.c.product_id == ledger.c.product_id,
                ),
            )
        )
        .where(where, invoices.c.voided_at.is_(None))
    )
    with _without_jit(connection):
        frame = _frame(connection, query, [*LEDGER_ROW_COLUMNS, "id"])
    return frame.astype(dict.fromkeys(LEDGER_INTEGERS, "Int64"))


def _irregular_rows(connection: Connection, portal_id: str, period: date) -> pd.DataFrame:
    """The counted rows a run cannot stand for (`models.irregular_row_where`: repairs,
    missing terms, amounts that are not a full month), through the ledger's partial index
    of such rows — the query names its predicate word for word, so both databases use it.
    Their pairs are the irregular ones. (A row on an invoice not final — held — is not
    repaired, but a regular pair in a month its product is active in full would not be
    repaired if it were final either: its run says all there is.)"""
    ledger = billing_ledger
    irregular = and_(
        ledger.c.portal_id == portal_id,
        _counted(portal_id, period),
        text(f"({irregular_row_where(ledger.name)})"),
    )
    return _with_terms(connection, ledger, irregular)


def _bills_of(connection: Connection, portal_id: str, period: date, pairs: pd.DataFrame):
    """The counted bills of `pairs` (product_id, month_number), looked up pair by pair: the
    pairs go to a temporary table, the rest of the history is not read."""
    candidates = _candidate_table()
    # Temporary tables live as long as the connection: one left by a failed read before
    # on this pooled connection is ours to replace.
    candidates.drop(connection, checkfirst=True)
    candidates.create(connection)
    insert_columns(
        connection,
        candidates,
        {
            "product_id": pairs["product_id"].tolist(),
            "service_month": _months(pairs["month_number"]).tolist(),
        },
    )
    # Statistics, which a temporary table lacks: with them the planner takes the pairs
    # first and probes the ledger for each, instead of the other way round.
    connection.exec_driver_sql(f"ANALYZE {candidates.name}")
    source, where, ledger = _bills_of_pairs(connection, candidates, portal_id, period)
    frame = _with_terms(connection, source, where, ledger)
    # Dropped once read; on an error the transaction's rollback takes it away.
    candidates.drop(connection)
    return frame


def _ledger_rows(connection: Connection, portal_id: str, period: date, runs: pd.DataFrame):
    """The counted rows of the pairs a repair may concern (rule 6), with what each billed:
    the pairs with an irregular row, and the billed months outside their product's full
    months. Every repair row is irregular, so only bills remain to be looked up: those of
    such pairs that are regular."""
    irregular = _irregular_rows(connection, portal_id, period)
    pairs = pd.concat(
        [irregular[["product_id", "month_number"]], _outside_full_months(runs)],
        ignore_index=True,
    ).drop_duplicates()
    have_bill = irregular.loc[irregular["kind"] == "bill", ["product_id", "month_number"]]
    missing = pairs.merge(have_bill, how="left", indicator=True)
    missing = missing[missing.pop("_merge") == "left_only"]
    bills = _bills_of(connection, portal_id, period, missing)
    # An empty read has no dtypes to give: left out, it cannot turn the keys into objects.
    rows = pd.concat([f for f in (irregular, bills) if len(f)] or [irregular], ignore_index=True)
    rows = rows.sort_values(["product_id", "month_number", "id"], ignore_index=True)
    return rows.drop(columns="id")


def _ledger_mixed(connection: Connection, portal_id: str, period: date) -> pd.DataFrame:
    """The ledger for rule 6's repairs: the pairs a repair may concern row by row with what
    each row billed (no through_month), every other pair in runs (one row per product) —
    each pair one way, in (product, month) order (billing/recurring.py's mixed ledger).

    A pair no repair can concern has only bills of a full month at the quantity and unit
    price billed, in a month its product is active in full under its current dates:
    recomputed, it bills what it billed (billing/repairs.py)."""
    runs = _billed_runs(connection, portal_id, period, full_months=True)
    rows = _ledger_rows(connection, portal_id, period, runs)
    # Months a date change can touch come row by row: the runs keep the full months.
    runs["first"] = runs["first"].clip(lower=runs["full_from"])
    runs["last"] = runs["last"].clip(upper=runs["full_through"])
    runs = runs[runs["first"] <= runs["last"]].drop(columns=["full_from", "full_through"])
    # A pair read row by row inside a run (a repaired or hand-edited month) cuts it: that
    # product's runs go month by month, without the months read row by row.
    pairs = rows[["product_id", "month_number"]].drop_duplicates()
    inside = pairs.merge(runs, on="product_id")
    inside = inside[
        inside["first"].le(inside["month_number"]) & inside["last"].ge(inside["month_number"])
    ]
    if len(inside):
        cut = runs["product_id"].isin(inside["product_id"])
        lengths = (runs.loc[cut, "last"] - runs.loc[cut, "first"] + 1).to_numpy(dtype=np.int64)
        months = runs[cut].loc[runs[cut].index.repeat(lengths)].reset_index(drop=True)
        months["first"] += _steps(lengths)
        months["last"] = months["first"]
        months = months.merge(
            pairs.rename(columns={"month_number": "first"}), how="left", indicator=True
        )
        months = months[months.pop("_merge") == "left_only"]
        runs = pd.concat([runs[~cut], months]).sort_values(["product_id", "first"], kind="stable")
    frame = _run_form(runs)
    if len(rows) == 0:
        return frame
    frame = pd.concat([frame, rows.drop(columns="month_number")], ignore_index=True)
    # A pair's rows stay in the order read; each product's runs and rows interleave by month.
    return frame.sort_values(["product_id", "service_month"], kind="stable", ignore_index=True)


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
        _ledger_mixed(connection, portal_id, period)
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
