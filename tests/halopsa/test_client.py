"""The HaloPSA client against the HaloPSA simulator (in-process, and over loopback).

Faults come from the simulator's switches: its FaultPlan (5xx, dropped connections, delays),
its page hooks (records added or removed between pages, duplicate rows), its token store
(expiry, revocation) and its rate limit. Retry waits go to an injected `sleep` that also
moves the simulator's clock, so rate windows and Retry-After pass without real waiting.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from datagate_pipelines.apiclient.errors import NotFoundError
from datagate_pipelines.apiclient.rate_limit import RateLimiter
from datagate_pipelines.apiclient.records import ApiRequestRecord
from datagate_pipelines.apiclient.retries import RetryPolicy
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.halopsa.errors import (
    HaloPSAAuthError,
    HaloPSABadRequestError,
    HaloPSAError,
    HaloPSANotFoundError,
    HaloPSARateLimitedError,
    HaloPSAServerError,
    HaloPSATransportError,
    halo_error_message,
)
from datagate_simulators.halopsa import (
    HaloPSABackend,
    RateLimit,
    create_app,
    generate_tenant,
)
from datagate_simulators.server import SyncASGITransport, serve_in_thread

CLIENT_ID = "3f1c0f9e-datagate-client"
SECRET = "sim-client-secret-9d8c7b6a5f4e"
BASE = "http://halo.test"


class SimClock:
    """The simulator's clock, moved forward by the client's retry waits instead of sleeping."""

    def __init__(self) -> None:
        self.now = 1_780_000_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TokenSniffer(httpx.BaseTransport):
    """Wraps the simulator's transport and keeps every access token it hands out, so the
    tests can look for them where they must not be."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.tokens: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/token") and response.status_code == 200:
            response.read()
            self.tokens.append(json.loads(response.content)["access_token"])
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture
def backend(clock: SimClock) -> HaloPSABackend:
    backend = HaloPSABackend(tenant="acme", clock=clock)
    backend.add_application(CLIENT_ID, SECRET)
    return backend


@pytest.fixture
def app(backend: HaloPSABackend):
    return create_app(backend)


@pytest.fixture
def records() -> list[ApiRequestRecord]:
    return []


