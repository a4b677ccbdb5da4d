"""Suppliers and purchase orders read into the warehouse from the HaloPSA simulator, on
SQLite and PostgreSQL. Supplier list rows carry no change stamp (docs/halopsa-api.md §A1):
details are read for new or changed rows only, and again once they are a week old."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from datagate_pipelines.sync.purchasing import DETAIL_MAX_AGE, with_supplier_details
from datagate_pipelines.warehouse import models as m
from datagate_simulators.halopsa.generator import generate_purchasing
from tests.exporting.stack import (
    IN_PROCESS_URL,
    JULY,
    SEEN,
    halo_client,
    halo_sim,
    ingest_purchasing,
    portal_config,
)


def detail_gets(sim) -> int:
    return sim.stats.endpoint_count("GET", "/api/Supplier/1")


def count(engine, table, *where):
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def test_supplier_details_are_read_only_for_new_or_changed_rows(engine):
    halo = halo_sim(customers=3)
    made = generate_purchasing(halo.backend, suppliers=12, purchase_orders=10, seed=1, as_of=JULY)
    portal = portal_config(IN_PROCESS_URL, purchasing="")
    with halo_client(halo) as client:
        reads, rejects = ingest_purchasing(engine, portal, client)
    assert rejects == [] and reads.read == 12 and detail_gets(halo) == 12
    assert count(engine, m.halo_suppliers) == 12
    assert count(engine, m.halo_purchase_orders) == 10
    assert count(engine, m.halo_purchase_order_lines) == made.counts["lines"]
    with engine.connect() as c:
        stored = c.execute(select(m.halo_suppliers).order_by(m.halo_suppliers.c.halo_id)).first()
    assert stored.address and stored.list_hash and stored.detail_read_at == SEEN

    # Nothing changed: the list alone.
    with halo_client(halo) as client:
        reads, _ = ingest_purchasing(engine, portal, client, seen=SEEN + timedelta(hours=1))
    assert (reads.read, reads.reused) == (0, 12) and detail_gets(halo) == 12

    # A list field changes: that supplier's detail is read. A detail-only field changes:
    # nothing is read until the detail is a week old.
    first, second = made.supplier_ids[:2]
    halo.backend.create("Supplier", {"id": first, "email_address": "new@supplier.example"})
    halo.backend.create("Supplier", {"id": second, "accounts_id": "77"})
    with halo_client(halo) as client:
        reads, _ = ingest_purchasing(engine, portal, client, seen=SEEN + timedelta(hours=2))
    assert reads.read == 1 and detail_gets(halo) == 13
    with engine.connect() as c:
        accounts_id = c.execute(
            select(m.halo_suppliers.c.accounts_id).where(m.halo_suppliers.c.halo_id == second)
        ).scalar_one()
    assert accounts_id in (None, "")
    later = SEEN + DETAIL_MAX_AGE + timedelta(hours=1)
    with halo_client(halo) as client:
        reads, _ = ingest_purchasing(engine, portal, client, seen=later)
    assert reads.read == 11  # all but the one read two hours in
    with engine.connect() as c:
        accounts_id = c.execute(
            select(m.halo_suppliers.c.accounts_id).where(m.halo_suppliers.c.halo_id == second)
        ).scalar_one()
    assert accounts_id == "77"
    # A full sync asked for reads every detail again, however recent.
    with halo_client(halo) as client, engine.connect() as c:
        listed = list(client.suppliers())
        _, forced = with_supplier_details(client, c, portal.id, listed, now=later, full=True)
    assert (forced.read, forced.reused) == (12, 0)


def test_a_supplier_without_a_name_is_rejected_and_a_deleted_one_marked(engine):
    halo = halo_sim(customers=2)
    made = generate_purchasing(halo.backend, suppliers=4, purchase_orders=0, seed=2, as_of=JULY)
    portal = portal_config(IN_PROCESS_URL, purchasing="")
    with halo_client(halo) as client:
        ingest_purchasing(engine, portal, client)
    nameless, gone = made.supplier_ids[:2]
    record = halo.backend.table("Supplier").get(nameless)
    halo.backend.replace_record("Supplier", {**record, "name": ""})
    halo.backend.delete("Supplier", gone)
    with halo_client(halo) as client:
        _, rejects = ingest_purchasing(engine, portal, client, seen=SEEN + timedelta(hours=1))
    assert [(r.entity, r.record_id, r.field, r.reason) for r in rejects] == [
        ("supplier", str(nameless), "name", "is missing")
    ]
    with engine.connect() as c:
        rows = {r.halo_id: r for r in c.execute(select(m.halo_suppliers))}
    assert rows[gone].deleted_at is not None
    # The rejected supplier keeps what was stored (still present upstream, not deleted).
    assert rows[nameless].deleted_at is None and rows[nameless].name


def test_a_supplier_list_without_its_wrapper_is_read_whole(engine, monkeypatch):
    """§A1 [I]: the supplier list may come as a bare array, even when paged."""
    from datagate_simulators.halopsa.backend import RESOURCES

    halo = halo_sim(customers=2)
    made = generate_purchasing(halo.backend, suppliers=130, purchase_orders=0, seed=5, as_of=JULY)
    monkeypatch.setattr(RESOURCES["Supplier"], "list_key", None)
    portal = portal_config(IN_PROCESS_URL, purchasing="")
    with halo_client(halo) as client:
        assert isinstance(client._call("GET", "Supplier", params={"pageinate": "true"}), list)
        reads, rejects = ingest_purchasing(engine, portal, client)
    assert rejects == [] and reads.read == len(made.supplier_ids) == 130
    assert count(engine, m.halo_suppliers) == 130
