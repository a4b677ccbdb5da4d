"""Usage lines: usage charges dated inside the billing period, billed as given (docs/billing.md,
Usage). A usage line has no quantity, no unit price and no service month.

Where docs/billing.md is silent (choices made here):
- An amount with more than 2 decimals is rounded once to cents, half away from zero.
- With agreements per contract, a usage row naming a contract goes to that contract's
  agreement (the contract must be one of the customer's imported contracts, else the row
  is rejected); without a contract it goes to the customer's "no contract" agreement. With
  the default agreement the contract is ignored. The `contract_id` column is optional.
- A usage row is rejected (with every reason that applies) when: its id is missing or
  repeated; its customer is not billed; its site belongs to another customer; its contract
  is not the customer's (per-contract agreements only); its amount is not a Decimal; its
  date is missing, not a date, or outside the billing period.
- Usage lines of one site are ordered by usage date, then usage id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from datagate_pipelines.billing import agreements
from datagate_pipelines.billing.checks import check_ids, check_owners
from datagate_pipelines.billing.context import BillingRun
from datagate_pipelines.billing.inputs import (
    EXACT_ALTERNATIVES,
    USAGE_COLUMNS,
    exact_column,
    strings,
    table,
    texts,
)
from datagate_pipelines.billing.lines import USAGE, LineBlock, Rejects, SourceTable
from datagate_pipelines.billing.money import CENT_PLACES
from datagate_pipelines.billing.month_columns import parse_dates
from datagate_pipelines.billing.periods import month_index, period_label


def usage_lines(
    usage: pd.DataFrame | None,
    run: BillingRun,
) -> tuple[LineBlock, SourceTable, list[dict[str, str]]]:
    """The usage lines of period P, what they copy from the usage rows, and the rejected
    usage rows."""
    period, settings, tax_codes = run.period, run.settings, run.tax_codes
    customers, sites, contracts = run.customers, run.sites, run.contracts
    frame = table(usage, "usage", USAGE_COLUMNS, EXACT_ALTERNATIVES)
    usage_ids = strings(frame["usage_id"])
    rejects = Rejects("usage", usage_ids)

    id_rank = check_ids(rejects, usage_ids, "usage").rank
    owners = check_owners(rejects, frame, settings, customers, sites, contracts)

    amount = exact_column(frame, "amount", CENT_PLACES, rounding=True)
    rejects.add(
        amount.invalid,
        "amount",
        lambda i: amount.reason(i, "amount", "a Decimal"),
    )

    day = parse_dates(frame["usage_date"])
    rejects.add(day.missing, "usage_date", lambda i: "missing usage date")
    rejects.add(
        day.invalid,
        "usage_date",
        lambda i: f"usage date {frame['usage_date'].iat[i]!r} is not a date",
    )
    outside = ~(day.missing | day.invalid) & ~day.in_month(month_index(period))
    rejects.add(
        outside,
        "usage_date",
        lambda i: f"usage date {day.date(i)} is outside the billing period {period_label(period)}",
    )

    rows = np.flatnonzero(~rejects.rejected)
    kind, contract = agreements.assign_agreements(
        owners.contract_ids[rows], owners.has_contract[rows], settings.use_default_agreement
    )
    order = np.empty(len(rows), dtype=np.int64)
    order[np.lexsort((id_rank[rows], day.day_key[rows]))] = np.arange(len(rows))
    block = LineBlock(
        kind=np.full(len(rows), USAGE, dtype=np.int8),
        customer=owners.customer[rows],
        site_id=owners.site_ids[rows],
        has_site=owners.has_site[rows],
        site_pos=owners.site_pos[rows],
        agreement_kind=kind,
        agreement_contract=contract,
        month=np.full(len(rows), -1, dtype=np.int32),
        order=order,
        amount=amount.scaled[rows],
        tax_code=tax_codes.encode(frame["tax_code"].to_numpy(dtype=object))[rows],
        source=rows,
    )
    sources = SourceTable(
        record_id=usage_ids, description=texts(frame["description"].to_numpy(dtype=object))
    )
    return block, sources, rejects.rows()