@pytest.fixture
def make_client(
    app, clock: SimClock, records: list[ApiRequestRecord]
) -> Iterator[Callable[..., HaloPSAClient]]:
    made: list[HaloPSAClient] = []

    def make(**overrides: Any) -> HaloPSAClient:
        base = overrides.pop("base_url", BASE)
        options: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "tenant": "acme",
            "authorization_server": f"{base}/auth",
            "resource_server": f"{base}/api",
            "transport": SyncASGITransport(app),
            "recorder": records.append,
            "run_id": "run-7",
            "retry": RetryPolicy(sleep=clock.sleep, jitter=0.0),
            "rate_limit": None,
        }
        options.update(overrides)
        client = HaloPSAClient("acme", **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def api_records(records: list[ApiRequestRecord], path: str) -> list[ApiRequestRecord]:
    return [r for r in records if r.path.lower() == path.lower()]


def add_clients(backend: HaloPSABackend, count: int) -> None:
    backend.load("Client", [{"name": f"Customer {n:04d}"} for n in range(1, count + 1)])


# -- pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize(("customers", "page_size", "pages"), [(200, 100, 2), (200, 50, 4)])
def test_exact_multiples_of_the_page_size(make_client, backend, customers, page_size, pages):
    add_clients(backend, customers)
    client = make_client(page_size=page_size)
    listing = client.clients()
    assert len(listing) == customers and listing.record_count == customers
    # record_count says when to stop: no extra request for an empty page.
    assert listing.pages == pages and client.stats.pages == pages
    assert len({row["id"] for row in listing}) == customers


def test_an_empty_list_is_one_request(make_client, records):
    client = make_client()
    listing = client.clients()
    assert listing == [] and listing.record_count == 0 and listing.pages == 1
    assert len(api_records(records, "/api/Client")) == 1


def test_the_server_caps_pages_at_100_whatever_page_size_asks(make_client, backend, records):
    add_clients(backend, 250)
    client = make_client(page_size=1000)
    listing = client.clients()
    assert len(listing) == 250 and listing.pages == 3
    pages = api_records(records, "/api/Client")
    assert [r.params["page_size"] for r in pages] == ["1000"] * 3
    assert [r.params["page_no"] for r in pages] == ["1", "2", "3"]
    assert pages[0].params["pageinate"] == "true"


def test_bare_array_lists_page_until_an_empty_page(make_client, backend):
    backend.load("Tax", [{"name": f"Tax {n}", "value": 5} for n in range(1, 151)])
    listing = make_client().taxes()
    assert len(listing) == 150 and listing.record_count is None
    assert listing.pages == 3  # 100, 50, then an empty page ends it


def test_records_added_while_paging_are_read_too(make_client, backend):
    add_clients(backend, 250)
    backend.add_between_pages("Client", after_page=1, records=3)
    listing = make_client().clients()
    assert len(listing) == 253 and listing.record_count == 253
    assert not listing.duplicate_ids


def test_records_removed_while_paging_make_it_read_again(make_client, backend, caplog):
    add_clients(backend, 250)
    backend.delete_between_pages("Client", after_page=1, records=5)
    client = make_client()
    listing = client.clients()
    # Without the second pass, the five records that moved onto page 1 would be missing.
    assert sorted(row["id"] for row in listing) == list(range(6, 251))
    assert listing.pages == 3 and client.stats.pages == 6
    assert "lost records while paging" in caplog.text


def test_duplicate_ids_across_pages_keep_the_first(make_client, backend, caplog):
    add_clients(backend, 250)
    # After page 1, page 2 starts with the row that ended page 1 (a shifted row).
    backend.after_page("Client", 1, lambda b: b.malform_rows("Client", "duplicate_id"))
    client = make_client()
    listing = client.clients()
    assert len(listing) == 250 and listing.duplicate_ids == [100]
    assert [row["id"] for row in listing] == list(range(1, 251))
    assert client.stats.duplicate_rows == 1 and client.stats.rows == 250
    assert "listed 1 rows twice" in caplog.text


def test_recurring_invoices_with_lines_and_negative_ids(make_client, backend):
    generate_tenant(backend, customers=30, seed=3)
    listing = make_client().recurring_invoices()
    assert listing and all(row["id"] < 0 for row in listing)
    assert sum(len(row["lines"]) for row in listing) == backend.stats()["lines"]
    assert len(listing) == backend.count("RecurringInvoice")


def test_domain_lists_read_the_generated_tenant(make_client, backend):
    tenant = generate_tenant(backend, customers=40, seed=5)
    client = make_client()
    clients = client.clients(include_inactive=True, custom_field_ids=[tenant.datagate_field_id])
    assert len(clients) == tenant.counts["clients"]
    assert all(any(cf["name"] == "CFDatagate" for cf in row["customfields"]) for row in clients)
    assert len(client.sites(include_inactive=True)) == tenant.counts["sites"]
    assert len(client.contracts(include_inactive=True)) == tenant.counts["contracts"]
    for method, resource in [
        (client.items, "Item"),
        (client.asset_groups, "AssetGroup"),
        (client.item_groups, "ItemGroup"),
        (client.taxes, "Tax"),
        (client.field_infos, "FieldInfo"),
    ]:
        assert len(method() if resource != "Item" else method(include_inactive=True)) == (
            backend.count(resource)
        )
    stats = client.stats.as_dict()
    assert stats["token_fetches"] == 1 and stats["retries"] == 0
    assert stats["rows"] == sum(
        backend.count(r)
        for r in ("Client", "Site", "ClientContract", "Item", "AssetGroup", "ItemGroup", "Tax")
    ) + backend.count("FieldInfo")


# -- retries -------------------------------------------------------------------------------


def test_injected_5xx_are_retried_with_backoff(make_client, app, backend, records, clock):
    add_clients(backend, 150)
    for status in (500, 502, 503):
        app.state.faults.fail_next(1, status, path_prefix="/api/Client")
    client = make_client()
    assert len(client.clients()) == 150
    first_page = [r for r in api_records(records, "/api/Client") if r.params["page_no"] == "1"]
    assert [(r.status, r.attempt) for r in first_page] == [
        (500, 1),
        (502, 2),
        (503, 3),
        (200, 4),
    ]
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert client.stats.retries == 3 and client.stats.server_errors == 3


def test_dropped_connections_are_retried(make_client, app, backend, records, clock):
    add_clients(backend, 10)
    app.state.faults.drop_next(2, path_prefix="/api/Client")
    client = make_client()
    assert len(client.clients()) == 10
    attempts = api_records(records, "/api/Client")
    assert [r.status for r in attempts] == [None, None, 200]
    assert attempts[0].error.startswith("RemoteProtocolError")
    assert client.stats.transport_errors == 2 and len(clock.sleeps) == 2


def test_gives_up_with_a_typed_error_after_max_attempts(make_client, app, records):
    app.state.faults.fail_next(10, 503, path_prefix="/api/Client")
    client = make_client(retry=RetryPolicy(sleep=lambda s: None, max_attempts=4))
    with pytest.raises(HaloPSAServerError) as caught:
        client.clients()
    assert len(api_records(records, "/api/Client")) == 4
    assert str(caught.value) == (
        "halopsa portal acme: GET /api/Client failed after 4 attempts: "
        "HTTP 503: 503 Service Unavailable (the service failed; try again later)"
    )


def test_retry_after_is_honoured_when_sent(make_client, backend, clock, records):
    backend.set_rate_limit(RateLimit(requests=3, window_seconds=60, retry_after=True))
    add_clients(backend, 5)
    client = make_client()
    for _ in range(4):
        client.get("Client", 1)
    limited = [r for r in records if r.status == 429]
    assert len(limited) == 1 and limited[0].error.startswith("Rate Limit Reached - 3 Requests")
    # The simulator said "wait until the oldest request leaves the 60 s window".
    assert clock.sleeps == [60.0]
    assert client.stats.rate_limited == 1 and client.stats.retries == 1


def test_backoff_is_used_when_retry_after_is_not_sent(make_client, backend, clock):
    backend.set_rate_limit(RateLimit(requests=3, window_seconds=30, retry_after=False))
    add_clients(backend, 5)
    client = make_client(retry=RetryPolicy(sleep=clock.sleep, jitter=0.0, rate_limited_initial=5))
    for _ in range(4):
        client.get("Client", 1)
    # 5 s, 10 s, 20 s: the oldest request leaves the 30 s window during the third wait.
    assert clock.sleeps == [5.0, 10.0, 20.0]


def test_a_create_is_not_retried_when_the_server_may_have_acted(make_client, app, backend):
    add_clients(backend, 1)
    client = make_client()
    app.state.faults.fail_next(1, 503, path_prefix="/api/Invoice", method="POST")
    with pytest.raises(HaloPSAServerError) as caught:
        client.create_invoice({"client_id": 1, "lines": []})
    assert caught.value.attempts == 1
    app.state.faults.drop_next(1, path_prefix="/api/Invoice", method="POST")
    with pytest.raises(HaloPSATransportError):
        client.create_invoice({"client_id": 1, "lines": []})
    # A 429 is refused before anything happens: safe to send again.
    app.state.faults.fail_next(1, 429, path_prefix="/api/Invoice", method="POST")
    invoice = client.create_invoice({"client_id": 1, "reference": "DG-1001", "lines": []})
    assert backend.count("Invoice") == 1 and invoice["reference"] == "DG-1001"


# -- tokens ----------------------------------------------------------------------------------


def test_token_fetched_once_and_sent_to_the_token_endpoint_with_the_tenant(
    make_client, backend, records
):
    add_clients(backend, 120)
    client = make_client()
    client.clients()
    client.get("Client", 3)
    (token_request,) = api_records(records, "/auth/token")
    assert token_request.method == "POST" and token_request.params == {"tenant": "acme"}
    assert client.stats.token_fetches == 1 and backend.stats()["tokens_issued"] == 1


def test_revoked_token_mid_pagination_is_refreshed_once(make_client, backend, records):
    add_clients(backend, 250)
    backend.after_page("Client", 1, lambda b: b.expire_tokens())
    client = make_client()
    assert len(client.clients()) == 250
    sequence = [(r.path, r.status) for r in records]
    assert sequence == [
        ("/auth/token", 200),
        ("/api/Client", 200),
        ("/api/Client", 401),
        ("/auth/token", 200),
        ("/api/Client", 200),
        ("/api/Client", 200),
    ]
    assert client.stats.token_fetches == 2 and backend.stats()["tokens_issued"] == 2


def test_a_persistent_401_refreshes_exactly_once(make_client, app, records):
    app.state.faults.fail_next(5, 401, path_prefix="/api/Client")
    client = make_client()
    with pytest.raises(HaloPSAAuthError) as caught:
        client.clients()
    assert [r.status for r in api_records(records, "/api/Client")] == [401, 401]
    assert client.stats.token_fetches == 2 and caught.value.attempts == 2
    assert "HTTP 401" in str(caught.value) and "client_id/client_secret" in str(caught.value)


def test_token_is_renewed_before_it_expires(records):
    # Tokens of 2 s on a real clock: the client renews after half their life, before the
    # server would refuse them; a slow page makes the token age mid-listing.
    backend = HaloPSABackend(tenant="acme", token_ttl=2)
    backend.add_application(CLIENT_ID, SECRET)
    add_clients(backend, 250)
    app = create_app(backend)
    app.state.faults.delay_next(1, 1.2, path_prefix="/api/Client")
    with HaloPSAClient(
        "acme",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        authorization_server=f"{BASE}/auth",
        resource_server=f"{BASE}/api",
        transport=SyncASGITransport(app),
        recorder=records.append,
        rate_limit=None,
    ) as client:
        assert len(client.clients()) == 250
    assert 401 not in [r.status for r in records]
    assert client.stats.token_fetches == 2


# -- rate limiting ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_limiter_keeps_the_server_from_ever_answering_429():
    """20 requests per 2 s on both sides, 50 requests from 4 threads over loopback."""
    backend = HaloPSABackend(tenant="acme", rate_limit=RateLimit(requests=20, window_seconds=2))
    backend.add_application(CLIENT_ID, SECRET)
    add_clients(backend, 5)
    app = create_app(backend)
    with (
        serve_in_thread(app) as server,
        HaloPSAClient(
            "acme",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            authorization_server=f"{server.base_url}/auth",
            resource_server=f"{server.base_url}/api",
            rate_limit=(20, 2.0),
            retry=RetryPolicy.never(),
        ) as client,
    ):
        errors: list[BaseException] = []

        def worker(count: int) -> None:
            try:
                for n in range(count):
                    client.get("Client", 1 + n % 5)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in (13, 13, 12, 12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    assert app.state.stats.count(429) == 0 and app.state.stats.count(200) == 51  # and the token
    assert client.stats.rate_limited == 0 and client.stats.throttle_wait_seconds > 2.0


def test_without_the_limiter_the_same_budget_is_exceeded(make_client, backend):
    backend.set_rate_limit(RateLimit(requests=20, window_seconds=2))
    add_clients(backend, 5)
    client = make_client(retry=RetryPolicy.never())
    with pytest.raises(HaloPSARateLimitedError) as caught:
        for _ in range(25):
            client.get("Client", 1)
    assert client.stats.calls == 22  # the token, 20 reads, the refused one
    assert str(caught.value).startswith(
        "halopsa portal acme: GET /api/Client/1 (Client 1) failed: HTTP 429: "
        "Rate Limit Reached - 20 Requests per rolling 2 second window"
    )
    assert caught.value.retry_after is not None


def test_a_shared_limiter_spans_clients(make_client):
    limiter = RateLimiter(300, 300.0)
    first, second = make_client(rate_limit=limiter), make_client(rate_limit=limiter)
    assert first.limiter is second.limiter


# -- secrets ----------------------------------------------------------------------------------


def test_no_secret_in_logs_records_or_errors(app, backend, records, caplog, clock):
    caplog.set_level(logging.DEBUG)
    add_clients(backend, 120)
    sniffer = TokenSniffer(SyncASGITransport(app))
    client = HaloPSAClient(
        "acme",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        tenant="acme",
        authorization_server=f"{BASE}/auth",
        resource_server=f"{BASE}/api",
        transport=sniffer,
        recorder=records.append,
        retry=RetryPolicy(sleep=clock.sleep),
        rate_limit=None,
    )
    messages: list[str] = []
    with client:
        backend.after_page("Client", 1, lambda b: b.expire_tokens())
        client.clients()
        app.state.faults.fail_next(1, 500, path_prefix="/api/Client")
        client.get("Client", 1)
        for call in (lambda: client.get("Client", 99999), lambda: client.upsert("Client", {})):
            with pytest.raises(HaloPSAError) as caught:
                call()
            messages.append(str(caught.value))
    wrong = HaloPSAClient(
        "acme",
        client_id=CLIENT_ID,
        client_secret="not-the-secret-at-all",
        authorization_server=f"{BASE}/auth",
        resource_server=f"{BASE}/api",
        transport=SyncASGITransport(app),
        recorder=records.append,
        rate_limit=None,
    )
    with wrong, pytest.raises(HaloPSAAuthError) as caught:
        wrong.clients()
    messages.append(str(caught.value))
    secrets = [SECRET, "not-the-secret-at-all", *sniffer.tokens]
    assert len(sniffer.tokens) == 2
    haystacks = {
        "logs": caplog.text,
        "records": repr([r.as_dict() for r in records]),
        "errors": "\n".join(messages),
        "repr": repr(client) + repr(client.stats),
    }
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret reached the {where}"


# -- custom field ---------------------------------------------------------------------------


def test_ensure_client_checkbox_field_is_idempotent(make_client, backend):
    client = make_client()
    field, created = client.ensure_client_checkbox_field()
    assert created and field["name"] == "CFDatagate"
    assert (field["usage"], field["type"], field["label"]) == (2, 6, "Datagate")
    again, created_again = client.ensure_client_checkbox_field()
    assert not created_again and again["id"] == field["id"]
    names = [f["name"] for f in client.field_infos()]
    assert names.count("CFDatagate") == 1


def test_ensure_client_checkbox_field_matches_names_loosely(make_client, backend):
    backend.load("FieldInfo", [{"name": "datagate", "usage": 2, "type": 6}])
    client = make_client()
    field, created = client.ensure_client_checkbox_field("Datagate")
    assert not created and field["name"] == "CFdatagate"
    field, created = client.ensure_client_checkbox_field("CFDATAGATE")
    assert not created


def test_ensure_client_checkbox_field_finds_the_generated_one(make_client, backend):
    tenant = generate_tenant(backend, customers=3, seed=1)
    field, created = make_client().ensure_client_checkbox_field()
    assert not created and field["id"] == tenant.datagate_field_id


# -- records and writes ---------------------------------------------------------------------


def test_get_upsert_delete(make_client, backend):
    client = make_client()
    created = client.upsert("Client", {"name": "Harbor Freight Co"})
    assert created["id"] > 0 and created["name"] == "Harbor Freight Co"
    updated = client.upsert("Client", {"id": created["id"], "notes": "VIP"})
    assert updated["notes"] == "VIP" and updated["name"] == "Harbor Freight Co"
    batch = client.upsert("Client", [{"name": "A"}, {"name": "B"}])
    assert [row["name"] for row in batch] == ["A", "B"]
    assert isinstance(client.upsert("Client", [{"name": "C"}]), list)
    assert client.get("Client", created["id"])["notes"] == "VIP"
    client.delete("Client", created["id"])
    with pytest.raises(HaloPSANotFoundError) as caught:
        client.get("Client", created["id"])
    assert isinstance(caught.value, NotFoundError)
    assert caught.value.entity == "Client" and caught.value.entity_id == created["id"]
    assert str(caught.value) == (
        f"halopsa portal acme: GET /api/Client/{created['id']} (Client {created['id']}) "
        f"failed: HTTP 404: Client {created['id']} not found"
    )


def test_invoices_create_find_void(make_client, backend):
    add_clients(backend, 2)
    client = make_client()
    invoice = client.create_invoice(
        {
            "client_id": 2,
            "reference": "DG-2026-07-0001",
            "lines": [
                {"item_shortdescription": "Hosted PBX Seat", "qty_order": 2, "unit_price": 24.95}
            ],
        }
    )
    assert invoice["id"] > 0
    found = client.find_invoices(search="DG-2026-07-0001")
    assert [row["id"] for row in found] == [invoice["id"]]
    assert client.find_invoices(client_id=1) == []
    voided = client.void_invoice(invoice["id"])
    assert voided["voided"] is True
    with pytest.raises(ValueError):
        client.create_invoice({"id": invoice["id"]})


def test_validation_errors_carry_halos_field_messages(make_client):
    client = make_client()
    with pytest.raises(HaloPSABadRequestError) as caught:
        client.upsert("Site", [{"name": "Annex", "client_id": 4242}])
    assert caught.value.status == 400 and caught.value.attempts == 1
    assert "[0].client_id: Client 4242 does not exist." in str(caught.value)


def test_wrong_secret_is_an_auth_error_naming_the_fix(make_client, records):
    client = make_client(client_secret="wrong-secret-value")
    with pytest.raises(HaloPSAAuthError) as caught:
        client.clients()
    assert caught.value.path == "/auth/token" and caught.value.status == 401
    assert "invalid_client: The specified client credentials are invalid." in str(caught.value)
    assert len(records) == 1  # a 401 from the token endpoint is not retried


def test_wrong_tenant_points_at_the_tenant(make_client, records):
    client = make_client(
        tenant="acme-typo", retry=RetryPolicy(sleep=lambda s: None, max_attempts=3)
    )
    with pytest.raises(HaloPSAAuthError) as caught:
        client.clients()
    assert "is the tenant 'acme-typo' right?" in str(caught.value)
    assert caught.value.status == 500 and caught.value.attempts == 3
    # The token request's own retries only: the list request does not retry them again.
    assert [(r.path, r.status) for r in records] == [("/auth/token", 500)] * 3


def test_missing_scope_is_a_403_auth_error(backend, make_client):
    backend.add_application("reader", "reader-secret-123", allowed_scopes="read:customers")
    client = make_client(
        client_id="reader", client_secret="reader-secret-123", scope="read:customers"
    )
    assert client.clients() == []
    with pytest.raises(HaloPSAAuthError) as caught:
        client.items()
    assert (
        caught.value.status == 403 and "does not allow read access to Item" in caught.value.message
    )


@pytest.mark.parametrize(
    ("status", "body", "headers", "message"),
    [
        (401, {"error": "invalid_client", "error_description": "bad"}, {}, "invalid_client: bad"),
        (400, {"[0].name": ["Required.", "Too short."]}, {}, "[0].name: Required. Too short."),
        (500, {"ClassName": "System.Exception", "Message": "Boom"}, {}, "Boom"),
        (400, {"resultCode": 2, "errorMessage": "Nope"}, {}, "Nope"),
        (
            400,
            "CODE:APP03/2 Please select the CAB members",
            {},
            "CODE:APP03/2 Please select the CAB members",
        ),
        (
            401,
            None,
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            'Bearer error="invalid_token"',
        ),
        (502, None, {}, "Bad Gateway"),
    ],
)
def test_halo_error_body_shapes(status, body, headers, message):
    if body is None:
        response = httpx.Response(status, headers=headers)
    elif isinstance(body, str):
        response = httpx.Response(status, text=body, headers=headers)
    else:
        response = httpx.Response(status, json=body, headers=headers)
    assert halo_error_message(response) == message


# -- access check and loopback -------------------------------------------------------------


def test_test_access_over_loopback(backend):
    add_clients(backend, 7)
    with (
        serve_in_thread(create_app(backend)) as server,
        HaloPSAClient(
            "acme",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            tenant="acme",
            authorization_server=f"{server.base_url}/auth",
            resource_server=f"{server.base_url}/api",
        ) as client,
    ):
        check = client.test_access()
    assert check.ok and check.token_ok and check.first_page_ok
    assert check.client_count == 7
    assert check.authinfo == {"auth_url": f"{server.base_url}/auth", "tenant_id": "acme"}


def test_test_access_reports_problems_instead_of_raising(make_client):
    check = make_client(client_secret="nope-nope-nope").test_access()
    assert not check.ok and check.authinfo is not None and not check.token_ok
    assert check.problems and check.problems[0].startswith("token: halopsa portal acme")


def test_dropped_connections_over_loopback_are_retried(backend):
    add_clients(backend, 3)
    app = create_app(backend)
    app.state.faults.drop_next(1, path_prefix="/api/Client")
    records: list[ApiRequestRecord] = []
    with (
        serve_in_thread(app) as server,
        HaloPSAClient(
            "acme",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            authorization_server=f"{server.base_url}/auth",
            resource_server=f"{server.base_url}/api",
            recorder=records.append,
            retry=RetryPolicy(sleep=lambda s: None),
        ) as client,
    ):
        assert len(client.clients()) == 3
    assert [r.status for r in api_records(records, "/api/Client")] == [None, 200]


def test_test_access_warns_when_authinfo_names_another_auth_server(make_client, backend):
    check = make_client(authorization_server="http://auth.elsewhere.test/auth").test_access()
    assert check.ok and check.client_count == 0
    assert check.warnings == [
        "authinfo names the authorization server http://halo.test/auth, "
        "but portals.yaml has http://auth.elsewhere.test/auth"
    ]


class LoseResponses(httpx.BaseTransport):
    """The simulator acts on the request, then the connection drops before the answer
    arrives: the case where repeating a request is not safe."""

    def __init__(self, inner: httpx.BaseTransport, method: str, path_prefix: str) -> None:
        self.inner, self.method, self.path_prefix, self.count = inner, method, path_prefix, 1

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        wanted = request.method == self.method and request.url.path.startswith(self.path_prefix)
        if wanted and self.count > 0:
            self.count -= 1
            raise httpx.RemoteProtocolError("Server disconnected", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_create_whose_answer_is_lost_is_not_repeated(make_client, app, backend):
    add_clients(backend, 1)
    client = make_client(transport=LoseResponses(SyncASGITransport(app), "POST", "/api/Invoice"))
    with pytest.raises(HaloPSATransportError) as caught:
        client.create_invoice({"client_id": 1, "reference": "DG-1", "lines": []})
    assert caught.value.attempts == 1 and "RemoteProtocolError" in str(caught.value)
    assert backend.count("Invoice") == 1  # created once; found again by its reference
    assert [row["reference"] for row in client.find_invoices(search="DG-1")] == ["DG-1"]


def test_a_delete_whose_answer_is_lost_counts_as_done(make_client, app, backend):
    add_clients(backend, 2)
    client = make_client(transport=LoseResponses(SyncASGITransport(app), "DELETE", "/api/Client"))
    assert client.delete("Client", 2) is None
    assert backend.count("Client") == 1
    with pytest.raises(HaloPSANotFoundError):
        client.delete("Client", 2)
