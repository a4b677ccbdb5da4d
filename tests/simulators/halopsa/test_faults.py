"""HaloPSA simulator: every fault switch, from Python and from /_sim/faults."""

from __future__ import annotations

import time

import httpx
import pytest

from datagate_simulators.halopsa.generator import bayside_dental
from datagate_simulators.halopsa.testing import HaloSim, make_sim


@pytest.fixture
def sim() -> HaloSim:
    sim = make_sim()
    sim.backend.load("Client", [{"name": f"Client {n:03d}"} for n in range(1, 26)])
    return sim


@pytest.fixture
def http(sim: HaloSim):
    with sim.authed_client() as client:
        yield client


def page(http: httpx.Client, path: str, number: int, size: int = 10, **params) -> dict:
    return http.get(
        path, params={"pageinate": "true", "page_size": size, "page_no": number, **params}
    ).json()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_next_requests_fail(sim: HaloSim, http: httpx.Client, status: int) -> None:
    sim.faults.fail_next(2, status, path_prefix="/api/client")
    responses = [http.get("/api/Client") for _ in range(3)]
    assert [r.status_code for r in responses] == [status, status, 200]
    if status == 500:
        assert (
            responses[0].json()["ClassName"] == "System.Exception"
        )  # the .NET shape HAPI parses (§5)


def test_injected_429_looks_like_halos(sim: HaloSim, http: httpx.Client) -> None:
    sim.faults.fail_next(1, 429)
    response = http.get("/api/Client")
    assert response.status_code == 429 and response.text.startswith("Rate Limit Reached - ")
    assert http.get("/_sim/stats").json()["rate_limited"] == 1


def test_slow_responses(sim: HaloSim, http: httpx.Client) -> None:
    sim.faults.delay_next(1, 0.3)
    started = time.monotonic()
    assert http.get("/api/Client").status_code == 200
    assert time.monotonic() - started >= 0.3
    sim.faults.delay_next(1, 2)
    with pytest.raises(httpx.ReadTimeout):
        http.get("/api/Client", timeout=0.1)


def test_dropped_connections_in_process_and_over_loopback(sim: HaloSim, http: httpx.Client) -> None:
    sim.faults.drop_next(1)
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/api/Client")
    assert http.get("/api/Client").status_code == 200
    with (
        sim.serve() as server,
        httpx.Client(base_url=server.base_url, headers=http.headers) as remote,
    ):
        http.post("/_sim/faults", json={"kind": "drop", "count": 1, "path_prefix": "/api"})
        with pytest.raises(httpx.RemoteProtocolError):
            remote.get("/api/Client")
        assert remote.get("/api/Client").status_code == 200


def test_malformed_missing_field(sim: HaloSim, http: httpx.Client) -> None:
    sim.backend.malform_rows("client", "missing_field", "name", count=1)
    rows = page(http, "/api/Client", 1)["clients"]
    assert "name" not in rows[0] and "name" in rows[1]
    assert "name" in page(http, "/api/Client", 1)["clients"][0]  # used up


def test_malformed_wrong_type_reaches_into_lines(sim: HaloSim, http: httpx.Client) -> None:
    fixture = bayside_dental(sim.backend)
    http.post(
        "/_sim/faults",
        json={
            "kind": "malformed_rows",
            "resource": "RecurringInvoice",
            "mode": "wrong_type",
            "field": "lines.qty_order",
            "rows": "all",
        },
    )
    rows = http.get("/api/RecurringInvoice", params={"includelines": "true"}).json()["invoices"]
    assert {type(line["qty_order"]) for row in rows for line in row["lines"]} == {str}
    assert [r["id"] for r in rows] == [
        fixture.recurring_invoice_id - 1,
        fixture.recurring_invoice_id,
    ]  # -2, -1: id order
    assert rows[1]["lines"][0]["qty_order"] == "12.0"
    stored = http.get(f"/api/RecurringInvoice/{fixture.recurring_invoice_id}").json()["lines"][0][
        "qty_order"
    ]
    assert stored == 12.0  # only the response was spoiled


def test_malformed_duplicate_id_across_pages(sim: HaloSim, http: httpx.Client) -> None:
    first = page(http, "/api/Client", 1)["clients"]
    sim.backend.malform_rows("Client", "duplicate_id")
    second = page(http, "/api/Client", 2)["clients"]
    assert second[0]["id"] == first[-1]["id"] and len(second) == 11


def test_records_deleted_between_pages(sim: HaloSim, http: httpx.Client) -> None:
    """After page 1, 5 records vanish: a naive pager skips rows and record_count drops."""
    sim.backend.delete_between_pages("Client", after_page=1, records=5)
    first = page(http, "/api/Client", 1)
    second = page(http, "/api/Client", 2)
    assert first["record_count"] == 25 and second["record_count"] == 20
    assert second["clients"][0]["id"] == first["clients"][-1]["id"] + 6  # five rows never seen


def test_records_added_between_pages(sim: HaloSim, http: httpx.Client) -> None:
    http.post(
        "/_sim/faults",
        json={"kind": "add_between_pages", "resource": "client", "after_page": 2, "records": 3},
    )
    counts = [page(http, "/api/Client", n)["record_count"] for n in (1, 2, 3, 4)]
    assert counts == [25, 25, 28, 28]
    assert page(http, "/api/Client", 3)["clients"][-1]["name"].endswith("(added 3)")


def test_custom_page_hook(sim: HaloSim, http: httpx.Client) -> None:
    seen: list[int] = []
    sim.backend.after_page("Client", 1, lambda backend: seen.append(backend.count("Client")))
    page(http, "/api/Client", 1)
    page(http, "/api/Client", 1)
    assert seen == [25]


def test_fault_listing_and_reset(sim: HaloSim, http: httpx.Client) -> None:
    http.post("/_sim/faults", json=[{"kind": "malformed_rows", "resource": "Client", "mode": "missing_field", "field": "name"},
                                    {"kind": "delete_between_pages", "resource": "Client"}, {"kind": "status", "count": 5, "status": 503, "path_prefix": "/api/item"},
                                    {"kind": "token_lifetime", "seconds": 1}])  # fmt: skip
    listing = http.get("/_sim/faults").json()
    assert (
        len(listing["faults"]) == 1
        and len(listing["halopsa"]["malformed_rows"]) == 1
        and len(listing["halopsa"]["page_hooks"]) == 1
    )
    http.post("/_sim/reset")
    listing = http.get("/_sim/faults").json()
    assert listing == {
        "faults": [],
        "halopsa": {"malformed_rows": [], "page_hooks": [], "ignored_change_filters": []},
    }
    assert sim.backend.oauth.tokens.actual_lifetime is None
    assert http.get("/api/Item").status_code == 200
    bad = http.post(
        "/_sim/faults", json={"kind": "malformed_rows", "resource": "Client", "mode": "sideways"}
    )
    assert bad.status_code == 400
