"""When an invoice may be finalized (docs/billing.md rules 3–5).

Rule 4: an agreement's invoice for P may be finalized only when its invoices for every
earlier period are final. A held invoice is not final, so it blocks its agreement's later
invoices until its hold clears and it is finalized (rule 5).

Where docs/billing.md is silent: "final" means any status after finalization — final,
exported, paid, partly_paid, credited, voided. A period in which the agreement had no invoice (no lines)
blocks nothing. Whether the invoice for P itself is held is the caller's other check: a
held invoice is never finalized.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pandas as pd

from datagate_pipelines.billing.periods import period_label

FINAL_STATUSES = frozenset({"final", "exported", "paid", "partly_paid", "credited", "voided"})


def finalization_blockers(
    agreement_key: str, period: date, prior_statuses: Mapping[date, str]
) -> list[str]:
    """Why the agreement's invoice for `period` cannot be finalized yet (empty: it can).

    `prior_statuses`: the agreement's invoices as period → status; periods on or after
    `period` are ignored.
    """
    return [
        f"{agreement_key}: the invoice for {period_label(earlier)} is {status}, not final"
        for earlier, status in sorted(prior_statuses.items())
        if earlier < period and status not in FINAL_STATUSES
    ]


def can_finalize(agreement_key: str, period: date, prior_statuses: Mapping[date, str]) -> bool:
    """True when every earlier invoice of the agreement is final (rule 4)."""
    return not finalization_blockers(agreement_key, period, prior_statuses)


def blocked_agreements(history: pd.DataFrame, period: date) -> dict[str, list[str]]:
    """For a portal's invoices (columns agreement_key, period, status), the agreements whose
    invoice for `period` cannot be finalized, with the reasons."""
    earlier = history[(history["period"] < period) & ~history["status"].isin(FINAL_STATUSES)]
    blocked: dict[str, list[str]] = {}
    for key, group in earlier.groupby("agreement_key", sort=True):
        statuses = dict(zip(group["period"], group["status"], strict=True))
        blocked[str(key)] = finalization_blockers(str(key), period, statuses)
    return blocked
