"""simulators.faults: the switches, the middleware, the /_sim control endpoints, the CLI flags."""

from __future__ import annotations

import argparse
import threading
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from datagate_simulators.faults import (
    Fault,
    FaultMiddleware,
    FaultPlan,
    FaultSpecError,
    RequestStats,
    add_fault_arguments,
    apply_fault_arguments,
    endpoint_key,
)
from datagate_simulators.server import SyncASGITransport, serve_in_thread


async def ok(request: Request) -> Response:
    return JSONResponse({"ok": True, "path": request.url.path})


async def teapot(request: Request) -> Response:
    return JSONResponse({"no": True}, status_code=418)


def make_app(**kwargs) -> tuple[Starlette, FaultPlan, RequestStats]:
    plan, stats = FaultPlan(), RequestStats()
    app = Starlette(
        routes=[
            Route("/api/{rest:path}", ok, methods=["GET", "POST"]),
            Route("/other", ok),
            Route("/teapot", teapot),
        ],
        middleware=[Middleware(FaultMiddleware, plan=plan, stats=stats, **kwargs)],
    )
    return app, plan, stats


@pytest.fixture
def sim():
    app, plan, stats = make_app()
    with httpx.Client(transport=SyncASGITransport(app), base_url="http://sim.test") as client:
        yield client, plan, stats


# ---------------------------------------------------------------- the plan


def test_fail_next_counts_down_and_matches_prefix_case_insensitively() -> None:
    plan = FaultPlan()
    plan.fail_next(2, 503, path_prefix="/API/Client")
    assert plan.take("GET", "/api/site").status is None
    assert plan.take("GET", "/api/client").status == 503
    assert plan.take("POST", "/api/Client/5").status == 503
    assert plan.take("GET", "/api/client").is_noop
    assert plan.pending() == []


def test_one_switch_of_each_kind_per_request() -> None:
    plan = FaultPlan()
    plan.delay_next(1, 0.5)
    plan.fail_next(1, 502)
    plan.fail_next(1, 500)
    first = plan.take("GET", "/x")
    assert (first.delay, first.status, first.drop) == (0.5, 502, False)
    assert plan.take("GET", "/x").status == 500  # oldest first, one per request


def test_method_filter() -> None:
    plan = FaultPlan()
    plan.drop_next(1, method="post")
    assert not plan.take("GET", "/x").drop
    assert plan.take("POST", "/x").drop


def test_plan_is_thread_safe() -> None:
    plan = FaultPlan()
    plan.fail_next(1000, 503)
    hits: list[int] = []

    def worker() -> None:
        for _ in range(300):
            if plan.take("GET", "/x").status:
                hits.append(1)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(hits) == 1000


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "nope"},
        {"kind": "status", "count": 0},
        {"kind": "status", "status": 200},
        {"kind": "delay", "seconds": -1},
        {"kind": "status", "count": "x"},
    ],
)
def test_bad_specs_are_refused(spec: dict) -> None:
    with pytest.raises(FaultSpecError):
        Fault.from_dict(spec)


def test_endpoint_key_folds_ids_and_case() -> None:
    assert endpoint_key("get", "/api/RecurringInvoice/-94") == "GET /api/recurringinvoice/{id}"


# ---------------------------------------------------------------- the middleware


def test_injected_status_skips_the_app_and_is_counted(sim) -> None:
    client, plan, stats = sim
    plan.fail_next(2, 503)
    assert [client.get("/api/x").status_code for _ in range(3)] == [503, 503, 200]
    snapshot = stats.snapshot()
    assert snapshot["requests"] == 3
    assert snapshot["by_status"] == {"200": 1, "503": 2}
    assert snapshot["faults_applied"] == {"status": 2}


def test_delay_then_answer(sim) -> None:
    client, plan, _ = sim
    plan.delay_next(1, 0.3)
    started = time.monotonic()
    assert client.get("/api/x").status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        plan.delay_next(1, 1.0)
        client.get("/api/x", timeout=0.1)


