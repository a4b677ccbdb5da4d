"""Text ids (product and usage ids): their order, their repeats, and joins on them.

Hashing a million Python strings into a table is dominated by cache misses (each probe
touches a scattered string object), so where the data allows it the work is done by
sequential comparisons instead:

- ids that arrive sorted (as a query ordered by id returns them) are recognised with one
  vectorized comparison and need no sort;
- a ledger lists a product's months together, so consecutive rows with the same id are
  looked up once;
- two sorted id lists are joined by a merge (a stable sort of the two sorted runs).

Integer product keys, where the caller has them (the warehouse's line ids), replace the
text join altogether (`find_keys`).

Every fast path checks its precondition and falls back to the general path, which gives
the same answer on any input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def text_ids(values: np.ndarray) -> np.ndarray:
    """Ids as an object array of str (ints are turned into their digits; None stays None)."""
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    as_text = (None if v is None else str(v) for v in values.tolist())
    return np.fromiter(as_text, dtype=object, count=len(values))


def strictly_ascending(values: np.ndarray) -> bool:
    """True when the (text) values are strictly ascending in code-point order; False when
    they are not, or cannot be compared (a missing id among them)."""
    if len(values) < 2:
        return True
    try:
        return bool((values[1:] > values[:-1]).all())
    except TypeError:  # None (or a non-text id) among strings
        return False


def rank_strings(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each string in code-point order (ties broken by position) and how many times
    each value occurs. Sorting fixed-width numpy strings is far faster than Python objects."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if strictly_ascending(values):
        return np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64)
    text = values.astype(str)
    order = np.argsort(text, kind="stable")
    ordered = text[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    new_value = np.ones(n, dtype=bool)
    new_value[1:] = ordered[1:] != ordered[:-1]
    run = np.cumsum(new_value) - 1
    run_lengths = np.bincount(run)
    occurrences = np.empty(n, dtype=np.int64)
    occurrences[order] = run_lengths[run]
    return rank, occurrences


def find_ids(ids: np.ndarray, known: np.ndarray, *, known_ascending: bool) -> np.ndarray:
    """The position in `known` (distinct text ids) of each of `ids` (compared as text, see
    `text_ids`), -1 when absent.

    `known_ascending` says `known` is strictly ascending (the caller knows it already).
    """
    if len(known) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    # Runs of one id (a product's ledger months) are looked up once.
    new_run = np.ones(len(ids), dtype=bool)
    try:
        new_run[1:] = ids[1:] != ids[:-1]
    except TypeError:  # pd.NA cannot be compared
        ids = text_ids(ids)
        new_run[1:] = ids[1:] != ids[:-1]
    heads = text_ids(ids[new_run])
    if known_ascending and strictly_ascending(heads):
        found = _merge_positions(heads, known)
    else:
        found = pd.Index(known).get_indexer(heads)
    return found[np.cumsum(new_run) - 1].astype(np.int64, copy=False)


def find_keys(keys: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The position in `known` (distinct integer keys) of each of `keys`, -1 when absent:
    a table indexed by key when the keys are dense (ids handed out in sequence), else a
    binary search when `known` is ascending, else a hash lookup."""
    if len(known) == 0 or len(keys) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    low, high = int(known.min()), int(known.max())
    if low >= 0 and high < 4 * len(known) + 1024:
        # Positions as int32 when they fit: every row of a million-line block is then half
        # the bytes to write, copy and reorder.
        dtype = np.int32 if len(known) < 2**31 else np.int64
        table = np.full(high + 1, -1, dtype=dtype)
        table[known] = np.arange(len(known), dtype=dtype)
        if int(keys.min()) >= 0 and int(keys.max()) <= high:
            return table[keys]
        inside = (keys >= 0) & (keys <= high)
        return np.where(inside, table[np.where(inside, keys, 0)], -1)
    if bool((known[1:] > known[:-1]).all()):
        found = np.minimum(np.searchsorted(known, keys), len(known) - 1)
        return np.where(known[found] == keys, found, -1).astype(np.int64, copy=False)
    return pd.Index(known).get_indexer(keys).astype(np.int64, copy=False)


def _merge_positions(needles: np.ndarray, known: np.ndarray) -> np.ndarray:
    """`find_ids` for ascending needles and strictly ascending known ids, by merging: a
    stable sort of known + needles (two sorted runs: one merge pass) keeps the needles in
    their order and puts each right after the known ids not greater than it, of which only
    the last can equal it."""
    order = np.argsort(np.concatenate([known, needles]), kind="stable")
    # The k-th needle sits at merged position p with p - k known ids before it.
    known_before = np.flatnonzero(order >= len(known)) - np.arange(len(needles))
    candidate = known_before - 1
    equal = (candidate >= 0) & (known[np.maximum(candidate, 0)] == needles)
    return np.where(equal, candidate, -1)
