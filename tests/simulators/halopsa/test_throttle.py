"""HaloPSA simulator: the rolling-window rate limit (docs/halopsa-api.md §5, §8)."""

from __future__ import annotations

import httpx
import pytest

from datagate_simulators.halopsa import RateLimit
from datagate_simulators.halopsa.testing import HaloSim, make_sim


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def sim_with(clock: FakeClock, **limit) -> HaloSim:
    return make_sim(clock=clock, rate_limit=RateLimit(**limit))


def test_default_is_300_per_rolling_5_minutes_with_halos_message() -> None:
    """§5 [R] HAPI #31, PowerShellWarrantyReports#51: the 429 text seen on hosted tenants."""
    limit = make_sim().backend.rate_limit
    assert (limit.requests, limit.window_seconds, limit.retry_after) == (300, 300.0, True)
    assert limit.message() == "Rate Limit Reached - 300 Requests per rolling 5 minute window"
    assert (
        RateLimit(10, 10).message()
        == "Rate Limit Reached - 10 Requests per rolling 10 second window"
    )
    assert RateLimit.parse("450/300").requests == 450 and not RateLimit.parse("off").enabled


def test_429_with_retry_after_and_a_rolling_window(clock: FakeClock) -> None:
    sim = sim_with(clock, requests=3, window_seconds=60)
    with sim.authed_client() as http:
        statuses = []
        for _ in range(3):
            statuses.append(http.get("/api/Client").status_code)
            clock.now += 10
        refused = http.get("/api/Client")
        assert statuses == [200, 200, 200]
        assert refused.status_code == 429
        assert refused.text == "Rate Limit Reached - 3 Requests per rolling 1 minute window"
        assert refused.headers["retry-after"] == "30"  # the first request leaves the window in 30 s
        clock.now += 30
        assert http.get("/api/Client").status_code == 200  # rolling, not a fixed bucket
        assert http.get("/api/Client").status_code == 429
        stats = http.get("/_sim/stats").json()
        assert stats["rate_limited"] == 2 and stats["by_status"]["429"] == 2
        assert stats["halopsa"]["rate_limit"]["used"]["test-client"] == 3


def test_retry_after_can_be_switched_off(clock: FakeClock) -> None:
    """§5 [I]: no source confirms Halo sends Retry-After, so clients must cope without it."""
    sim = sim_with(clock, requests=1, window_seconds=300, retry_after=False)
    with sim.authed_client() as http:
        http.get("/api/Client")
        refused = http.get("/api/Client")
        assert refused.status_code == 429 and "retry-after" not in refused.headers


def test_limit_is_per_application_and_spares_the_auth_server(clock: FakeClock) -> None:
    sim = sim_with(clock, requests=2, window_seconds=300)
    sim.backend.add_application("other", "secret")
    with sim.authed_client() as http:
        for _ in range(5):
            assert http.get("/api/authinfo").status_code == 200  # not counted
        assert (
            http.get("/api/Client", headers={"Authorization": "Bearer nope"}).status_code == 401
        )  # not counted
        assert [http.get("/api/Client").status_code for _ in range(3)] == [200, 200, 429]
        token = http.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "other",
                "client_secret": "secret",
            },
        ).json()["access_token"]
        assert (
            http.get("/api/Client", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )


def test_limit_can_be_changed_at_runtime(clock: FakeClock) -> None:
    sim = make_sim(clock=clock)
    with sim.authed_client() as http:
        applied = http.post(
            "/_sim/faults",
            json={"kind": "rate_limit", "requests": 1, "window_seconds": 5, "retry_after": False},
        ).json()
        assert applied["applied"][0]["requests"] == 1
        assert [http.get("/api/Client").status_code for _ in range(2)] == [200, 429]
        http.post("/_sim/faults", json={"kind": "rate_limit", "enabled": False})
        assert http.get("/api/Client").status_code == 200


def test_rate_limit_over_loopback() -> None:
    sim = make_sim(rate_limit=RateLimit(2, 300))
    with sim.serve() as server, httpx.Client(base_url=server.base_url) as http:
        token = sim.token(http)
        headers = {"Authorization": f"Bearer {token}"}
        assert [http.get("/api/Item", headers=headers).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert int(http.get("/api/Item", headers=headers).headers["retry-after"]) > 0
