"""Generic fault injection and request counting for the simulators.

A :class:`FaultPlan` holds switches ("the next 3 requests under /api fail with 503", "the
next response is 2 s late", "drop the next connection"). :class:`FaultMiddleware` applies the
plan to every request, counts requests in a :class:`RequestStats`, and serves the control
endpoints under ``/_sim`` so tests and CLIs can flip switches on a running server:

- ``GET  /_sim/faults``  the pending switches;
- ``POST /_sim/faults``  add one switch or a list: ``{"kind": "status", "count": 3,
  "status": 503, "path_prefix": "/api", "method": "GET"}``, ``{"kind": "delay", "count": 1,
  "seconds": 2.5}``, ``{"kind": "drop", "count": 1}``; other kinds go to the simulator's
  own handlers (see ``fault_handlers``);
- ``DELETE /_sim/faults`` clear the generic switches;
- ``POST /_sim/reset``   clear every switch, zero the counters, run the simulator's reset hook;
- ``GET  /_sim/stats``   request counts (total, by status, by endpoint, 429s, faults applied).

Control requests are neither counted nor subject to faults.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any

import anyio

from datagate_simulators.server import drop_connection

__all__ = [
    "CONTROL_PREFIX",
    "Fault",
    "FaultDecision",
    "FaultMiddleware",
    "FaultPlan",
    "FaultSpecError",
    "RequestStats",
    "add_fault_arguments",
    "apply_fault_arguments",
    "endpoint_key",
]

CONTROL_PREFIX = "/_sim"
FAULT_KINDS = ("status", "delay", "drop")


class FaultSpecError(ValueError):
    """A fault switch that cannot be understood (bad kind, count, status …)."""


@dataclass
class Fault:
    """One switch: applies to the next ``remaining`` matching requests.

    ``kind`` is ``"status"`` (answer ``status`` instead of calling the app), ``"delay"``
    (wait ``seconds`` before calling the app) or ``"drop"`` (close the connection, no response).
    ``path_prefix`` (case-insensitive) and ``method`` narrow which requests match.
    """

    kind: str
    remaining: int = 1
    status: int = 503
    seconds: float = 0.0
    path_prefix: str | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultSpecError(f"unknown fault kind {self.kind!r}; expected one of {FAULT_KINDS}")
        if self.remaining < 1:
            raise FaultSpecError("count must be at least 1")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise FaultSpecError(f"status must be 4xx or 5xx, not {self.status}")
        if self.seconds < 0:
            raise FaultSpecError("seconds must not be negative")
        if self.method:
            self.method = self.method.upper()

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method.upper():
            return False
        return not self.path_prefix or path.lower().startswith(self.path_prefix.lower())

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Fault:
        """Build from the JSON shape of ``POST /_sim/faults`` (``count`` = ``remaining``)."""
        try:
            return cls(
                kind=str(spec["kind"]),
                remaining=int(spec.get("count", spec.get("remaining", 1))),
                status=int(spec.get("status", 503)),
                seconds=float(spec.get("seconds", 0.0)),
                path_prefix=spec.get("path_prefix"),
                method=spec.get("method"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FaultSpecError):
                raise
            raise FaultSpecError(f"bad fault spec {dict(spec)!r}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["count"] = data.pop("remaining")
        return data


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request: wait ``delay`` s, then drop it, answer ``status``, or pass."""

    delay: float = 0.0
    drop: bool = False
    status: int | None = None

    @property
    def is_noop(self) -> bool:
        return not self.delay and not self.drop and self.status is None


