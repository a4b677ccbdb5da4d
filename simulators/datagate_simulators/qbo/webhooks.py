"""Webhooks: the companies' changes, signed and POSTed to a configured URL, as Intuit sends
them (docs/qbo-api.md §6.2–§6.3).

Every change a company makes (create, update, delete, void — also the balance updates a
payment causes) becomes an event; ``flush`` sends the events waiting as one notification in
the configured format, legacy ``eventNotifications`` or a CloudEvents array, with
``intuit-signature`` = base64(HMAC-SHA256(verifier token, body)). Served on loopback, a
thread flushes every ``interval`` seconds.

The simulator's choices where Intuit documents less [I]:
- events wait ``delay`` seconds before they are sent (Intuit: 1, 3 or 5 minutes in
  production, almost at once in the sandbox);
- an answer other than 2xx, or none within ``timeout`` (Intuit's 3 s), fails the delivery;
  the same body (same CloudEvents ids) is sent again after each of ``retry_delays``, then
  dropped. Intuit says it sends again; how often and when is not documented;
- at most ``max_events`` events per notification (Intuit sets no limit on the size).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx

from .clock import Clock

__all__ = ["Delivery", "WebhookEmitter", "WebhookSettings", "sign"]

SIGNATURE_HEADER = "intuit-signature"
FORMATS = ("legacy", "cloudevents")
#: Legacy operation names → CloudEvents verbs (``qbo.invoice.updated.v1``).
VERBS = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Merge": "merged",
    "Void": "voided",
    "Emailed": "emailed",
}


def sign(body: bytes, verifier_token: str) -> str:
    """``intuit-signature``: base64(HMAC-SHA256(key = verifier token, message = body))."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class WebhookSettings:
    """Where notifications go and how (the app's webhook settings at Intuit)."""

    url: str | None = None
    verifier_token: str = ""
    format: str = "cloudevents"
    entities: frozenset[str] = frozenset({"Invoice", "Payment", "CreditMemo", "Customer"})
    delay: float = 0.0
    timeout: float = 3.0
    retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)
    max_events: int = 1000
    utc_offset_hours: float = -7.0


@dataclass
class Event:
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    time: datetime


@dataclass
class Notification:
    """One body, sent until it is accepted or its retries are spent."""

    id: str
    body: bytes
    events: int
    next_at: datetime
    attempts: int = 0


@dataclass(frozen=True)
class Delivery:
    """One POST: what was sent and how it ended."""

    notification: str
    attempt: int
    events: int
    status: int | None
    error: str | None
    at: datetime
    final: bool


