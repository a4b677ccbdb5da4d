"""HaloPSA simulator: list conventions (docs/halopsa-api.md §3) — paging, wrappers, filters."""

from __future__ import annotations

import httpx
import pytest

from datagate_simulators.halopsa.generator import bayside_dental
from datagate_simulators.halopsa.testing import HaloSim, make_sim


def add_clients(sim: HaloSim, count: int, **extra) -> list[int]:
    return sim.backend.load(
        "Client", [{"name": f"Client {n:04d}", **extra} for n in range(1, count + 1)]
    )


@pytest.fixture
def sim() -> HaloSim:
    return make_sim()


@pytest.fixture
def http(sim: HaloSim):
    with sim.authed_client() as client:
        yield client


def collect(
    http: httpx.Client, path: str, page_size: int, **params
) -> tuple[list[dict], list[int]]:
    """Page the way a careful client does: stop at record_count or an empty page (§3.3)."""
    rows: list[dict] = []
    lengths: list[int] = []
    page = 1
    while True:
        body = http.get(
            path, params={"pageinate": "true", "page_size": page_size, "page_no": page, **params}
        ).json()
        lengths.append(len(body[next(k for k in body if isinstance(body[k], list))]))
        rows += body[next(k for k in body if isinstance(body[k], list))]
        if not lengths[-1] or len(rows) >= body["record_count"]:
            return rows, lengths
        page += 1


def test_page_is_capped_at_100_even_when_1000_asked(sim: HaloSim, http: httpx.Client) -> None:
    """§3.3 [R] HAPI #90: page_size=1000 gives 100 rows; record_count is the total."""
    add_clients(sim, 250)
    body = http.get(
        "/api/Client", params={"pageinate": "true", "page_size": 1000, "page_no": 1}
    ).json()
    assert len(body["clients"]) == 100
    assert body["record_count"] == 250
    assert body["page_size"] == 100  # the size actually served
    # A client that trusts the requested size stops after one page and loses 150 rows.
    rows, lengths = collect(http, "/api/Client", 1000)
    assert lengths == [100, 100, 50]
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(
        {r["id"] for r in rows}
    ) == 250


def test_page_cap_is_configurable() -> None:
    sim = make_sim(page_cap=10)
    add_clients(sim, 25)
    with sim.authed_client() as http:
        assert (
            len(
                http.get("/api/client", params={"pageinate": "true", "page_size": 50}).json()[
                    "clients"
                ]
            )
            == 10
        )


def test_record_count_and_exact_multiple_of_page_size(sim: HaloSim, http: httpx.Client) -> None:
    """§3.2 [C]: record_count = total matching; the page after the last full one is empty."""
    add_clients(sim, 40)
    pages = [
        http.get("/api/Client", params={"pageinate": "true", "page_size": 20, "page_no": n}).json()
        for n in (1, 2, 3)
    ]
    assert [len(p["clients"]) for p in pages] == [20, 20, 0]
    assert {p["record_count"] for p in pages} == {40}
    assert [p["page_no"] for p in pages] == [1, 2, 3]
    assert pages[0]["clients"][0]["id"] < pages[1]["clients"][0]["id"]  # stable id order


def test_empty_list(http: httpx.Client) -> None:
    body = http.get(
        "/api/Client", params={"pageinate": "true", "page_size": 50, "page_no": 1}
    ).json()
    assert body == {"page_no": 1, "page_size": 50, "record_count": 0, "clients": []}
    assert http.get("/api/Client").json() == {"record_count": 0, "clients": []}


def test_page_size_ignored_without_pageinate(sim: HaloSim, http: httpx.Client) -> None:
    """§3.1 [R] NODEH: page_size/page_no do nothing unless pageinate=true (and no cap then)."""
    add_clients(sim, 130)
    body = http.get("/api/Client", params={"page_size": 10, "page_no": 3}).json()
    assert len(body["clients"]) == 130
    assert "page_no" not in body and body["record_count"] == 130


def test_count_without_paging(sim: HaloSim, http: httpx.Client) -> None:
    """§3.1 [C] SPEC24: count = rows to return when not paging; record_count stays the total."""
    add_clients(sim, 30)
    body = http.get("/api/Client", params={"count": 7}).json()
    assert len(body["clients"]) == 7 and body["record_count"] == 30


def test_unpaged_limit_option() -> None:
    sim = make_sim(unpaged_limit=5)
    add_clients(sim, 8)
    with sim.authed_client() as http:
        assert len(http.get("/api/Client").json()["clients"]) == 5


def test_default_page_size_when_pageinate_alone(sim: HaloSim, http: httpx.Client) -> None:
    add_clients(sim, 60)
    assert len(http.get("/api/Client", params={"pageinate": "true"}).json()["clients"]) == 50


