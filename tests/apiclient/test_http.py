"""The shared HTTP core: redaction, rate limiter, retry policy, records, typed errors.

These are unit tests of the core with `httpx.MockTransport` standing in for a server; the
API clients are tested against the simulators.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from datagate_pipelines import DatagateError
from datagate_pipelines.apiclient.base import ApiClientBase
from datagate_pipelines.apiclient.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from datagate_pipelines.apiclient.rate_limit import RateLimiter
from datagate_pipelines.apiclient.records import ApiRequestRecord
from datagate_pipelines.apiclient.redaction import (
    Redactor,
    is_sensitive_key,
    redact,
    redact_mapping,
    redact_url_query,
)
from datagate_pipelines.apiclient.retries import RetryPolicy, parse_retry_after

SECRET = "s3cr3t-client-secret-value"
TOKEN = "eyJhbGciOi.token-value.xyz"


class Sleeps(list):
    """An injected `sleep` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    records: list[ApiRequestRecord] | None = None,
    sleeps: Sleeps | None = None,
    **policy: object,
) -> ApiClientBase:
    retry = RetryPolicy(sleep=sleeps if sleeps is not None else Sleeps(), **policy)
    return ApiClientBase(
        "acme",
        base_url="https://api.example.test/api",
        transport=httpx.MockTransport(handler),
        retry=retry,
        recorder=records.append if records is not None else None,
        run_id="run-1",
        secrets=[SECRET],
    )


def replies(*outcomes: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """A handler that plays `outcomes` in order (an exception is raised, as a transport would)."""
    queue = list(outcomes)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


# -- redaction ------------------------------------------------------------------------------


def test_redact_masks_known_secrets_and_credential_shapes():
    text = (
        f"grant_type=client_credentials&client_id=abc&client_secret={SECRET}&scope=all "
        f'{{"access_token": "{TOKEN}", "token_type": "Bearer"}} '
        f"Authorization: Bearer {TOKEN} password=hunter22"
    )
    masked = redact(text, [SECRET, TOKEN])
    assert SECRET not in masked and TOKEN not in masked and "hunter22" not in masked
    assert "client_id=abc" in masked and "scope=all" in masked
    # Patterns catch credentials even when the value is not a known secret.
    assert "zzz-unknown" not in redact('{"refresh_token":"zzz-unknown"}')
    assert "Bearer ***" in redact("Authorization: Bearer abc.def-ghi")


def test_redactor_keeps_fixed_and_recent_secrets():
    redactor = Redactor([SECRET], recent=2)
    redactor.add("token-one-111", transient=True)
    redactor.add("token-two-222", transient=True)
    redactor.add("token-three-333", transient=True)
    masked = redactor(f"{SECRET} token-two-222 token-three-333 token-one-111")
    assert masked == "*** *** *** token-one-111"


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("client_secret", True),
        ("Authorization", True),
        ("refresh_token", True),
        ("X-Api-Key", True),
        ("code", True),
        ("page_no", False),
        ("tenant", False),
        ("client_id", False),
        ("search", False),
    ],
)
def test_sensitive_keys(key: str, sensitive: bool):
    assert is_sensitive_key(key) is sensitive


def test_redact_mapping():
    assert redact_mapping({"tenant": "acme", "access_token": TOKEN, "page_no": 2}) == {
        "tenant": "acme",
        "access_token": "***",
        "page_no": "2",
    }


# -- Retry-After --------------------------------------------------------------------------------


def test_parse_retry_after():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30
    )
    assert (
        parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0
    )
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


# -- rate limiter -------------------------------------------------------------------------------


def test_limiter_blocks_beyond_the_window():
    limiter = RateLimiter(3, 0.3)
    started = time.monotonic()
    for _ in range(3):
        with limiter.slot() as waited:
            assert waited < 0.05
    with limiter.slot() as waited:
        pass
    assert waited >= 0.25
    assert time.monotonic() - started >= 0.25


