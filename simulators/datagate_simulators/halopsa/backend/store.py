"""A table of records keyed by id, with the id order cached between writes.

Records are never changed in place: a write stores a new dict, so a reader holding an old one
(say, a response being serialised outside the backend lock) never sees it half-changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Table:
    """Records of one resource. ``id_sign=-1`` hands out -1, -2, … (recurring invoices)."""

    def __init__(self, name: str, id_sign: int = 1) -> None:
        self.name = name
        self.id_sign = id_sign
        self._records: dict[int, dict[str, Any]] = {}
        self._order: list[int] | None = []
        self._last_id = 0

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._records

    def get(self, record_id: int) -> dict[str, Any] | None:
        return self._records.get(record_id)

    def next_id(self) -> int:
        self._last_id += 1
        return self._last_id * self.id_sign

    def put(self, record: dict[str, Any]) -> None:
        record_id = record["id"]
        if record_id not in self._records:
            self._order = None
            self._last_id = max(self._last_id, abs(record_id))
        self._records[record_id] = record

    def remove(self, record_id: int) -> dict[str, Any] | None:
        record = self._records.pop(record_id, None)
        if record is not None:
            self._order = None
        return record

    def ids(self) -> list[int]:
        """All ids, ascending; sorted once per change of membership, not per request."""
        if self._order is None:
            self._order = sorted(self._records)
        return self._order

    def values(self) -> Iterator[dict[str, Any]]:
        records = self._records
        return (records[i] for i in self.ids())

    def clear(self) -> None:
        self._records.clear()
        self._order = []
        self._last_id = 0
