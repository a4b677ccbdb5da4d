"""Mirroring a HaloPSA listing: upsert, never hard-delete, keep undecodable records."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select

from datagate_pipelines.warehouse.mirror import mirror_snapshot
from datagate_pipelines.warehouse.models import halo_sites, portals

T1 = datetime(2026, 8, 1, 2, 0, tzinfo=UTC)
T2 = datetime(2026, 8, 2, 2, 0, tzinfo=UTC)
T3 = datetime(2026, 8, 3, 2, 0, tzinfo=UTC)


def _site(halo_id, name):
    return {
        "halo_id": halo_id,
        "client_id": 1,
        "name": name,
        "postcode": None,
        "address": None,
        "inactive": False,
        "raw": {"id": halo_id},
    }


def _state(engine):
    with engine.connect() as c:
        return {
            r.halo_id: (r.name, r.deleted_at is not None) for r in c.execute(select(halo_sites))
        }


def test_vanished_records_are_marked_deleted_and_come_back(engine):
    with engine.begin() as c:
        c.execute(
            insert(portals).values(
                id="acme", name="Acme", currency="USD", registered_at=T1, next_invoice_number=1
            )
        )
        first = mirror_snapshot(
            c, halo_sites, "acme", [_site(1, "Main"), _site(2, "Annex")], seen_ids=[], seen_at=T1
        )
    assert first == {"rows": 2, "inserted": 2, "updated": 0, "restored": 0, "deleted": 0}

    with engine.begin() as c:
        # Site 2 vanished; site 1 was listed but could not be decoded this time.
        second = mirror_snapshot(c, halo_sites, "acme", [_site(3, "New")], seen_ids=[1], seen_at=T2)
    assert second["deleted"] == 1
    assert _state(engine) == {1: ("Main", False), 2: ("Annex", True), 3: ("New", False)}

    with engine.begin() as c:
        third = mirror_snapshot(
            c,
            halo_sites,
            "acme",
            [_site(1, "Main HQ"), _site(2, "Annex"), _site(3, "New")],
            seen_ids=[],
            seen_at=T3,
        )
    assert third["restored"] == 1 and third["deleted"] == 0
    assert _state(engine) == {1: ("Main HQ", False), 2: ("Annex", False), 3: ("New", False)}
    with engine.connect() as c:
        first_seen = c.execute(
            select(halo_sites.c.first_seen_at).where(halo_sites.c.halo_id == 1)
        ).scalar_one()
    assert first_seen.replace(tzinfo=UTC) == T1


def test_a_large_listing_is_written_in_one_copy_not_a_round_trip_per_row(engine):
    """5,000 sites upserted, then changed and upserted again: every row lands, and on
    PostgreSQL the upsert travels as one COPY into a staging table and one INSERT … ON
    CONFLICT (psycopg2's executemany would send one round trip per row: seconds per 10,000
    rows; warehouse/bulk.py)."""
    with engine.begin() as c:
        c.execute(
            insert(portals).values(
                id="acme", name="Acme", currency="USD", registered_at=T1, next_invoice_number=1
            )
        )
    trips = {"execute": 0, "executemany": 0, "copy": 0}
    if engine.dialect.name == "postgresql":
        import psycopg2.extensions

        class CountingCursor(psycopg2.extensions.cursor):
            def execute(self, *args, **kwargs):
                trips["execute"] += 1
                return super().execute(*args, **kwargs)

            def executemany(self, *args, **kwargs):
                trips["executemany"] += 1
                return super().executemany(*args, **kwargs)

            def copy_expert(self, *args, **kwargs):
                trips["copy"] += 1
                return super().copy_expert(*args, **kwargs)

    rows = [_site(i, f"Site {i}") for i in range(1, 5001)]
    for seen_at, suffix in ((T1, ""), (T2, " (renamed)")):
        listing = [{**row, "name": row["name"] + suffix} for row in rows]
        with engine.begin() as c:
            if engine.dialect.name == "postgresql":
                c.connection.dbapi_connection.cursor_factory = CountingCursor
            counts = mirror_snapshot(
                c, halo_sites, "acme", listing, seen_ids=range(1, 5001), seen_at=seen_at
            )
            if engine.dialect.name == "postgresql":
                c.connection.dbapi_connection.cursor_factory = psycopg2.extensions.cursor
        assert counts["rows"] == 5000
    state = _state(engine)
    assert len(state) == 5000 and state[4321] == ("Site 4321 (renamed)", False)
    if engine.dialect.name == "postgresql":
        # Two listings of 5,000: one COPY each, plus a few single statements (the staging
        # table, the merge, the existing ids, the deletions).
        assert trips["executemany"] == 0 and trips["copy"] == 2
        assert trips["execute"] <= 20
