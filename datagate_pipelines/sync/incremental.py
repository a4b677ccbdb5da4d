"""Incremental reads of HaloPSA lists that filter by change date, checked every time.

Where a list takes a change-date filter (docs/halopsa-api.md §A6: `lastupdatefromdate`,
declared on Client and Site but not proven there), a sync between full ones asks only for
the records changed since the entity's last read, less an overlap margin. HaloPSA silently
ignores parameters it does not know, so every answer is checked: a record whose last-update
stamp is older than the cutoff (or that has none) means the filter was not applied. Then the
entity is read whole at once, and incremental reads of it stop until a full sync succeeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from datagate_pipelines.config import ChangeFilter
from datagate_pipelines.warehouse.sync_runs import EntityRead

ReadKind = Literal["full", "incremental", "fallback"]


@dataclass(frozen=True)
class ReadPlan:
    """How to read one entity: incremental from `cutoff`, or whole (and why)."""

    incremental: bool
    cutoff: datetime | None = None
    reason: str | None = None


@dataclass
class ReadOutcome:
    """The records read and how: `complete` when they are the whole list (deletions show)."""

    rows: list[Any]
    kind: ReadKind
    complete: bool
    cutoff: datetime | None = None
    # Why the entity was read whole (a full sync, no filter, a fallback …).
    reason: str | None = None
    # Set when HaloPSA was found ignoring the filter: incremental reads of it stop.
    filter_ignored: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "records": len(self.rows),
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "reason": self.filter_ignored or self.reason,
        }


def plan_read(
    change_filter: ChangeFilter | None,
    last: EntityRead | None,
    *,
    full_sync: bool,
    overlap: timedelta,
) -> ReadPlan:
    """Incremental when the entity has a filter, was read before, the run is not a full sync
    and HaloPSA was not found ignoring the filter since the last full sync."""
    if change_filter is None:
        return ReadPlan(False, reason="no change filter for this list")
    if full_sync:
        return ReadPlan(False, reason="full sync")
    if last is None:
        return ReadPlan(False, reason="never read before")
    if last.incremental_off_reason:
        return ReadPlan(
            False, reason=f"incremental off until a full sync: {last.incremental_off_reason}"
        )
    return ReadPlan(True, cutoff=last.read_as_of - overlap)


def halo_time(moment: datetime) -> str:
    """A UTC time as HaloPSA's query parameters take it: `2026-08-01T06:30:00`."""
    return moment.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def _stamp(value: Any) -> datetime | None:
    """A HaloPSA timestamp (naive is UTC; "1899-12-30…" means none); None when unreadable."""
    if not isinstance(value, str) or not value.strip() or value.startswith(("1899-", "0001-")):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def filter_ignored(
    rows: Sequence[Any], change_filter: ChangeFilter, cutoff: datetime, resource: str
) -> str | None:
    """Why the answer shows the filter was not applied, or None when every record is as
    recent as the cutoff (the cutoff is compared on the server's clock: no skew here)."""
    cutoff = cutoff.replace(microsecond=0)
    older, unstamped = [], []
    for row in rows:
        if not isinstance(row, Mapping):
            continue  # the decoder rejects it with its reason
        stamp = _stamp(row.get(change_filter.stamp_field))
        if stamp is None:
            unstamped.append(row.get("id"))
        elif stamp < cutoff:
            older.append((row.get("id"), stamp))
    where = f"{resource}?{change_filter.param}={halo_time(cutoff)}"
    if older:
        record_id, stamp = older[0]
        return (
            f"HaloPSA ignored {where}: {len(older)} of {len(rows)} record(s) last updated "
            f"before the cutoff (e.g. id {record_id}, {change_filter.stamp_field} "
            f"{halo_time(stamp)})"
        )
    if unstamped:
        return (
            f"cannot check {where}: {len(unstamped)} of {len(rows)} record(s) have no "
            f"{change_filter.stamp_field} (e.g. id {unstamped[0]}); is "
            "halopsa.change_filters' stamp_field right?"
        )
    return None


def read(
    fetch: Callable[[Mapping[str, Any]], list[Any]],
    plan: ReadPlan,
    change_filter: ChangeFilter | None,
    resource: str,
) -> ReadOutcome:
    """Read one entity as planned: `fetch(extra_params)` lists it. An incremental answer
    that fails the check is replaced by a whole read at once."""
    if not plan.incremental:
        return ReadOutcome(list(fetch({})), "full", complete=True, reason=plan.reason)
    assert change_filter is not None and plan.cutoff is not None
    rows = list(fetch({change_filter.param: halo_time(plan.cutoff)}))
    ignored = filter_ignored(rows, change_filter, plan.cutoff, resource)
    if ignored is None:
        return ReadOutcome(rows, "incremental", complete=False, cutoff=plan.cutoff)
    return ReadOutcome(
        list(fetch({})), "fallback", complete=True, cutoff=plan.cutoff, filter_ignored=ignored
    )
