"""Hosting for the simulators' ASGI apps: a loopback server in a thread, an in-process transport.

Both hosts give the apps the same way to drop a connection without answering (the
``DROP_CONNECTION_EXTENSION`` in the ASGI scope), so a client sees the same transport error,
``httpx.RemoteProtocolError``, whether it talks over a socket or in-process.
"""

from __future__ import annotations

import contextlib
import contextvars
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import uvicorn
from anyio.from_thread import BlockingPortal

__all__ = [
    "DROP_CONNECTION_EXTENSION",
    "ConnectionDropped",
    "RunningServer",
    "SyncASGITransport",
    "bind_socket",
    "drop_connection",
    "run_server",
    "serve_in_thread",
]

ASGIApp = Callable[
    [dict[str, Any], Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]
]

#: Key in ``scope["extensions"]``: an async callable (no arguments) that drops the connection.
DROP_CONNECTION_EXTENSION = "datagate.drop_connection"


class ConnectionDropped(Exception):
    """Raised by :func:`drop_connection` when the host offers no way to drop a connection."""


async def drop_connection(scope: dict[str, Any]) -> None:
    """Close the client's connection without sending a response.

    Call it from an ASGI app before the response starts, then return without sending anything.
    Under a host that does not support it, raises :class:`ConnectionDropped` (the host then
    answers 500, which is the closest it can do).
    """
    dropper = scope.get("extensions", {}).get(DROP_CONNECTION_EXTENSION)
    if dropper is None:
        raise ConnectionDropped("the ASGI host offers no way to drop a connection")
    await dropper()


