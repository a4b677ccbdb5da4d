"""What both services' test helpers share: an app answered in-process or served on loopback.

``halopsa.testing.HaloSim`` and ``qbo.testing.QBOSim`` build on :class:`SimHandle`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
from starlette.applications import Starlette

from datagate_simulators.server import RunningServer, SyncASGITransport, serve_in_thread

__all__ = ["SimHandle"]


class SimHandle:
    """A simulator's app, reachable in-process (:meth:`client`) or over loopback (:meth:`serve`)."""

    #: The base URL in-process clients use (any host works; the transport never resolves it).
    in_process_url: ClassVar[str]
    app: Starlette

    def client(self, base_url: str | None = None, **kwargs: Any) -> httpx.Client:
        """A synchronous httpx client wired to the app in-process (close it when done)."""
        return httpx.Client(
            transport=SyncASGITransport(self.app),
            base_url=self.in_process_url if base_url is None else base_url,
            **kwargs,
        )

    @contextlib.contextmanager
    def serve(self) -> Iterator[RunningServer]:
        """The app served by uvicorn on 127.0.0.1, a free port."""
        with serve_in_thread(self.app) as server:
            yield server