def test_limiter_never_exceeds_its_budget_across_threads():
    limiter = RateLimiter(5, 0.2)
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def worker():
        for _ in range(4):
            with limiter.slot():
                start = time.monotonic()
                time.sleep(0.005)
                end = time.monotonic()
            with lock:
                spans.append((start, end))

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(spans) == 20
    # However late the server counts a request (anywhere in its span), no rolling window
    # of 0.2 s can hold more than 5: any 6 spans stretch over more than the window.
    starts = sorted(start for start, _ in spans)
    ends = sorted(end for _, end in spans)
    for index in range(len(starts) - 5):
        assert starts[index + 5] - ends[index] >= 0.2 - 1e-3


def test_limiter_caps_concurrency():
    limiter = RateLimiter(None, 0.0, max_concurrency=2)
    active = 0
    peak = 0
    lock = threading.Lock()

    def worker():
        nonlocal active, peak
        with limiter.slot():
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2


def test_unlimited_limiter_never_waits():
    limiter = RateLimiter.unlimited()
    for _ in range(1000):
        with limiter.slot() as waited:
            assert waited == 0.0


# -- retries --------------------------------------------------------------------------------


def test_retries_5xx_then_succeeds_with_growing_backoff():
    records: list[ApiRequestRecord] = []
    sleeps = Sleeps()
    handler = replies(
        httpx.Response(500, text="boom"),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(503, text="unavailable"),
        httpx.Response(200, json={"ok": True}),
    )
    client = make_client(handler, records=records, sleeps=sleeps, jitter=0.0)
    response = client.request("GET", "Client", params={"page_no": 1})
    assert response.json() == {"ok": True}
    assert [r.status for r in records] == [500, 502, 503, 200]
    assert [r.attempt for r in records] == [1, 2, 3, 4]
    assert [r.error for r in records][:3] == ["boom", "bad gateway", "unavailable"]
    assert records[-1].error is None
    assert sleeps == [1.0, 2.0, 4.0]
    assert client.stats.retries == 3 and client.stats.server_errors == 3
    assert client.stats.calls == 4


def test_jitter_stays_within_bounds():
    sleeps = Sleeps()
    client = make_client(
        replies(httpx.Response(503), httpx.Response(503), httpx.Response(200)),
        sleeps=sleeps,
        backoff_initial=1.0,
        jitter=0.5,
    )
    client.request("GET", "Client")
    assert 1.0 <= sleeps[0] <= 1.5 and 2.0 <= sleeps[1] <= 2.5


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset by peer"),
    ],
)
def test_transport_errors_are_retried_and_recorded(failure: Exception):
    records: list[ApiRequestRecord] = []
    client = make_client(
        replies(failure, httpx.Response(200, json=[])), records=records, jitter=0.0
    )
    assert client.request("GET", "Site").json() == []
    assert [r.status for r in records] == [None, 200]
    assert records[0].error.startswith(type(failure).__name__)
    assert client.stats.transport_errors == 1


def test_retry_after_seconds_is_honoured_then_backoff_without_it():
    sleeps = Sleeps()
    client = make_client(
        replies(
            httpx.Response(429, headers={"Retry-After": "7"}, text="Rate Limit Reached"),
            httpx.Response(429, text="Rate Limit Reached"),
            httpx.Response(200, json={}),
        ),
        sleeps=sleeps,
        jitter=0.0,
        rate_limited_initial=5.0,
    )
    client.request("GET", "Client")
    # The first wait is the server's; the second, with no header, is the 429 backoff.
    assert sleeps == [7.0, 10.0]
    assert client.stats.rate_limited == 2


def test_retry_after_http_date_and_cap():
    sleeps = Sleeps()
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=3600), usegmt=True)
    client = make_client(
        replies(httpx.Response(503, headers={"Retry-After": later}), httpx.Response(200)),
        sleeps=sleeps,
        retry_after_max=120.0,
        max_elapsed=10_000.0,
    )
    client.request("GET", "Client")
    assert sleeps == [120.0]