def test_drop_in_process(sim) -> None:
    client, plan, stats = sim
    plan.drop_next(1, path_prefix="/api")
    assert client.get("/other").status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/api/x")
    assert stats.snapshot()["faults_applied"] == {"drop": 1}


def test_drop_over_loopback() -> None:
    app, plan, _ = make_app()
    plan.drop_next(1)
    with serve_in_thread(app) as server, httpx.Client(base_url=server.base_url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/api/x")
        assert client.get("/api/x").status_code == 200


def test_app_statuses_are_counted(sim) -> None:
    client, _, stats = sim
    client.get("/teapot")
    assert stats.count(418) == 1
    assert stats.endpoint_count("GET", "/teapot") == 1


def test_control_endpoints(sim) -> None:
    client, _, _ = sim
    response = client.post(
        "/_sim/faults",
        json=[
            {"kind": "status", "count": 1, "status": 502},
            {"kind": "drop", "count": 2, "path_prefix": "/api/a"},
        ],
    )
    assert response.status_code == 200
    assert [f["kind"] for f in response.json()["applied"]] == ["status", "drop"]
    assert len(client.get("/_sim/faults").json()["faults"]) == 2
    assert client.get("/other").status_code == 502
    assert client.delete("/_sim/faults").json() == {"faults": []}
    assert client.get("/other").status_code == 200
    stats_body = client.get("/_sim/stats").json()
    assert stats_body["requests"] == 2  # control requests are not counted
    assert stats_body["rate_limited"] == 0
    assert client.post("/_sim/reset").json() == {"reset": True}
    assert client.get("/_sim/stats").json()["requests"] == 0
    assert client.post("/_sim/faults", json={"kind": "bogus"}).status_code == 400
    assert client.post("/_sim/faults", content=b"{not json").status_code == 400
    assert client.get("/_sim/nothing").status_code == 404


def test_simulator_hooks() -> None:
    calls: list[object] = []
    app, _, _ = make_app(
        fault_handlers={"expire_tokens": lambda spec: calls.append(spec) or {"done": True}},
        on_reset=lambda: calls.append("reset"),
        extra_stats=lambda: {"extra": 1},
        error_body=lambda status: (b"rate limited", "text/plain", {"Retry-After": "7"}),
    )
    with httpx.Client(transport=SyncASGITransport(app), base_url="http://sim.test") as client:
        assert client.post("/_sim/faults", json={"kind": "expire_tokens"}).json() == {
            "applied": [{"done": True}]
        }
        client.post("/_sim/reset")
        assert calls == [{"kind": "expire_tokens"}, "reset"]
        assert client.get("/_sim/stats").json()["extra"] == 1
        client.post("/_sim/faults", json={"kind": "status", "status": 429})
        response = client.get("/api/x")
        assert (response.status_code, response.text, response.headers["retry-after"]) == (
            429,
            "rate limited",
            "7",
        )


# ---------------------------------------------------------------- command line


def test_cli_flags() -> None:
    parser = argparse.ArgumentParser()
    add_fault_arguments(parser)
    args = parser.parse_args(
        [
            "--fail-next",
            "3:503",
            "--fail-next",
            "1:500:/api/client",
            "--delay-next",
            "2:1.5",
            "--drop-next",
            "1",
        ]
    )
    plan = FaultPlan()
    apply_fault_arguments(plan, args)
    kinds = [(f.kind, f.remaining, f.status, f.seconds, f.path_prefix) for f in plan.pending()]
    assert kinds == [
        ("status", 3, 503, 0.0, None),
        ("status", 1, 500, 0.0, "/api/client"),
        ("delay", 2, 503, 1.5, None),
        ("drop", 1, 503, 0.0, None),
    ]
    with pytest.raises(SystemExit):
        parser.parse_args(["--fail-next", "three"])
