"""The QBO webhook receiver: an ASGI app (`datagate webhooks serve`) that checks Intuit's
signature, stores each event once and answers within Intuit's 3 seconds (docs/qbo-api.md
§6.2–§6.3).

`POST /webhooks/qbo`:
- a missing or wrong `intuit-signature` (checked against the verifier token of every portal
  that names one in portals.yaml): 401, nothing stored, one log line without the body;
- a body in neither format: 400;
- otherwise each event is stored for the portals whose QBO company (realm) it names and
  whose verifier token signed it — an event stored already is a replay and is not stored
  again — and the answer is 200; events for a realm no portal has are acknowledged with 202
  and a warning (Intuit would otherwise send them again and again).
`GET /healthz` answers 200 for load balancers.

Storing is the only work done before answering: the `qbo_webhooks` sensor turns stored
events into `payments` runs. Every request is written to the request log (inbound), with
its status and never its body.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, insert
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from datagate_pipelines import DatagateError
from datagate_pipelines.config import PortalRegistry, load_portals, portals_file_path
from datagate_pipelines.qbo.errors import SYSTEM
from datagate_pipelines.qbo.webhooks import (
    SIGNATURE_HEADER,
    MalformedWebhookError,
    WebhookEvent,
    parse_notification,
    signed_by,
)
from datagate_pipelines.warehouse.models import api_requests
from datagate_pipelines.warehouse.portals import register_portal
from datagate_pipelines.warehouse.webhook_events import store_events

logger = logging.getLogger(__name__)

PATH = "/webhooks/qbo"


@dataclass(frozen=True)
class Realms:
    """Who may send what: each realm's portals with the verifier token they expect."""

    # realm → [(portal id, verifier token)]; kept out of repr: the tokens are secrets.
    portals: Mapping[str, list[tuple[str, str]]] = field(default_factory=dict, repr=False)

    @property
    def tokens(self) -> set[str]:
        return {token for pairs in self.portals.values() for _, token in pairs}

    def portals_for(self, realm_id: str, token: str) -> list[str]:
        return [pid for pid, expected in self.portals.get(realm_id, []) if expected == token]


def realms_of(registry: PortalRegistry, environ: Mapping[str, str] | None = None) -> Realms:
    """The realms of the portals with a QBO company and a verifier token; a portal whose
    token variable is unset is left out, with a warning (its webhooks are not accepted)."""
    realms: dict[str, list[tuple[str, str]]] = {}
    for portal in registry.portals.values():
        qbo = portal.settings.qbo
        if qbo is None or qbo.webhook_verifier_token_env is None:
            continue
        try:
            token = portal.webhook_verifier_token(environ)
        except DatagateError as exc:
            logger.warning("qbo webhooks: %s; its realm's webhooks are not accepted", exc)
            continue
        if token is not None:
            realms.setdefault(qbo.realm_id, []).append((portal.id, token.get_secret_value()))
    return Realms(realms)


