"""The billing ledger: which (product, service month) pairs are still to be billed.

docs/billing.md rule 2 (Kill Bill's model): the invoice for P bills every billable (product, M)
that no invoice of another period has billed. Per product the billable months are one
range [lo, hi]; the pairs to bill are that range minus the product's ledger months.

A product's ledger months are almost always one contiguous run (billed month after
month), so the difference is at most two sub-ranges and is computed without expanding
every billable month. Products whose ledger months have gaps (rare: a ledger edited by
hand, a period re-run out of order) are expanded month by month and filtered exactly.
"""

from __future__ import annotations

import numpy as np


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
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    runs = _LedgerRuns.of(lo, hi, ledger_owner, ledger_month)
    contiguous = ~runs.billed | (runs.last - runs.first + 1 == runs.count)
    # A contiguous (or empty) run of billed months leaves [lo, first - 1] and [last + 1, hi].
    before_end = np.where(runs.billed, runs.first - 1, hi)
    after_start = np.where(runs.billed, runs.last + 1, hi + 1)
    before = np.where(contiguous, np.maximum(before_end - lo + 1, 0), 0)
    after = np.where(contiguous, np.maximum(hi - after_start + 1, 0), 0)
    owner, month = _two_ranges(lo, before, after_start, after)
    gapped = np.flatnonzero(~contiguous)
    if len(gapped) == 0:
        return owner, month
    # Rare: billed months with gaps. Expand those products' ranges and drop billed months.
    owner_g, month_g = expand_ranges(gapped, lo[gapped], hi[gapped])
    already = np.isin(runs.key(owner_g, month_g), runs.keys, kind="sort")
    owner = np.concatenate([owner, owner_g[~already]])
    month = np.concatenate([month, month_g[~already]])
    order = np.argsort(owner, kind="stable")  # each product's months are already ascending
    return owner[order], month[order]


