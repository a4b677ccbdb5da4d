"""Repair lines: money already billed on final invoices, corrected when a product's dates
change (docs/billing.md rule 6, after Kill Bill's invoice repair).

A final invoice never changes. The ledger keeps, per billed (product, service month), every
row that billed it: the first bill, then each later credit and re-bill, with the quantity,
unit price, amount, tax, tax code, tax zip and rate of each. The pair's *state* is its
latest row (by the period of the invoice it is on; on one invoice a credit comes before
its re-bill): a bill or re-bill means that amount is billed; a credit alone means nothing
is.

With the product's current dates, the pair's amount is recomputed from the quantity and
unit price as last billed and the portal's pro-rata rule. Where it differs from what is
billed, the agreement's next invoice carries

- a credit of what is billed (amount and tax negated exactly; none when that is 0.00), and
- when the month still has active days, a re-bill: the quantity, unit price, tax code, zip
  and rate as billed, the days as they are now; its tax is amount × rate as billed.

Both lines name the invoice they correct (the one the pair's state is on). A re-bill is
the pair's new state, so the next period finds nothing to repair; a change undone differs
again and is repaired back.

Where docs/billing.md is silent (choices made here):
- Only pairs whose state row is on a final invoice are repaired (a held invoice of an
  earlier period is not final yet: its pairs wait). Rows of the period being billed that
  are not final are its own drafts, recomputed: they are ignored, as by rule 2.
- A line removed from HaloPSA is ended by the sync (maybe before its start date: no active
  day at all); a row whose start date is missing or a date invalid has no active day
  either. A row with no customer cannot be invoiced and is not repaired.
- A re-bill whose rate as billed is unknown holds its invoice (never a silent zero).
- The line's site, contract and customer are the product's current ones (the ledger
  carries them); its agreement follows the portal's agreement setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from datagate_pipelines.billing.errors import BillingInputError
from datagate_pipelines.billing.inputs import (
    EXACT_ALTERNATIVES,
    RANGE_COLUMN,
    exact_column,
    final_flags,
    nullable_ints,
    strings,
    table,
    texts,
)
from datagate_pipelines.billing.lines import SourceTable
from datagate_pipelines.billing.money import (
    as_int64_if_fits,
    mul_div_round_half_away,
    scaled_exactly,
)
from datagate_pipelines.billing.month_columns import days_in_month_array, parse_dates
from datagate_pipelines.billing.settings import BillingSettings

QUANTITY_PLACES = 4
# A ledger row's kind, in the order rows of one invoice apply.
LEDGER_KINDS = ("bill", "credit", "rebill")
BILL, CREDIT, REBILL = range(3)
# What the ledger carries for repairs, beside its pairs (billing/inputs.py LEDGER_COLUMNS).
REPAIR_COLUMNS = (
    "product_id",
    "service_month",
    "period",
    "customer_id",
    "site_id",
    "contract_id",
    "description",
    "qty",
    "unit_price",
    "amount",
    "tax",
    "tax_code",
    "tax_zip",
    "tax_rate",
    "invoice",
    "start_date",
    "end_date",
)


@dataclass
class RepairLines:
    """The repair lines of one period, one entry per line (credits, then re-bills)."""

    rebill: np.ndarray  # False: credit
    month: np.ndarray  # service month index
    customer_ids: np.ndarray
    site_ids: np.ndarray
    has_site: np.ndarray
    contract_ids: np.ndarray
    has_contract: np.ndarray
    amount: np.ndarray  # cents
    tax: np.ndarray  # cents
    tax_code: np.ndarray  # raw codes as billed
    tax_zip: np.ndarray  # zips as billed (objects, None: none)
    tax_rate: np.ndarray  # rates as billed (Decimal objects, None: unknown)
    no_rate: np.ndarray  # a re-bill whose rate as billed is unknown
    rank: np.ndarray  # order of the product ids among the repair lines
    values: SourceTable  # record_id, description, qty, unit_price, corrects, per line

    def __len__(self) -> int:
        return len(self.rebill)


def wants_repairs(ledger: pd.DataFrame | None, settings: BillingSettings) -> bool:
    """Rule 6 applies: the portal credits past changes and the ledger says what was billed."""
    return (
        settings.credit_past_changes
        and ledger is not None
        and bool({"amount", "amount_cents"} & set(ledger.columns))
    )


def repair_lines(
    ledger: pd.DataFrame | None, period_month: int, settings: BillingSettings
) -> RepairLines | None:
    """The credit and re-bill lines of the period with month index `period_month`; None
    when rule 6 does not apply (see `wants_repairs`)."""
    if not wants_repairs(ledger, settings):
        return None
    if RANGE_COLUMN in ledger.columns:  # a mixed ledger: runs say what is billed, not what
        ledger = ledger[ledger[RANGE_COLUMN].isna()]  # for: no run is repaired
    frame = table(ledger, "ledger", REPAIR_COLUMNS, EXACT_ALTERNATIVES)
    state, final, kinds = _pair_states(frame, period_month)
    qty = exact_column(frame, "qty", QUANTITY_PLACES)
    price = exact_column(frame, "unit_price", QUANTITY_PLACES)
    amount = exact_column(frame, "amount", 2)
    tax = exact_column(frame, "tax", 2)
    customer_ids, has_customer = nullable_ints(frame["customer_id"], "ledger.customer_id")
    # A pair is repaired only from a final state with its terms known.
    usable = final & has_customer & ~(qty.invalid | price.invalid | amount.invalid | tax.invalid)
    state = state[usable[state]]

    billed = kinds[state] != CREDIT
    billed_amount = np.where(billed, amount.scaled[state], 0)
    billed_tax = np.where(billed, tax.scaled[state], 0)
    month = parse_dates(frame["service_month"]).month[state]
    active, days = _active_days(frame, state, month)
    q, u = qty.scaled[state], price.scaled[state]
    if settings.allow_pro_rata:
        now = mul_div_round_half_away([q, u, active], 10**6 * days)
    else:
        now = np.where(active > 0, mul_div_round_half_away([q, u], 10**6), 0)
    changed = now != billed_amount
    credited = np.flatnonzero(changed & (billed_amount != 0))
    rebilled = np.flatnonzero(changed & (active > 0))
    pairs = np.concatenate([credited, rebilled])
    rows = state[pairs]
    rebill = np.repeat([False, True], [len(credited), len(rebilled)])

    rates = frame["tax_rate"].to_numpy(dtype=object)[rows]
    line_amount = np.concatenate([-billed_amount[credited], now[rebilled]])
    rebill_tax, no_rate = _taxes(line_amount[rebill], rates[rebill])
    line_tax = np.concatenate([-billed_tax[credited], rebill_tax]) if len(rows) else billed_tax[:0]
    site_ids, has_site = nullable_ints(frame["site_id"], "ledger.site_id")
    contract_ids, has_contract = nullable_ints(frame["contract_id"], "ledger.contract_id")
    product_ids = strings(frame["product_id"].iloc[rows])  # text for the few repaired only
    rank = np.unique(product_ids.astype(str), return_inverse=True)[1].reshape(-1)
    return RepairLines(
        rebill=rebill,
        month=month[pairs],
        customer_ids=customer_ids[rows],
        site_ids=site_ids[rows],
        has_site=has_site[rows],
        contract_ids=contract_ids[rows],
        has_contract=has_contract[rows],
        amount=line_amount,
        tax=line_tax,
        tax_code=frame["tax_code"].to_numpy(dtype=object)[rows],
        tax_zip=frame["tax_zip"].to_numpy(dtype=object)[rows],  # as billed: not normalised
        tax_rate=rates,
        no_rate=np.concatenate([np.zeros(len(credited), bool), no_rate]),
        rank=rank.astype(np.int64),
        values=SourceTable(
            record_id=product_ids,
            description=texts(frame["description"].to_numpy(dtype=object)[rows]),
            qty=qty.scaled[rows],
            unit_price=price.scaled[rows],
            given_qty=None if qty.given is None else qty.given[rows],
            given_unit_price=None if price.given is None else price.given[rows],
            corrects=frame["invoice"].to_numpy(dtype=object)[rows],
        ),
    )


def _kinds(column: pd.Series | None, n: int) -> np.ndarray:
    """Each ledger row's kind as BILL / CREDIT / REBILL (no column: every row a bill)."""
    if column is None:
        return np.zeros(n, dtype=np.int8)
    codes, uniques = pd.factorize(column)  # a Categorical column is factorized already
    unknown = [value for value in uniques.tolist() if value not in LEDGER_KINDS]
    if unknown or (codes < 0).any():
        raise BillingInputError(
            f"ledger: kind must be one of {', '.join(LEDGER_KINDS)}, got {unknown or [None]}"
        )
    return np.array([LEDGER_KINDS.index(value) for value in uniques], dtype=np.int8)[codes]


