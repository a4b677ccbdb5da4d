"""simulators.server: loopback hosting in a thread and the in-process transport behave alike."""

from __future__ import annotations

import threading

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from datagate_simulators.server import (
    ConnectionDropped,
    SyncASGITransport,
    bind_socket,
    drop_connection,
    serve_in_thread,
)


async def echo(request: Request) -> Response:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "body": (await request.body()).decode(),
            "q": dict(request.query_params),
        }
    )


async def drop(request: Request) -> Response | None:
    await drop_connection(request.scope)
    return Response(status_code=204)  # never reaches the client


async def slow(request: Request) -> Response:
    await anyio.sleep(float(request.query_params.get("s", "1")))
    return JSONResponse({"slow": True})


APP = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST"]),
        Route("/drop", drop),
        Route("/slow", slow),
    ]
)


@pytest.fixture(params=["in-process", "loopback"])
def http(request: pytest.FixtureRequest):
    """The same tests run over SyncASGITransport and over a real socket."""
    if request.param == "in-process":
        with httpx.Client(transport=SyncASGITransport(APP), base_url="http://sim.test") as client:
            yield client
    else:
        with serve_in_thread(APP) as server, httpx.Client(base_url=server.base_url) as client:
            yield client


def test_round_trip(http: httpx.Client) -> None:
    response = http.post("/echo?x=1", content=b"hello")
    assert response.status_code == 200
    assert response.json() == {"method": "POST", "path": "/echo", "body": "hello", "q": {"x": "1"}}


def test_dropped_connection_is_a_transport_error(http: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/drop")
    assert http.get("/echo").status_code == 200  # the next request works again


def test_read_timeout_is_honoured(http: httpx.Client) -> None:
    with pytest.raises(httpx.ReadTimeout):
        http.get("/slow", params={"s": "0.6"}, timeout=0.1)


def test_serve_in_thread_binds_loopback_on_a_free_port_and_stops() -> None:
    with serve_in_thread(APP) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.port > 0
        assert httpx.get(f"{server.base_url}/echo").status_code == 200
        thread = server.thread
    assert thread is not None and not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.base_url}/echo", timeout=1)


def test_two_servers_side_by_side() -> None:
    with serve_in_thread(APP) as one, serve_in_thread(APP) as two:
        assert one.port != two.port
        assert httpx.get(f"{two.base_url}/echo").json()["path"] == "/echo"


def test_sync_transport_is_thread_safe() -> None:
    errors: list[BaseException] = []
    with httpx.Client(transport=SyncASGITransport(APP), base_url="http://sim.test") as client:

        def worker() -> None:
            try:
                for n in range(20):
                    assert client.get("/echo", params={"n": n}).json()["q"] == {"n": str(n)}
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_drop_without_host_support_raises() -> None:
    async def main() -> None:
        with pytest.raises(ConnectionDropped):
            await drop_connection({"type": "http"})

    anyio.run(main)


def test_bind_socket_port_zero() -> None:
    sock = bind_socket()
    try:
        host, port = sock.getsockname()
        assert host == "127.0.0.1" and port > 0
    finally:
        sock.close()