def _two_ranges(
    lo: np.ndarray, before: np.ndarray, after_start: np.ndarray, after: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per product p: the `before[p]` months from lo[p], then the `after[p]` months from
    after_start[p] — laid out in product order without sorting.

    Most products have one month or none to bill (the period's own): every product's first
    month is placed with one gather, and only the rows of products with several months
    (late entries caught up) are stepped on from there."""
    counts = before + after
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    first_month = np.where(before > 0, lo, after_start)
    if total == np.count_nonzero(counts):  # one month per product that has any
        owner = np.flatnonzero(counts)
        return owner, first_month[owner]
    owner = np.repeat(np.arange(len(lo), dtype=np.int64), counts)
    month = first_month[owner]
    several = np.flatnonzero(counts > 1)
    # Row of each such product's first month, and the months after it.
    first_row = (np.cumsum(counts) - counts)[several]
    step_owner, step = expand_ranges(
        np.arange(len(several)), np.ones(len(several), np.int64), counts[several] - 1
    )
    rows = first_row[step_owner] + step
    product = several[step_owner]
    # Steps inside the first range count from lo; past it they jump to the second range.
    second = step >= before[product]
    month[rows] = np.where(
        second & (before[product] > 0),
        after_start[product] + step - before[product],
        month[rows] + step,
    )
    return owner, month


class _LedgerRuns:
    """Per product: how many distinct billed months fall in [lo, hi], the first and the
    last; and the billed pairs as sorted integer keys."""

    def __init__(self, count, first, last, keys, base, span):
        self.count, self.first, self.last = count, first, last
        self.billed = count > 0
        self._keys, self._base, self._span = keys, base, span

    @property
    def keys(self) -> np.ndarray:
        """The billed pairs' keys, ascending."""
        if callable(self._keys):
            self._keys = self._keys()
        return self._keys

    def key(self, owner: np.ndarray, month: np.ndarray) -> np.ndarray:
        """The integer key of (owner, month) pairs (-1 for months outside the ledger's)."""
        inside = (month >= self._base) & (month < self._base + self._span)
        return np.where(inside, _pair_keys(owner, month, self._base, self._span), -1)

    @classmethod
    def of(cls, lo, hi, ledger_owner, ledger_month) -> _LedgerRuns:
        n = len(lo)
        runs = cls._of_sorted(lo, hi, ledger_owner, ledger_month)
        if runs is not None:
            return runs
        owner, month = _keep(ledger_owner, ledger_month, (ledger_owner >= 0) & (ledger_owner < n))
        owner, month = _keep(owner, month, (month >= lo[owner]) & (month <= hi[owner]))
        count, first, last = (np.zeros(n, np.int32) for _ in range(3))
        if len(owner) == 0:
            return cls(count, first, last, np.zeros(0, np.int64), 0, 1)
        base = int(month.min())
        span = int(month.max()) - base + 1
        keys = _pair_keys(owner, month, base, span)
        if not _non_decreasing(keys):  # a ledger read in key order is sorted already
            order = np.argsort(keys, kind="stable")
            keys, owner, month = keys[order], owner[order], month[order]
        distinct = np.ones(len(keys), dtype=bool)  # a pair billed twice counts once
        distinct[1:] = keys[1:] != keys[:-1]
        if not distinct.all():
            keys, owner, month = keys[distinct], owner[distinct], month[distinct]
        new_owner = np.ones(len(owner), dtype=bool)
        new_owner[1:] = owner[1:] != owner[:-1]
        starts_at = np.flatnonzero(new_owner)
        ends_at = np.append(starts_at[1:], len(owner)) - 1
        owners = owner[starts_at]
        count[owners] = ends_at - starts_at + 1
        first[owners] = month[starts_at]
        last[owners] = month[ends_at]
        return cls(count, first, last, keys, base, span)

    @classmethod
    def _of_sorted(cls, lo, hi, ledger_owner, ledger_month) -> _LedgerRuns | None:
        """`of` for the usual ledger, read in (product, month) order with each pair once and
        every product's months inside its [lo, hi]: the runs are read off the rows without
        a key or a gather per row. None when the ledger is not like that."""
        n = len(lo)
        if len(ledger_owner) == 0 or ledger_owner[0] < 0 or ledger_owner[-1] >= n:
            return None
        new_owner = np.empty(len(ledger_owner), dtype=bool)
        new_owner[0] = True
        np.not_equal(ledger_owner[1:], ledger_owner[:-1], out=new_owner[1:])
        if not (new_owner[1:] | (ledger_month[1:] > ledger_month[:-1])).all():
            return None  # months out of order or repeated within a product
        starts_at = np.flatnonzero(new_owner)
        del new_owner
        owners = ledger_owner[starts_at]
        if not (owners[1:] > owners[:-1]).all():
            return None  # a product's rows are not together
        ends_at = np.empty_like(starts_at)
        ends_at[:-1] = starts_at[1:] - 1
        ends_at[-1] = len(ledger_owner) - 1
        first, last = ledger_month[starts_at], ledger_month[ends_at]
        if ((first < lo[owners]) | (last > hi[owners])).any():
            return None  # some months fall outside [lo, hi]: filter row by row
        # int32: month indexes and counts fit, and these are per product (fresh memory).
        count, first_of, last_of = (np.zeros(n, np.int32) for _ in range(3))
        count[owners] = ends_at - starts_at + 1
        first_of[owners], last_of[owners] = first, last
        base = int(first.min())
        span = int(last.max()) - base + 1
        # Sorted and distinct; only products with gaps need them: built when asked for.
        keys = lambda: _pair_keys(ledger_owner, ledger_month, base, span)  # noqa: E731
        return cls(count, first_of, last_of, keys, base, span)


def _pair_keys(owner: np.ndarray, month: np.ndarray, base: int, span: int) -> np.ndarray:
    """The integer key of (owner, month) pairs, months in [base, base + span): in int64,
    whatever the inputs' width (positions and months may come as int32)."""
    return owner.astype(np.int64) * span + (month - base)


def _keep(owner: np.ndarray, month: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, ...]:
    """The pairs where `keep` holds (no copy when it always does)."""
    if keep.all():
        return owner, month
    return owner[keep], month[keep]


def _non_decreasing(values: np.ndarray) -> bool:
    return bool((values[1:] >= values[:-1]).all())
