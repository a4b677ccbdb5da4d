"""The billing engine: one portal's data for one billing period in, invoices out.

`bill_period` is a pure function in the spirit of Kill Bill's invoice generator: what should
have been billed up to the target month T, minus what the ledger says was billed, gives
the new lines. Re-running a period recomputes its drafts from scratch (the ledger rows of
the period being billed are ignored), so re-runs are safe.

Everything is computed on whole columns with integers in minor units (see money.py); the
only per-row Python work is at the edges (distinct values of a column, rejects, holds,
one key per invoice). Python objects are the costly part at a million rows, so each input
column of Decimals, dates or text is read once (ids.py, periods.py, money.py), lines carry
integers only, and each result cell is written once, in line order. tests/billing/oracle.py
is the row-by-row Decimal reference the engine is checked against.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cached_property

import numpy as np
import pandas as pd

from datagate_pipelines.billing import agreements
from datagate_pipelines.billing.context import BillingRun
from datagate_pipelines.billing.errors import BillingInputError
from datagate_pipelines.billing.inputs import TAX_RATE_COLUMNS, Contracts, Customers, Sites, table
from datagate_pipelines.billing.lines import (
    CREDIT,
    KIND_NAMES,
    REBILL,
    RECURRING,
    USAGE,
    LineBlock,
    LineSources,
)
from datagate_pipelines.billing.money import scaled_columns_to_decimals, sum_segments
from datagate_pipelines.billing.month_columns import month_categorical, month_dates
from datagate_pipelines.billing.periods import (
    check_period,
    due_date,
    invoice_date,
    month_index,
    period_label,
)
from datagate_pipelines.billing.recurring import QUANTITY_PLACES, recurring_lines
from datagate_pipelines.billing.repairs import RepairLines, repair_lines
from datagate_pipelines.billing.settings import BillingSettings
from datagate_pipelines.billing.tax import Coded, LineTaxes, TaxCodes, build_rate_table, tax_lines
from datagate_pipelines.billing.usage import usage_lines

INVOICE_COLUMNS = (
    "invoice_key",
    "period",
    "customer_id",
    "customer_name",
    "agreement_key",
    "halo_contract_id",
    "invoice_date",
    "due_date",
    "subtotal",
    "tax",
    "total",
    "status",
    "hold_reasons",
)
LINE_COLUMNS = (
    "invoice_key",
    "line_no",
    "kind",
    "product_id",
    "usage_id",
    "description",
    "service_month",
    "site_id",
    "qty",
    "unit_price",
    "amount",
    "tax_code",
    "tax_zip",
    "tax_rate",
    "tax",
    "corrects_invoice",
)
SITE_SUBTOTAL_COLUMNS = ("invoice_key", "site_id", "subtotal")
# What each pair was billed at (or credited, or billed again at): rule 6 reads it back.
LEDGER_TERMS = ("kind", "qty", "unit_price", "amount", "tax", "tax_code", "tax_zip", "tax_rate")
LEDGER_COLUMNS = ("product_id", "service_month", "period", "invoice_key", *LEDGER_TERMS)
REJECT_COLUMNS = ("entity", "record_id", "field", "reason")
# With `minor_units=True` these columns hold integers, under these names: money in cents,
# quantities and unit prices × 10**4 (the warehouse's own form, warehouse/types.py).
MINOR_UNIT_COLUMNS = {
    "subtotal": "subtotal_cents",
    "tax": "tax_cents",
    "total": "total_cents",
    "amount": "amount_cents",
    "qty": "qty_e4",
    "unit_price": "unit_price_e4",
}
_STATUSES = np.array(["draft", "held"], dtype=object)  # by "is held"
# The ledger's kind of each line kind (usage lines have no ledger row).
_LEDGER_KINDS = np.array(["bill", "", "credit", "rebill"], dtype=object)
_KINDS = pd.CategoricalDtype(KIND_NAMES)


@dataclass(frozen=True)
class BillingResult:
    """What `bill_period` returns; every money value is a `Decimal` with 2 places.

    - invoices: one row per agreement with lines, in numbering order (customer name
      case-folded, customer id, agreement); status "draft", or "held" with hold_reasons.
    - invoice_lines: line_no from 1 per invoice, ordered by site (site id ascending, the
      lines with no site last), then kind (recurring, usage, then repair lines), then
      product id and service month (usage: usage date, usage id; a repair's credit before
      its re-bill). Repair lines (kind "credit" / "rebill", rule 6) name the invoice they
      correct in `corrects_invoice` (the ledger's `invoice` label); other lines have None.
    - site_subtotals: one row per (invoice, site group), in line order.
    - ledger: the (product, service month) pairs billed by this period — held invoices
      included (rule 5) — with the invoice that bills each, and the pairs repaired; each
      row with its kind ("bill", "credit", "rebill") and the terms, amount and tax billed.
    - rejects: products and usage rows refused, and unusable tax-rate rows, with reasons.
    """

    invoices: pd.DataFrame
    invoice_lines: pd.DataFrame
    site_subtotals: pd.DataFrame
    ledger: pd.DataFrame
    rejects: pd.DataFrame


def bill_period(
    period: date,
    settings: BillingSettings,
    *,
    products: pd.DataFrame | None,
    customers: pd.DataFrame | None,
    sites: pd.DataFrame | None = None,
    contracts: pd.DataFrame | None = None,
    ledger: pd.DataFrame | None = None,
    usage: pd.DataFrame | None = None,
    tax_rates: pd.DataFrame | None = None,
    minor_units: bool = False,
) -> BillingResult:
    """Bill one portal's billing period P (the first day of the month).

    Inputs (pandas DataFrames; money and quantities as Decimal and dates as datetime.date,
    or in their integer forms (billing/inputs.py: qty_e4, unit_price_e4, amount_cents,
    datetime64 dates); ids as ints or nullable Int64; extra columns are ignored):
    - products: product_id, customer_id, site_id, contract_id, description, qty,
      unit_price, tax_code, start_date, end_date, billing_cycle;
    - customers (the billed ones): customer_id, name, zip, use_site_zip_tax;
    - sites: site_id, customer_id, zip; contracts: contract_id, customer_id;
    - ledger: product_id (or product_key, naming products by the integer key the products
      then carry in a `product_key` column), service_month, period [, final] — the pairs
      already billed.
      Rows of P are ignored (P's drafts are recomputed) unless `final` is true for them.
      With an `amount` column the ledger also says what each row billed, and rule 6
      repairs apply (repairs.py, when `settings.credit_past_changes`): it then needs
      product_id, kind, customer_id, site_id, contract_id, description, qty, unit_price,
      amount, tax, tax_code, tax_zip, tax_rate, invoice (a label of the invoice the row is
      on) and the product's current start_date and end_date (none: the product is gone).
      Or as runs: product_id (or product_key), service_month, through_month — each row
      every month from service_month through through_month, all counted (the caller left
      out P's pairs that are not final). A ledger of runs may also carry, for the pairs a
      repair may concern, their rows with what each billed and no through_month (the
      columns above): each pair as a run or as rows, never both; runs are not repaired;
      rows in (product, month) order keep the runs' fast path (invoicing/inputs.py reads it
      so when repairs are on);
    - customers may carry a `billed` column: customers no longer billed (false) get
      invoices of repair lines only;
    - usage: usage_id, customer_id, site_id, [contract_id,] description, amount, tax_code,
      usage_date. Re-running P while some of its invoices are final: leave out the usage
      rows already on those invoices, and keep the final invoices (same invoice_key) as
      they are — the engine recomputes every agreement of P;
    - tax_rates: zip, tax_code, [jurisdiction,] rate.
    None (or a column-less empty frame) is an empty table.

    The result's money, quantities and unit prices are Decimals, or with `minor_units`
    integers under the names of `MINOR_UNIT_COLUMNS` (cents; × 10**4), which spares
    building a Decimal per value when the caller stores integers anyway; the lines' repeated
    values (invoice key, kind, service month, tax code, zip and rate) then come as pandas
    Categoricals.

    Raises BillingInputError when P is not the first of a month or is before the portal's
    billing start, or when an input table lacks a column or repeats a customer, site or
    contract id. Bad product and usage rows are returned as rejects, not raised.
    """
    period = check_period(period)
    if period < settings.billing_start:
        raise BillingInputError(
            f"billing period {period_label(period)} is before the portal's billing start"
            f" {period_label(settings.billing_start)}"
        )
    customer_table = Customers.from_frame(customers)
    site_table = Sites.from_frame(sites)
    contract_table = Contracts.from_frame(contracts)
    rates = build_rate_table(table(tax_rates, "tax_rates", TAX_RATE_COLUMNS))

    tax_codes = TaxCodes()
    run = BillingRun(period, settings, customer_table, site_table, contract_table, tax_codes)
    repairs = repair_lines(ledger, month_index(period), settings)
    lines, values, rejected = _sorted_lines(products, ledger, usage, repairs, run)

    taxes = tax_lines(lines, customer_table, site_table, rates, tax_codes)
    if repairs is not None:
        _taxes_as_billed(taxes, lines, repairs)
    grouping = _Invoices.of(lines, customer_table, period)
    totals = _Totals.of(lines, taxes, grouping, minor_units)
    line_frame = _line_frame(lines, values, taxes, grouping, totals, minor_units)
    # Free what the other frames do not need before they are built: a smaller peak of
    # memory is fewer fresh pages to fault in, which costs CPU time too.
    del values
    reasons = _hold_reasons(grouping, lines, line_frame, taxes)
    del taxes
    rejects = pd.DataFrame(rejected + rates.rejects, columns=list(REJECT_COLUMNS)).astype(object)
    return BillingResult(
        invoices=_renamed(
            _invoice_frame(
                grouping, lines, totals, reasons, period, settings, customer_table, contract_table
            ),
            minor_units,
        ),
        invoice_lines=_renamed(line_frame, minor_units),
        site_subtotals=_renamed(
            _site_subtotal_frame(grouping, line_frame, totals, minor_units), minor_units
        ),
        ledger=_ledger_frame(grouping, lines, line_frame, period, minor_units),
        rejects=rejects,
    )


def _sorted_lines(
    products: pd.DataFrame | None,
    ledger: pd.DataFrame | None,
    usage: pd.DataFrame | None,
    repairs: RepairLines | None,
    run: BillingRun,
) -> tuple[LineBlock, LineSources, list[dict[str, str]]]:
    """Recurring, usage and repair lines in line order, the values they copy, and the
    rejects."""
    recurring, product_values, product_rejects = recurring_lines(products, ledger, run)
    charged, usage_values, usage_rejects = usage_lines(usage, run)
    blocks = [recurring, charged]
    tables = {RECURRING: product_values, USAGE: usage_values}
    if repairs is not None and len(repairs):
        blocks.append(_repair_block(repairs, run))
        tables.update({CREDIT: repairs.values, REBILL: repairs.values})
    lines = LineBlock.concat(blocks)
    lines.reorder(_line_order(lines, run.customers))
    return lines, LineSources(tables), product_rejects + usage_rejects


def _repair_block(repairs: RepairLines, run: BillingRun) -> LineBlock:
    """The repair lines as lines; `source` is the repair's position. A customer no longer
    billed still gets them (rule 6), so it must be in the customers table."""
    n = len(repairs)
    customer = run.customers.known_positions(repairs.customer_ids, np.ones(n, dtype=bool))
    if (customer < 0).any():
        row = int(np.flatnonzero(customer < 0)[0])
        raise BillingInputError(
            f"ledger: product {repairs.values.record_id[row]} needs a repair line for customer"
            f" {repairs.customer_ids[row]}, who is not in the customers table"
        )
    kind, contract = agreements.assign_agreements(
        repairs.contract_ids, repairs.has_contract, run.settings.use_default_agreement
    )
    return LineBlock(
        kind=np.where(repairs.rebill, REBILL, CREDIT).astype(np.int8),
        customer=customer,
        site_id=repairs.site_ids,
        has_site=repairs.has_site,
        site_pos=run.sites.positions(repairs.site_ids, repairs.has_site),
        agreement_kind=kind,
        agreement_contract=contract,
        month=repairs.month,
        order=repairs.rank,
        amount=repairs.amount,
        tax_code=run.tax_codes.encode(repairs.tax_code),
        source=np.arange(n, dtype=np.int64),
    )


def _taxes_as_billed(taxes: LineTaxes, lines: LineBlock, repairs: RepairLines) -> None:
    """Repair lines keep the zip, rate and tax of what they correct (rule 6): overwrite what
    the tax rules computed for them today. Only an unknown rate holds their invoice."""
    rows = np.flatnonzero(lines.kind >= CREDIT)
    if len(rows) == 0:
        return
    source = lines.source[rows]
    if repairs.tax.dtype == object and taxes.tax.dtype != object:
        taxes.tax = taxes.tax.astype(object)
    taxes.tax[rows] = repairs.tax[source]
    for coded, given in ((taxes.zip, repairs.tax_zip), (taxes.rate, repairs.tax_rate)):
        codes, distinct = pd.factorize(given[source])
        coded.codes = np.array(coded.codes, dtype=np.int64)
        coded.codes[rows] = np.where(codes >= 0, codes + len(coded.values), -1)
        coded.values = [*coded.values, *distinct.tolist()]
    no_rate = repairs.no_rate[source]
    for flags in (taxes.no_code, taxes.no_zip, taxes.bad_rate):
        flags[rows] = False
    taxes.no_rate[rows] = no_rate
    taxes.problem[rows] = no_rate


@dataclass
class _Invoices:
    """How the sorted lines split into invoices: each line's invoice, each invoice's first
    line, and the invoice keys."""

    of_line: np.ndarray
    starts: np.ndarray
    agreement_keys: np.ndarray
    keys: np.ndarray
    customer_ids: np.ndarray

    def keys_of(self, invoices: np.ndarray, minor_units: bool) -> np.ndarray | pd.Categorical:
        """The invoice key of each of `invoices` (positions): objects, or in the integer
        form a Categorical of the keys (no object per row)."""
        if not minor_units:
            return self.keys[invoices]
        return pd.Categorical.from_codes(invoices, dtype=self._key_dtype)

    @cached_property
    def _key_dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype(pd.Index(self.keys, dtype=object))

    @classmethod
    def of(cls, lines: LineBlock, customers: Customers, period: date) -> _Invoices:
        of_line, starts = _segments(lines.customer, lines.agreement_kind, lines.agreement_contract)
        customer_ids = customers.ids[lines.customer[starts]].astype(np.int64)
        agreement_keys = agreements.format_agreement_keys(
            lines.agreement_kind[starts], customer_ids, lines.agreement_contract[starts]
        )
        prefix = f"{period_label(period)}:"
        keys = _objects(map(prefix.__add__, agreement_keys.tolist()))
        return cls(of_line, starts, agreement_keys, keys, customer_ids)


def result_columns(columns: tuple[str, ...], minor_units: bool) -> list[str]:
    """A result frame's column names (`minor_units`: its integer columns renamed)."""
    if not minor_units:
        return list(columns)
    return [MINOR_UNIT_COLUMNS.get(column, column) for column in columns]


def _renamed(frame: pd.DataFrame, minor_units: bool) -> pd.DataFrame:
    if minor_units:
        frame.columns = result_columns(tuple(frame.columns), minor_units)
    return frame


@dataclass
class _Totals:
    """Every money value of the result: line amounts and taxes; per invoice the subtotal,
    tax and total; and the subtotal of each (invoice, site) group, the groups starting at
    `site_starts`. In cents, or as Decimals built in one go (equal values share one
    Decimal)."""

    line_amount: np.ndarray
    line_tax: np.ndarray
    subtotal: np.ndarray
    tax: np.ndarray
    total: np.ndarray
    site_starts: np.ndarray
    site_subtotal: np.ndarray

    @classmethod
    def of(
        cls, lines: LineBlock, taxes: LineTaxes, grouping: _Invoices, minor_units: bool
    ) -> _Totals:
        _, site_starts = _segments(grouping.of_line, lines.has_site, lines.site_id)
        subtotal = sum_segments(lines.amount, grouping.starts)
        tax = sum_segments(taxes.tax, grouping.starts)
        site_subtotal = sum_segments(lines.amount, site_starts)
        columns = [lines.amount, taxes.tax, subtotal, tax, subtotal + tax, site_subtotal]
        if not minor_units:
            columns = scaled_columns_to_decimals(columns)
        line_amount, line_tax, subtotal, tax, total, site_subtotal = columns
        return cls(line_amount, line_tax, subtotal, tax, total, site_starts, site_subtotal)


def _invoice_frame(
    grouping: _Invoices,
    lines: LineBlock,
    totals: _Totals,
    reasons: list[list[str]],
    period: date,
    settings: BillingSettings,
    customers: Customers,
    contracts: Contracts,
) -> pd.DataFrame:
    n = len(grouping.keys)
    held = np.fromiter(map(bool, reasons), dtype=bool, count=n)
    first = grouping.starts
    return pd.DataFrame(
        {
            "invoice_key": grouping.keys,
            "period": _repeat(period, n),
            "customer_id": grouping.customer_ids,
            "customer_name": customers.names[lines.customer[first]],
            "agreement_key": grouping.agreement_keys,
            "halo_contract_id": _export_contracts(
                lines.agreement_kind[first],
                grouping.customer_ids,
                lines.agreement_contract[first],
                contracts,
            ),
            "invoice_date": _repeat(invoice_date(period), n),
            "due_date": _repeat(due_date(period, settings.payment_terms_days), n),
            "subtotal": totals.subtotal,
            "tax": totals.tax,
            "total": totals.total,
            "status": _STATUSES[held.view(np.int8)],
            "hold_reasons": _objects(reasons),
        },
        columns=list(INVOICE_COLUMNS),
        copy=False,  # no consolidation copy of the object columns
    )


def _hold_reasons(
    grouping: _Invoices, lines: LineBlock, line_frame: pd.DataFrame, taxes: LineTaxes
) -> list[list[str]]:
    """Each invoice's hold reasons (empty: not held), each reason once, in line order."""
    with _garbage_collection_paused():  # one new list per invoice, all of them kept
        reasons: list[list[str]] = [[] for _ in range(len(grouping.keys))]
    rows = np.flatnonzero(taxes.problem)
    record_ids = np.where(
        lines.kind[rows] == USAGE,
        line_frame["usage_id"].to_numpy()[rows],
        line_frame["product_id"].to_numpy()[rows],
    )
    for invoice, line_reasons in zip(
        grouping.of_line[rows].tolist(), taxes.hold_reasons(rows, record_ids), strict=True
    ):
        bucket = reasons[invoice]
        bucket.extend(reason for reason in line_reasons if reason not in bucket)
    return reasons


def _line_frame(
    lines: LineBlock,
    values: LineSources,
    taxes: LineTaxes,
    grouping: _Invoices,
    totals: _Totals,
    minor_units: bool,
) -> pd.DataFrame:
    """The invoice lines; text and Decimal values are taken from their input rows once,
    in line order."""
    return pd.DataFrame(
        {
            "invoice_key": grouping.keys_of(grouping.of_line, minor_units),
            "line_no": np.arange(len(lines), dtype=np.int64)
            - grouping.starts[grouping.of_line]
            + 1,
            "kind": pd.Categorical.from_codes(lines.kind, dtype=_KINDS)
            if minor_units
            else KIND_NAMES[lines.kind],
            "product_id": values.take(lines, "record_id", kinds=(RECURRING, CREDIT, REBILL)),
            "usage_id": values.take(lines, "record_id", kinds=(USAGE,)),
            "description": values.take(lines, "description"),
            "service_month": month_categorical(lines.month)
            if minor_units
            else month_dates(lines.month),
            "site_id": pd.arrays.IntegerArray(
                np.where(lines.has_site, lines.site_id, 0).astype(np.int64), ~lines.has_site
            ),
            "qty": _terms(values, lines, "qty", minor_units),
            "unit_price": _terms(values, lines, "unit_price", minor_units),
            "amount": totals.line_amount,
            "tax_code": _text(taxes.tax_code, minor_units),
            "tax_zip": _text(taxes.zip, minor_units),
            "tax_rate": _text(taxes.rate, minor_units),
            "tax": totals.line_tax,
            "corrects_invoice": values.take(lines, "corrects", kinds=(CREDIT, REBILL)),
        },
        columns=list(LINE_COLUMNS),
        copy=False,
    )


def _text(column: Coded, minor_units: bool) -> np.ndarray | pd.Categorical:
    """A repeated value per line: objects, or in the integer form a Categorical."""
    return column.categorical() if minor_units else column.objects()


def _terms(
    values: LineSources, lines: LineBlock, name: str, minor_units: bool
) -> np.ndarray | pd.arrays.IntegerArray:
    """The quantity or unit price (`name`) of each line: a recurring line's from its
    product, a repair line's as billed, none for usage lines."""
    terms = _product_terms(values, lines, name, minor_units)
    rows = np.flatnonzero(lines.kind >= CREDIT)
    if len(rows) == 0:
        return terms
    repairs, source = values.tables[CREDIT], lines.source[rows]
    scaled = getattr(repairs, name)[source]
    if minor_units:
        data = terms.to_numpy(dtype=np.int64, na_value=0)
        mask = np.asarray(terms.isna(), dtype=bool)
        data[rows], mask[rows] = scaled.astype(np.int64), False
        return pd.arrays.IntegerArray(data, mask)
    given = getattr(repairs, f"given_{name}")
    terms[rows] = (
        given[source]
        if given is not None
        else scaled_columns_to_decimals([scaled], QUANTITY_PLACES)[0]
    )
    return terms


def _product_terms(
    values: LineSources, lines: LineBlock, name: str, minor_units: bool
) -> np.ndarray | pd.arrays.IntegerArray:
    """The quantity or unit price (`name`) of each recurring line, from its product (none for
    other lines): × 10**4, or the Decimals given (built from the integers when they were
    given as integers)."""
    products = values.tables[RECURRING]
    scaled, source = getattr(products, name), lines.source
    recurring = lines.kind == RECURRING
    if minor_units:
        if len(scaled) == 0:  # no product: nothing to take
            return pd.array([None] * len(lines), dtype="Int64")
        picked = scaled.take(source, mode="clip")  # usage lines' values are masked
        if picked.dtype != object:
            return pd.arrays.IntegerArray(picked.astype(np.int64, copy=False), ~recurring)
        return np.where(recurring, picked, None)
    if getattr(products, f"given_{name}") is not None:
        return values.take(lines, f"given_{name}", kinds=(RECURRING,))
    out = np.full(len(lines), None, dtype=object)
    rows = np.flatnonzero(recurring)
    out[rows] = scaled_columns_to_decimals([scaled[source[rows]]], QUANTITY_PLACES)[0]
    return out


def _site_subtotal_frame(
    grouping: _Invoices, line_frame: pd.DataFrame, totals: _Totals, minor_units: bool
) -> pd.DataFrame:
    """One subtotal per (invoice, site); lines with no site form their own group."""
    starts = totals.site_starts
    return pd.DataFrame(
        {
            "invoice_key": grouping.keys_of(grouping.of_line[starts], minor_units),
            "site_id": line_frame["site_id"].array[starts],
            "subtotal": totals.site_subtotal,
        },
        columns=list(SITE_SUBTOTAL_COLUMNS),
        copy=False,
    )


def _ledger_frame(
    grouping: _Invoices, lines: LineBlock, line_frame: pd.DataFrame, period: date, minor_units: bool
) -> pd.DataFrame:
    """The (product, service month) pairs billed now, held invoices included (rule 5), and
    the pairs repaired: what each line of theirs bills, to be read back by rule 6.
    `line_frame`'s columns are named in the result's form already."""
    every = not (lines.kind == USAGE).any()
    rows = np.arange(len(lines)) if every else np.flatnonzero(lines.kind != USAGE)
    kind_of_line = _LEDGER_KINDS[lines.kind if every else lines.kind[rows]]
    columns = result_columns(LEDGER_TERMS, minor_units)
    terms = {
        name: line_frame[name].array if every else line_frame[name].array[rows]
        for name in columns[1:]
    }
    return pd.DataFrame(
        {
            "product_id": line_frame["product_id"].to_numpy()[rows],
            "service_month": line_frame["service_month"].array[rows],
            "period": _repeat(period, len(rows)),
            "invoice_key": grouping.keys_of(grouping.of_line[rows], minor_units),
            "kind": kind_of_line,
            **terms,
        },
        columns=result_columns(LEDGER_COLUMNS, minor_units),
        copy=False,
    )


def _line_order(lines: LineBlock, customers: Customers) -> np.ndarray:
    """Invoice order (customer name case-folded, customer id, contract id, no-contract
    last), then site (id ascending, no site last), kind (recurring, usage, repairs),
    product id / usage rank, month, and a repair's credit before its re-bill."""
    no_contract = lines.agreement_kind == agreements.NO_CONTRACT
    return _sort_order(
        [
            customers.rank[lines.customer],
            np.where(no_contract, _after(lines.agreement_contract), lines.agreement_contract),
            np.where(lines.has_site, lines.site_id, _after(lines.site_id[lines.has_site])),
            np.minimum(lines.kind, CREDIT),
            lines.order,
            # Usage lines (month -1) are told apart by kind: any month keeps the key short.
            np.where(lines.month < 0, _after(lines.month), lines.month),
            lines.kind == REBILL,
        ]
    )


def _after(values: np.ndarray) -> int:
    """A key value that sorts after every one of `values`."""
    return int(values.max()) + 1 if len(values) else 0


def _sort_order(keys: list[np.ndarray]) -> np.ndarray:
    """The order of rows by integer `keys`, most significant first, which together tell
    every row apart (so any sort gives the same order). Keys are packed into as few int64
    keys as fit: one sort of one key is several times faster than a lexsort of six."""
    if len(keys[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    packed: list[np.ndarray] = []  # least significant first, as np.lexsort wants them
    current, width = None, 1
    for key in reversed(keys):
        low = int(key.min())
        span = int(key.max()) - low + 1
        if span == 1:
            continue  # the same for every row
        digits = key.astype(np.int64) - low
        if current is not None and width * span < 2**63:
            digits *= width
            current += digits
            width *= span
        else:
            if current is not None:
                packed.append(current)
            current, width = digits, span
    if current is None:
        return np.arange(len(keys[0]))
    packed.append(current)
    if len(packed) == 1:
        # Stable (timsort) rather than quicksort: lines arrive in runs already in order
        # (a customer's products, a product's months), which timsort merges instead of
        # re-sorting — about half the time at a million lines.
        return np.argsort(packed[0], kind="stable")
    return np.lexsort(packed)


def _segments(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by `keys`: the segment number of each row and each segment's start."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for key in keys:
        new[1:] |= key[1:] != key[:-1]
    return np.cumsum(new) - 1, np.flatnonzero(new)


def _export_contracts(
    kinds: np.ndarray, customer_ids: np.ndarray, contract_ids: np.ndarray, contracts: Contracts
) -> pd.arrays.IntegerArray:
    """The HaloPSA contract each invoice is exported against (NA: the client alone)."""
    lowest, has_lowest = contracts.export_contracts(customer_ids)
    is_default, is_contract = kinds == agreements.DEFAULT, kinds == agreements.CONTRACT
    contract = np.where(is_contract, contract_ids, np.where(is_default, lowest, 0))
    present = is_contract | (is_default & has_lowest)
    return pd.arrays.IntegerArray(contract.astype(np.int64), ~present)


@contextmanager
def _garbage_collection_paused() -> Iterator[None]:
    """Creating many containers that all survive (a list per invoice) triggers repeated full
    garbage collections, which cost more than the allocations and find nothing to free."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _repeat(value: object, n: int) -> np.ndarray:
    return np.full(n, value, dtype=object)


def _objects(values: Iterable) -> np.ndarray:
    """An object array of the values (never a 2-d array of lists)."""
    return np.fromiter(values, dtype=object)
