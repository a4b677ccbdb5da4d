"""The billing engine: one portal's data for one billing period in, invoices out.

`bill_period` is a pure function in the spirit of Kill Bill's invoice generator: what should
have been billed up to the target month T, minus what the ledger says was billed, gives
the new lines. Re-running a period recomputes its drafts from scratch (the ledger rows of
the period being billed are ignored), so re-runs are safe.

Everything is computed on whole columns with integers in minor units (see money.py); the
only per-row Python work is at the edges (distinct values of a column, rejects, holds,
one key per invoice). tests/billing/oracle.py is the row-by-row Decimal reference the
engine is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd

from datagate_pipelines.billing import agreements
from datagate_pipelines.billing.errors import BillingInputError
from datagate_pipelines.billing.inputs import (
    TAX_RATE_COLUMNS,
    Contracts,
    Customers,
    Sites,
    table,
)
from datagate_pipelines.billing.lines import KIND_NAMES, RECURRING, LineBlock
from datagate_pipelines.billing.periods import (
    check_period,
    due_date,
    invoice_date,
    month_dates,
    period_label,
)
from datagate_pipelines.billing.recurring import recurring_lines
from datagate_pipelines.billing.settings import BillingSettings
from datagate_pipelines.billing.tax import NONTAXABLE, RateTable, build_rate_table
from datagate_pipelines.billing.usage import usage_lines
from datagate_pipelines.money import (
    as_int64_if_fits,
    mul_div_round_half_away,
    scaled_to_decimals,
    sum_segments,
    to_minor_units,
)

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
)
SITE_SUBTOTAL_COLUMNS = ("invoice_key", "site_id", "subtotal")
_ZERO_RATE = Decimal(0)
LEDGER_COLUMNS = ("product_id", "service_month", "period", "invoice_key")
REJECT_COLUMNS = ("entity", "record_id", "field", "reason")


@dataclass(frozen=True)
class BillingResult:
    """What `bill_period` returns; every money value is a `Decimal` with 2 places.

    - invoices: one row per agreement with lines, in numbering order (customer name
      case-folded, customer id, agreement); status "draft", or "held" with hold_reasons.
    - invoice_lines: line_no from 1 per invoice, ordered by site (site id ascending, the
      lines with no site last), then kind (recurring before usage), then product id and
      service month (usage: usage date, usage id).
    - site_subtotals: one row per (invoice, site group), in line order.
    - ledger: the (product, service month) pairs billed by this period — held invoices
      included (rule 5) — with the invoice that bills each.
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
) -> BillingResult:
    """Bill one portal's billing period P (the first day of the month).

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

    context = {
        "period": period,
        "settings": settings,
        "customers": customer_table,
        "sites": site_table,
        "contracts": contract_table,
    }
    recurring, product_rejects = recurring_lines(products, ledger, **context)
    charged, usage_rejects = usage_lines(usage, **context)
    lines = LineBlock.concat([recurring, charged])
    lines = lines.take(_line_order(lines, customer_table))

    invoice_of, invoice_starts = _segments(
        lines.customer, lines.agreement_kind, lines.agreement_contract
    )
    taxes = _tax(lines, customer_table, site_table, rates)

    label = period_label(period)
    first_lines = lines.take(invoice_starts)
    customer_ids = customer_table.ids[first_lines.customer]
    keys = [
        agreements.format_agreement_key(int(kind), int(customer), int(contract))
        for kind, customer, contract in zip(
            first_lines.agreement_kind,
            customer_ids,
            first_lines.agreement_contract,
            strict=True,
        )
    ]
    invoice_keys = np.array([f"{label}:{key}" for key in keys], dtype=object)
    line_keys = invoice_keys[invoice_of]

    reasons: list[list[str]] = [[] for _ in invoice_keys]
    for row in np.flatnonzero(taxes.problem):
        bucket = reasons[invoice_of[row]]
        for reason in taxes.reasons(row):
            if reason not in bucket:
                bucket.append(reason)

    subtotal = sum_segments(lines.amount, invoice_starts)
    tax = sum_segments(taxes.tax, invoice_starts)
    invoices = pd.DataFrame(
        {
            "invoice_key": invoice_keys,
            "period": _repeat(period, len(keys)),
            "customer_id": customer_ids.astype(np.int64),
            "customer_name": customer_table.names[first_lines.customer],
            "agreement_key": np.array(keys, dtype=object),
            "halo_contract_id": _export_contracts(first_lines, customer_ids, contract_table),
            "invoice_date": _repeat(invoice_date(period), len(keys)),
            "due_date": _repeat(due_date(period, settings.payment_terms_days), len(keys)),
            "subtotal": scaled_to_decimals(subtotal),
            "tax": scaled_to_decimals(tax),
            "total": scaled_to_decimals(subtotal + tax),
            "status": np.array(["held" if r else "draft" for r in reasons], dtype=object),
            "hold_reasons": _objects(reasons),
        },
        columns=list(INVOICE_COLUMNS),
        copy=False,
    )

    is_recurring = lines.kind == RECURRING
    none = np.full(len(lines), None, dtype=object)
    service_month = none.copy()
    service_month[is_recurring] = month_dates(lines.month[is_recurring])
    site_ids = pd.array(np.where(lines.has_site, lines.site_id, 0), dtype="Int64")
    site_ids[~lines.has_site] = pd.NA
    invoice_lines = pd.DataFrame(
        {
            "invoice_key": line_keys,
            "line_no": np.arange(len(lines), dtype=np.int64) - invoice_starts[invoice_of] + 1,
            "kind": KIND_NAMES[lines.kind],
            "product_id": np.where(is_recurring, lines.record_id, none),
            "usage_id": np.where(is_recurring, none, lines.record_id),
            "description": lines.description,
            "service_month": service_month,
            "site_id": site_ids,
            "qty": lines.qty,
            "unit_price": lines.unit_price,
            "amount": scaled_to_decimals(lines.amount),
            "tax_code": lines.tax_code,
            "tax_zip": taxes.zip,
            "tax_rate": taxes.rate,
            "tax": scaled_to_decimals(taxes.tax),
        },
        columns=list(LINE_COLUMNS),
        copy=False,
    )

    _, site_starts = _segments(invoice_of, lines.has_site, lines.site_id)
    site_subtotals = pd.DataFrame(
        {
            "invoice_key": line_keys[site_starts],
            "site_id": site_ids[site_starts],
            "subtotal": scaled_to_decimals(sum_segments(lines.amount, site_starts)),
        },
        columns=list(SITE_SUBTOTAL_COLUMNS),
        copy=False,
    )

    ledger_rows = np.flatnonzero(is_recurring)
    new_ledger = pd.DataFrame(
        {
            "product_id": lines.record_id[ledger_rows],
            "service_month": service_month[ledger_rows],
            "period": _repeat(period, len(ledger_rows)),
            "invoice_key": line_keys[ledger_rows],
        },
        columns=list(LEDGER_COLUMNS),
        copy=False,
    )

    rejects = pd.DataFrame(
        product_rejects + usage_rejects + rates.rejects, columns=list(REJECT_COLUMNS)
    ).astype(object)
    return BillingResult(invoices, invoice_lines, site_subtotals, new_ledger, rejects)


def _line_order(lines: LineBlock, customers: Customers) -> np.ndarray:
    """Invoice order (customer name case-folded, customer id, contract id, no-contract
    last), then site (id ascending, no site last), kind, product id / usage rank, month."""
    return np.lexsort(
        (
            lines.month,
            lines.order,
            lines.kind,
            np.where(lines.has_site, lines.site_id, 0),
            ~lines.has_site,
            lines.agreement_contract,
            lines.agreement_kind == agreements.NO_CONTRACT,
            customers.rank[lines.customer],
        )
    )


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
    first_lines: LineBlock, customer_ids: np.ndarray, contracts: Contracts
) -> pd.arrays.IntegerArray:
    """The HaloPSA contract each invoice is exported against (NA: the client alone)."""
    values = []
    for kind, customer, contract in zip(
        first_lines.agreement_kind, customer_ids, first_lines.agreement_contract, strict=True
    ):
        if kind == agreements.DEFAULT:
            values.append(contracts.lowest.get(int(customer)))
        elif kind == agreements.CONTRACT:
            values.append(int(contract))
        else:
            values.append(None)
    return pd.array(values, dtype="Int64")


@dataclass
class _LineTaxes:
    """Tax per line: zip used, rate, tax in cents, and which data is missing."""

    zip: np.ndarray
    rate: np.ndarray
    tax: np.ndarray
    problem: np.ndarray
    no_code: np.ndarray
    no_zip: np.ndarray
    no_rate: np.ndarray
    bad_rate: np.ndarray
    lines: LineBlock
    customers: Customers

    def reasons(self, row: int) -> list[str]:
        """Why line `row` holds its invoice, worded for the operator who fixes the data."""
        lines, out = self.lines, []
        what = "product" if lines.kind[row] == RECURRING else "usage"
        if self.no_code[row]:
            out.append(f"no tax code for {what} {lines.record_id[row]}")
        if self.no_zip[row]:
            position = lines.customer[row]
            out.append(
                f"no zip code for customer {self.customers.ids[position]}"
                f" ({self.customers.names[position]})"
            )
        if self.no_rate[row]:
            out.append(f"no tax rate for zip {self.zip[row]} and tax code {lines.tax_code[row]}")
        if self.bad_rate[row]:
            out.append(
                f"invalid tax rate row for zip {self.zip[row]} and tax code {lines.tax_code[row]}"
            )
        return out


def _tax(lines: LineBlock, customers: Customers, sites: Sites, rates: RateTable) -> _LineTaxes:
    """Locate, rate and tax every line (BILLING.md, Tax)."""
    n = len(lines)
    zip_codes, zip_names = pd.factorize(np.concatenate([customers.zips, sites.zips]))
    customer_zip = zip_codes[: len(customers.zips)]
    site_zip = np.append(zip_codes[len(customers.zips) :], -1)  # index -1: unknown site
    line_site_zip = site_zip[lines.site_pos]
    use_site = customers.use_site_zip[lines.customer] & (line_site_zip >= 0)
    line_zip = np.where(use_site, line_site_zip, customer_zip[lines.customer])

    code_ids, code_names = pd.factorize(lines.tax_code)
    code_list = list(code_names)
    nontaxable = code_ids == (code_list.index(NONTAXABLE) if NONTAXABLE in code_list else -2)
    no_code = code_ids < 0
    no_zip = ~nontaxable & (line_zip < 0)
    lookup = ~nontaxable & ~no_code & ~no_zip

    pair = line_zip.astype(np.int64) * max(len(code_list), 1) + code_ids
    pair_of_line, pairs = pd.factorize(pair[lookup])
    pair_rates = []
    pair_invalid = np.zeros(len(pairs), dtype=bool)
    for i, key in enumerate(pairs):
        zip_code, tax_code = zip_names[key // len(code_list)], code_list[key % len(code_list)]
        pair_invalid[i] = (zip_code, tax_code) in rates.invalid
        pair_rates.append(rates.lookup(zip_code, tax_code))
    known_pair = np.array([r is not None for r in pair_rates], dtype=bool)
    places = max([max(0, -r.as_tuple().exponent) for r in pair_rates if r is not None] or [0])
    scaled = np.array(
        [to_minor_units(r, places) if r is not None else 0 for r in pair_rates], dtype=object
    )

    rate = np.full(n, None, dtype=object)
    rate[nontaxable] = [_ZERO_RATE] * int(nontaxable.sum())
    scaled_rate = np.zeros(n, dtype=object) if scaled.size else np.zeros(n, dtype=np.int64)
    known = nontaxable.copy()
    lookup_rows = np.flatnonzero(lookup)
    if len(lookup_rows):
        rate_objects = _objects(pair_rates)
        rate[lookup_rows] = rate_objects[pair_of_line]
        scaled_rate[lookup_rows] = scaled[pair_of_line]
        known[lookup_rows] = known_pair[pair_of_line]
    no_rate = np.zeros(n, dtype=bool)
    bad_rate = np.zeros(n, dtype=bool)
    if len(lookup_rows):
        bad_rate[lookup_rows] = pair_invalid[pair_of_line]
        no_rate[lookup_rows] = ~known_pair[pair_of_line] & ~bad_rate[lookup_rows]

    scaled_rate = np.where(known, scaled_rate, 0)
    scaled_rate = as_int64_if_fits(scaled_rate)
    tax = (
        mul_div_round_half_away([lines.amount, scaled_rate], 10**places)
        if n
        else np.zeros(0, np.int64)
    )
    zip_out = np.append(np.asarray(zip_names, dtype=object), None)[line_zip]
    return _LineTaxes(
        zip=zip_out,
        rate=rate,
        tax=tax,
        problem=no_code | no_zip | no_rate | bad_rate,
        no_code=no_code,
        no_zip=no_zip,
        no_rate=no_rate,
        bad_rate=bad_rate,
        lines=lines,
        customers=customers,
    )


def _repeat(value: object, n: int) -> np.ndarray:
    return np.full(n, value, dtype=object)


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
