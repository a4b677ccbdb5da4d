"""A nightly close waits for the night's sync (invoicing/close_gate.py), on SQLite and
PostgreSQL: what counts as the night's sync, the refusal recorded, and what `portals
status` lists from it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, update

from datagate_pipelines import DatagateError
from datagate_pipelines.invoicing.close_gate import (
    SyncNotFreshError,
    parse_sync_tick,
    refused_closes,
    require_synced_since,
)
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.audit import read_events
from datagate_pipelines.warehouse.portals import register_portal
from datagate_pipelines.warehouse.sync_runs import finish_sync, start_sync
from tests.exporting.stack import portal_config

JULY = date(2026, 7, 1)
TICK = datetime(2026, 8, 2, 2, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def portal(engine):
    portal = portal_config()
    with engine.begin() as c:
        register_portal(c, portal)
    return portal


def a_sync(engine, started_at: datetime, *, succeeded: bool | None = True, run_id=None) -> None:
    """A sync run through warehouse/sync_runs.py, its start moved to `started_at`;
    `succeeded=None` leaves it running (as a run whose worker died does)."""
    run_id = run_id or f"run-{started_at.timestamp()}-{succeeded}"
    with engine.begin() as c:
        start_sync(c, "acme", run_id, started_at)
        c.execute(
            update(m.sync_runs).where(m.sync_runs.c.run_id == run_id).values(started_at=started_at)
        )
        if succeeded is not None:
            finish_sync(c, "acme", run_id, succeeded=succeeded)


@pytest.mark.parametrize("started", [TICK, TICK + 5 * MINUTE])
def test_a_sync_started_at_or_after_the_tick_lets_the_close_go_on(engine, portal, started):
    a_sync(engine, TICK - timedelta(days=1))
    a_sync(engine, started)
    require_synced_since(engine, "acme", JULY, TICK, run_id="close-1")
    with engine.connect() as c:
        assert read_events(c, "acme") == [] and refused_closes(c) == []


@pytest.mark.parametrize(
    ("syncs", "last"),
    [
        ([], None),  # never synced
        ([(TICK - timedelta(days=1), True), (TICK + MINUTE, False)], TICK - timedelta(days=1)),
        ([(TICK - timedelta(seconds=1), True)], TICK - timedelta(seconds=1)),  # before the tick
        ([(TICK - timedelta(days=1), True), (TICK + MINUTE, None)], TICK - timedelta(days=1)),
    ],
    ids=["no sync", "failed sync", "older sync", "sync still running"],
)
def test_without_the_nights_sync_the_close_is_refused_and_recorded(engine, portal, syncs, last):
    for started, succeeded in syncs:
        a_sync(engine, started, succeeded=succeeded)
    with pytest.raises(SyncNotFreshError) as refused:
        require_synced_since(engine, "acme", JULY, TICK, run_id="close-1")
    assert str(refused.value) == (
        "portal acme: billing period 2026-07 not closed: waits for a successful sync started at "
        f"or after 2026-08-02T02:00:00+00:00 (the night's sync); last successful sync started "
        f"{last.isoformat() if last else 'never'}. Sync (`datagate sync --portal acme`), then "
        "`datagate bill --portal acme --period 2026-07 --export`, or let the next night close it"
    )
    assert "\n" not in str(refused.value)
    with engine.connect() as c:
        (event,) = read_events(c, "acme")
        (listed,) = refused_closes(c)
    assert (event.action, event.period, event.run_id) == ("close_refused", JULY, "close-1")
    assert event.actor == "datagate (nightly close)"
    assert listed.as_json() == {
        "period": "2026-07",
        "refused_at": event.occurred_at.isoformat(),
        "waited_for_sync_since": "2026-08-02T02:00:00+00:00",
        "last_successful_sync": last.isoformat() if last else None,
    }


def test_status_lists_the_latest_refusal_until_the_period_is_closed(engine, portal):
    for tick in (TICK, TICK + timedelta(days=1)):
        with pytest.raises(SyncNotFreshError):
            require_synced_since(engine, "acme", JULY, tick, run_id=f"close-{tick.day}")
    with engine.connect() as c:
        (listed,) = refused_closes(c)
    assert listed.synced_since == "2026-08-03T02:00:00+00:00"
    a_sync(engine, TICK + timedelta(days=1, minutes=1))
    require_synced_since(engine, "acme", JULY, TICK + timedelta(days=1), run_id="close-3")
    with engine.begin() as c:
        c.execute(
            insert(m.billing_periods).values(
                portal_id="acme",
                period=JULY,
                computed_at=TICK,
                invoices=0,
                held=0,
                finalized_at=TICK + timedelta(days=1, hours=2),
            )
        )
    with engine.connect() as c:
        assert refused_closes(c) == []
        assert [e.action for e in read_events(c, "acme")] == ["close_refused"] * 2


@pytest.mark.parametrize("text", ["2026-08-02T02:00:00", "last night", ""])
def test_a_sync_tick_without_an_offset_or_not_a_time_is_refused(text):
    with pytest.raises(DatagateError, match="is not an ISO timestamp with an offset"):
        parse_sync_tick(text)


def test_a_sync_tick_keeps_its_instant():
    assert parse_sync_tick("2026-08-02T02:00:00+00:00") == TICK
    assert parse_sync_tick("2026-08-02T04:00:00+02:00") == TICK
