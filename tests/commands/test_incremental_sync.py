"""Incremental sync as an operator runs it: `datagate sync [--full]` against the HaloPSA
simulator over loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from datagate_pipelines.warehouse import models as m

# No overlap: the generated tenant's records are all older than the first sync, so an
# incremental read brings exactly the records a test changes.
NO_OVERLAP = "{incremental_overlap_minutes: 0}"


def sync(cli, *flags: str) -> str:
    code, out = cli("sync", "--portal", "acme", *flags)
    assert code == 0, out
    return re.search(r"portal_sync run (\S+) succeeded", out).group(1)


def sync_run(engine, run_id: str):
    with engine.connect() as c:
        return c.execute(select(m.sync_runs).where(m.sync_runs.c.run_id == run_id)).one()


def filtered_calls(engine, run_id: str, path: str) -> list[dict]:
    """The run's GETs of `path` that carried a change filter."""
    with engine.connect() as c:
        queries = c.execute(
            select(m.api_requests.c.query).where(
                m.api_requests.c.run_id == run_id, m.api_requests.c.path == path
            )
        ).scalars()
        return [q for q in queries if q and "lastupdatefromdate" in q]


@pytest.mark.slow
def test_syncs_between_full_ones_read_what_changed_and_the_full_one_finds_deletions(
    cli, engine, halo_stack
):
    halo_stack.configure(sync=NO_OVERLAP)
    first = sync(cli)
    assert (
        sync_run(engine, first).full and sync_run(engine, first).full_reason == "no full sync yet"
    )
    backend = halo_stack.sim.backend
    client = backend.list("Client").rows[0]
    backend.upsert("Client", [{"id": client["id"], "name": "Renamed Holdings"}])
    gone = backend.list("Site").rows[-1]["id"]
    backend.delete("Site", gone)

    def deleted_at():
        with engine.connect() as c:
            return c.execute(
                select(m.halo_sites.c.deleted_at).where(m.halo_sites.c.halo_id == gone)
            ).scalar_one()

    second = sync(cli)
    run = sync_run(engine, second)
    assert not run.full
    assert run.reads["halo_clients"] == {
        "kind": "incremental",
        "records": 1,
        "cutoff": sync_run(engine, first).data_as_of.isoformat(),
        "reason": None,
    }
    assert run.reads["halo_sites"]["kind"] == "incremental"
    assert run.reads["halo_sites"]["records"] == 0
    # Lists without a change filter are read whole, and written only where they changed.
    assert run.reads["halo_contracts"] == {
        "kind": "full",
        "records": backend.count("ClientContract"),
        "cutoff": None,
        "reason": "no change filter for this list",
    }
    assert len(filtered_calls(engine, second, "/api/Client")) == 1
    with engine.connect() as c:
        renamed = c.execute(
            select(m.halo_clients.c.name).where(m.halo_clients.c.halo_id == client["id"])
        ).scalar_one()
        rewritten = set(
            c.execute(
                select(m.contracts.c.client_id).where(m.contracts.c.last_seen_at == run.data_as_of)
            ).scalars()
        )
        contracts = c.execute(select(m.contracts.c.client_id)).scalars().all()
    assert renamed == "Renamed Holdings"
    # Only the renamed client's contracts changed (their rows carry client_name).
    assert rewritten == {client["id"]} and len(contracts) > contracts.count(client["id"])
    assert deleted_at() is None  # a deleted record is not in a list of changes

    full = sync(cli, "--full")
    run = sync_run(engine, full)
    assert run.full and run.full_reason == "requested"
    assert deleted_at() == run.data_as_of


@pytest.mark.slow
def test_an_ignored_filter_falls_back_and_stays_off_until_a_full_sync(cli, engine, halo_stack):
    halo_stack.configure(sync=NO_OVERLAP)
    sync(cli)
    backend = halo_stack.sim.backend
    backend.ignore_change_filters("Client")  # as Halo does with a parameter it does not know

    fell_back = sync(cli)
    reads = sync_run(engine, fell_back).reads
    assert reads["halo_clients"]["kind"] == "fallback"
    assert reads["halo_clients"]["records"] == backend.count("Client")
    assert reads["halo_clients"]["reason"].startswith("HaloPSA ignored Client?lastupdatefromdate=")
    assert reads["halo_sites"]["kind"] == "incremental"  # the other list is unaffected
    code, out = cli("portals", "status", "--json")
    assert code == 0
    (status,) = json.loads(out)
    assert status["incremental_off"] == {"halo_clients": reads["halo_clients"]["reason"]}
    code, out = cli("portals", "status")
    assert "incremental off for halo_clients until a full sync: HaloPSA ignored" in out

    # Sticky: the next sync does not try the filter again.
    stuck = sync(cli)
    clients = sync_run(engine, stuck).reads["halo_clients"]
    assert clients["kind"] == "full" and clients["reason"].startswith(
        "incremental off until a full sync: HaloPSA ignored"
    )
    assert filtered_calls(engine, stuck, "/api/Client") == []

    full = sync(cli, "--full")
    run = sync_run(engine, full)
    assert run.full and run.full_reason == "requested"
    assert {r["kind"] for r in run.reads.values()} == {"full"}
    code, out = cli("portals", "status", "--json")
    assert (
        code == 0 and json.loads(out)[0]["incremental_off"] == {}
    )  # tried again from the next sync
