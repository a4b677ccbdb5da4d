"""The v3 Accounting API over HTTP, in-process (SyncASGITransport). Sources: docs/qbo-api.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from datagate_simulators.qbo import FakeClock, QBOBackend, QBOSettings, ThrottleSettings
from datagate_simulators.qbo import testing as qbo_testing

REALM = "9130350000000000"
OTHER = "4620816365000000"
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}-07:00$")


@dataclass
class Sim:
    qbo: qbo_testing.QBOSim
    clock: FakeClock
    http: httpx.Client

    @property
    def backend(self) -> QBOBackend:
        return self.qbo.backend

    @property
    def app(self) -> Any:
        return self.qbo.app

    def url(self, path: str, realm: str = REALM) -> str:
        return f"/v3/company/{realm}/{path}"

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(self.url(path), **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.http.post(self.url(path), json=body, **kw)

    def query(self, statement: str) -> httpx.Response:
        return self.get("query", params={"query": statement, "minorversion": "75"})


@contextlib.contextmanager
def make_sim(settings: QBOSettings | None = None) -> Iterator[Sim]:
    clock = FakeClock()
    qbo = qbo_testing.make_sim(
        realm_id=REALM,
        client_id="app",
        client_secret="secret",
        settings=settings,
        clock=clock,
        items=[{"Name": "Managed Services"}],
        customers=[{"DisplayName": "Acme"}],
    )
    qbo.backend.seed_company(OTHER, client_id="app", client_secret="secret")
    with qbo.authed_client(headers={"Accept": "application/json"}) as http:
        yield Sim(qbo, clock, http)


@pytest.fixture
def sim() -> Iterator[Sim]:
    with make_sim() as simulator:
        yield simulator


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert TIME_RE.match(body["time"]), body["time"]
    (error,) = body["Fault"]["Error"]
    return error


INVOICE = {
    "CustomerRef": {"value": "1"},
    "Line": [
        {
            "Amount": 100.10,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1.43, "UnitPrice": 70},
        }
    ],
}


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic abc"])
def test_missing_or_bad_bearer_is_401_3200(sim, header):
    # §7.2 / routablehq#250: AuthenticationFailed, errorCode 003200.
    headers = {"Authorization": header} if header else {}
    with sim.qbo.client(headers=headers) as client:
        response = client.get(sim.url("customer/1"))
    assert response.status_code == 401
    body = response.json()
    assert body["Fault"]["type"] == "AuthenticationFault"
    assert body["Fault"]["Error"][0]["code"] == "3200"


def test_token_for_another_company_is_403_3100(sim):
    # node-quickbooks#154: AuthorizationFailed; errorCode=003100; statusCode=403.
    response = sim.http.get(sim.url("customer/1", realm=OTHER))
    assert response.status_code == 403
    assert response.json()["Fault"]["Error"][0]["code"] == "3100"


def test_lowercase_gateway_fault_shape():
    # §7.2: {"fault":{"error":[{"message","detail","code","element":null}],"type":…}}.
    with make_sim(QBOSettings(lowercase_gateway_faults=True)) as sim:
        response = sim.http.get(sim.url("customer/1"), headers={"Authorization": "Bearer x"})
    body = response.json()
    assert body["fault"]["type"] == "AUTHENTICATION"
    assert body["fault"]["error"][0]["code"] == "3200"
    assert body["fault"]["error"][0]["element"] is None
    assert isinstance(body["time"], int)


# --------------------------------------------------------------------------- CRUD over HTTP


def test_create_read_update_envelope(sim):
    # §2: {"<Entity>": {...}, "time": "2015-08-10T11:44:02.957-07:00"}.
    created = sim.post("customer", {"DisplayName": "Beta"}, params={"minorversion": "65"})
    assert created.status_code == 200
    body = created.json()
    assert set(body) == {"Customer", "time"} and TIME_RE.match(body["time"])
    customer = body["Customer"]
    assert (customer["Id"], customer["SyncToken"]) == ("2", "0")
    assert sim.get("customer/2").json()["Customer"]["DisplayName"] == "Beta"
    # PQB: POST without ?operation with Id+SyncToken in the body is an update.
    updated = sim.post("customer", {**customer, "Notes": "n"}).json()["Customer"]
    assert updated["SyncToken"] == "1"
    # node-quickbooks: ?operation=update, sparse.
    sparse = sim.post(
        "customer",
        {"Id": "2", "SyncToken": "1", "sparse": True, "CompanyName": "Beta Ltd"},
        params={"operation": "update"},
    ).json()["Customer"]
    assert (sparse["Notes"], sparse["CompanyName"], sparse["SyncToken"]) == ("n", "Beta Ltd", "2")


def test_validation_faults_are_http_400(sim):
    # §7.2: Fault JSON, code as a string, HTTP 400 for validation.
    duplicate = sim.post("customer", {"DisplayName": "ACME"})
    assert duplicate.status_code == 400
    body = duplicate.json()
    assert body["Fault"]["type"] == "ValidationFault"
    assert body["Fault"]["Error"][0]["code"] == "6240"
    assert error_of(sim.post("invoice", {"Line": INVOICE["Line"]}))["element"] == "CustomerRef"
    missing = sim.get("invoice/999")
    assert (missing.status_code, error_of(missing)["code"]) == (400, "610")


def test_money_is_exact_on_the_wire(sim):
    # Sent as text: a Python float would already have lost the trailing zero.
    body = json.dumps(INVOICE).replace("100.1,", "100.10,")
    assert '"Amount": 100.10' in body
    response = sim.http.post(
        sim.url("invoice"), content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert '"TotalAmt":100.10' in response.text
    invoice = response.json(parse_float=Decimal)["Invoice"]
    assert invoice["Balance"] == Decimal("100.10")


def test_void_and_delete_operations(sim):
    # §2: POST /invoice?operation=void and ?operation=delete with {Id, SyncToken}.
    first = sim.post("invoice", INVOICE).json()["Invoice"]
    voided = sim.post(
        "invoice", {"Id": first["Id"], "SyncToken": "0"}, params={"operation": "void"}
    ).json()["Invoice"]
    assert (voided["TotalAmt"], voided["Balance"], voided["PrivateNote"]) == (0, 0, "Voided")
    second = sim.post("invoice", INVOICE).json()["Invoice"]
    deleted = sim.post(
        "invoice", {"Id": second["Id"], "SyncToken": "0"}, params={"operation": "delete"}
    ).json()
    assert deleted["Invoice"] == {"domain": "QBO", "status": "Deleted", "Id": second["Id"]}
    assert error_of(sim.get(f"invoice/{second['Id']}"))["code"] == "610"
    customer = sim.get("customer/1").json()["Customer"]
    refused = sim.post(
        "customer", {"Id": "1", "SyncToken": customer["SyncToken"]}, params={"operation": "delete"}
    )
    assert error_of(refused)["code"] == "500"


def test_payment_over_http_and_void_by_update(sim):
    invoice = sim.post("invoice", INVOICE).json()["Invoice"]
    payment = sim.post(
        "payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": 40,
            "Line": [{"Amount": 40, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    ).json()["Payment"]
    assert sim.get(f"invoice/{invoice['Id']}").json()["Invoice"]["Balance"] == 60.10
    sim.post(
        "payment",
        {"Id": payment["Id"], "SyncToken": "0", "sparse": True},
        params={"operation": "update", "include": "void"},
    )
    assert sim.get(f"invoice/{invoice['Id']}").json()["Invoice"]["Balance"] == 100.10


def test_preferences_companyinfo_and_taxservice(sim):
    prefs = sim.get("preferences").json()["Preferences"]
    assert prefs["SalesFormsPrefs"]["CustomTxnNumbers"] is True
    assert prefs["TaxPrefs"]["UsingSalesTax"] is True
    changed = sim.post(
        "preferences",
        {"SyncToken": prefs["SyncToken"], "sparse": True, "TaxPrefs": {"UsingSalesTax": False}},
    )
    assert changed.json()["Preferences"]["TaxPrefs"]["UsingSalesTax"] is False
    assert sim.get(f"companyinfo/{REALM}").json()["CompanyInfo"]["Country"] == "US"
    agency = sim.post("taxagency", {"DisplayName": "State Board"}).json()["TaxAgency"]
    created = sim.post(
        "taxservice/taxcode",
        {
            "TaxCode": "Metro",
            "TaxRateDetails": [
                {
                    "TaxRateName": "Metro 2%",
                    "RateValue": 2,
                    "TaxAgencyId": agency["Id"],
                    "TaxApplicableOn": "Sales",
                }
            ],
        },
    ).json()
    assert created["TaxCodeId"] and created["TaxRateDetails"][0]["TaxRateId"]
    code = sim.get(f"taxcode/{created['TaxCodeId']}").json()["TaxCode"]
    assert code["Name"] == "Metro"


def test_unknown_path_and_bad_json(sim):
    # URIs are case-sensitive (§2); unknown resource ⇒ 400 code 500 Unsupported Operation.
    response = sim.get("Customer/1")
    assert (response.status_code, error_of(response)["code"]) == (400, "500")
    bad = sim.http.post(
        sim.url("customer"), content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert error_of(bad)["code"] == "2010"


# --------------------------------------------------------------------------- query


def test_query_get_and_post(sim):
    sim.post("customer", {"DisplayName": "O'Brien & Sons"})
    sim.post("customer", {"DisplayName": "Smith:Jones"[:5] + " Jones"})
    # GET with the statement URL-encoded (§4), escaped quote, '&' inside the value.
    found = sim.query(r"select * from Customer where DisplayName = 'O\'Brien & Sons'").json()
    assert [c["DisplayName"] for c in found["QueryResponse"]["Customer"]] == ["O'Brien & Sons"]
    # POST with Content-Type application/text (PQB).
    posted = sim.http.post(
        sim.url("query"),
        content="SELECT COUNT(*) FROM Customer",
        headers={"Content-Type": "application/text"},
    )
    assert posted.json()["QueryResponse"] == {"totalCount": 3}
    empty = sim.query("select * from Customer where DisplayName = 'Nobody'").json()
    assert empty["QueryResponse"] == {} and TIME_RE.match(empty["time"])


def test_query_errors_over_http(sim):
    too_many = sim.query("select * from Customer maxresults 1001")
    assert (too_many.status_code, error_of(too_many)["code"]) == (400, "4001")
    broken = sim.query("select * from Customer where DisplayName = 'x' or Id = '1'")
    assert (broken.status_code, error_of(broken)["code"]) == (400, "4000")


def test_query_paging_past_the_end(sim):
    for n in range(4):
        sim.post("item", {"Name": f"Item {n}", "IncomeAccountRef": {"value": "1"}})
    rows = []
    start = 1
    while True:  # NODEQB-style paging: stop when a page comes back short or empty
        page = sim.query(f"select * from Item startposition {start} maxresults 2").json()
        items = page["QueryResponse"].get("Item", [])
        rows += items
        if len(items) < 2:
            break
        start += 2
    assert [i["Name"] for i in rows] == ["Managed Services", "Item 0", "Item 1", "Item 2", "Item 3"]


# --------------------------------------------------------------------------- batch


def test_batch_per_item_faults_keyed_by_bid():
    # §5: 200 overall, per-item Fault, match by bId (PQB tests/unit/test_batch.py).
    with make_sim(QBOSettings(shuffle_batch=True)) as sim:
        invoice = sim.post("invoice", INVOICE).json()["Invoice"]
        response = sim.post(
            "batch",
            {
                "BatchItemRequest": [
                    {"bId": "1", "operation": "create", "Customer": {"DisplayName": "Acme"}},
                    {"bId": "2", "operation": "create", "Customer": {"DisplayName": "Fresh"}},
                    {"bId": "3", "Query": "select * from Customer where DisplayName = 'Acme'"},
                    {
                        "bId": "4",
                        "operation": "update",
                        "optionsData": "void",
                        "Invoice": {"Id": invoice["Id"], "SyncToken": "0"},
                    },
                    {"bId": "5", "operation": "delete", "Customer": {"Id": "1", "SyncToken": "0"}},
                    {"bId": "6", "operation": "create", "Invoice": {"CustomerRef": {"value": "1"}}},
                ]
            },
        )
        assert response.status_code == 200
        results = {r["bId"]: r for r in response.json()["BatchItemResponse"]}
        assert results["1"]["Fault"]["Error"][0]["code"] == "6240"
        assert results["1"]["Fault"]["type"] == "ValidationFault"
        assert results["2"]["Customer"]["DisplayName"] == "Fresh"
        assert results["3"]["QueryResponse"]["Customer"][0]["Id"] == "1"
        assert results["4"]["Invoice"]["PrivateNote"] == "Voided"
        assert results["5"]["Fault"]["Error"][0]["code"] == "500"
        assert results["6"]["Fault"]["Error"][0]["element"] == "Line"
        stats = sim.http.get("/_sim/qbo/stats").json()["realms"][REALM]
        assert stats["batches"] == 1


def test_batch_size_limit_is_1040():
    # §5: max 30 by default (limits page), configurable.
    items = [{"bId": str(n), "Query": "select * from Term"} for n in range(31)]
    with make_sim() as sim:
        too_big = sim.post("batch", {"BatchItemRequest": items})
        assert (too_big.status_code, error_of(too_big)["code"]) == (400, "1040")
        assert sim.post("batch", {"BatchItemRequest": items[:30]}).status_code == 200
    with make_sim(QBOSettings(batch_max_items=5)) as sim:
        assert error_of(sim.post("batch", {"BatchItemRequest": items[:6]}))["code"] == "1040"


def test_batch_needs_unique_bids(sim):
    response = sim.post(
        "batch",
        {
            "BatchItemRequest": [
                {"bId": "1", "Query": "select * from Term"},
                {"bId": "1", "Query": "select * from Term"},
            ]
        },
    )
    assert response.status_code == 400


# --------------------------------------------------------------------------- requestid


def test_requestid_replays_the_first_answer(sim):
    # §7.1 (Intuit blog 2015/04/06; PQB test_create_idempotence): same requestid ⇒ same answer,
    # nothing executed again.
    first = sim.post("customer", {"DisplayName": "Once"}, params={"requestid": "req-1"})
    again = sim.post("customer", {"DisplayName": "Once"}, params={"requestid": "req-1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert len(sim.backend.company(REALM).records("Customer")) == 2
    # A fault is replayed too, even if the request would now succeed.
    dup = sim.post("customer", {"DisplayName": "Acme"}, params={"requestid": "req-2"})
    assert dup.status_code == 400
    replay = sim.post("customer", {"DisplayName": "Other"}, params={"requestid": "req-2"})
    assert (replay.status_code, replay.json()) == (400, dup.json())
    # Per company: the same requestid in another company is a different request.
    assert (
        sim.http.post(
            sim.url("customer", OTHER), json={"DisplayName": "Once"}, params={"requestid": "req-1"}
        ).status_code
        == 403
    )
    assert sim.http.get("/_sim/qbo/stats").json()["realms"][REALM]["replayed"] == 2


def test_requestid_length_limits(sim):
    assert (
        sim.post("customer", {"DisplayName": "X"}, params={"requestid": "r" * 50}).status_code
        == 200
    )
    too_long = sim.post("customer", {"DisplayName": "Y"}, params={"requestid": "r" * 51})
    assert error_of(too_long)["code"] == "2050"
    batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    assert sim.post("batch", batch, params={"requestid": "b" * 36}).status_code == 200
    assert sim.post("batch", batch, params={"requestid": "b" * 37}).status_code == 400


# --------------------------------------------------------------------------- throttling


def throttled_sim(**settings: Any) -> contextlib.AbstractContextManager[Sim]:
    throttle = ThrottleSettings(limit=3, window=60)
    return make_sim(QBOSettings(throttle=throttle, **settings))


def test_throttle_429_json_then_window_rolls():
    # §8: 500/min per realm (shortened here); 429 with code 3001 ThrottleExceeded.
    with throttled_sim() as sim:
        assert [sim.get("customer/1").status_code for _ in range(3)] == [200, 200, 200]
        limited = sim.get("customer/1")
        assert limited.status_code == 429
        fault = limited.json()["Fault"]
        assert (fault["type"], fault["Error"][0]["code"]) == ("SERVICE", "3001")
        assert "ThrottleExceeded" in fault["Error"][0]["Message"]
        # Another company has its own window.
        other = sim.qbo.client(
            headers={"Authorization": f"Bearer {sim.backend.access_token(OTHER)}"}
        )
        with other:
            assert other.get(f"/v3/company/{OTHER}/companyinfo/{OTHER}").status_code == 200
        sim.clock.advance(seconds=60)
        assert sim.get("customer/1").status_code == 200
        stats = sim.http.get("/_sim/stats").json()["qbo"]["realms"][REALM]
        assert (stats["requests"], stats["throttled"]) == (5, 1)


def test_throttle_429_as_xml():
    # §8: routablehq/python-quickbooks#43 — XML 429 bodies even when JSON was requested.
    with throttled_sim(xml_throttle=True) as sim:
        for _ in range(3):
            sim.get("customer/1")
        limited = sim.get("customer/1")
    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("application/xml")
    root = ElementTree.fromstring(limited.content)
    ns = {"q": "http://schema.intuit.com/finance/v3"}
    error = root.find("q:Fault/q:Error", ns)
    assert root.find("q:Fault", ns).get("type") == "SERVICE"
    assert error.get("code") == "3001"
    assert "ThrottleExceeded" in error.find("q:Message", ns).text
    with pytest.raises(json.JSONDecodeError):
        limited.json()


def test_batches_count_against_their_own_limit():
    settings = QBOSettings(throttle=ThrottleSettings(batch_limit=2))
    batch = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Term"}]}
    with make_sim(settings) as sim:
        codes = [sim.post("batch", batch).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert sim.get("customer/1").status_code == 200


def test_ten_concurrent_requests_per_company():
    # §8: max 10 concurrent requests per realm+app (2016 blog). Slow responses (an injected
    # delay) hold their slot; the 11th and 12th in flight get 429.
    with make_sim() as sim:
        sim.app.state.fault_plan.delay_next(12, seconds=0.3)
        token = sim.backend.access_token(REALM)

        async def burst() -> list[int]:
            transport = httpx.ASGITransport(app=sim.app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://qbo.test",
                headers={"Authorization": f"Bearer {token}"},
            ) as c:
                responses = await asyncio.gather(
                    *(c.get(f"/v3/company/{REALM}/customer/1") for _ in range(12))
                )
            return sorted(r.status_code for r in responses)

        assert asyncio.run(burst()) == [200] * 10 + [429] * 2
        assert sim.backend.throttle.in_flight(REALM) == 0


def test_throttle_settings_switch(sim):
    sim.http.post("/_sim/qbo/settings", json={"throttle": {"limit": 1}})
    assert sim.get("customer/1").status_code == 200
    assert sim.get("customer/1").status_code == 429
    current = sim.http.get("/_sim/qbo/settings").json()
    assert current["throttle"]["limit"] == 1


# --------------------------------------------------------------------------- faults


def test_injected_errors_have_qbo_bodies(sim):
    applied = sim.http.post(
        "/_sim/faults", json={"kind": "status", "status": 503, "count": 2, "path_prefix": "/v3/"}
    )
    assert applied.status_code == 200
    first, second, third = (sim.get("customer/1") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.json()["Fault"]["type"] == "SystemFault"
    sim.http.post("/_sim/faults", json={"kind": "status", "status": 429, "count": 1})
    storm = sim.get("customer/1")
    assert (storm.status_code, storm.json()["Fault"]["Error"][0]["code"]) == (429, "3001")
    stats = sim.http.get("/_sim/stats").json()
    assert stats["faults_applied"]["status"] == 3
    assert stats["qbo"]["realms"][REALM]["by_status"]["503"] == 2


def test_dropped_connection(sim):
    sim.app.state.fault_plan.drop_next(1)
    with pytest.raises(httpx.RemoteProtocolError):
        sim.get("customer/1")
    assert sim.get("customer/1").status_code == 200
    stats = sim.http.get("/_sim/qbo/stats").json()["realms"][REALM]
    assert stats["dropped"] == 1
    assert sim.backend.throttle.in_flight(REALM) == 0


# --------------------------------------------------------------------------- CDC


def test_cdc_over_http(sim):
    # §6.1: response shape (PQB tests/unit/test_cdc.py), "+" offsets survive unencoded.
    since = sim.clock.advance(seconds=1).astimezone().isoformat()
    sim.post("customer", {"DisplayName": "Changed"})
    response = sim.http.get(sim.url("cdc") + f"?entities=Customer,Invoice&changedSince={since}")
    assert response.status_code == 200, response.text
    (query_response,) = response.json()["CDCResponse"]
    (part,) = query_response["QueryResponse"]
    assert [c["DisplayName"] for c in part["Customer"]] == ["Changed"]
    assert (part["startPosition"], part["maxResults"]) == (1, 1)
    old = sim.get("cdc", params={"entities": "Customer", "changedSince": "2024-01-01"})
    assert old.status_code == 400
    assert sim.get("cdc", params={"entities": "Customer"}).status_code == 400


# --------------------------------------------------------------------------- control endpoints


def test_seed_and_inspect_companies_over_http(sim):
    created = sim.http.post(
        "/_sim/qbo/companies",
        json={
            "realm_id": "555",
            "client_id": "app",
            "client_secret": "secret",
            "refresh_token": "RT-555",
            "custom_txn_numbers": False,
            "tax_codes": [{"name": "NY", "rate": 8.875}],
        },
    )
    assert created.status_code == 201
    assert created.json() == {"realm_id": "555", "refresh_token": "RT-555"}
    realms = [c["realm_id"] for c in sim.http.get("/_sim/qbo/companies").json()["companies"]]
    assert realms == [REALM, OTHER, "555"]
    token = sim.http.post("/_sim/qbo/companies/555/access-token").json()["access_token"]
    prefs = sim.http.get(
        "/v3/company/555/preferences", headers={"Authorization": f"Bearer {token}"}
    )
    assert prefs.json()["Preferences"]["SalesFormsPrefs"]["CustomTxnNumbers"] is False
    rates = sim.http.get("/_sim/qbo/companies/555/records/TaxRate").json()["TaxRate"]
    assert rates[0]["RateValue"] == 8.875
    sim.http.post("/_sim/qbo/companies/555/preferences", json={"custom_txn_numbers": True})
    assert sim.backend.company("555").custom_txn_numbers()
    bad = sim.http.post(
        "/_sim/qbo/companies",
        json={"realm_id": "555", "client_id": "app", "client_secret": "secret"},
    )
    assert bad.status_code == 400


def test_clock_advance_and_reset(sim):
    moved = sim.http.post("/_sim/qbo/clock/advance", json={"seconds": 3600})
    assert moved.status_code == 200
    sim.get("customer/1")
    sim.http.post("/_sim/reset")
    assert sim.http.get("/_sim/qbo/stats").json() == {"realms": {}}