def test_idonly(sim: HaloSim, http: httpx.Client) -> None:
    """§3.1 [C] SPEC24: idonly returns ids only (paging does not apply)."""
    ids = add_clients(sim, 120)
    body = http.get(
        "/api/Client", params={"idonly": "true", "pageinate": "true", "page_size": 10}
    ).json()
    assert body["clients"] == [{"id": i} for i in ids]


def test_inactive_filter(sim: HaloSim, http: httpx.Client) -> None:
    """§3.1 [C]: includeinactive / includeactive / activeinactive."""
    add_clients(sim, 3)
    add_clients(sim, 2, inactive=True)
    assert http.get("/api/Client").json()["record_count"] == 3
    assert http.get("/api/Client", params={"includeinactive": "true"}).json()["record_count"] == 5
    assert (
        http.get(
            "/api/Client", params={"includeinactive": "true", "includeactive": "false"}
        ).json()["record_count"]
        == 2
    )
    assert (
        http.get("/api/Client", params={"activeinactive": "true,true"}).json()["record_count"] == 5
    )


def test_search_order_and_orderdesc(sim: HaloSim, http: httpx.Client) -> None:
    sim.backend.load(
        "Client", [{"name": n} for n in ("beta dental", "Alpha Dental", "Gamma Realty")]
    )
    assert [
        c["name"] for c in http.get("/api/Client", params={"search": "DENTAL"}).json()["clients"]
    ] == ["beta dental", "Alpha Dental"]
    names = [c["name"] for c in http.get("/api/Client", params={"order": "name"}).json()["clients"]]
    assert names == ["Alpha Dental", "beta dental", "Gamma Realty"]  # case-insensitive collation
    names = [
        c["name"]
        for c in http.get("/api/Client", params={"order": "name", "orderdesc": "true"}).json()[
            "clients"
        ]
    ]
    assert names == ["Gamma Realty", "beta dental", "Alpha Dental"]


def test_bad_parameter_is_400(http: httpx.Client) -> None:
    response = http.get("/api/Client", params={"pageinate": "true", "page_size": "many"})
    assert response.status_code == 400
    assert "page_size" in response.json()


def test_paths_are_case_insensitive(sim: HaloSim, http: httpx.Client) -> None:
    """§2 [C]: /client, /Client, /api/recurringinvoice … all work."""
    add_clients(sim, 1)
    for path in ("/api/client", "/API/CLIENT", "/api/Client"):
        assert http.get(path).json()["record_count"] == 1
    assert http.get("/api/nosuchthing").status_code == 404


WRAPPED = {
    "Client": "clients",
    "Site": "sites",
    "ClientContract": "contracts",
    "Item": "items",
    "Invoice": "invoices",
    "RecurringInvoice": "invoices",
}


@pytest.mark.parametrize(("resource", "key"), sorted(WRAPPED.items()))
def test_wrapper_keys(sim: HaloSim, http: httpx.Client, resource: str, key: str) -> None:
    """§3.2 [C]: clients, sites, contracts, items, invoices (Invoice and RecurringInvoice)."""
    bayside_dental(sim.backend)
    body = http.get(f"/api/{resource}").json()
    assert set(body) == {"record_count", key}


@pytest.mark.parametrize("resource", ["Tax", "FieldInfo", "AssetGroup", "ItemGroup"])
def test_plain_array_lists(sim: HaloSim, http: httpx.Client, resource: str) -> None:
    """§3.2 [I]: no documented wrapper → a plain JSON array."""
    bayside_dental(sim.backend)
    body = http.get(f"/api/{resource}").json()
    assert isinstance(body, list) and body and all("id" in row for row in body)


def test_lines_only_with_includelines_but_always_on_get(sim: HaloSim, http: httpx.Client) -> None:
    """§4.4 [C] SPEC24: includelines is needed to get lines in list rows."""
    fixture = bayside_dental(sim.backend)
    row = http.get("/api/RecurringInvoice", params={"client_id": fixture.client_id}).json()[
        "invoices"
    ][0]
    assert "lines" not in row
    row = http.get(
        "/api/RecurringInvoice", params={"client_id": fixture.client_id, "includelines": "true"}
    ).json()["invoices"][0]
    assert len(row["lines"]) == 6
    assert len(http.get(f"/api/RecurringInvoice/{row['id']}").json()["lines"]) == 6


def test_custom_fields_in_list_rows_only_when_asked(sim: HaloSim, http: httpx.Client) -> None:
    """§3.1 [C] SPEC25: include_custom_fields=<ids> puts those values in list rows."""
    fixture = bayside_dental(sim.backend)
    field_id = fixture.catalog.datagate_field_id
    rows = http.get("/api/Client").json()["clients"]
    assert all("customfields" not in r for r in rows)
    rows = http.get("/api/Client", params={"include_custom_fields": str(field_id)}).json()[
        "clients"
    ]
    ticked = {r["name"]: r["customfields"][0]["value"] for r in rows}
    assert ticked == {"Bayside Dental": True, "Harbor Realty": False}
    assert {cf["name"] for r in rows for cf in r["customfields"]} == {"CFDatagate"}


