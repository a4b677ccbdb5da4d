"""HaloPSA simulator: the deterministic tenant generator and the Bayside Dental fixture."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date

import pytest

from datagate_simulators.halopsa import NO_DATE, HaloPSABackend, generate_tenant
from datagate_simulators.halopsa.generator import DATAGATE_FIELD, bayside_dental

AS_OF = date(2026, 7, 1)
RESOURCES = (
    "Client",
    "Site",
    "ClientContract",
    "Item",
    "AssetGroup",
    "ItemGroup",
    "Tax",
    "FieldInfo",
    "RecurringInvoice",
)


def snapshot(backend: HaloPSABackend) -> dict[str, list[dict]]:
    return {name: [backend.get(name, i) for i in backend.table(name).ids()] for name in RESOURCES}


def test_same_seed_same_tenant() -> None:
    one, two = HaloPSABackend(), HaloPSABackend()
    generate_tenant(one, customers=150, seed=42, as_of=AS_OF)
    generate_tenant(two, customers=150, seed=42, as_of=AS_OF)
    assert snapshot(one) == snapshot(two)


def test_other_seed_other_tenant() -> None:
    one, two = HaloPSABackend(), HaloPSABackend()
    generate_tenant(one, customers=50, seed=1, as_of=AS_OF)
    generate_tenant(two, customers=50, seed=2, as_of=AS_OF)
    assert [c["name"] for c in snapshot(one)["Client"]] != [
        c["name"] for c in snapshot(two)["Client"]
    ]


@pytest.fixture(scope="module")
def tenant() -> tuple[HaloPSABackend, object]:
    backend = HaloPSABackend()
    return backend, generate_tenant(backend, customers=2000, seed=7, as_of=AS_OF)


def test_customers_shape(tenant) -> None:
    backend, generated = tenant
    clients = [backend.get("Client", i) for i in generated.client_ids]
    assert len(clients) == 2000 and len({c["name"] for c in clients}) == 2000
    inactive = sum(c["inactive"] for c in clients) / len(clients)
    ticked = sum(
        next(cf["value"] for cf in c["customfields"] if cf["name"] == DATAGATE_FIELD)
        for c in clients
    ) / len(clients)
    assert 0.03 < inactive < 0.07  # ~5% inactive
    assert 0.76 < ticked < 0.84  # ~80% opted in
    assert all(c["main_site_id"] > 0 for c in clients)


def test_sites_and_zip_codes(tenant) -> None:
    backend, _ = tenant
    sites = [backend.get("Site", i) for i in backend.table("Site").ids()]
    per_client = Counter(int(s["client_id"]) for s in sites)
    assert set(per_client.values()) == {1, 2, 3}
    zips = [s["delivery_address"]["postcode"] for s in sites]
    assert any(len(z) == 10 and z[5] == "-" for z in zips)  # ZIP+4, e.g. 94107-1234
    assert any(len(z) == 5 for z in zips) and "" in zips
    zipless_clients = {
        c
        for c in per_client
        if all(not s["delivery_address"]["postcode"] for s in sites if int(s["client_id"]) == c)
    }
    assert 0.005 < len(zipless_clients) / len(per_client) < 0.04  # ~2% without any zip
    assert all(isinstance(s["client_id"], float) for s in sites)


def test_contracts_items_and_groups(tenant) -> None:
    backend, _ = tenant
    contracts = [backend.get("ClientContract", i) for i in backend.table("ClientContract").ids()]
    assert {c["contracttype_name"] for c in contracts} == {"Telecom", "Managed Services", "Project"}
    assert any(c["expired"] for c in contracts) and any(not c["active"] for c in contracts)
    items = [backend.get("Item", i) for i in backend.table("Item").ids()]
    assert {i["assetgroup_name"] for i in items} == {
        "Voice",
        "Connectivity",
        "Managed IT",
        "Hardware",
        "",
    }
    assert all(i["taxcode"] > 0 for i in items)
    assert any(not i["isrecurringitem"] for i in items)


def test_recurring_lines_cover_the_awkward_cases(tenant) -> None:
    backend, generated = tenant
    headers = [backend.get("RecurringInvoice", i) for i in backend.table("RecurringInvoice").ids()]
    assert all(h["id"] < 0 and h["period"] == 2 for h in headers)
    lines = [line for h in headers for line in h["lines"]]
    assert len(lines) == generated.counts["lines"]
    assert 15_000 < len(lines) < 25_000  # ~10 per customer
    as_of = AS_OF.isoformat()
    starts = [line["startdate"] for line in lines]
    assert any(s != NO_DATE and s[8:10] != "01" for s in starts)  # mid-month starts
    assert any(s > as_of for s in starts)  # future starts
    assert NO_DATE in starts  # no start date at all
    assert any(line["enddate"] != NO_DATE and line["enddate"] < as_of for line in lines)  # ended
    assert any(line["unit_price"] < 0 for line in lines)  # discounts
    assert any(line["qty_order"] == 0 for line in lines)
    assert 0.02 < sum(line["isinactive"] for line in lines) / len(lines) < 0.08
    assert any(line["contract_id"] == -1 for line in lines) and any(
        line["contract_id"] > 0 for line in lines
    )
    assert any(line["site"] > 0 for line in lines)


@pytest.mark.slow
def test_ten_thousand_customers_in_seconds() -> None:
    backend = HaloPSABackend()
    started = time.monotonic()
    generated = generate_tenant(backend, customers=10_000, seed=1, as_of=AS_OF)
    elapsed = time.monotonic() - started
    assert generated.counts["clients"] == 10_000
    assert generated.counts["lines"] > 90_000
    assert elapsed < 30, f"generating took {elapsed:.1f}s"


def test_generator_adds_to_an_existing_catalogue() -> None:
    backend = HaloPSABackend()
    bayside_dental(backend)
    generate_tenant(backend, customers=10, seed=1, as_of=AS_OF)
    assert backend.count("Tax") == 6 and backend.count("FieldInfo") == 3
    assert backend.count("Client") == 12


def test_bayside_dental_fixture() -> None:
    backend = HaloPSABackend()
    fixture = bayside_dental(backend, as_of=AS_OF)
    invoice = backend.get("RecurringInvoice", fixture.recurring_invoice_id)
    lines = invoice["lines"]
    assert [line["id"] for line in lines] == fixture.line_ids
    assert lines[1]["startdate"] == "2026-06-15T00:00:00"  # mid-month start
    assert lines[2]["enddate"] == "2026-06-10T00:00:00"  # ended
    assert lines[3]["startdate"] == "2026-08-01T00:00:00"  # future
    assert (
        lines[4]["unit_price"] == -25.0 and lines[5]["qty_order"] == 0.0 and lines[5]["isinactive"]
    )
    postcodes = [
        backend.get("Site", s)["delivery_address"]["postcode"]
        for s in (fixture.main_site_id, fixture.annex_site_id)
    ]
    assert postcodes == ["94107", "94107-1234"]
