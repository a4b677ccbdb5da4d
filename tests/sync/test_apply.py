"""Customers, sites, products and agreements derived from the HaloPSA mirror."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from datagate_pipelines.config import parse_portals
from datagate_pipelines.sync import halopsa_rows as rows
from datagate_pipelines.sync.apply import (
    sync_agreements,
    sync_customers,
    sync_product_sites,
    sync_products,
    sync_sites,
)
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.mirror import mirror_snapshot
from datagate_pipelines.warehouse.portals import register_portal
from tests.sync.halo_records import bayside_tenant, line, recurring

PORTAL = """
portals:
  - id: acme
    name: Acme
    billing_start: 2026-07
    halopsa: {{client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}}
    sync: {sync}
    invoicing: {{approval: auto}}
"""
SEEN = datetime(2026, 8, 15, 2, 0, tzinfo=UTC)


def portal(sync="{}"):
    return parse_portals(PORTAL.format(sync=sync)).get("acme")


def load_mirror(connection, tenant, seen_at=SEEN):
    headers, lines = rows.decode_recurring_invoices(tenant["recurring_invoices"])
    for table, decoded in [
        (m.halo_clients, rows.decode_clients(tenant["clients"])),
        (m.halo_sites, rows.decode_sites(tenant["sites"])),
        (m.contracts, rows.decode_contracts(tenant["contracts"])),
        (m.item_groups, rows.decode_item_groups(tenant["item_groups"])),
        (m.items, rows.decode_items(tenant["items"])),
        (m.recurring_invoices, headers),
        (m.recurring_invoice_lines, lines),
    ]:
        mirror_snapshot(
            connection, table, "acme", decoded.rows, seen_ids=decoded.seen_ids, seen_at=seen_at
        )


def sync_all(engine, p, tenant=None, seen_at=SEEN):
    with engine.begin() as c:
        register_portal(c, p)
        if tenant is not None:
            load_mirror(c, tenant, seen_at)
        outcomes = {
            "customers": sync_customers(c, p.settings),
            "sites": sync_sites(c, p.settings),
            "products": sync_products(c, p.settings, as_of=seen_at.date()),
            "product_sites": sync_product_sites(c, p.settings),
            "agreements": sync_agreements(c, p.settings),
        }
    return outcomes


def table(engine, t, *cols):
    with engine.connect() as c:
        return c.execute(select(*[t.c[x] for x in cols]).order_by(*[t.c[x] for x in cols])).all()


def test_only_ticked_clients_become_customers_with_their_main_site_zip(engine):
    sync_all(engine, portal(), bayside_tenant())
    assert table(
        engine, m.customers, "halo_client_id", "name", "active", "zip", "use_site_zip_tax"
    ) == [
        (1, "Bayside Dental", True, "94107", True),
        (3, "Old Mill", False, None, True),
    ]
    assert table(engine, m.sites, "halo_site_id", "name", "zip") == [
        (10, "Main", "94107"),
        (11, "Annex", "94110-2231"),
    ]


def test_use_site_zip_tax_is_set_once_at_creation(engine):
    p = portal()
    sync_all(engine, p, bayside_tenant())
    sync_all(engine, portal("{use_site_zip_tax_for_new_customers: false}"))
    assert table(engine, m.customers, "halo_client_id", "use_site_zip_tax") == [
        (1, True),
        (3, True),
    ]


def test_opening_balance_only_when_enabled(engine):
    sync_all(engine, portal(), bayside_tenant())
    assert table(engine, m.customers, "opening_balance")[0] == (None,)
    sync_all(engine, portal("{synchronize_opening_balance: true}"))
    assert table(engine, m.customers, "halo_client_id", "opening_balance", "opening_balance_date")[
        0
    ] == (
        1,
        Decimal("120.50"),
        date(2026, 1, 1),
    )


def test_update_site_off_leaves_existing_sites_alone(engine):
    tenant = bayside_tenant()
    sync_all(engine, portal(), tenant)
    tenant["sites"][0]["name"] = "Main (renamed)"
    with engine.begin() as c:
        load_mirror(c, tenant)
    sync_all(engine, portal("{update_site: false}"))
    assert table(engine, m.sites, "name")[1] == ("Main",)
    sync_all(engine, portal())
    assert ("Main (renamed)",) in table(engine, m.sites, "name")


def test_products_from_lines_with_rejects_for_unknown_items_and_unticked_clients(engine):
    outcome = sync_all(engine, portal(), bayside_tenant())["products"]
    assert table(
        engine, m.products, "product_id", "qty", "unit_price", "start_date", "end_date", "site_id"
    ) == [
        ("line:1", Decimal("10.0000"), Decimal("24.9500"), date(2026, 3, 1), None, 10),
        ("line:2", Decimal("2.0000"), Decimal("39.9900"), date(2026, 7, 15), None, 11),
        ("line:3", Decimal("1.0000"), Decimal("15.0000"), date(2026, 8, 20), None, 11),
        ("line:4", Decimal("1.0000"), Decimal("9.9900"), date(2025, 1, 1), date(2026, 8, 10), 10),
    ]
    reasons = {(r.record_id, r.field): r.reason for r in outcome.rejects}
    assert reasons == {
        ("5", "_itemid"): "unknown item 99: not in HaloPSA's item list",
        ("6", "client_id"): "client 2 is not a Datagate customer (not ticked, or unknown)",
    }
    assert len(table(engine, m.product_sites, "product_id")) == 4


@pytest.mark.parametrize(
    ("sync", "expected"),
    [
        ("{contract_types: [Telecom]}", ["line:1", "line:2"]),
        ("{contract_types: [2]}", ["line:3"]),
        ("{item_groups: [Voice]}", ["line:1", "line:2"]),
        ("{item_groups: [2, Hardware]}", ["line:3", "line:4"]),
        ("{contract_types: [telecom, 2], item_groups: [1]}", ["line:1", "line:2"]),
    ],
)
def test_contract_type_and_item_group_filters(engine, sync, expected):
    sync_all(engine, portal(sync), bayside_tenant())
    assert [r[0] for r in table(engine, m.products, "product_id")] == expected


def test_product_sync_disabled_imports_nothing(engine):
    outcome = sync_all(engine, portal("{enable_product_sync: false}"), bayside_tenant())
    assert table(engine, m.products, "product_id") == []
    assert outcome["products"].counts == {"skipped_product_sync_disabled": 1}


def test_inactive_and_vanished_lines_are_end_dated_never_deleted(engine):
    tenant = bayside_tenant()
    sync_all(engine, portal(), tenant)
    later = datetime(2026, 9, 3, 2, 0, tzinfo=UTC)
    lines = tenant["recurring_invoices"][0]["lines"]
    lines[0]["isinactive"] = True
    del lines[1]
    sync_all(engine, portal(), tenant, seen_at=later)
    got = {r[0]: r[1:] for r in table(engine, m.products, "product_id", "end_date", "ended_reason")}
    assert got["line:1"] == (date(2026, 9, 3), "line inactive in HaloPSA (seen 2026-09-03)")
    assert got["line:2"] == (date(2026, 9, 3), "line removed from HaloPSA (seen 2026-09-03)")
    # A later sync does not move the end date it set.
    sync_all(engine, portal(), tenant, seen_at=datetime(2026, 9, 20, tzinfo=UTC))
    assert {r[0]: r[1] for r in table(engine, m.products, "product_id", "end_date")}[
        "line:1"
    ] == date(2026, 9, 3)


def test_unsupported_billing_cycle_is_kept_for_billing_to_reject(engine):
    tenant = bayside_tenant()
    tenant["recurring_invoices"].append(
        recurring(-96, 1, [line(7, 50, 1, 5, start="2026-07-01T00:00:00")], period=4)
    )
    sync_all(engine, portal(), tenant)
    cycles = dict(table(engine, m.products, "product_id", "billing_cycle"))
    assert cycles["line:1"] == "monthly" and cycles["line:7"] == "halopsa period 4"


def test_default_agreement_exports_against_the_lowest_imported_contract(engine):
    sync_all(engine, portal(), bayside_tenant())
    assert table(engine, m.agreements, "agreement_key", "kind", "halo_export_contract_id") == [
        ("customer:1", "default", 100)
    ]


def test_one_agreement_per_contract_plus_no_contract(engine):
    sync_all(engine, portal("{use_default_agreement: false}"), bayside_tenant())
    assert table(
        engine, m.agreements, "agreement_key", "kind", "contract_id", "halo_export_contract_id"
    ) == [
        ("contract:100", "contract", 100, 100),
        ("contract:101", "contract", 101, 101),
        ("customer:1:no-contract", "no_contract", None, None),
    ]


def test_a_second_derivation_of_an_unchanged_mirror_writes_nothing(engine):
    tenant = bayside_tenant()
    first = sync_all(engine, portal(), tenant)
    assert first["customers"].counts["written"] == 2 and first["products"].counts["written"] == 4
    again = sync_all(engine, portal())
    assert again["customers"].counts["written"] == 0
    assert again["sites"].counts["sites_written"] == 0
    assert again["products"].counts["written"] == 0
    assert again["product_sites"].counts == {"product_sites": 4, "written": 0, "removed": 0}

    tenant["sites"][1]["name"] = "Annex (renamed)"
    with engine.begin() as c:
        load_mirror(c, tenant)
    changed = sync_all(engine, portal())
    assert changed["sites"].counts["sites_written"] == 1
    assert changed["customers"].counts["written"] == 0
    assert ("Annex (renamed)",) in table(engine, m.sites, "name")
