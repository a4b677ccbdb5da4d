"""Invoice lines in columnar form while the engine works on them, and the rejects collector."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

RECURRING = 0
USAGE = 1
KIND_NAMES = np.array(["recurring", "usage"], dtype=object)


@dataclass
class LineBlock:
    """One array per attribute, one row per invoice line (before tax and ordering)."""

    kind: np.ndarray  # RECURRING or USAGE
    customer: np.ndarray  # position in the Customers table
    site_id: np.ndarray  # int64, meaningful where has_site
    has_site: np.ndarray
    site_pos: np.ndarray  # position in the Sites table, -1 when unknown
    agreement_kind: np.ndarray  # agreements.DEFAULT / CONTRACT / NO_CONTRACT
    agreement_contract: np.ndarray
    month: np.ndarray  # service month index; -1 for usage
    order: np.ndarray  # order within (invoice, site, kind): product id rank / usage rank
    amount: np.ndarray  # cents: int64, or Python ints (object) for huge values
    tax_code: np.ndarray  # normalised tax code or None
    record_id: np.ndarray  # product_id or usage_id
    description: np.ndarray
    qty: np.ndarray  # Decimal or None
    unit_price: np.ndarray  # Decimal or None

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def concat(cls, blocks: list[LineBlock]) -> LineBlock:
        """The blocks one after the other."""
        columns = {}
        for spec in fields(cls):
            parts = [getattr(block, spec.name) for block in blocks]
            if any(part.dtype == object for part in parts):
                parts = [part.astype(object) for part in parts]
            columns[spec.name] = np.concatenate(parts)
        return cls(**columns)

    def take(self, rows: np.ndarray) -> LineBlock:
        """The block restricted to / reordered by `rows`."""
        return LineBlock(**{spec.name: getattr(self, spec.name)[rows] for spec in fields(self)})


class Rejects:
    """Rows refused with the field and the reason, in input order (then check order)."""

    def __init__(self, entity: str, record_ids: np.ndarray):
        self.entity = entity
        self.record_ids = record_ids
        self.rejected = np.zeros(len(record_ids), dtype=bool)
        self._rows: list[tuple[int, int, dict[str, str]]] = []
        self._checks = 0

    def add(self, mask: np.ndarray, field: str, reason: Callable[[int], str]) -> None:
        """Reject the rows where `mask` holds; `reason(i)` words the reason for row i."""
        self.rejected |= mask
        self._checks += 1
        check = self._checks
        for i in np.flatnonzero(mask):
            record = self.record_ids[i]
            self._rows.append(
                (
                    int(i),
                    check,
                    {
                        "entity": self.entity,
                        "record_id": "" if record is None else str(record),
                        "field": field,
                        "reason": reason(int(i)),
                    },
                )
            )

    def rows(self) -> list[dict[str, str]]:
        """The rejects, by input row then by the order the checks ran."""
        return [row for _, _, row in sorted(self._rows, key=lambda item: (item[0], item[1]))]


def rank_strings(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each string in code-point order (ties broken by position) and how many times
    each value occurs. Sorting fixed-width numpy strings is far faster than Python objects."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    as_list = values.tolist()
    if all(map(operator.lt, as_list, as_list[1:])):
        # Already strictly ascending (ids usually arrive sorted by the database): no sort.
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