def test_site_filters_and_addresses(sim: HaloSim, http: httpx.Client) -> None:
    fixture = bayside_dental(sim.backend)
    body = http.get("/api/Site", params={"client_id": fixture.client_id}).json()
    assert [s["id"] for s in body["sites"]] == [fixture.main_site_id, fixture.annex_site_id]
    assert "delivery_address" not in body["sites"][0]
    body = http.get(
        "/api/Site", params={"client_id": fixture.client_id, "includeaddress": "true"}
    ).json()
    assert [s["delivery_address"]["postcode"] for s in body["sites"]] == ["94107", "94107-1234"]


def test_contract_and_site_filters_on_recurring_invoices(sim: HaloSim, http: httpx.Client) -> None:
    fixture = bayside_dental(sim.backend)
    body = http.get("/api/RecurringInvoice", params={"contract_id": fixture.contract_id}).json()
    assert [r["id"] for r in body["invoices"]] == [fixture.recurring_invoice_id]
    body = http.get("/api/RecurringInvoice", params={"site_id": fixture.annex_site_id}).json()
    assert body["record_count"] == 1  # matched through a line's site
    body = http.get("/api/RecurringInvoice", params={"client_id": fixture.other_client_id}).json()
    assert body["record_count"] == 1 and body["invoices"][0]["client_id"] == fixture.other_client_id


def test_items_filters(sim: HaloSim, http: httpx.Client) -> None:
    catalog = bayside_dental(sim.backend).catalog
    voice = catalog.asset_groups["Voice"]
    items = http.get("/api/Item", params={"assetgroup_id": voice}).json()["items"]
    assert items and {i["assetgroup_name"] for i in items} == {"Voice"}
    hardware = http.get(
        "/api/Item",
        params={"assetgroups": str(catalog.asset_groups["Hardware"]), "recurringonly": "true"},
    ).json()["items"]
    assert [i["name"] for i in hardware] == ["Phone Rental"]


@pytest.mark.slow
def test_paging_a_large_tenant_is_fast(sim: HaloSim, http: httpx.Client) -> None:
    """50,000 lines paged at 100 headers a page (with lines) stays quick (id index, cached order)."""
    from datagate_simulators.halopsa.generator import generate_tenant

    tenant = generate_tenant(sim.backend, customers=5000, seed=3)
    assert tenant.counts["lines"] > 45_000
    import time

    started = time.monotonic()
    rows, _ = collect(http, "/api/RecurringInvoice", 100, includelines="true")
    assert len(rows) == tenant.counts["recurring_invoices"]
    assert sum(len(r["lines"]) for r in rows) == tenant.counts["lines"]
    assert time.monotonic() - started < 10


def test_clients_and_sites_filter_by_change_date_unless_told_to_ignore_it(
    sim: HaloSim, http: httpx.Client
) -> None:
    old, touched = add_clients(sim, 2)
    sim.backend.upsert("Client", [{"id": old, "name": "Old"}], now="2026-11-01T06:00:00")
    sim.backend.upsert("Client", [{"id": touched, "name": "New"}], now="2026-12-05T09:30:00")
    site = sim.backend.create(
        "Site", {"name": "Depot", "client_id": touched}, now="2026-12-05T09:31:00"
    )
    since = {"lastupdatefromdate": "2026-12-05T09:30:00"}  # inclusive
    rows, _ = collect(http, "/api/Client", 100, **since)
    # The site made the client's main site: that wrote the client too.
    assert [(r["id"], r["alastupdate"]) for r in rows] == [(touched, "2026-12-05T09:31:00")]
    sites, _ = collect(http, "/api/Site", 100, **since)
    assert [(s["id"], s["slastupdate"]) for s in sites] == [(site["id"], "2026-12-05T09:31:00")]
    assert collect(http, "/api/Client", 100, lastupdatetodate="2026-11-02")[0][0]["id"] == old
    bad = http.get("/api/Client", params={"lastupdatefromdate": "yesterday"})
    assert bad.status_code == 400
    # A client cannot set the stamp: the server keeps it.
    sim.backend.upsert(
        "Client", [{"id": old, "alastupdate": "2030-01-01T00:00:00"}], now="2026-11-02T00:00:00"
    )
    assert sim.backend.get("Client", old)["alastupdate"] == "2026-11-02T00:00:00"

    http.post("/_sim/faults", json={"kind": "ignore_change_filters", "resources": ["Client"]})
    assert len(collect(http, "/api/Client", 100, **since)[0]) == 2  # the whole list, silently
    assert len(collect(http, "/api/Site", 100, **since)[0]) == 1  # Site still filters
    http.post("/_sim/reset")
    assert len(collect(http, "/api/Client", 100, **since)[0]) == 1
