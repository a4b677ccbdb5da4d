"""Mirror tables written by change (warehouse/mirror.py) and when a sync is full
(warehouse/sync_runs.py), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from datagate_pipelines.warehouse.mirror import (
    content_hash,
    hashed,
    mirror_changes,
    needs_writing,
    stored_records,
)
from datagate_pipelines.warehouse.models import halo_sites, portals
from datagate_pipelines.warehouse.sync_runs import SyncMode, finish_sync, start_sync, sync_mode

T1 = datetime(2026, 11, 1, 6, tzinfo=UTC)
T2 = datetime(2026, 11, 2, 6, tzinfo=UTC)
T3 = datetime(2026, 11, 3, 6, tzinfo=UTC)


def _site(halo_id: int, name: str) -> dict:
    return {
        "halo_id": halo_id,
        "client_id": 1,
        "name": name,
        "postcode": "10001",
        "address": None,
        "inactive": False,
        "raw": {"id": halo_id, "name": name},
    }


def _mirror(connection, rows, *, seen_at, complete=True, seen_ids=None):
    hashes = hashed(rows)
    stored = stored_records(connection, halo_sites, "acme")
    changed = needs_writing(hashes, stored)
    return mirror_changes(
        connection,
        halo_sites,
        "acme",
        [r for r in rows if r["halo_id"] in changed],
        hashes=hashes,
        stored=stored,
        seen_ids=seen_ids if seen_ids is not None else [r["halo_id"] for r in rows],
        seen_at=seen_at,
        complete=complete,
    )


@pytest.fixture
def writes(engine) -> Iterator[list[str]]:
    """Every INSERT, UPDATE or DELETE the engine sends during the test."""
    sent: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    yield sent
    event.remove(engine, "before_cursor_execute", note)


def _add_portal(connection) -> None:
    connection.execute(
        portals.insert().values(
            id="acme", name="Acme", currency="USD", registered_at=T1, next_invoice_number=1001
        )
    )


def test_the_hash_changes_with_any_field_nested_ones_too():
    site = _site(1, "Main")
    assert content_hash(site) == content_hash(dict(reversed(list(site.items()))))
    assert content_hash(site) != content_hash({**site, "raw": {"id": 1, "name": "Other"}})


def test_unchanged_records_are_not_written_again(engine, writes):
    with engine.begin() as c:
        _add_portal(c)
        first = _mirror(c, [_site(1, "Main"), _site(2, "Annex")], seen_at=T1)
    assert first["inserted"] == 2 and first["unchanged"] == 0

    writes.clear()
    with engine.begin() as c:
        again = _mirror(c, [_site(1, "Main"), _site(2, "Annex")], seen_at=T2)
    assert writes == []  # nothing changed: not one statement that writes
    assert again == {
        "listed": 2,
        "rows": 0,
        "inserted": 0,
        "updated": 0,
        "unchanged": 2,
        "restored": 0,
        "deleted": 0,
    }

    with engine.begin() as c:
        changed = _mirror(c, [_site(1, "Main"), _site(2, "Annex West")], seen_at=T3)
    assert changed["updated"] == 1 and changed["unchanged"] == 1 and len(writes) == 1
    with engine.connect() as c:
        rows = {r.halo_id: r for r in c.execute(select(halo_sites))}
    assert rows[2].name == "Annex West" and rows[2].last_seen_at == T3
    assert rows[1].last_seen_at == T1  # untouched since it last changed
    assert rows[2].content_hash == content_hash(_site(2, "Annex West"))


def test_only_a_complete_listing_marks_missing_records_deleted(engine):
    with engine.begin() as c:
        _add_portal(c)
        _mirror(c, [_site(1, "Main"), _site(2, "Annex"), _site(3, "Depot")], seen_at=T1)
        # An incremental listing holds only what changed: the others are not gone.
        partial = _mirror(c, [_site(2, "Annex 2")], seen_at=T2, complete=False)
        # A complete one: 1 is still there (undecodable, but listed), 3 is gone.
        complete = _mirror(c, [_site(2, "Annex 2")], seen_at=T3, seen_ids=[1, 2])
    assert partial["deleted"] == 0 and partial["updated"] == 1
    assert complete["deleted"] == 1 and complete["rows"] == 0
    with engine.connect() as c:
        deleted = {r.halo_id: r.deleted_at for r in c.execute(select(halo_sites))}
    assert deleted == {1: None, 2: None, 3: T3}

    with engine.begin() as c:
        back = _mirror(c, [_site(2, "Annex 2"), _site(3, "Depot")], seen_at=T3, seen_ids=[1, 2, 3])
    assert back["restored"] == 1 and back["rows"] == 1  # a record back is written, unchanged


def test_a_full_sync_is_due_when_asked_for_first_and_every_full_every_days(engine):
    with engine.begin() as c:
        _add_portal(c)
        mode = sync_mode(c, "acme", requested=False, full_every_days=7, now=T1)
        assert mode == SyncMode(True, "no full sync yet")
        start_sync(c, "acme", "run-1", T1, full_every_days=7)
        finish_sync(c, "acme", "run-1", succeeded=True)
        week = T1 + timedelta(days=7)
        assert not sync_mode(c, "acme", requested=False, full_every_days=7, now=T2).full
        assert sync_mode(c, "acme", requested=True, full_every_days=7, now=T2).reason == "requested"
        due = sync_mode(c, "acme", requested=False, full_every_days=7, now=week)
        assert due.full and due.reason.startswith("scheduled: the last full sync read 2026-11-01")
        # An incremental run since does not reset the schedule; a failed full one neither.
        assert start_sync(c, "acme", "run-2", T2, full_every_days=7) == SyncMode(False)
        finish_sync(c, "acme", "run-2", succeeded=True)
        start_sync(c, "acme", "run-3", T3, full_requested=True)
        finish_sync(c, "acme", "run-3", succeeded=False)
        assert sync_mode(c, "acme", requested=False, full_every_days=7, now=week).full
