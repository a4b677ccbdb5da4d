"""Recurring lines: products → the (product, service month) pairs billed in a period, with
their amounts (docs/billing.md, "What an invoice for P bills" and "Amount of one line").

Amount of (product, M), with D = days in M and A = days of M on which the product is
active (start ≤ day ≤ end, an open end counting as active):
  pro rata:     qty × unit_price × A / D
  no pro rata:  qty × unit_price (A > 0 holds for every billable month)
rounded once to cents, half away from zero. With qty and unit_price scaled by 10**4 to
integers Q and U, the amount in cents is Q·U·A / (10**6·D): one exact integer division.

Where docs/billing.md is silent (choices made here):
- A quantity of 0 "bills nothing": its month still gets a line of 0.00 and a ledger pair,
  so a later change of quantity applies from the next unbilled month (rule 6) instead of
  catching up the zero months at the new quantity.
- Negative quantities are billed like negative prices (a credit line).
- A product is rejected (with every reason that applies) when: its id is missing or
  repeated; its customer is not billed; its site belongs to another customer; agreements
  are per contract and its contract is not one of the customer's imported contracts; its
  cycle is not monthly; its qty or unit price is not a Decimal with ≤ 4 decimals (in the
  integer form: is missing); its start date is missing or not a date; its end date is not
  a date; its start is after its end.
  A site id that is not in the site table is kept: the line has no site zip.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from datagate_pipelines.billing import agreements
from datagate_pipelines.billing.checks import check_ids, check_owners
from datagate_pipelines.billing.codes import normalize_column
from datagate_pipelines.billing.context import BillingRun
from datagate_pipelines.billing.errors import BillingInputError
from datagate_pipelines.billing.ids import find_ids, find_keys
from datagate_pipelines.billing.inputs import (
    EXACT_ALTERNATIVES,
    LEDGER_ALTERNATIVES,
    LEDGER_COLUMNS,
    LEDGER_RANGE_COLUMNS,
    PRODUCT_COLUMNS,
    RANGE_COLUMN,
    ExactColumn,
    exact_column,
    final_flags,
    nullable_ints,
    strings,
    table,
    texts,
)
from datagate_pipelines.billing.ledger import expand_ranges, unbilled_months
from datagate_pipelines.billing.lines import RECURRING, LineBlock, Rejects, SourceTable
from datagate_pipelines.billing.money import mul_div_round_half_away
from datagate_pipelines.billing.month_columns import DateColumn, days_in_month_array, parse_dates
from datagate_pipelines.billing.periods import first_service_month, month_index, target_month

QUANTITY_PLACES = 4  # quantities and unit prices carry up to 4 decimals (docs/billing.md)
MONTHLY = "monthly"


def _is_monthly(cycle: object) -> bool:
    return isinstance(cycle, str) and cycle.strip().lower() == MONTHLY


class Terms(NamedTuple):
    """What each product bills: quantity and unit price (scaled by 10**4), start and end
    dates."""

    qty: ExactColumn
    price: ExactColumn
    start: DateColumn
    end: DateColumn


def recurring_lines(
    products: pd.DataFrame | None,
    ledger: pd.DataFrame | None,
    run: BillingRun,
) -> tuple[LineBlock, SourceTable, list[dict[str, str]]]:
    """The recurring lines of period P, what they copy from the products, and the rejected
    products."""
    period, settings, tax_codes = run.period, run.settings, run.tax_codes
    customers, sites, contracts = run.customers, run.sites, run.contracts
    frame = table(products, "products", PRODUCT_COLUMNS, EXACT_ALTERNATIVES)
    product_ids = strings(frame["product_id"])
    rejects = Rejects("product", product_ids)
    id_order = check_ids(rejects, product_ids, "product")
    owners = check_owners(rejects, frame, settings, customers, sites, contracts)
    terms = _check_terms(rejects, frame)
    valid = np.flatnonzero(~rejects.rejected)

    # Billable months of each valid product: [lo, hi] (docs/billing.md rule 1), minus the ledger.
    first_month = month_index(
        first_service_month(settings.billing_start, settings.in_advance_months)
    )
    last_month = month_index(target_month(period, settings.in_advance_months))
    start_month, start_day = terms.start.month[valid], terms.start.day[valid]
    end_month, end_day = terms.end.month[valid], terms.end.day[valid]
    has_end = ~terms.end.missing[valid]
    lo = np.maximum(start_month, first_month)
    hi = np.where(has_end, np.minimum(end_month, last_month), last_month)
    owner, billed_month = _ledger_pairs(
        ledger,
        product_ids,
        _product_keys(frame, valid),
        valid,
        id_order.ascending,
        month_index(period),
    )
    slot, month = unbilled_months(lo, hi, owner, billed_month)
    rows = valid[slot]
    # What is no longer needed goes before the lines are built: at a million products the
    # peak of memory is fresh pages to fault in, which costs as much CPU as the work.
    del owner, billed_month, lo, hi, valid

    # Amount of each (product, month): A active days of D, rounded once.
    days = days_in_month_array(month)
    first_day = np.where(month == start_month[slot], start_day[slot], 1)
    last_day = np.where(has_end[slot] & (month == end_month[slot]), end_day[slot], days)
    del start_month, start_day, end_month, end_day, has_end, slot
    active = last_day - first_day + 1
    del first_day, last_day
    qty, price = terms.qty.scaled[rows], terms.price.scaled[rows]
    if settings.allow_pro_rata:
        amount = mul_div_round_half_away([qty, price, active], 10**6 * days)
    else:
        amount = mul_div_round_half_away([qty, price], 10**6)

    kind, contract = agreements.assign_agreements(
        owners.contract_ids[rows], owners.has_contract[rows], settings.use_default_agreement
    )
    block = LineBlock(
        kind=np.full(len(rows), RECURRING, dtype=np.int8),
        customer=owners.customer[rows],
        site_id=owners.site_ids[rows],
        has_site=owners.has_site[rows],
        site_pos=owners.site_pos[rows],
        agreement_kind=kind,
        agreement_contract=contract,
        month=month,
        order=id_order.rank[rows],
        amount=amount,
        tax_code=tax_codes.encode(frame["tax_code"].to_numpy(dtype=object))[rows],
        source=rows,
    )
    sources = SourceTable(
        record_id=product_ids,
        description=texts(frame["description"].to_numpy(dtype=object)),
        qty=terms.qty.scaled,
        unit_price=terms.price.scaled,
        given_qty=terms.qty.given,
        given_unit_price=terms.price.given,
    )
    return block, sources, rejects.rows()


def _monthly(cycles: np.ndarray) -> np.ndarray:
    """Which cycles are monthly; the exact value "monthly" is recognised without normalising."""
    try:
        monthly = np.asarray(cycles == MONTHLY, dtype=bool)
    except TypeError:  # pd.NA cannot be compared: normalise every value
        monthly = np.zeros(len(cycles), dtype=bool)
    others = np.flatnonzero(~monthly)
    if len(others):
        monthly[others] = normalize_column(cycles[others], _is_monthly).astype(bool)
    return monthly


def _check_terms(rejects: Rejects, frame: pd.DataFrame) -> Terms:
    """Reject products whose cycle, quantity, price or dates cannot be billed."""
    cycles = frame["billing_cycle"].to_numpy(dtype=object)
    rejects.add(
        ~_monthly(cycles), "billing_cycle", lambda i: f"unsupported billing cycle {cycles[i]!r}"
    )

    qty = exact_column(frame, "qty", QUANTITY_PLACES)
    rejects.add(
        qty.invalid,
        "qty",
        lambda i: qty.reason(
            i, "quantity", f"a Decimal with at most {QUANTITY_PLACES} decimal places"
        ),
    )
    price = exact_column(frame, "unit_price", QUANTITY_PLACES)
    rejects.add(
        price.invalid,
        "unit_price",
        lambda i: price.reason(
            i, "unit price", f"a Decimal with at most {QUANTITY_PLACES} decimal places"
        ),
    )

    start = parse_dates(frame["start_date"])
    rejects.add(start.missing, "start_date", lambda i: "missing start date")
    rejects.add(
        start.invalid,
        "start_date",
        lambda i: f"start date {frame['start_date'].iat[i]!r} is not a date",
    )
    end = parse_dates(frame["end_date"])
    rejects.add(
        end.invalid, "end_date", lambda i: f"end date {frame['end_date'].iat[i]!r} is not a date"
    )
    dated = ~(start.missing | start.invalid | end.missing | end.invalid)
    rejects.add(
        dated & (start.day_key > end.day_key),
        "start_date",
        lambda i: f"start date {start.date(i)} is after end date {end.date(i)}",
    )
    return Terms(qty, price, start, end)


def _product_keys(frame: pd.DataFrame, valid: np.ndarray) -> np.ndarray | None:
    """The valid products' integer keys (the optional `product_key` column; None without
    it). A valid product without a key, or two with one key, is an input error."""
    if "product_key" not in frame.columns:
        return None
    keys, present = nullable_ints(frame["product_key"], "products.product_key")
    if not present[valid].all():
        row = valid[np.flatnonzero(~present[valid])[0]]
        raise BillingInputError(
            f"products: a product has no product_key (product {frame['product_id'].iat[row]!r})"
        )
    keys = keys[valid]
    if not (keys[1:] > keys[:-1]).all() and not pd.Index(keys).is_unique:
        twice = pd.Index(keys).duplicated(keep=False)
        ids = frame["product_id"].to_numpy(dtype=object)[valid[twice]][:2].tolist()
        raise BillingInputError(
            f"products: two products share a product_key ({keys[twice][0]}: products {ids})"
        )
    return keys


def _ledger_pairs(
    ledger: pd.DataFrame | None,
    product_ids: np.ndarray,
    product_keys: np.ndarray | None,
    valid: np.ndarray,
    ids_ascending: bool,
    period_month: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Billed pairs as (position in `valid`, month index); pairs of other products are
    dropped. `ids_ascending`: the product ids are distinct and in ascending order.

    A ledger may name its products by `product_key` instead of `product_id` (an integer
    the caller gives every product, such as the warehouse's line id): joining integers
    costs a fraction of joining text. The products must then carry the same keys.

    Rows of the period being billed are ignored — its drafts are recomputed from scratch
    (docs/billing.md rule 3) — unless the optional `final` column is true for them: pairs on
    invoices of P that are already final stay billed, so re-running P for its held
    invoices cannot bill them again even if a product moved to another agreement.
    """
    ranges = ledger is not None and RANGE_COLUMN in ledger.columns
    required = LEDGER_RANGE_COLUMNS if ranges else LEDGER_COLUMNS
    frame = table(ledger, "ledger", required, LEDGER_ALTERNATIVES)
    if len(frame) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if ranges:
        return _ledger_ranges(frame, product_ids, product_keys, valid, ids_ascending, period_month)
    service = parse_dates(frame["service_month"])
    if not service.complete():
        raise BillingInputError("ledger: every row needs a service_month and a period (dates)")
    counted = _billing_rows(frame, period_month)
    months = service.month if counted is None else service.month[counted]
    owner = _ledger_owners(frame, counted, product_ids, product_keys, valid, ids_ascending)
    return _known(owner, months)