class FaultPlan:
    """Thread-safe set of pending fault switches, consumed one per matching request and kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        *,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """The next ``count`` matching requests are answered ``status`` without reaching the app."""
        return self.add(
            Fault("status", count, status=status, path_prefix=path_prefix, method=method)
        )

    def delay_next(
        self,
        count: int = 1,
        seconds: float = 1.0,
        *,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """The next ``count`` matching requests wait ``seconds`` before being handled."""
        return self.add(
            Fault("delay", count, seconds=seconds, path_prefix=path_prefix, method=method)
        )

    def drop_next(
        self, count: int = 1, *, path_prefix: str | None = None, method: str | None = None
    ) -> Fault:
        """The next ``count`` matching requests get their connection closed, no response."""
        return self.add(Fault("drop", count, path_prefix=path_prefix, method=method))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return [Fault(**asdict(f)) for f in self._faults]

    def take(self, method: str, path: str) -> FaultDecision:
        """Consume at most one matching switch of each kind (oldest first) for this request."""
        taken: dict[str, Fault] = {}
        with self._lock:
            for fault in self._faults:
                if fault.kind not in taken and fault.matches(method, path):
                    taken[fault.kind] = fault
                    fault.remaining -= 1
            if taken:
                self._faults = [f for f in self._faults if f.remaining > 0]
        return FaultDecision(
            delay=taken["delay"].seconds if "delay" in taken else 0.0,
            drop="drop" in taken,
            status=taken["status"].status if "status" in taken else None,
        )


_ID_SEGMENT = re.compile(r"^-?\d+$")


def endpoint_key(method: str, path: str) -> str:
    """``GET /api/Client/-94`` → ``GET /api/client/{id}``: the key requests are counted under."""
    segments = ["{id}" if _ID_SEGMENT.match(s) else s for s in path.lower().split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


class RequestStats:
    """Thread-safe request counters, reported by ``GET /_sim/stats``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._requests = 0
            self._by_status: Counter[int] = Counter()
            self._by_endpoint: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()

    def record_request(self, method: str, path: str) -> None:
        with self._lock:
            self._requests += 1
            self._by_endpoint[endpoint_key(method, path)] += 1

    def record_status(self, status: int) -> None:
        with self._lock:
            self._by_status[status] += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    def count(self, status: int) -> int:
        """How many responses had ``status``."""
        with self._lock:
            return self._by_status[status]

    def endpoint_count(self, method: str, path: str) -> int:
        with self._lock:
            return self._by_endpoint[endpoint_key(method, path)]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "rate_limited": self._by_status[429],
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "by_endpoint": dict(sorted(self._by_endpoint.items())),
                "faults_applied": dict(sorted(self._faults.items())),
            }


def _default_error_body(status: int) -> tuple[bytes, str]:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return phrase.encode(), "text/plain; charset=utf-8"


async def _read_body(receive: Callable[..., Any]) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _send_response(
    send: Callable[..., Any],
    status: int,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    raw_headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Callable[..., Any], status: int, data: Any) -> None:
    await _send_response(send, status, json.dumps(data).encode(), "application/json; charset=utf-8")


