"""Invoice lines in columnar form while the engine works on them, and the rejects collector."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

RECURRING = 0
USAGE = 1
CREDIT = 2  # repair lines (repairs.py): what was billed, negated
REBILL = 3  # … and the month billed again under the product's current dates
KIND_NAMES = np.array(["recurring", "usage", "credit", "rebill"], dtype=object)
# Kinds whose lines bill a (product, service month) and enter the ledger.
PRODUCT_KINDS = (RECURRING, CREDIT, REBILL)


@dataclass
class LineBlock:
    """One array per attribute, one row per invoice line (before tax and ordering).

    Text and Decimal values (ids, descriptions, quantities, prices) are not copied here:
    `source` points at the input row they come from (in the table of the line's kind), and
    the result frames take them from there once, in the final line order (see
    `LineSources`)."""

    kind: np.ndarray  # RECURRING, USAGE, CREDIT or REBILL
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
    source: np.ndarray  # row of the line's input table (products or usage, by kind)

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

    def reorder(self, rows: np.ndarray) -> None:
        """Restrict / reorder this block by `rows` in place, one column at a time, so that
        only one column exists twice at any moment (fresh memory is page faults). The sort
        key `order` is dropped rather than reordered."""
        self.order = None
        for spec in fields(self):
            column = getattr(self, spec.name)
            if column is not None:  # take: faster than [rows] for scattered rows
                setattr(self, spec.name, column.take(rows))


@dataclass
class SourceTable:
    """What lines copy from the rows of one input table, one entry per row: the record id
    (product or usage id) and description (object arrays), and for products the quantity
    and unit price × 10**4 with the Decimals they were given as (None: given as integers,
    or a table without them)."""

    record_id: np.ndarray
    description: np.ndarray
    qty: np.ndarray | None = None
    unit_price: np.ndarray | None = None
    given_qty: np.ndarray | None = None
    given_unit_price: np.ndarray | None = None
    corrects: np.ndarray | None = None  # repair lines: the invoice each corrects


@dataclass
class LineSources:
    """The input tables lines copy from, by line kind: a line's `source` is a row of the
    table of its kind (RECURRING: the products, USAGE: the usage rows)."""

    tables: dict[int, SourceTable]

    def take(self, lines: LineBlock, name: str, kinds: tuple[int, ...] | None = None) -> np.ndarray:
        """The object column `name` of each line's input row, in line order; None for lines
        not of `kinds` (default: any) or whose table has no such column.

        The commonest kind's lines (usually the recurring ones) are taken in one go — that
        table indexed by every line's source, clipped since other lines' sources may exceed
        it — and the other lines overwritten: no table is copied to make one of all rows."""
        kind, source = lines.kind, lines.source
        counts = np.bincount(kind, minlength=len(KIND_NAMES))
        columns = {
            k: column
            for k, table in self.tables.items()
            if (kinds is None or k in kinds)
            and counts[k]
            and (column := getattr(table, name)) is not None
        }
        major = int(np.argmax(counts)) if len(kind) else 0
        if major in columns:
            out = columns.pop(major).take(source, mode="clip")
            if counts[major] < len(kind):
                out[kind != major] = None
        else:
            out = np.full(len(kind), None, dtype=object)
        for k, column in columns.items():
            rows = np.flatnonzero(kind == k)
            out[rows] = column[source[rows]]
        return out


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
        rows = np.flatnonzero(mask)
        for i, record in zip(rows.tolist(), self.record_ids[rows].tolist(), strict=True):
            self._rows.append(
                (
                    i,
                    check,
                    {
                        "entity": self.entity,
                        "record_id": "" if record is None else str(record),
                        "field": field,
                        "reason": reason(i),
                    },
                )
            )

    def rows(self) -> list[dict[str, str]]:
        """The rejects, by input row then by the order the checks ran."""
        return [row for _, _, row in sorted(self._rows, key=lambda item: (item[0], item[1]))]