class PortalsFile:
    """portals.yaml read again whenever the file changes (the receiver runs for months);
    `on_load` sees each registry read and the realms taken from it."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        on_load: Callable[[PortalRegistry, Realms], None] | None = None,
    ) -> None:
        self.path = portals_file_path(path)
        self.environ = environ
        self.on_load = on_load
        self._stamp: tuple[int, int] | None = None
        self._realms = Realms()

    def realms(self) -> Realms:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp is None or stamp != self._stamp:
            try:
                registry = load_portals(self.path)
                self._realms = realms_of(registry, self.environ)
                if self.on_load is not None:
                    self.on_load(registry, self._realms)
            except DatagateError as exc:
                # Keep the last good portals: a bad edit must not drop every webhook.
                logger.error("qbo webhooks: %s; keeping the portals read before", exc)
            self._stamp = stamp
        return self._realms


@dataclass
class Outcome:
    """What to answer, what to store, and what the request log says."""

    status: int
    body: dict[str, object]
    portal_id: str | None = None
    note: str | None = None
    rows: list[dict[str, object]] = field(default_factory=list)


class WebhookReceiver:
    """Verifies, parses and stores one notification at a time (the ASGI app's logic)."""

    def __init__(self, engine: Engine, realms: Callable[[], Realms]) -> None:
        self.engine = engine
        self.realms = realms

    def receive(self, body: bytes, signature: str | None, received_at: datetime) -> Outcome:
        """Check, read and store a notification, and log the request; what to answer."""
        started = time.perf_counter()
        outcome = self._judge(body, signature, received_at)
        if outcome.status == 401:
            # Nothing of a refused body is stored; its log line is written on its own.
            try:
                with self.engine.begin() as connection:
                    self._log(connection, outcome, received_at, started)
            except Exception:
                logger.exception("qbo webhooks: could not write the request log")
            return outcome
        with self.engine.begin() as connection:
            stored = store_events(connection, outcome.rows)
            outcome.body.update(stored=stored, replayed=len(outcome.rows) - stored)
            self._log(connection, outcome, received_at, started)
        return outcome

    def _judge(self, body: bytes, signature: str | None, received_at: datetime) -> Outcome:
        realms = self.realms()
        token = signed_by(body, signature, realms.tokens)
        if token is None:
            problem = f"{'missing' if not signature else 'bad'} {SIGNATURE_HEADER}"
            return Outcome(401, {"error": problem}, note=problem)
        try:
            events = parse_notification(body)
        except MalformedWebhookError as exc:
            return Outcome(400, {"error": str(exc)}, note=f"malformed: {exc}")
        rows, unknown = [], set()
        for event in events:
            portal_ids = realms.portals_for(event.realm_id, token)
            if not portal_ids:
                unknown.add(event.realm_id)
            rows += [_row(portal_id, event, received_at) for portal_id in portal_ids]
        portals = {row["portal_id"] for row in rows}
        portal_id = str(portals.pop()) if len(portals) == 1 else None
        if unknown:
            note = f"realm(s) {', '.join(sorted(unknown))} belong to no portal: not stored"
            return Outcome(202, {"unknown_realms": sorted(unknown)}, portal_id, note, rows)
        return Outcome(200, {}, portal_id, None, rows)

    @staticmethod
    def _log(connection: Connection, outcome: Outcome, at: datetime, started: float) -> None:
        """The inbound request log: status and what happened, never the body."""
        connection.execute(
            insert(api_requests).values(
                system=SYSTEM,
                direction="inbound",
                portal_id=outcome.portal_id,
                method="POST",
                path=PATH,
                status=outcome.status,
                duration_ms=round((time.perf_counter() - started) * 1000),
                attempt=1,
                error=outcome.note,
                started_at=at,
            )
        )


def _row(portal_id: str, event: WebhookEvent, received_at: datetime) -> dict[str, object]:
    return {
        "portal_id": portal_id,
        "realm_id": event.realm_id,
        "event_id": event.event_id,
        "format": event.format,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "operation": event.operation,
        "last_updated": event.last_updated,
        "deleted_id": event.deleted_id,
        "received_at": received_at,
        # Both databases leave these null; listed so every row has the same keys.
        "run_key": None,
        "handled_at": None,
        "note": None,
    }


def create_app(
    engine: Engine,
    *,
    portals_file: str | os.PathLike[str] | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Starlette:
    """The receiver over the warehouse `engine` and portals.yaml (re-read when it changes)."""

    def register(registry: PortalRegistry, realms: Realms) -> None:
        # Events belong to a portal row: a portal new in portals.yaml gets it here, before
        # the portal_registry sensor has run.
        with engine.begin() as connection:
            for pairs in realms.portals.values():
                for portal_id, _ in pairs:
                    register_portal(connection, registry.get(portal_id))

    receiver = WebhookReceiver(engine, PortalsFile(portals_file, environ, register).realms)

    async def notification(request: Request) -> Response:
        started_at = datetime.now(UTC)
        body = await request.body()
        signature = request.headers.get(SIGNATURE_HEADER)
        outcome = await run_in_threadpool(receiver.receive, body, signature, started_at)
        if outcome.status == 401:
            logger.warning(
                "qbo webhook refused (401): %s, %d bytes from %s",
                outcome.note,
                len(body),
                request.client.host if request.client else "unknown",
            )
        elif outcome.status == 400:
            logger.warning("qbo webhook refused (400): %s", outcome.note)
        elif outcome.status == 202:
            logger.warning("qbo webhook accepted (202) but not stored: %s", outcome.note)
        return JSONResponse(outcome.body, status_code=outcome.status)

    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route(PATH, notification, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )
    app.state.receiver = receiver
    return app