def test_gives_up_after_max_attempts_with_a_typed_error():
    records: list[ApiRequestRecord] = []
    client = make_client(replies(httpx.Response(503, text="down")), records=records, max_attempts=3)
    with pytest.raises(ServerError) as caught:
        client.request("GET", "Client/5", entity="client", entity_id=5)
    error = caught.value
    assert len(records) == 3 and error.attempts == 3
    assert (error.system, error.portal, error.method, error.path, error.status) == (
        "http",
        "acme",
        "GET",
        "/api/Client/5",
        503,
    )
    assert str(error) == (
        "http portal acme: GET /api/Client/5 (client 5) failed after 3 attempts: "
        "HTTP 503: down (the service failed; try again later)"
    )
    assert isinstance(error, DatagateError)


def test_time_budget_stops_before_a_long_wait():
    sleeps = Sleeps()
    client = make_client(
        replies(httpx.Response(429, headers={"Retry-After": "50"})),
        sleeps=sleeps,
        max_attempts=10,
        max_elapsed=120.0,
    )
    with pytest.raises(RateLimitedError) as caught:
        client.request("GET", "Client")
    assert sleeps == [50.0, 50.0]  # a third wait would pass 120 s
    assert caught.value.attempts == 3 and caught.value.retry_after == 50.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (409, BadRequestError),
        (418, ApiError),
        (501, ServerError),
    ],
)
def test_client_errors_are_not_retried(status: int, kind: type[ApiError]):
    records: list[ApiRequestRecord] = []
    client = make_client(replies(httpx.Response(status, text="nope")), records=records)
    with pytest.raises(kind) as caught:
        client.request("GET", "Client")
    assert type(caught.value) is kind
    assert len(records) == 1 and caught.value.attempts == 1


def test_a_post_that_creates_is_retried_only_when_the_server_surely_did_nothing():
    created = make_client(replies(httpx.Response(500), httpx.Response(201, json={})))
    with pytest.raises(ServerError):
        created.request("POST", "Invoice", json=[{}])

    for first in (httpx.Response(429), httpx.ConnectError("refused")):
        client = make_client(replies(first, httpx.Response(201, json={"id": 1})))
        assert client.request("POST", "Invoice", json=[{}]).json() == {"id": 1}

    dropped = make_client(replies(httpx.ReadTimeout("slow"), httpx.Response(201)))
    with pytest.raises(TransportError):
        dropped.request("POST", "Invoice", json=[{}])

    # An upsert of existing ids is safe to repeat: the caller says so.
    upsert = make_client(replies(httpx.Response(502), httpx.Response(201, json={"id": 4})))
    assert upsert.request("POST", "Client", json=[{"id": 4}], idempotent=True).status_code == 201


def test_never_policy_makes_one_attempt():
    client = ApiClientBase(
        "acme",
        base_url="https://api.example.test",
        transport=httpx.MockTransport(replies(httpx.Response(503))),
        retry=RetryPolicy.never(),
    )
    with pytest.raises(ServerError):
        client.request("GET", "x")
    assert client.stats.calls == 1 and client.stats.retries == 0


# -- records and secrets ------------------------------------------------------------------------


def test_records_hold_no_secrets(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    records: list[ApiRequestRecord] = []
    handler = replies(
        httpx.Response(401, json={"error": "invalid_client", "error_description": SECRET}),
    )
    client = make_client(handler, records=records)
    with pytest.raises(AuthError) as caught:
        client.request(
            "POST",
            "https://auth.example.test/auth/token",
            params={"tenant": "acme", "client_secret": SECRET},
            data={"client_id": "abc", "client_secret": SECRET},
            headers={"Authorization": f"Bearer {TOKEN}"},
            authenticate=False,
        )
    (record,) = records
    assert record.path == "/auth/token"
    assert record.params == {"tenant": "acme", "client_secret": "***"}
    assert (record.system, record.portal, record.run_id, record.method) == (
        "http",
        "acme",
        "run-1",
        "POST",
    )
    assert record.started_at.tzinfo is not None and record.duration_ms >= 0
    everything = repr(record.as_dict()) + str(caught.value) + caplog.text
    assert SECRET not in everything and TOKEN not in everything
    # The secret did reach the server: redaction is about what we keep, not what we send.
    assert SECRET.encode() in handler.seen[0].content


def test_a_failing_recorder_does_not_fail_the_request(caplog: pytest.LogCaptureFixture):
    def broken(record: ApiRequestRecord) -> None:
        raise RuntimeError("warehouse down")

    client = ApiClientBase(
        "acme",
        base_url="https://api.example.test",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})),
        recorder=broken,
    )
    assert client.request("GET", "x").status_code == 200
    assert "request recorder failed" in caplog.text


