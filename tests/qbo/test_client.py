"""The QBO client against the QBO simulator (in-process; over loopback for the throttle).

Time: the simulator runs on a FakeClock, and the client's retry waits go to a `sleep` that
moves that clock, so throttle windows pass without real waiting.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from datagate_pipelines.apiclient.records import ApiRequestRecord
from datagate_pipelines.apiclient.retries import RetryPolicy
from datagate_pipelines.qbo.batch import BatchItem
from datagate_pipelines.qbo.client import QBOClient, following_doc_numbers
from datagate_pipelines.qbo.errors import (
    QBOAuthError,
    QBODuplicateNameError,
    QBOError,
    QBOFaultError,
    QBOInvalidGrantError,
    QBONotFoundError,
    QBORateLimitedError,
    QBOStaleObjectError,
    QBOTransportError,
    parse_faults,
)
from datagate_pipelines.qbo.exact_json import dumps
from datagate_pipelines.qbo.oauth import QBOAuthClient, RefreshingTokens
from datagate_pipelines.qbo.request_ids import request_id_for
from datagate_simulators.qbo import (
    FakeClock,
    QBOBackend,
    QBOSettings,
    SystemClock,
    ThrottleSettings,
    create_app,
)
from datagate_simulators.server import SyncASGITransport, serve_in_thread

REALM = "9130350000000000"
CLIENT_ID = "ABdatagate-app-client-id"
SECRET = "sim-qbo-client-secret-7f6e5d4c"
FIRST_REFRESH = "AB11first-refresh-token-0123456789"
BASE = "http://qbo.test"


class Sim:
    """The simulator, its clock, and a factory of clients talking to it in-process."""

    def __init__(self, settings: QBOSettings | None = None, clock: Any = None):
        self.clock = clock or FakeClock()
        self.backend = QBOBackend(settings, self.clock)
        self.company = self.backend.seed_company(
            REALM,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            refresh_token=FIRST_REFRESH,
            items=[{"Name": "Managed Services", "Type": "Service"}],
        )
        self.app = create_app(self.backend)
        self.transport = SyncASGITransport(self.app)
        self.records: list[ApiRequestRecord] = []
        self.sleeps: list[float] = []
        self._made: list[QBOClient] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if isinstance(self.clock, FakeClock):
            self.clock.advance(seconds)

    def oauth(self, **overrides: Any) -> QBOAuthClient:
        options: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "token_url": f"{BASE}/oauth2/v1/tokens/bearer",
            "revoke_url": f"{BASE}/v2/oauth2/tokens/revoke",
            "transport": self.transport,
            "recorder": self.records.append,
            "retry": RetryPolicy(sleep=self.sleep, jitter=0.0),
        }
        options.update(overrides)
        return QBOAuthClient("acme", **options)

    def client(self, *, tokens: Any = None, **overrides: Any) -> QBOClient:
        options: dict[str, Any] = {
            "realm_id": REALM,
            "tokens": tokens or RefreshingTokens(self.oauth(), FIRST_REFRESH),
            "base_url": BASE,
            "transport": self.transport,
            "recorder": self.records.append,
            "run_id": "run-1",
            "retry": RetryPolicy(sleep=self.sleep, jitter=0.0),
            "rate_limit": None,
            "max_concurrent": None,
        }
        options.update(overrides)
        client = QBOClient("acme", **options)
        self._made.append(client)
        return client

    def api_records(self, suffix: str = "") -> list[ApiRequestRecord]:
        return [r for r in self.records if r.path.startswith("/v3/") and r.path.endswith(suffix)]

    def close(self) -> None:
        for client in self._made:
            client.close()
        self.transport.close()


@pytest.fixture
def sim() -> Iterator[Sim]:
    made = Sim()
    yield made
    made.close()


@pytest.fixture
def client(sim: Sim) -> QBOClient:
    return sim.client()


def service_item(sim: Sim) -> str:
    return sim.company.find("Item", Name="Managed Services")["Id"]


def invoice_body(sim: Sim, customer_id: str, doc_number: str | None = None, **extra: Any):
    body: dict[str, Any] = {
        "CustomerRef": {"value": customer_id},
        "Line": [
            {
                "Amount": Decimal("30.03"),
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": service_item(sim)},
                    "Qty": Decimal("3"),
                    "UnitPrice": Decimal("10.01"),
                },
            }
        ],
        **extra,
    }
    if doc_number is not None:
        body["DocNumber"] = doc_number
    return body


class LoseResponses(httpx.BaseTransport):
    """The server handles the request, then the answer is lost on the way back (a dropped
    connection after the fact) — the case where only a requestid prevents a duplicate."""

    def __init__(self, inner: httpx.BaseTransport, count: int = 1, path_suffix: str = ""):
        self.inner, self.count, self.path_suffix = inner, count, path_suffix

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.count and request.url.path.endswith(self.path_suffix):
            self.count -= 1
            raise httpx.ReadError("connection reset while reading the answer", request=request)
        return response


# -- the query language -----------------------------------------------------------------------


def test_quote_escapes_quotes_and_backslashes():
    assert QBOClient.quote("O'Brien & Sons") == "'O\\'Brien & Sons'"
    assert QBOClient.quote("C:\\temp") == "'C:\\\\temp'"
    assert QBOClient.quote("Acme:Site 1") == "'Acme:Site 1'"
    assert QBOClient.quote(True) == "true"
    assert QBOClient.quote(Decimal("12.50")) == "12.50"
    with pytest.raises(TypeError):
        QBOClient.quote(1.5)


def test_where_builds_equalities_and_in_lists_and_refuses_bad_property_names():
    assert (
        QBOClient.where(DisplayName="O'Brien", Active=[True, False])
        == "WHERE DisplayName = 'O\\'Brien' AND Active IN (true, false)"
    )
    assert QBOClient.where() == ""
    with pytest.raises(ValueError):
        QBOClient.where({"DisplayName = 'x' OR Id": "1"})
    with pytest.raises(ValueError):
        QBOClient.condition("DocNumber", "IN", [])
    assert (
        QBOClient.statement("Customer", include_inactive=True, DisplayName="A")
        == "SELECT * FROM Customer WHERE DisplayName = 'A' AND Active IN (true, false)"
    )


@pytest.mark.parametrize(
    "name",
    ["O'Brien & Sons", "Back\\slash Ltd", "It's \\'tricky\\'", 'Say "hi" %', "50% Off, Inc."],
)
def test_names_with_quotes_backslashes_and_wildcards_find_exactly_their_record(sim, client, name):
    decoy = client.create("Customer", {"DisplayName": name + " Jr"}, request_id=None)
    created = client.create("Customer", {"DisplayName": name}, request_id=None)
    found = client.find_customer_by_display_name(name)
    assert found is not None and found["Id"] == created["Id"] != decoy["Id"]
    assert [r["Id"] for r in client.select("Customer", DisplayName=name)] == [created["Id"]]


def test_values_with_colons_select_sub_customers_by_their_full_name(client):
    parent = client.create("Customer", {"DisplayName": "Acme"}, request_id=None)
    child = client.create(
        "Customer",
        {"DisplayName": "Site 1", "ParentRef": {"value": parent["Id"]}},
        request_id=None,
    )
    rows = client.select("Customer", FullyQualifiedName="Acme:Site 1")
    assert [r["Id"] for r in rows] == [child["Id"]]


def test_name_lists_skip_inactive_records_unless_asked(client):
    active = client.create("Customer", {"DisplayName": "Active Co"}, request_id=None)
    gone = client.create("Customer", {"DisplayName": "Gone Co", "Active": False}, request_id=None)
    assert {r["Id"] for r in client.select("Customer")} == {active["Id"]}
    assert {r["Id"] for r in client.select("Customer", include_inactive=True)} == {
        active["Id"],
        gone["Id"],
    }
    # Its name is still taken, so the lookup sees inactive customers by default.
    assert client.find_customer_by_display_name("Gone Co")["Id"] == gone["Id"]
    assert client.count("Customer") == 1 and client.count("Customer", include_inactive=True) == 2


# -- paging --------------------------------------------------------------------------------


def add_customers(sim: Sim, count: int) -> None:
    for n in range(1, count + 1):
        sim.company.insert("Customer", {"DisplayName": f"Customer {n:05d}", "Active": True})


@pytest.mark.parametrize(("rows", "pages"), [(25, 3), (20, 3), (9, 1), (0, 1)])
def test_query_pages_with_startposition_to_the_end(sim, rows, pages):
    add_customers(sim, rows)
    client = sim.client(page_size=10)
    found = client.query("select * from Customer")
    assert [r["DisplayName"] for r in found] == [f"Customer {n:05d}" for n in range(1, rows + 1)]
    sent = [r.params["query"] for r in sim.api_records("/query")]
    assert len(sent) == pages
    assert sent[0].endswith("STARTPOSITION 1 MAXRESULTS 10")
    if pages > 1:
        assert sent[1].endswith("STARTPOSITION 11 MAXRESULTS 10")
    assert client.stats.pages == pages


def test_query_pages_of_a_thousand_by_default(sim, client):
    add_customers(sim, 1500)
    assert len(client.select("Customer")) == 1500
    sent = [r.params["query"] for r in sim.api_records("/query")]
    assert [q.rsplit("STARTPOSITION", 1)[1] for q in sent] == [
        " 1 MAXRESULTS 1000",
        " 1001 MAXRESULTS 1000",
    ]


def test_a_statement_with_its_own_paging_is_sent_once_as_it_is(sim, client):
    add_customers(sim, 30)
    rows = client.query("SELECT * FROM Customer STARTPOSITION 11 MAXRESULTS 5")
    assert [r["DisplayName"] for r in rows] == [f"Customer {n:05d}" for n in range(11, 16)]
    assert len(sim.api_records("/query")) == 1
    # A paging keyword inside a quoted value does not count.
    client.create("Customer", {"DisplayName": "MAXRESULTS Ltd"}, request_id=None)
    assert len(client.select("Customer", DisplayName="MAXRESULTS Ltd")) == 1


def test_every_api_call_sends_the_minor_version(sim, client):
    client.company_info()
    client.select("Term")
    client.create("Customer", {"DisplayName": "Minor"}, request_id=None)
    assert sim.api_records() and all(r.params["minorversion"] == "75" for r in sim.api_records())


# -- exact numbers -------------------------------------------------------------------------


def test_amounts_are_decimals_both_ways(sim, client):
    customer = client.create("Customer", {"DisplayName": "Decimal Dental"}, request_id=None)
    invoice = client.create("Invoice", invoice_body(sim, customer["Id"], "1001"), request_id=None)
    assert invoice["TotalAmt"] == Decimal("30.03") and isinstance(invoice["TotalAmt"], Decimal)
    line = invoice["Line"][0]["SalesItemLineDetail"]
    assert line["UnitPrice"] == Decimal("10.01") and isinstance(line["UnitPrice"], Decimal)
    assert sim.company.get("Invoice", invoice["Id"])["TotalAmt"] == Decimal("30.03")
    assert dumps({"a": Decimal("0.10"), "b": [1, True, None]}) == b'{"a":0.10,"b":[1,true,null]}'
    with pytest.raises(TypeError):
        dumps({"Amount": 0.1})


# -- single records, faults ---------------------------------------------------------------------


def test_a_fault_is_a_typed_error_with_code_element_detail_and_our_id(client):
    client.create("Customer", {"DisplayName": "Twice"}, request_id=None)
    with pytest.raises(QBODuplicateNameError) as caught:
        client.create("Customer", {"DisplayName": "Twice"}, request_id=None, our_id="cust-42")
    error = caught.value
    assert isinstance(error, QBOFaultError) and isinstance(error, QBOError)
    assert (error.code, error.status, error.entity, error.our_id) == (
        "6240",
        400,
        "Customer",
        "cust-42",
    )
    assert error.fault_type == "ValidationFault" and "already using this name" in error.detail
    assert "acme" in str(error) and "Customer cust-42" in str(error) and "6240" in str(error)
    # Errors cross process boundaries (Dagster) intact.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is QBODuplicateNameError and copy.code == "6240" and copy.our_id == "cust-42"

    with pytest.raises(QBOFaultError) as missing:
        client.create("Invoice", {"Line": []}, request_id=None, our_id="inv-1")
    assert missing.value.code == "2020" and missing.value.element == "CustomerRef"


def test_get_of_a_missing_record_is_not_found(client):
    with pytest.raises(QBONotFoundError) as caught:
        client.get("Invoice", "999", our_id="2026-07:customer:1")
    assert caught.value.code == "610" and caught.value.qbo_id == "999"
    assert caught.value.our_id == "2026-07:customer:1"


def test_a_sparse_update_with_a_stale_sync_token_is_read_again_and_sent_once_more(sim, client):
    created = client.create("Customer", {"DisplayName": "Stale Co"}, request_id=None)
    client.update("Customer", {"Id": created["Id"], "SyncToken": "0", "Notes": "first"})
    updated = client.update("Customer", {"Id": created["Id"], "SyncToken": "0", "Notes": "second"})
    assert updated["Notes"] == "second" and updated["SyncToken"] == "2"
    assert updated["DisplayName"] == "Stale Co"  # sparse: the rest is kept
    with pytest.raises(QBOStaleObjectError) as caught:
        client.update(
            "Customer",
            {"Id": created["Id"], "SyncToken": "0", "DisplayName": "Stale Co"},
            sparse=False,
        )
    assert caught.value.code == "5010"


def test_void_and_delete_are_safe_to_repeat(sim, client):
    customer = client.create("Customer", {"DisplayName": "Void Co"}, request_id=None)
    invoice = client.create("Invoice", invoice_body(sim, customer["Id"], "2001"), request_id=None)
    voided = client.void_invoice(invoice["Id"], invoice["SyncToken"])
    assert voided["TotalAmt"] == 0 and "Voided" in voided["PrivateNote"]
    again = client.void_invoice(invoice["Id"], invoice["SyncToken"])  # stale token, voided
    assert again["SyncToken"] == voided["SyncToken"]

    other = client.create("Invoice", invoice_body(sim, customer["Id"], "2002"), request_id=None)
    assert client.delete_invoice(other["Id"])["status"] == "Deleted"
    assert client.delete_invoice(other["Id"]) == {"Id": other["Id"], "status": "Deleted"}
    assert sim.company.is_deleted("Invoice", other["Id"])


def test_a_credit_memo_created_with_a_request_id_once_found_by_number_and_voided_twice(sim):
    """Credit notes (docs/billing.md rule 7): a create whose answer was lost is replayed by
    its requestid, not made twice; the memo is found by DocNumber; voiding it again is
    harmless."""
    client = sim.client()
    customer = client.create("Customer", {"DisplayName": "Credit Co"}, request_id=None)
    lossy = LoseResponses(sim.transport, count=1, path_suffix="/creditmemo")
    flaky = sim.client(transport=lossy)
    memo = flaky.create(
        "CreditMemo", invoice_body(sim, customer["Id"], "3001"), request_id="credit-3001"
    )
    assert [r["Id"] for r in client.select("CreditMemo", DocNumber=["3001"])] == [memo["Id"]]
    assert sim.backend.stats.get(REALM, "replayed") == 1
    assert client.doc_number_exists("3001")  # one DocNumber space with invoices
    voided = client.void_invoice(memo["Id"], memo["SyncToken"], entity="CreditMemo")
    assert voided["TotalAmt"] == voided["RemainingCredit"] == 0
    again = client.void_invoice(memo["Id"], memo["SyncToken"], entity="CreditMemo")
    assert again["SyncToken"] == voided["SyncToken"]


# -- idempotency ----------------------------------------------------------------------------------


def test_request_ids_are_deterministic_and_fit_qbo_limits():
    first = request_id_for("acme", "2026-07:customer:1", "create")
    assert first == request_id_for("acme", "2026-07:customer:1", "create")
    assert len(first) == 36
    assert first != request_id_for("acme", "2026-07:customer:1", "create:2")
    assert first != request_id_for("other", "2026-07:customer:1", "create")
    with pytest.raises(ValueError):
        request_id_for("acme", "", "create")


def test_a_re_run_create_with_the_same_request_id_returns_the_first_invoice(sim, client):
    customer = client.create("Customer", {"DisplayName": "Replay Co"}, request_id=None)
    request_id = request_id_for("acme", "2026-07:customer:7", "create")
    first = client.create(
        "Invoice", invoice_body(sim, customer["Id"], "3001"), request_id=request_id
    )
    second = client.create(
        "Invoice", invoice_body(sim, customer["Id"], "3001"), request_id=request_id
    )
    assert second["Id"] == first["Id"]
    assert len(sim.company.records("Invoice")) == 1


def test_a_create_whose_answer_was_lost_is_retried_and_replayed_not_duplicated(sim):
    lossy = LoseResponses(sim.transport, count=1, path_suffix="/invoice")
    client = sim.client(transport=lossy)
    customer = client.create("Customer", {"DisplayName": "Lost Answer Co"}, request_id=None)
    request_id = request_id_for("acme", "2026-07:customer:8", "create")
    invoice = client.create(
        "Invoice", invoice_body(sim, customer["Id"], "3002"), request_id=request_id
    )
    assert [i["Id"] for i in sim.company.records("Invoice")] == [invoice["Id"]]
    assert sim.backend.stats.get(REALM, "replayed") == 1
    assert client.stats.retries == 1


def test_a_create_without_request_id_is_not_retried_after_a_lost_answer(sim):
    lossy = LoseResponses(sim.transport, count=1, path_suffix="/customer")
    client = sim.client(transport=lossy)
    with pytest.raises(QBOTransportError):
        client.create("Customer", {"DisplayName": "Maybe Co"}, request_id=None, our_id="c-1")
    # It was created once; a blind retry would have made a duplicate-name fault or a twin.
    assert len(sim.company.records("Customer")) == 1


# -- batch -----------------------------------------------------------------------------------


def test_batch_maps_results_by_our_ids_in_chunks_whatever_the_answer_order(sim):
    sim.backend.settings.shuffle_batch = True
    client = sim.client(batch_size=30)
    client.create("Customer", {"DisplayName": "Taken Name"}, request_id=None)
    items = [
        BatchItem.create(f"customer:{n:03d}", "Customer", {"DisplayName": f"Batch {n:03d}"})
        for n in range(1, 35)
    ]
    items.append(BatchItem.create("customer:dup", "Customer", {"DisplayName": "Taken Name"}))
    items.append(BatchItem.query("terms", "select * from Term"))
    results = client.batch(items)
    assert set(results) == {item.our_id for item in items}
    for n in range(1, 35):
        assert results[f"customer:{n:03d}"]["DisplayName"] == f"Batch {n:03d}"
    fault = results["customer:dup"]
    assert isinstance(fault, QBODuplicateNameError)
    assert (fault.code, fault.entity, fault.our_id) == ("6240", "Customer", "customer:dup")
    assert "customer:dup" in str(fault) and "6240" in str(fault)
    assert len(results["terms"]["Term"]) == 4
    records = sim.api_records("/batch")
    refused = [r for r in records if (r.error or "").startswith("batch item")]
    batches = [r for r in records if r not in refused]
    assert len(batches) == 2 and sim.backend.stats.get(REALM, "batches") == 2
    # The refused item has its own line in the request log, though its batch got a 200.
    (line,) = refused
    assert line.status == 200 and line.params["our_id"] == "customer:dup"
    assert "6240" in line.error and line.params["bId"]


def test_batch_updates_voids_deletes_and_per_item_faults(sim, client):
    customer = client.create("Customer", {"DisplayName": "Batch Ops"}, request_id=None)
    keep = client.create("Invoice", invoice_body(sim, customer["Id"], "4001"), request_id=None)
    void = client.create("Invoice", invoice_body(sim, customer["Id"], "4002"), request_id=None)
    drop = client.create("Invoice", invoice_body(sim, customer["Id"], "4003"), request_id=None)
    results = client.batch(
        [
            BatchItem.update(
                "inv-keep", "Invoice", {"Id": keep["Id"], "SyncToken": "0", "PrivateNote": "kept"}
            ),
            BatchItem.void("inv-void", "Invoice", void["Id"], "0"),
            BatchItem.delete("inv-drop", "Invoice", drop["Id"], "0"),
            BatchItem.update(
                "inv-stale", "Invoice", {"Id": keep["Id"], "SyncToken": "7", "PrivateNote": "x"}
            ),
            BatchItem.create("inv-bad", "Invoice", {"CustomerRef": {"value": customer["Id"]}}),
        ]
    )
    assert results["inv-keep"]["PrivateNote"] == "kept"
    assert results["inv-void"]["TotalAmt"] == 0
    assert results["inv-drop"]["status"] == "Deleted"
    stale = results["inv-stale"]
    assert isinstance(stale, QBOStaleObjectError) and stale.qbo_id == keep["Id"]
    bad = results["inv-bad"]
    assert isinstance(bad, QBOFaultError) and bad.code == "2020" and bad.our_id == "inv-bad"


def test_a_batch_re_run_with_its_request_id_replays_and_other_items_do_not(sim, client):
    items = [
        BatchItem.create(f"c{n}", "Customer", {"DisplayName": f"Replay {n}"}) for n in range(3)
    ]
    request_id = request_id_for("acme", "export:2026-07", "customers")
    first = client.batch(items, request_id=request_id)
    again = client.batch(items, request_id=request_id)
    assert {k: v["Id"] for k, v in again.items()} == {k: v["Id"] for k, v in first.items()}
    assert len(sim.company.records("Customer")) == 3
    # Other items under the same request id are not answered with the first batch's results.
    other = client.batch(
        [BatchItem.create("c9", "Customer", {"DisplayName": "Replay 9"})], request_id=request_id
    )
    assert other["c9"]["DisplayName"] == "Replay 9"
    assert all(len(r.params.get("requestid", "")) <= 36 for r in sim.api_records("/batch"))
    with pytest.raises(ValueError):
        client.batch([BatchItem.query("x", "select * from Term")] * 2)


# -- throttling ------------------------------------------------------------------------------------


def test_429s_are_waited_out_and_retried(sim):
    sim.backend.throttle.configure(limit=5, window=60.0)
    client = sim.client()
    for _ in range(12):
        client.select("Term")
    assert client.stats.rate_limited > 0 and client.stats.retries == client.stats.rate_limited
    assert sim.backend.stats.get(REALM, "throttled") == client.stats.rate_limited
    assert sim.sleeps and all(s >= 5.0 for s in sim.sleeps)  # a 429 waits longer than a 5xx


def test_an_xml_throttle_answer_still_becomes_a_typed_error_with_its_code(sim):
    sim.backend.settings.xml_throttle = True
    sim.backend.throttle.configure(limit=1, window=60.0)
    client = sim.client(retry=RetryPolicy(max_attempts=2, sleep=lambda s: None, jitter=0.0))
    client.select("Term")
    with pytest.raises(QBORateLimitedError) as caught:
        client.select("Term")
    assert caught.value.code == "3001" and caught.value.status == 429
    assert caught.value.attempts == 2


def test_the_client_limiter_at_the_servers_budget_never_meets_a_429():
    # Real time, a window shortened to a fraction of a second; concurrency as QBO's (scaled).
    settings = QBOSettings(throttle=ThrottleSettings(limit=8, window=0.25, max_concurrent=3))
    sim = Sim(settings, SystemClock())
    try:
        with serve_in_thread(sim.app) as server:
            client = sim.client(
                base_url=server.base_url, transport=None, rate_limit=(8, 0.25), max_concurrent=3
            )
            errors: list[BaseException] = []

            def work() -> None:
                try:
                    for _ in range(4):
                        client.select("Term")
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert not errors
            assert sim.backend.stats.get(REALM, "requests") == 24
            assert sim.backend.stats.get(REALM, "throttled") == 0
            assert client.stats.rate_limited == 0
    finally:
        sim.close()


# -- tokens ------------------------------------------------------------------------------------------


def test_an_access_token_that_expires_mid_run_is_refreshed_once(sim):
    tokens = RefreshingTokens(sim.oauth(), FIRST_REFRESH)
    client = sim.client(tokens=tokens)
    client.select("Term")
    assert sim.backend.oauth.expire_access_tokens(REALM) >= 1
    assert len(client.select("Term")) == 4
    assert tokens.refreshes == 2
    statuses = [r.status for r in sim.api_records("/query")]
    assert statuses == [200, 401, 200]


def test_a_rotated_refresh_token_is_handed_on(sim):
    rotated: list[str] = []
    tokens = RefreshingTokens(sim.oauth(), FIRST_REFRESH, on_rotate=rotated.append)
    client = sim.client(tokens=tokens)
    client.company_info()
    sim.backend.oauth.force_rotation(REALM)
    sim.backend.oauth.expire_access_tokens(REALM)
    client.company_info()
    assert rotated == [sim.backend.oauth.current_refresh_token(REALM)]
    assert rotated[0] != FIRST_REFRESH


def test_a_refused_refresh_token_is_an_invalid_grant_error_without_the_token(sim):
    oauth = sim.oauth()
    with pytest.raises(QBOInvalidGrantError) as caught:
        oauth.refresh("AB11not-a-real-refresh-token-xyz")
    assert caught.value.status == 400 and "invalid_grant" in str(caught.value)
    assert "not-a-real" not in str(caught.value)
    with pytest.raises(QBOAuthError) as bad_client:
        sim.oauth(client_secret="wrong-secret-123").refresh(FIRST_REFRESH)
    assert bad_client.value.status == 401
    assert not isinstance(bad_client.value, QBOInvalidGrantError)


def test_a_token_for_another_company_is_an_auth_error_with_qbos_code(sim):
    sim.backend.settings.lowercase_gateway_faults = True
    sim.backend.seed_company(
        "4620816365000000", client_id="other-app", client_secret="other-secret"
    )
    other = RefreshingTokens(
        sim.oauth(client_id="other-app", client_secret="other-secret"),
        sim.backend.oauth.current_refresh_token("4620816365000000"),
    )
    client = sim.client(tokens=other)
    with pytest.raises(QBOAuthError) as caught:
        client.company_info()
    assert caught.value.status == 403 and caught.value.code == "3100"


def test_no_token_or_secret_reaches_logs_records_or_errors(sim, caplog):
    caplog.set_level(logging.DEBUG)
    tokens = RefreshingTokens(sim.oauth(), FIRST_REFRESH)
    client = sim.client(tokens=tokens)
    client.select("Customer")
    sim.backend.oauth.force_rotation(REALM)
    sim.backend.oauth.expire_access_tokens(REALM)
    sim.backend.throttle.configure(limit=2, window=60.0)
    for _ in range(3):
        client.company_info()
    sim.backend.oauth.revoke(CLIENT_ID, SECRET, tokens.refresh_token)
    sim.backend.oauth.expire_access_tokens(REALM)
    failures: list[str] = []
    for call in (client.company_info, lambda: tokens.oauth.refresh(FIRST_REFRESH)):
        with pytest.raises(QBOError) as caught:
            call()
        failures.append(f"{caught.value} {caught.value!r} {caught.value.__dict__}")
    secrets = [SECRET, FIRST_REFRESH, tokens.refresh_token]
    secrets += list(sim.backend.oauth._access)  # every access token the server ever issued
    texts = [caplog.text, *failures, *(repr(r.as_dict()) for r in sim.records)]
    for secret in secrets:
        for text in texts:
            assert secret not in text


# -- lookups --------------------------------------------------------------------------------------


def test_doc_number_lookups(sim, client):
    customer = client.create("Customer", {"DisplayName": "Numbers Co"}, request_id=None)
    for number in ("INV-0998", "INV-1000", "1001"):
        client.create("Invoice", invoice_body(sim, customer["Id"], number), request_id=None)
    # A credit memo's number is taken too: QBO checks DocNumbers across both types.
    client.create("CreditMemo", invoice_body(sim, customer["Id"], "INV-1001"), request_id=None)
    assert client.doc_number_exists("INV-1000") and not client.doc_number_exists("INV-0999")
    assert client.doc_number_exists("INV-1001")
    candidates = [f"INV-{n:04d}" for n in range(900, 1020)]  # 120: three IN queries a type
    before = len(sim.api_records("/query"))
    assert client.existing_doc_numbers(candidates) == {"INV-0998", "INV-1000", "INV-1001"}
    assert len(sim.api_records("/query")) - before == 6
    is_taken = client.doc_number_lookup(prefetch=10)
    before = len(sim.api_records("/query"))
    answers = [is_taken(f"INV-{n:04d}") for n in range(995, 1003)]
    assert answers == [False, False, False, True, False, True, True, False]
    assert len(sim.api_records("/query")) - before == 2  # the prefetch answered the rest
    assert following_doc_numbers("INV-0099", 2) == ["INV-0100", "INV-0101"]


def test_find_invoice_by_doc_number_and_private_note(sim, client):
    customer = client.create("Customer", {"DisplayName": "Find Co"}, request_id=None)
    first = client.create(
        "Invoice",
        invoice_body(sim, customer["Id"], "5001", PrivateNote="datagate:2026-07:customer:1"),
        request_id=None,
    )
    client.create(
        "Invoice",
        invoice_body(sim, customer["Id"], "5002", PrivateNote="datagate:2026-07:customer:2"),
        request_id=None,
    )
    assert client.find_invoice(doc_number="5001")["Id"] == first["Id"]
    assert client.find_invoice(private_note_contains="customer:1")["Id"] == first["Id"]
    assert client.find_invoice(doc_number="5002", private_note_contains="customer:1") is None
    assert len(client.find_invoices(customer_id=customer["Id"])) == 2


def test_company_lookups(client):
    assert client.preferences()["SalesFormsPrefs"]["CustomTxnNumbers"] is True
    accounts = client.accounts_by_name()
    assert accounts["Services"]["AccountType"] == "Income"
    assert {t["Name"]: t["DueDays"] for t in client.terms()}["Net 30"] == 30
    assert "Managed Services" in client.items_by_name()
    assert client.company_info()["CompanyName"]


def test_fault_bodies_in_every_shape_parse():
    json_body = b'{"Fault":{"Error":[{"Message":"m","Detail":"d","code":"6240","element":"e"}],"type":"ValidationFault"}}'
    lower = b'{"fault":{"error":[{"message":"m","detail":"d","code":"3200","element":null}],"type":"AUTHENTICATION"}}'
    xml = (
        b'<?xml version="1.0"?><IntuitResponse xmlns="http://schema.intuit.com/finance/v3">'
        b'<Fault type="SERVICE"><Error code="3001" element=""><Message>m</Message>'
        b"<Detail>d</Detail></Error></Fault></IntuitResponse>"
    )
    assert parse_faults(json_body)[1][0].code == "6240"
    assert parse_faults(lower)[0] == "AUTHENTICATION" and parse_faults(lower)[1][0].code == "3200"
    assert parse_faults(xml)[0] == "SERVICE" and parse_faults(xml)[1][0].code == "3001"
    assert parse_faults(b"not json") == (None, [])


def test_batches_keep_to_their_own_budget_from_the_portal_settings():
    """QBO limits batch requests apart (40 a minute): a portal's `batch_rate_limit_requests`
    reaches the client, whose batch limiter then never meets the server's batch 429."""
    from datagate_pipelines.config import QBOSettings as PortalQBOSettings

    portal_settings = PortalQBOSettings(
        realm_id=REALM,
        client_id_env="QBO_CLIENT_ID",
        client_secret_env="QBO_CLIENT_SECRET",
        refresh_token_env="QBO_REFRESH_TOKEN",
        rate_limit_requests=100,
        rate_limit_window_seconds=0.3,
        batch_rate_limit_requests=2,
    )
    assert (
        PortalQBOSettings(
            realm_id=REALM, client_id_env="A", client_secret_env="B", refresh_token_env="C"
        ).batch_rate_limit_requests
        == 40
    )
    settings = QBOSettings(
        throttle=ThrottleSettings(limit=100, window=0.3, batch_limit=2, batch_window=0.3)
    )
    sim = Sim(settings, SystemClock())
    try:
        with serve_in_thread(sim.app) as server:
            tokens = RefreshingTokens(sim.oauth(), FIRST_REFRESH)
            client = QBOClient.for_portal(
                "bayside", portal_settings, tokens, base_url=server.base_url
            )
            limiter = client.batch_limiter
            assert (limiter.max_requests, limiter.per_seconds) == (2, 0.3)
            query = [BatchItem.query("terms", "select * from Term")]
            for _ in range(5):
                assert len(client.batch(query)["terms"]["Term"]) == 4
            assert sim.backend.stats.get(REALM, "batches") == 5
            assert sim.backend.stats.get(REALM, "throttled") == 0
            assert client.stats.rate_limited == 0
    finally:
        sim.close()
