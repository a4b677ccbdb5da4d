"""The billing ledger: which (product, service month) pairs are still to be billed.

BILLING.md rule 2 (Kill Bill's model): the invoice for P bills every billable (product, M)
that no invoice of another period has billed. Per product the billable months are one
range [lo, hi]; the pairs to bill are that range minus the product's ledger months.

A product's ledger months are almost always one contiguous run (billed month after
month), so the difference is at most two sub-ranges and is computed without expanding
every billable month. Products whose ledger months have gaps (rare: a ledger edited by
hand, a period re-run out of order) are expanded month by month and filtered exactly.
"""

from __future__ import annotations

import numpy as np


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending (np.unique, without its hashing overhead)."""
    ordered = np.sort(values)
    if len(ordered) == 0:
        return ordered
    keep = np.ones(len(ordered), dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def expand_ranges(
    owners: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every (owner, month) with start ≤ month ≤ end, for each row; empty ranges give none."""
    lengths = np.maximum(ends - starts + 1, 0)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keep = lengths > 0
    owners, starts, lengths = owners[keep], starts[keep], lengths[keep]
    offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(owners, lengths), np.repeat(starts, lengths) + offsets


def unbilled_months(
    lo: np.ndarray,
    hi: np.ndarray,
    ledger_owner: np.ndarray,
    ledger_month: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (product position, month index) in [lo, hi] not present in the ledger.

    `lo`/`hi`: per product, the billable month range (empty when lo > hi).
    `ledger_owner`/`ledger_month`: the already-billed pairs, owner = product position.
    The result is sorted by product position, then month.
    """
    n = len(lo)
    products = np.arange(n, dtype=np.int64)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    inside = (ledger_owner >= 0) & (ledger_owner < n)
    owner, month = ledger_owner[inside], ledger_month[inside]
    inside = (month >= lo[owner]) & (month <= hi[owner])
    owner, month = owner[inside], month[inside]

    count = np.zeros(n, np.int64)
    first = np.zeros(n, np.int64)
    last = np.zeros(n, np.int64)
    if len(owner):
        base = int(month.min())
        span = int(month.max()) - base + 1
        keys = sorted_unique(owner * span + (month - base))  # sorted by owner, then month
        owner, month = keys // span, keys % span + base
        new_owner = np.ones(len(owner), dtype=bool)
        new_owner[1:] = owner[1:] != owner[:-1]
        starts_at = np.flatnonzero(new_owner)
        ends_at = np.append(starts_at[1:], len(owner)) - 1
        owners = owner[starts_at]
        count[owners] = ends_at - starts_at + 1
        first[owners] = month[starts_at]
        last[owners] = month[ends_at]
    else:
        keys = np.zeros(0, np.int64)
        base, span = 0, 1

    billed = count > 0
    contiguous = ~billed | (last - first + 1 == count)
    # Contiguous (or empty) ledger runs: [lo, first - 1] and [last + 1, hi].
    before_end = np.where(billed, first - 1, hi)
    after_start = np.where(billed, last + 1, hi + 1)
    easy = products[contiguous]
    parts = [
        expand_ranges(easy, lo[easy], before_end[easy]),
        expand_ranges(easy, after_start[easy], hi[easy]),
    ]
    gapped = products[~contiguous]
    if len(gapped):
        owner_g, month_g = expand_ranges(gapped, lo[gapped], hi[gapped])
        candidate = owner_g * span + (month_g - base)
        in_range = (month_g >= base) & (month_g < base + span)
        already = in_range & np.isin(candidate, keys, kind="sort")
        parts.append((owner_g[~already], month_g[~already]))
    owner_out = np.concatenate([p[0] for p in parts])
    month_out = np.concatenate([p[1] for p in parts])
    order = np.lexsort((month_out, owner_out))
    return owner_out[order], month_out[order]
