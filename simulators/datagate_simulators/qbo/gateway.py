"""The API gateway in front of ``/v3/company/{realmId}/…``: throttles and per-company counters.

It sits outside the fault-injection middleware, so an injected slow response occupies one of
the company's concurrent-request slots, as a slow request would at Intuit.
"""

from __future__ import annotations

import re
from typing import Any

from .backend import QBOBackend
from .errors import throttle_exceeded
from .responses import fault_body

__all__ = ["QBOGateway"]

_REALM_PATH = re.compile(r"^/v3/company/([^/]+)(/.*)?$")


class QBOGateway:
    """ASGI middleware: 429 (code 3001) beyond the company's limits; counts per company."""

    def __init__(self, app: Any, backend: QBOBackend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = _REALM_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        realm = match.group(1)
        batch = (match.group(2) or "").rstrip("/") == "/batch"
        backend = self.backend
        if not backend.throttle.try_acquire(realm, batch=batch):
            backend.stats.record(realm, 429)
            body, content_type = fault_body(
                throttle_exceeded(), backend.clock.now(), backend.settings
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [
                        (b"content-type", content_type.encode()),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        status: list[int] = []

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            backend.throttle.release(realm)
            backend.stats.record(realm, status[0] if status else None)