# -- re-authentication --------------------------------------------------------------------------


class TokenClient(ApiClientBase):
    """A client whose token the test can expire, to exercise the 401 hook."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]):
        super().__init__(
            "acme",
            base_url="https://api.example.test",
            transport=httpx.MockTransport(handler),
            retry=RetryPolicy(sleep=Sleeps()),
        )
        self.issued = 0

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer token-{self.issued}"}

    def _invalidate_auth(self, used) -> bool:
        self.issued += 1
        return True


def test_a_401_reauthenticates_once_and_resends_once():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200 if request.headers["Authorization"] == "Bearer token-1" else 401)

    client = TokenClient(handler)
    assert client.request("GET", "x").status_code == 200
    assert seen == ["Bearer token-0", "Bearer token-1"]

    always = TokenClient(lambda request: httpx.Response(401, text="expired"))
    with pytest.raises(AuthError) as caught:
        always.request("GET", "x")
    assert always.issued == 1 and caught.value.attempts == 2


# -- errors ---------------------------------------------------------------------------------


def test_errors_pickle_with_their_fields():
    error = RateLimitedError(
        "Rate Limit Reached",
        system="halopsa",
        portal="acme",
        method="GET",
        path="/api/Client",
        status=429,
        retry_after=3.0,
        attempts=6,
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitedError
    assert str(copy) == str(error)
    assert (copy.status, copy.retry_after, copy.attempts) == (429, 3.0, 6)


def test_transport_error_names_the_host():
    client = make_client(replies(httpx.ConnectError("refused")), max_attempts=2)
    with pytest.raises(TransportError) as caught:
        client.request("GET", "Client")
    assert "ConnectError talking to api.example.test" in str(caught.value)
    assert "no response" in str(caught.value)


def test_ordinary_words_survive_redaction():
    text = "The Bearer token is invalid; basic item groups only"
    assert redact(text) == text


def test_library_logs_mask_sensitive_query_values(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="httpx")
    client = ApiClientBase(
        "acme",
        base_url="https://api.example.test",
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    )
    client.request("GET", "callback", params={"code": "auth-code-123456", "state": "xyz"})
    assert "auth-code-123456" not in caplog.text
    assert "code=***&state=xyz" in caplog.text
    assert redact_url_query("https://x/cb?code=abc&realmId=9") == "https://x/cb?code=***&realmId=9"


def test_a_failed_authentication_step_is_not_retried_again():
    sends: list[httpx.Request] = []

    class FailingAuth(ApiClientBase):
        def _auth_headers(self) -> dict[str, str]:
            raise ServerError(
                "token endpoint down",
                system="http",
                portal="acme",
                method="POST",
                path="/auth/token",
                status=503,
                attempts=6,
            )

    client = FailingAuth(
        "acme",
        base_url="https://api.example.test",
        transport=httpx.MockTransport(lambda request: sends.append(request) or httpx.Response(200)),
        retry=RetryPolicy(sleep=Sleeps()),
    )
    with pytest.raises(ServerError) as caught:
        client.request("GET", "x")
    assert caught.value.path == "/auth/token" and caught.value.attempts == 6
    assert sends == [] and client.stats.retries == 0
