"""The portal_sync job against the HaloPSA simulator over loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import func, select

from datagate_pipelines.orchestration.launch import RunFailedError, run_sync
from datagate_pipelines.warehouse import models as m


def count(engine, table, *where):
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def materialization(instance, run_id, asset):
    records = instance.get_records_for_run(
        run_id, of_type=__import__("dagster").DagsterEventType.ASSET_MATERIALIZATION
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event.asset_key.to_user_string() == asset:
            return event.step_materialization_data.materialization.metadata
    raise AssertionError(f"no materialization of {asset}")


def test_sync_mirrors_every_entity_and_derives_the_catalog(engine, halo_stack, instance):
    outcome = run_sync(instance, "acme")
    backend = halo_stack.sim.backend
    assert count(engine, m.halo_clients) == backend.count("Client")
    assert count(engine, m.halo_sites) == backend.count("Site")
    assert count(engine, m.contracts) == backend.count("ClientContract")
    assert count(engine, m.recurring_invoices) == backend.count("RecurringInvoice")
    assert count(engine, m.items) == backend.count("Item")
    ticked = count(engine, m.halo_clients, m.halo_clients.c.opted_in.is_(True))
    assert count(engine, m.customers) == ticked > 0
    assert count(engine, m.products) > 0 and count(engine, m.agreements) > 0

    clients = materialization(instance, outcome.run_id, "halo_clients")
    assert clients["rate_limited_429s"].value == 0
    assert clients["rejects"].value == 0
    assert (
        materialization(instance, outcome.run_id, "agreements")["last_successful_sync"] is not None
    )
    with engine.connect() as c:
        assert c.execute(select(m.portals.c.last_successful_sync_at)).scalar_one() is not None
        logged = c.execute(select(m.api_requests)).all()
    assert logged and all(r.portal_id == "acme" and r.run_id == outcome.run_id for r in logged)
    # Pages: never more than needed — one per 100 rows (the server's cap) — and one token.
    client_pages = [r for r in logged if r.method == "GET" and r.path == "/api/Client"]
    assert len(client_pages) == max(1, math.ceil(backend.count("Client") / 100))
    assert [r.path for r in logged].count("/auth/token") == 1
    assert not any("acme-secret-value" in str(tuple(r)) for r in logged)


@pytest.mark.slow
def test_a_full_sync_marks_vanished_records_deleted(engine, halo_stack, instance):
    run_sync(instance, "acme")
    backend = halo_stack.sim.backend
    victim = backend.list("Site").rows[0]["id"]
    backend.delete("Site", victim)
    run_sync(instance, "acme", full=True)
    with engine.connect() as c:
        row = c.execute(
            select(m.halo_sites.c.deleted_at).where(m.halo_sites.c.halo_id == victim)
        ).one()
    assert row.deleted_at is not None


def test_bad_credentials_fail_the_run_with_a_clear_reason(
    engine, halo_stack, instance, monkeypatch
):
    monkeypatch.setenv("ACME_HALO_CLIENT_SECRET", "wrong-secret")
    with pytest.raises(RunFailedError) as info:
        run_sync(instance, "acme")
    assert "invalid_client" in str(info.value) or "401" in str(info.value)
    assert "wrong-secret" not in str(info.value)
