"""Invoice lines in columnar form while the engine works on them, and the rejects collector."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

RECURRING = 0
USAGE = 1
KIND_NAMES = np.array(["recurring", "usage"], dtype=object)


@dataclass
class LineBlock:
    """One array per attribute, one row per invoice line (before tax and ordering).

    Text and Decimal values (ids, descriptions, quantities, prices) are not copied here:
    `source` points at the input row they come from, and the result frames take them from
    there once, in the final line order (see `LineSources`)."""

    kind: np.ndarray  # RECURRING or USAGE
    customer: np.ndarray  # position in the Customers table
    site_id: np.ndarray  # int64, meaningful where has_site
    has_site: np.ndarray
    site_pos: np.ndarray  # position in the Sites table, -1 when unknown
    agreement_kind: np.ndarray  # agreements.DEFAULT / CONTRACT / NO_CONTRACT
    agreement_contract: np.ndarray
    month: np.ndarray  # service month index; -1 for usage
    # Order within (invoice, site, kind): product id rank / usage rank. A sort key only:
    # None once the lines are in order.
    order: np.ndarray | None
    amount: np.ndarray  # cents: int64, or Python ints (object) for huge values
    tax_code: np.ndarray  # id in the run's TaxCodes; -1: no tax code
    source: np.ndarray  # row of the line's input table (products or usage)

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def concat(cls, blocks: list[LineBlock], offsets: list[int]) -> LineBlock:
        """The blocks one after the other; block i's sources are shifted by offsets[i] (its
        table's place in the concatenated `LineSources`)."""
        columns = {}
        for spec in fields(cls):
            parts = [getattr(block, spec.name) for block in blocks]
            if spec.name == "source":
                parts = [part + offset for part, offset in zip(parts, offsets, strict=True)]
            if any(part.dtype == object for part in parts):
                parts = [part.astype(object) for part in parts]
            columns[spec.name] = np.concatenate(parts)
        return cls(**columns)

    def reorder(self, rows: np.ndarray) -> None:
        """Restrict / reorder this block by `rows` in place, one column at a time, so that
        only one column exists twice at any moment (fresh memory is page faults). The sort
        key `order` is dropped rather than reordered."""
        self.order = None
        for spec in fields(self):
            column = getattr(self, spec.name)
            if column is not None:
                setattr(self, spec.name, column[rows])


@dataclass
class LineSources:
    """The values lines copy from their input rows, one entry per row of one input table:
    ids and descriptions (object arrays; None where the table has no such value, e.g. a
    usage row's product id), quantities and unit prices × 10**4 (0 where the row has none:
    `has_terms` is False), and the Decimals they were given as (None: given as integers)."""

    product_id: np.ndarray
    usage_id: np.ndarray
    description: np.ndarray
    qty: np.ndarray
    unit_price: np.ndarray
    has_terms: np.ndarray
    given_qty: np.ndarray | None
    given_unit_price: np.ndarray | None

    def __len__(self) -> int:
        return len(self.description)

    @classmethod
    def without_terms(
        cls, product_id: np.ndarray, usage_id: np.ndarray, description: np.ndarray
    ) -> LineSources:
        """Rows with no quantity or unit price (usage rows)."""
        n = len(description)
        nothing = np.full(n, None, dtype=object)
        zeros = np.zeros(n, dtype=np.int64)
        return cls(
            product_id, usage_id, description, zeros, zeros, np.zeros(n, bool), nothing, nothing
        )

    @classmethod
    def concat(cls, tables: list[LineSources]) -> LineSources:
        """The tables one after the other (a line's `source` then indexes the result)."""
        columns = {}
        for spec in fields(cls):
            parts = [getattr(t, spec.name) for t in tables]
            if any(part is None for part in parts):
                columns[spec.name] = None
                continue
            if any(part.dtype == object for part in parts):
                parts = [part.astype(object) for part in parts]
            columns[spec.name] = np.concatenate(parts)
        return cls(**columns)


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
