"""Faults in HaloPSA list responses: malformed rows and records that change between pages.

The backend holds them and applies them while it serves a list. Generic HTTP faults (5xx,
delays, dropped connections) are in ``datagate_simulators.faults``; token faults are on the
backend's token store (``expire_tokens``, ``set_token_lifetime``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datagate_simulators.halopsa.backend.base import Tenant

MALFORMED_MODES = ("missing_field", "wrong_type", "duplicate_id")


@dataclass
class MalformedRows:
    """Spoil the next ``remaining`` list responses of ``resource``.

    - ``missing_field``: drop ``field`` from the chosen rows (``lines.qty_order`` reaches into
      each row's lines);
    - ``wrong_type``: send ``field`` with the wrong JSON type (numbers and booleans as strings,
      e.g. ``qty_order: "2.0"``; strings as numbers);
    - ``duplicate_id``: the page starts with the row that ended the previous page again (on
      page 1, or without paging, the first row is repeated).

    ``rows`` is ``"first"``, ``"all"`` or a 0-based index into the page.
    """

    resource: str
    mode: str
    field: str | None = None
    remaining: int = 1
    rows: str | int = "first"

    def __post_init__(self) -> None:
        if self.mode not in MALFORMED_MODES:
            raise ValueError(
                f"unknown malformed mode {self.mode!r}; expected one of {MALFORMED_MODES}"
            )
        if self.mode != "duplicate_id" and not self.field:
            raise ValueError(f"{self.mode} needs a field")

    def apply(
        self, rows: list[dict[str, Any]], previous_row: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        if not rows:
            return rows
        if self.mode == "duplicate_id":
            return [copy.deepcopy(previous_row if previous_row is not None else rows[0]), *rows]
        if self.rows == "all":
            chosen = range(len(rows))
        elif self.rows == "first":
            chosen = range(1)
        else:
            chosen = (
                range(int(self.rows), int(self.rows) + 1)
                if int(self.rows) < len(rows)
                else range(0)
            )
        rows = list(rows)
        for index in chosen:
            rows[index] = self._spoil(copy.deepcopy(rows[index]))
        return rows

    def _spoil(self, row: dict[str, Any]) -> dict[str, Any]:
        assert self.field is not None
        head, _, rest = self.field.partition(".")
        targets = [row]
        if rest and isinstance(row.get(head), list):
            targets = [x for x in row[head] if isinstance(x, dict)]
            key = rest
        else:
            key = self.field
        for target in targets:
            if key not in target:
                continue
            if self.mode == "missing_field":
                del target[key]
            else:
                target[key] = _wrong_type(target[key])
        return row


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return len(value)
    if value is None:
        return ""
    return str(value)


PageAction = Callable[[Tenant], None]


@dataclass
class PageHook:
    """Run ``action`` right after page ``after_page`` of a ``resource`` list is served."""

    resource: str
    after_page: int
    action: PageAction
    remaining: int = 1
    description: str = ""


class HaloFaults:
    """Pending HaloPSA-specific faults. Not thread-safe on its own: the backend lock guards it."""

    def __init__(self) -> None:
        self.malformed: list[MalformedRows] = []
        self.page_hooks: list[PageHook] = []
        #: Resources whose change-date filter (``lastupdatefromdate``) is ignored, as Halo
        #: ignores a parameter it does not know: the whole list comes back.
        self.ignored_change_filters: set[str] = set()

    def take_malformed(self, resource: str) -> list[MalformedRows]:
        taken = [m for m in self.malformed if m.resource == resource]
        for fault in taken:
            fault.remaining -= 1
        self.malformed = [m for m in self.malformed if m.remaining > 0]
        return taken

    def take_page_hooks(self, resource: str, page_no: int) -> list[PageHook]:
        taken = [h for h in self.page_hooks if h.resource == resource and h.after_page == page_no]
        for hook in taken:
            hook.remaining -= 1
        self.page_hooks = [h for h in self.page_hooks if h.remaining > 0]
        return taken

    def clear(self) -> None:
        self.malformed.clear()
        self.page_hooks.clear()
        self.ignored_change_filters.clear()

    def describe(self) -> dict[str, Any]:
        return {
            "malformed_rows": [
                {
                    "resource": m.resource,
                    "mode": m.mode,
                    "field": m.field,
                    "count": m.remaining,
                    "rows": m.rows,
                }
                for m in self.malformed
            ],
            "page_hooks": [
                {
                    "resource": h.resource,
                    "after_page": h.after_page,
                    "count": h.remaining,
                    "description": h.description,
                }
                for h in self.page_hooks
            ],
            "ignored_change_filters": sorted(self.ignored_change_filters),
        }


def delete_first_records(resource: str, records: int) -> PageAction:
    """A page action: delete the first ``records`` rows of the default (id) order.

    Later rows shift towards the front, so a client paging by number skips some.
    """

    def action(backend: Tenant) -> None:
        for record_id in list(backend.table(resource).ids()[:records]):
            backend.delete(resource, record_id)

    return action


def add_records(resource: str, records: int) -> PageAction:
    """A page action: add ``records`` copies of the first record (new ids, " (added N)" names).

    They sort last by id (first for recurring invoices' negative ids), so ``record_count`` grows.
    """

    def action(backend: Tenant) -> None:
        ids = backend.table(resource).ids()
        if not ids:
            return
        template = backend.get(resource, ids[0])
        items = []
        for n in range(1, records + 1):
            item = {
                k: v
                for k, v in template.items()
                if k not in {"id", "key", "customfields", "invoicenumber"}
            }
            if "name" in item:
                item["name"] = f"{item['name']} (added {n})"
            if isinstance(item.get("lines"), list):
                item["lines"] = [
                    {k: v for k, v in line.items() if k not in {"id", "ihid"}}
                    for line in item["lines"]
                ]
            items.append(item)
        backend.upsert(resource, items)

    return action