def _billing_rows(frame: pd.DataFrame, period_month: int) -> np.ndarray | None:
    """Which ledger rows bill their pair (None: every row, the usual ledger of earlier
    periods' bills): a pair's repairs (rule 6, `kind`) do not bill it again, and rows of the
    period being billed count only when `final`."""
    billed_in = parse_dates(frame["period"])
    if not billed_in.complete():
        raise BillingInputError("ledger: every row needs a service_month and a period (dates)")
    counted = np.ones(len(frame), dtype=bool)
    first, last = billed_in.month_range()
    if first <= period_month <= last:  # some rows may be P's own: drop those not final
        counted = ~billed_in.in_month(period_month)
        if "final" in frame.columns:
            counted |= final_flags(frame["final"])
    if "kind" in frame.columns:
        counted &= (frame["kind"] == "bill").to_numpy(dtype=bool)
    return None if counted.all() else counted


def _ledger_ranges(
    frame: pd.DataFrame,
    product_ids: np.ndarray,
    product_keys: np.ndarray | None,
    valid: np.ndarray,
    ids_ascending: bool,
    period_month: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The ledger as runs of months (`through_month`): each row stands for every month
    from its service_month through its through_month, and every such pair counts — the
    caller has left out the billed period's own pairs that are not on final invoices.
    A warehouse read this way carries one row per product and run instead of one per
    product and month (two years of history: ~24× fewer rows).

    Rows without a through_month are pairs given row by row with what they billed (a mixed
    ledger, for rule 6's repairs): each bills its own month when `_billing_rows` says so.
    The caller gives each pair one way or the other, never both."""
    service, through = parse_dates(frame["service_month"]), parse_dates(frame[RANGE_COLUMN])
    if not service.complete() or through.invalid.any():
        raise BillingInputError(
            f"ledger: every row needs a service_month and a {RANGE_COLUMN} (dates)"
        )
    last = through.month
    by_row = np.flatnonzero(through.missing)
    if len(by_row):
        if "period" not in frame.columns:
            raise BillingInputError(
                f"ledger: every row needs a service_month and a {RANGE_COLUMN} (dates)"
            )
        counted = _billing_rows(frame.iloc[by_row], period_month)
        last = last.copy()
        # A row that does not bill its pair is an empty run.
        last[by_row] = service.month[by_row] - (0 if counted is None else ~counted)
    elif (last < service.month).any():
        row = int(np.flatnonzero(last < service.month)[0]) + 1
        raise BillingInputError(f"ledger: {RANGE_COLUMN} before service_month (row {row})")
    owner = _ledger_owners(frame, None, product_ids, product_keys, valid, ids_ascending)
    # Rows in (product, month) order expand to pairs in that order: the runs' fast path.
    row, months = expand_ranges(np.arange(len(owner), dtype=np.int64), service.month, last)
    return _known(owner[row], months)


def _ledger_owners(
    frame: pd.DataFrame,
    counted: np.ndarray | None,
    product_ids: np.ndarray,
    product_keys: np.ndarray | None,
    valid: np.ndarray,
    ids_ascending: bool,
) -> np.ndarray:
    """Each counted ledger row's product as a position in `valid` (-1: not a valid product)."""
    if "product_key" in frame.columns:
        if product_keys is None:
            raise BillingInputError("ledger: rows name products by product_key; products have none")
        keys, has_key = nullable_ints(frame["product_key"], "ledger.product_key")
        if not has_key.all():
            row = int(np.flatnonzero(~has_key)[0]) + 1
            raise BillingInputError(f"ledger: a row has no product_key (row {row})")
        return find_keys(keys if counted is None else keys[counted], product_keys)
    ids = frame["product_id"].to_numpy(dtype=object)
    if counted is not None:
        ids = ids[counted]
    if ids_ascending:  # join on every product id (sorted, so by merging), then keep valid
        position_in_valid = np.full(len(product_ids) + 1, -1, dtype=np.int64)
        position_in_valid[valid] = np.arange(len(valid))
        return position_in_valid[find_ids(ids, product_ids, known_ascending=True)]
    return find_ids(ids, product_ids[valid], known_ascending=False)  # valid ids are distinct


def _known(owner: np.ndarray, months: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose product was found (owner ≥ 0); no copy when all were, as usual."""
    known = owner >= 0
    if known.all():
        return owner, months
    return owner[known], months[known]