# --------------------------------------------------------------------------- loopback server


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 = the OS picks a free port)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening before uvicorn starts means early clients wait in the backlog, not fail.
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class _UvicornDropAdapter:
    """Outermost ASGI wrapper under uvicorn: offers DROP_CONNECTION_EXTENSION.

    uvicorn's ``send`` is a bound method of its per-request cycle object, which holds the
    asyncio transport; closing that transport before any byte is written is exactly a dropped
    connection. If that internal changes, the extension is simply not offered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if scope["type"] == "http" and transport is not None:

            async def dropper() -> None:
                transport.close()
                # Wait until uvicorn has noticed, so it does not try to answer 500 itself.
                with anyio.move_on_after(5):
                    while (await receive())["type"] != "http.disconnect":
                        pass

            scope = {
                **scope,
                "extensions": {**scope.get("extensions", {}), DROP_CONNECTION_EXTENSION: dropper},
            }
        await self.app(scope, receive, send)


@dataclass
class RunningServer:
    """A simulator served by uvicorn on loopback; ``base_url`` is e.g. ``http://127.0.0.1:54321``."""

    base_url: str
    host: str
    port: int
    server: uvicorn.Server = field(repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread (forces exit after ``timeout``)."""
        self.server.should_exit = True
        if self.thread is None:
            return
        self.thread.join(timeout / 2)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout / 2)


def _uvicorn_server(app: ASGIApp, sock: socket.socket, log_level: str) -> uvicorn.Server:
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        _UvicornDropAdapter(app),
        host=host,
        port=port,
        log_config=None,  # leave the host process's logging alone
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)


@contextlib.contextmanager
def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
) -> Iterator[RunningServer]:
    """Serve ``app`` with uvicorn in a background thread for the duration of the block.

    Yields once the server accepts connections; stops it (and joins the thread) on exit.
    """
    sock = bind_socket(host, port)
    server = _uvicorn_server(app, sock, log_level)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"uvicorn-{_base_url(sock)}",
        daemon=True,
    )
    running = RunningServer(
        base_url=_base_url(sock),
        host=sock.getsockname()[0],
        port=sock.getsockname()[1],
        server=server,
        thread=thread,
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"simulator server on {running.base_url} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"simulator server on {running.base_url} did not start in {startup_timeout}s"
                )
            time.sleep(0.005)
        yield running
    finally:
        running.stop()
        sock.close()


def run_server(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_ready: Callable[[str], None] | None = None,
    log_level: str = "warning",
) -> None:
    """Serve ``app`` in the calling (main) thread until SIGINT/SIGTERM; for the simulators' CLIs.

    ``on_ready(base_url)`` runs once the socket listens (before uvicorn starts accepting, but
    connections made from then on wait in the backlog), e.g. to print the URL.
    """
    sock = bind_socket(host, port)
    server = _uvicorn_server(app, sock, log_level)

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True

    # uvicorn re-raises the signal that stopped it once it has shut down; with these handlers
    # in place that is harmless, so SIGINT/SIGTERM end the process cleanly with status 0.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if on_ready is not None:
            on_ready(_base_url(sock))
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


# --------------------------------------------------------------------------- in-process transport


class _Dropped(Exception):
    """Internal: the app dropped the connection under SyncASGITransport."""


# Set per call by SyncASGITransport; the app runs in the same task, so the dropper sees it even
# when something between (Starlette's error middleware, raise_app_exceptions=False) eats _Dropped.
_drop_flag: contextvars.ContextVar[list[bool]] = contextvars.ContextVar("datagate_drop_flag")


async def _raise_dropped() -> None:
    flag = _drop_flag.get(None)
    if flag is not None:
        flag.append(True)
    raise _Dropped


class _InProcessDropAdapter:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {
                **scope,
                "extensions": {
                    **scope.get("extensions", {}),
                    DROP_CONNECTION_EXTENSION: _raise_dropped,
                },
            }
        await self.app(scope, receive, send)


def _start_daemon_portal() -> tuple[BlockingPortal, threading.Thread]:
    """An event loop in a daemon thread behind a BlockingPortal.

    Not anyio's start_blocking_portal: its worker thread is joined at interpreter exit, so a
    transport nobody closed would hang the process (a test run, say) on the way out.
    """
    ready = threading.Event()
    holder: list[BlockingPortal] = []

    async def run() -> None:
        async with BlockingPortal() as portal:
            holder.append(portal)
            ready.set()
            await portal.sleep_until_stopped()

    thread = threading.Thread(
        target=anyio.run, args=(run,), name="sync-asgi-transport", daemon=True
    )
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the in-process ASGI event loop did not start")
    return holder[0], thread


class SyncASGITransport(httpx.BaseTransport):
    """A synchronous httpx transport that calls an ASGI app in-process (no sockets).

    The app runs on an event loop in a helper thread (an anyio blocking portal, started on
    first use); the transport is thread-safe. Like a socket it turns a dropped connection into
    ``httpx.RemoteProtocolError`` and honours the request's read timeout with
    ``httpx.ReadTimeout``. Close it (or use it as a context manager, or close the client) to
    stop the helper thread.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        raise_app_exceptions: bool = True,
        root_path: str = "",
        client: tuple[str, int] = ("127.0.0.1", 123),
    ) -> None:
        self._asgi = httpx.ASGITransport(
            app=_InProcessDropAdapter(app),
            raise_app_exceptions=raise_app_exceptions,
            root_path=root_path,
            client=client,
        )
        self._lock = threading.Lock()
        self._portal: BlockingPortal | None = None
        self._thread: threading.Thread | None = None

    def _get_portal(self) -> BlockingPortal:
        with self._lock:
            if self._portal is None:
                self._portal, self._thread = _start_daemon_portal()
            return self._portal

    async def _call(
        self, request: httpx.Request, timeout: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        flag: list[bool] = []
        _drop_flag.set(flag)
        try:
            with anyio.fail_after(timeout):
                response = await self._asgi.handle_async_request(request)
                body = await response.aread()
        except Exception:
            if flag:
                raise _Dropped from None
            raise
        if flag:
            raise _Dropped
        return response.status_code, response.headers.raw, body

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the body becomes a ByteStream, usable from the event loop
        timeout = (request.extensions.get("timeout") or {}).get("read")
        try:
            status, headers, body = self._get_portal().call(self._call, request, timeout)
        except _Dropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        except TimeoutError:
            raise httpx.ReadTimeout(
                "timed out waiting for the in-process app", request=request
            ) from None
        return httpx.Response(status, headers=headers, content=body, request=request)

    def close(self) -> None:
        with self._lock:
            portal, thread, self._portal, self._thread = self._portal, self._thread, None, None
        if portal is not None and thread is not None:
            portal.call(portal.stop, True)
            thread.join(5)