def _pair_states(
    frame: pd.DataFrame, period_month: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The latest counted row of each (product, service month) — its state —, which rows
    are on final invoices, and each row's kind. A row counts unless it is on a draft of the period being billed
    (rule 3: those are recomputed); without a `final` column, rows of earlier periods are
    taken as final."""
    service, billed_in = parse_dates(frame["service_month"]), parse_dates(frame["period"])
    if not (service.complete() and billed_in.complete()):
        raise BillingInputError("ledger: every row needs a service_month and a period (dates)")
    own = billed_in.in_month(period_month)
    final = final_flags(frame["final"]) if "final" in frame.columns else ~own
    counted = np.flatnonzero(~own | final)
    kind = _kinds(frame["kind"] if "kind" in frame.columns else None, len(frame))
    if "product_key" in frame.columns:  # the loader's integer key: no text to factorize
        product = nullable_ints(frame["product_key"], "ledger.product_key")[0][counted]
    else:
        product, _ = pd.factorize(strings(frame["product_id"])[counted])
    month = service.month[counted]
    order = np.lexsort((kind[counted], billed_in.month[counted], month, product))
    product, month = product[order], month[order]
    last = np.ones(len(order), dtype=bool)  # the last row of each pair
    last[:-1] = (product[1:] != product[:-1]) | (month[1:] != month[:-1])
    return counted[order[last]], final, kind


def _active_days(
    frame: pd.DataFrame, state: np.ndarray, month: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Days of each pair's month on which its product is active under its current dates
    (none when the start date is missing or a date is invalid), and the month's days."""
    start, end = parse_dates(frame["start_date"]), parse_dates(frame["end_date"])
    gone = (start.missing | start.invalid | end.invalid)[state]
    has_end = ~end.missing[state]
    start_month, start_day = start.month[state], start.day[state]
    end_month, end_day = end.month[state], end.day[state]
    days = days_in_month_array(month)
    first = np.where(start_month == month, start_day, 1)
    last = np.where(has_end & (end_month == month), end_day, days)
    inside = ~gone & (start_month <= month) & (~has_end | (end_month >= month))
    return np.where(inside, np.maximum(last - first + 1, 0), 0), days


def _taxes(amount: np.ndarray, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tax of each re-bill at its rate as billed (0 where unknown), and which are unknown."""
    known = np.fromiter(
        (isinstance(rate, Decimal) and rate.is_finite() for rate in rates),
        dtype=bool,
        count=len(rates),
    )
    if not known.any():
        return np.zeros(len(amount), dtype=np.int64), ~known
    codes, distinct = pd.factorize(rates[known])
    places, scaled = scaled_exactly(list(distinct))
    rate = np.zeros(len(amount), dtype=object)
    rate[known] = np.array(scaled, dtype=object)[codes]
    rate = as_int64_if_fits(rate)
    tax = mul_div_round_half_away([amount, rate], 10**places)
    return np.where(known, tax, 0), ~known