class WebhookEmitter:
    """Collects the companies' changes and delivers them (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        settings: WebhookSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.clock = clock
        self.settings = settings or WebhookSettings()
        self.transport = transport
        self.deliveries: list[Delivery] = []
        self._events: list[Event] = []
        self._outbox: list[Notification] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time: a body is never sent twice at once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def configure(self, **changes: Any) -> WebhookSettings:
        """Change settings (``url``, ``verifier_token``, ``format``, ``entities``, …)."""
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.settings, key):
                    raise ValueError(f"unknown webhook setting {key!r}")
                if key == "format" and value not in FORMATS:
                    raise ValueError(f"format must be one of {', '.join(FORMATS)}")
                if key == "entities":
                    value = frozenset(value)
                if key == "retry_delays":
                    value = tuple(float(v) for v in value)
                setattr(self.settings, key, value)
            return self.settings

    # ---------------------------------------------------------------- collecting

    def notify(self, realm_id: str, entity: str, entity_id: str, operation: str, when: datetime):
        """A company listener: queue one change (if the app subscribes to the entity)."""
        with self._lock:
            if self.settings.url and entity in self.settings.entities:
                self._events.append(Event(realm_id, entity, entity_id, operation, when))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._events) + len(self._outbox)

    # ---------------------------------------------------------------- delivering

    def flush(self) -> list[Delivery]:
        """Send what is due now: events older than ``delay``, and retries whose time came."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> list[Delivery]:
        now = self.clock.now()
        with self._lock:
            due = now - timedelta(seconds=self.settings.delay)
            ready = [e for e in self._events if e.time <= due]
            self._events = [e for e in self._events if e.time > due]
            for start in range(0, len(ready), self.settings.max_events):
                self._outbox.append(
                    self._notification(ready[start : start + self.settings.max_events], now)
                )
            sending = [n for n in self._outbox if n.next_at <= now]
            settings = self.settings
        done = [self._send(n, settings, now) for n in sending]
        with self._lock:
            self.deliveries += done
            finished = {d.notification for d in done if d.final}
            self._outbox = [n for n in self._outbox if n.id not in finished]
        return done

    def _notification(self, events: list[Event], now: datetime) -> Notification:
        settings = self.settings
        if settings.format == "legacy":
            tz = timezone(timedelta(hours=settings.utc_offset_hours))
            by_realm: dict[str, list[dict[str, str]]] = {}
            for e in events:
                by_realm.setdefault(e.realm_id, []).append(
                    {
                        "name": e.entity,
                        "id": e.entity_id,
                        "operation": e.operation,
                        # The format of Intuit's example: 2015-10-05T14:42:19-0700.
                        "lastUpdated": e.time.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S%z"),
                    }
                )
            document: Any = {
                "eventNotifications": [
                    {"realmId": realm, "dataChangeEvent": {"entities": entities}}
                    for realm, entities in by_realm.items()
                ]
            }
        else:
            document = [
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": "intuit.qbo.simulator",
                    "type": f"qbo.{e.entity.lower()}.{VERBS.get(e.operation, e.operation.lower())}.v1",
                    "datacontenttype": "application/json",
                    "time": e.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    "intuitentityid": e.entity_id,
                    "intuitaccountid": e.realm_id,
                    "data": {},
                }
                for e in events
            ]
        body = json.dumps(document, separators=(",", ":")).encode()
        return Notification(str(uuid.uuid4()), body, len(events), next_at=now)

    def _send(
        self, notification: Notification, settings: WebhookSettings, now: datetime
    ) -> Delivery:
        notification.attempts += 1
        status: int | None = None
        error: str | None = None
        try:
            with httpx.Client(transport=self.transport, timeout=settings.timeout) as client:
                response = client.post(
                    settings.url or "",
                    content=notification.body,
                    headers={
                        SIGNATURE_HEADER: sign(notification.body, settings.verifier_token),
                        "Content-Type": "application/json",
                    },
                )
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivered = status is not None and 200 <= status < 300
        retries = settings.retry_delays
        final = delivered or notification.attempts > len(retries)
        if not final:
            notification.next_at = now + timedelta(seconds=retries[notification.attempts - 1])
        return Delivery(
            notification.id, notification.attempts, notification.events, status, error, now, final
        )

    # ---------------------------------------------------------------- serving

    def start(self, interval: float = 0.2) -> None:
        """Flush every ``interval`` seconds on a daemon thread (the served simulator)."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                self.flush()

        self._thread = threading.Thread(target=loop, name="qbo-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def snapshot(self) -> dict[str, Any]:
        """Settings (without the token), what waits, and the deliveries so far."""
        with self._lock:
            settings = {
                "url": self.settings.url,
                "format": self.settings.format,
                "entities": sorted(self.settings.entities),
                # Seconds as Decimals: the simulator's JSON writer refuses floats.
                "delay": Decimal(str(self.settings.delay)),
                "retry_delays": [Decimal(str(d)) for d in self.settings.retry_delays],
                "verifier_token_set": bool(self.settings.verifier_token),
            }
            return {
                "settings": settings,
                "pending_events": len(self._events),
                "pending_notifications": len(self._outbox),
                "deliveries": [
                    {**d.__dict__, "at": d.at.isoformat()} for d in self.deliveries[-100:]
                ],
            }
