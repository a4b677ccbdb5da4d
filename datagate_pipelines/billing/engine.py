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
from datagate_pipelines.billing.tax import LineTaxes, build_rate_table, tax_lines
from datagate_pipelines.billing.usage import usage_lines
from datagate_pipelines.money import (
    scaled_to_decimals,
    sum_segments,
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

    Inputs (pandas DataFrames; money and quantities as Decimal, dates as datetime.date,
    ids as ints or nullable Int64; extra columns are ignored):
    - products: product_id, customer_id, site_id, contract_id, description, qty,
      unit_price, tax_code, start_date, end_date, billing_cycle;
    - customers (the billed ones): customer_id, name, zip, use_site_zip_tax;
    - sites: site_id, customer_id, zip; contracts: contract_id, customer_id;
    - ledger: product_id, service_month, period [, final] — the pairs already billed.
      Rows of P are ignored (P's drafts are recomputed) unless `final` is true for them;
    - usage: usage_id, customer_id, site_id, [contract_id,] description, amount, tax_code,
      usage_date. Re-running P while some of its invoices are final: leave out the usage
      rows already on those invoices, and keep the final invoices (same invoice_key) as
      they are — the engine recomputes every agreement of P;
    - tax_rates: zip, tax_code, [jurisdiction,] rate.
    None (or a column-less empty frame) is an empty table.

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

    taxes = tax_lines(lines, customer_table, site_table, rates)
    grouping = _Invoices.of(lines, customer_table, period)
    line_frame = _line_frame(lines, taxes, grouping)
    rejects = pd.DataFrame(
        product_rejects + usage_rejects + rates.rejects, columns=list(REJECT_COLUMNS)
    ).astype(object)
    return BillingResult(
        invoices=_invoice_frame(
            grouping, lines, taxes, period, settings, customer_table, contract_table
        ),
        invoice_lines=line_frame,
        site_subtotals=_site_subtotal_frame(grouping, lines, line_frame),
        ledger=_ledger_frame(grouping, lines, line_frame, period),
        rejects=rejects,
    )


@dataclass
class _Invoices:
    """How the sorted lines split into invoices: each line's invoice, each invoice's first
    line, and the invoice keys."""

    of_line: np.ndarray
    starts: np.ndarray
    agreement_keys: np.ndarray
    keys: np.ndarray
    customer_ids: np.ndarray

    @classmethod
    def of(cls, lines: LineBlock, customers: Customers, period: date) -> _Invoices:
        of_line, starts = _segments(lines.customer, lines.agreement_kind, lines.agreement_contract)
        customer_ids = customers.ids[lines.customer[starts]].astype(np.int64)
        agreement_keys = _objects(
            [
                agreements.format_agreement_key(kind, customer, contract)
                for kind, customer, contract in zip(
                    lines.agreement_kind[starts].tolist(),
                    customer_ids.tolist(),
                    lines.agreement_contract[starts].tolist(),
                    strict=True,
                )
            ]
        )
        label = period_label(period)
        keys = _objects([f"{label}:{key}" for key in agreement_keys])
        return cls(of_line, starts, agreement_keys, keys, customer_ids)


def _invoice_frame(
    grouping: _Invoices,
    lines: LineBlock,
    taxes: LineTaxes,
    period: date,
    settings: BillingSettings,
    customers: Customers,
    contracts: Contracts,
) -> pd.DataFrame:
    reasons: list[list[str]] = [[] for _ in grouping.keys]
    for row in np.flatnonzero(taxes.problem):
        bucket = reasons[grouping.of_line[row]]
        for reason in taxes.reasons(row):
            if reason not in bucket:
                bucket.append(reason)
    subtotal = sum_segments(lines.amount, grouping.starts)
    tax = sum_segments(taxes.tax, grouping.starts)
    n = len(grouping.keys)
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
            "subtotal": scaled_to_decimals(subtotal),
            "tax": scaled_to_decimals(tax),
            "total": scaled_to_decimals(subtotal + tax),
            "status": _objects(["held" if r else "draft" for r in reasons]),
            "hold_reasons": _objects(reasons),
        },
        columns=list(INVOICE_COLUMNS),
        copy=False,  # no consolidation copy of the object columns
    )


def _line_frame(lines: LineBlock, taxes: LineTaxes, grouping: _Invoices) -> pd.DataFrame:
    is_recurring = lines.kind == RECURRING
    none = np.full(len(lines), None, dtype=object)
    service_month = none.copy()
    service_month[is_recurring] = month_dates(lines.month[is_recurring])
    site_ids = pd.array(np.where(lines.has_site, lines.site_id, 0), dtype="Int64")
    site_ids[~lines.has_site] = pd.NA
    return pd.DataFrame(
        {
            "invoice_key": grouping.keys[grouping.of_line],
            "line_no": np.arange(len(lines), dtype=np.int64)
            - grouping.starts[grouping.of_line]
            + 1,
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


def _site_subtotal_frame(
    grouping: _Invoices, lines: LineBlock, line_frame: pd.DataFrame
) -> pd.DataFrame:
    """One subtotal per (invoice, site); lines with no site form their own group."""
    _, starts = _segments(grouping.of_line, lines.has_site, lines.site_id)
    return pd.DataFrame(
        {
            "invoice_key": grouping.keys[grouping.of_line[starts]],
            "site_id": line_frame["site_id"].array[starts],
            "subtotal": scaled_to_decimals(sum_segments(lines.amount, starts)),
        },
        columns=list(SITE_SUBTOTAL_COLUMNS),
        copy=False,
    )


def _ledger_frame(
    grouping: _Invoices, lines: LineBlock, line_frame: pd.DataFrame, period: date
) -> pd.DataFrame:
    """The (product, service month) pairs billed now, held invoices included (rule 5)."""
    rows = np.flatnonzero(lines.kind == RECURRING)
    return pd.DataFrame(
        {
            "product_id": lines.record_id[rows],
            "service_month": line_frame["service_month"].to_numpy()[rows],
            "period": _repeat(period, len(rows)),
            "invoice_key": grouping.keys[grouping.of_line[rows]],
        },
        columns=list(LEDGER_COLUMNS),
        copy=False,
    )


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
    kinds: np.ndarray, customer_ids: np.ndarray, contract_ids: np.ndarray, contracts: Contracts
) -> pd.arrays.IntegerArray:
    """The HaloPSA contract each invoice is exported against (NA: the client alone)."""
    values = []
    for kind, customer, contract in zip(
        kinds.tolist(), customer_ids.tolist(), contract_ids.tolist(), strict=True
    ):
        if kind == agreements.DEFAULT:
            values.append(contracts.lowest.get(customer))
        elif kind == agreements.CONTRACT:
            values.append(contract)
        else:
            values.append(None)
    return pd.array(values, dtype="Int64")


def _repeat(value: object, n: int) -> np.ndarray:
    return np.full(n, value, dtype=object)


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