class FaultMiddleware:
    """ASGI middleware: serves ``/_sim`` control endpoints, applies a FaultPlan, counts requests.

    - ``fault_handlers`` maps extra fault kinds (e.g. ``"expire_tokens"``) to callables taking
      the JSON spec and returning a JSON-able description (raise ``FaultSpecError`` to refuse);
    - ``on_reset`` runs on ``POST /_sim/reset`` after the generic reset;
    - ``extra_stats`` adds keys to ``GET /_sim/stats``; ``extra_faults`` to ``GET /_sim/faults``;
    - ``error_body(status) -> (body, content_type[, headers])`` shapes injected error responses.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        plan: FaultPlan,
        stats: RequestStats,
        *,
        fault_handlers: Mapping[str, Callable[[dict[str, Any]], Any]] | None = None,
        on_reset: Callable[[], None] | None = None,
        extra_stats: Callable[[], dict[str, Any]] | None = None,
        extra_faults: Callable[[], dict[str, Any]] | None = None,
        error_body: Callable[[int], tuple[Any, ...]] = _default_error_body,
        prefix: str = CONTROL_PREFIX,
    ) -> None:
        self.app = app
        self.plan = plan
        self.stats = stats
        self.fault_handlers = dict(fault_handlers or {})
        self.on_reset = on_reset
        self.extra_stats = extra_stats
        self.extra_faults = extra_faults
        self.error_body = error_body
        self.prefix = prefix.rstrip("/")

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path.lower() == self.prefix or path.lower().startswith(self.prefix + "/"):
            await self._control(method, path.lower()[len(self.prefix) :], receive, send)
            return

        self.stats.record_request(method, path)
        decision = self.plan.take(method, path)
        if decision.delay:
            self.stats.record_fault("delay")
            await anyio.sleep(decision.delay)
        if decision.drop:
            self.stats.record_fault("drop")
            await drop_connection(scope)
            return
        if decision.status is not None:
            self.stats.record_fault("status")
            self.stats.record_status(decision.status)
            body, content_type, *extra = self.error_body(decision.status)
            await _send_response(
                send, decision.status, body, content_type, extra[0] if extra else None
            )
            return

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.stats.record_status(message["status"])
            await send(message)

        await self.app(scope, receive, counting_send)

    async def _control(
        self, method: str, sub: str, receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if sub == "/stats" and method == "GET":
            data = self.stats.snapshot()
            if self.extra_stats:
                data.update(self.extra_stats())
            await _send_json(send, 200, data)
        elif sub == "/faults" and method == "GET":
            data = {"faults": [f.to_dict() for f in self.plan.pending()]}
            if self.extra_faults:
                data.update(self.extra_faults())
            await _send_json(send, 200, data)
        elif sub == "/faults" and method == "DELETE":
            self.plan.clear()
            await _send_json(send, 200, {"faults": []})
        elif sub == "/faults" and method == "POST":
            try:
                specs = json.loads(await _read_body(receive) or b"null")
                if isinstance(specs, dict):
                    specs = [specs]
                if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
                    raise FaultSpecError("expected a JSON object or a list of objects")
                applied = [self._apply_spec(spec) for spec in specs]
            except (FaultSpecError, json.JSONDecodeError) as exc:
                await _send_json(send, 400, {"error": str(exc)})
                return
            await _send_json(send, 200, {"applied": applied})
        elif sub == "/reset" and method == "POST":
            self.plan.clear()
            self.stats.reset()
            if self.on_reset:
                self.on_reset()
            await _send_json(send, 200, {"reset": True})
        else:
            await _send_json(
                send, 404, {"error": f"no control endpoint {method} {self.prefix}{sub}"}
            )

    def _apply_spec(self, spec: dict[str, Any]) -> Any:
        kind = spec.get("kind")
        if kind in FAULT_KINDS:
            return self.plan.add(Fault.from_dict(spec)).to_dict()
        handler = self.fault_handlers.get(str(kind))
        if handler is None:
            known = sorted([*FAULT_KINDS, *self.fault_handlers])
            raise FaultSpecError(f"unknown fault kind {kind!r}; known: {', '.join(known)}")
        return handler(spec)


# --------------------------------------------------------------------------- command line


def _split(value: str, what: str, n_min: int, n_max: int) -> list[str]:
    parts = value.split(":", n_max - 1)
    if len(parts) < n_min:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}")
    return parts


def _parse_fail(value: str) -> Fault:
    parts = _split(value, "N:STATUS[:PATH_PREFIX]", 2, 3)
    try:
        return Fault(
            "status",
            int(parts[0]),
            status=int(parts[1]),
            path_prefix=parts[2] if len(parts) > 2 else None,
        )
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --fail-next {value!r}: {exc}") from exc


def _parse_delay(value: str) -> Fault:
    parts = _split(value, "N:SECONDS[:PATH_PREFIX]", 2, 3)
    try:
        return Fault(
            "delay",
            int(parts[0]),
            seconds=float(parts[1]),
            path_prefix=parts[2] if len(parts) > 2 else None,
        )
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --delay-next {value!r}: {exc}") from exc


def _parse_drop(value: str) -> Fault:
    parts = _split(value, "N[:PATH_PREFIX]", 1, 2)
    try:
        return Fault("drop", int(parts[0]), path_prefix=parts[1] if len(parts) > 1 else None)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --drop-next {value!r}: {exc}") from exc


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--fail-next``, ``--delay-next`` and ``--drop-next`` (each repeatable) to a CLI."""
    group = parser.add_argument_group(
        "fault injection (also switchable at runtime via POST /_sim/faults)"
    )
    group.add_argument(
        "--fail-next",
        metavar="N:STATUS[:PREFIX]",
        type=_parse_fail,
        action="append",
        default=[],
        help="the next N requests (under PREFIX) fail with STATUS, e.g. 3:503",
    )
    group.add_argument(
        "--delay-next",
        metavar="N:SECONDS[:PREFIX]",
        type=_parse_delay,
        action="append",
        default=[],
        help="the next N responses are SECONDS late, e.g. 2:1.5",
    )
    group.add_argument(
        "--drop-next",
        metavar="N[:PREFIX]",
        type=_parse_drop,
        action="append",
        default=[],
        help="drop the next N connections without a response",
    )


def apply_fault_arguments(plan: FaultPlan, args: argparse.Namespace) -> None:
    """Load the switches parsed by :func:`add_fault_arguments` into ``plan``."""
    for fault in [*args.fail_next, *args.delay_next, *args.drop_next]:
        plan.add(fault)
