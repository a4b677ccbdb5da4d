"""Connecting a portal to its QuickBooks Online company, and disconnecting it.

The OAuth 2.0 authorization-code flow (docs/qbo-api.md §1.2):

1. `begin` makes the authorize URL (client_id, scope `com.intuit.quickbooks.accounting`,
   redirect_uri, response_type=code, a random `state`) and remembers the pending request
   (a 0600 file under the data folder, for a redirect URL pasted in a later command);
2. the person consents in a browser; Intuit redirects to the redirect URI with `code`,
   `state` and `realmId` — received by `RedirectListener` on 127.0.0.1 at the redirect
   URI's port, or pasted when the browser runs on another machine;
3. `complete` records the inbound redirect (without code or state), checks `state`, the
   consent, and that `realmId` is portals.yaml's realm_id; exchanges the code (Basic auth);
   stores the tokens encrypted and committed (`QBOTokenStore.save_connection`) before the
   first API call (CompanyInfo) proves them.

Any failure is one clear `ConnectError` line and stores no token. `disconnect` revokes the
stored refresh token at Intuit and forgets the portal's tokens.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from sqlalchemy import Engine

from datagate_pipelines import DatagateError
from datagate_pipelines.apiclient.errors import ApiError
from datagate_pipelines.apiclient.records import ApiRequestRecord, RequestRecorder
from datagate_pipelines.config import Portal
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.errors import SYSTEM, QBOInvalidGrantError
from datagate_pipelines.qbo.oauth import ACCOUNTING_SCOPE
from datagate_pipelines.qbo.token_store import (
    QBOTokenStore,
    TokenCipher,
    app_credentials,
    qbo_settings,
    token_store_for,
)
from datagate_pipelines.warehouse.request_log import WarehouseRequestRecorder

logger = logging.getLogger(__name__)

#: How long a pending authorization (its `state`) may be completed; Intuit's codes live
#: about 10 minutes too.
PENDING_TTL = timedelta(minutes=15)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: Query parameters of the redirect whose values never reach the request log.
_SECRET_REDIRECT_PARAMS = frozenset({"code", "state"})


class ConnectError(DatagateError):
    """Connecting or disconnecting a portal failed; nothing was stored."""


@dataclass(frozen=True)
class PendingAuthorization:
    """One authorization request, waiting for its redirect. Its repr shows no state."""

    portal_id: str
    authorize_url: str = field(repr=False)
    state: str = field(repr=False)
    redirect_uri: str
    created_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) > self.created_at + PENDING_TTL


@dataclass(frozen=True)
class ConnectResult:
    portal_id: str
    realm_id: str
    company_name: str


@dataclass(frozen=True)
class DisconnectResult:
    portal_id: str
    realm_id: str
    revoked: bool
    forgotten: bool


# ---------------------------------------------------------------------------------------
# Step 1: the authorize URL
# ---------------------------------------------------------------------------------------


def begin(
    portal: Portal,
    *,
    environ: Mapping[str, str] | None = None,
    pending_dir: Path | None = None,
    now: datetime | None = None,
) -> PendingAuthorization:
    """The authorize URL for the portal's app, with a fresh random `state`; remembered in
    `pending_dir` (default: the data folder) so that a pasted redirect can be completed
    later. Checks first that the app credentials and the token key are there."""
    settings = qbo_settings(portal)
    credentials = app_credentials(portal, environ)
    TokenCipher(environ=environ).check()  # fail before the person consents, not after
    state = secrets.token_urlsafe(24)
    query = urlencode(
        {
            "client_id": credentials.client_id,
            "scope": ACCOUNTING_SCOPE,
            "redirect_uri": settings.redirect_uri,
            "response_type": "code",
            "state": state,
        }
    )
    separator = "&" if "?" in settings.authorize_url else "?"
    pending = PendingAuthorization(
        portal_id=portal.id,
        authorize_url=f"{settings.authorize_url}{separator}{query}",
        state=state,
        redirect_uri=settings.redirect_uri,
        created_at=now or datetime.now(UTC),
    )
    _save_pending(pending, pending_dir, environ)
    return pending


def _pending_path(
    portal_id: str, pending_dir: Path | None, environ: Mapping[str, str] | None
) -> Path:
    env = os.environ if environ is None else environ
    folder = pending_dir or Path(env.get("DATAGATE_DATA_DIR") or ".datagate")
    return folder / f"qbo-connect-{portal_id}.json"


def _save_pending(
    pending: PendingAuthorization, pending_dir: Path | None, environ: Mapping[str, str] | None
) -> None:
    path = _pending_path(pending.portal_id, pending_dir, environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "portal_id": pending.portal_id,
        "authorize_url": pending.authorize_url,
        "state": pending.state,
        "redirect_uri": pending.redirect_uri,
        "created_at": pending.created_at.isoformat(),
    }
    # The state is a one-time secret: readable by its owner only. Written aside and renamed
    # into place, so a paste completed from another terminal never reads half a file.
    partial = path.with_name(f"{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(partial, path)


def load_pending(
    portal_id: str,
    *,
    pending_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> PendingAuthorization:
    """The portal's pending authorization (from `begin`), for a pasted redirect URL."""
    path = _pending_path(portal_id, pending_dir, environ)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pending = PendingAuthorization(
            portal_id=data["portal_id"],
            authorize_url=data["authorize_url"],
            state=data["state"],
            redirect_uri=data["redirect_uri"],
            created_at=datetime.fromisoformat(data["created_at"]),
        )
    except (OSError, ValueError, KeyError):
        raise ConnectError(
            f"portal {portal_id}: no pending QBO connection to complete; run "
            f"`datagate qbo connect --portal {portal_id} --no-browser` first"
        ) from None
    if pending.expired():
        discard_pending(portal_id, pending_dir=pending_dir, environ=environ)
        raise ConnectError(
            f"portal {portal_id}: the pending QBO connection is older than "
            f"{int(PENDING_TTL.total_seconds() // 60)} minutes; run connect again"
        )
    return pending


def discard_pending(
    portal_id: str, *, pending_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> None:
    """Forget a pending authorization (its state is single-use)."""
    _pending_path(portal_id, pending_dir, environ).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------
# Step 2: the redirect
# ---------------------------------------------------------------------------------------


class RedirectListener:
    """An HTTP listener on 127.0.0.1 at the redirect URI's port that waits for Intuit's
    redirect (the browser brings it). Only the redirect URI's path counts; the browser is
    told to go back to the terminal. Use as a context manager."""

    def __init__(self, redirect_uri: str):
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or (parts.hostname or "") not in LOOPBACK_HOSTS:
            raise ConnectError(
                f"the redirect URI {redirect_uri} is not on this machine (http://127.0.0.1:PORT/…);"
                " use --no-browser and paste the URL the browser was sent to"
            )
        self.path = parts.path or "/"
        self.port = parts.port or 80
        self._received: queue.Queue[str] = queue.Queue()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path != listener.path:
                    self.send_error(404)
                    return
                listener._received.put(f"http://127.0.0.1:{listener.port}{self.path}")
                body = (
                    b"<!doctype html><title>Datagate</title><p>QuickBooks answered. Go back to "
                    b"the terminal to see whether the connection worked; you can close this "
                    b"tab.</p>"
                )
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request line carries the code: never log it

        try:
            self._server = HTTPServer(("127.0.0.1", self.port), Handler)
        except OSError as exc:
            raise ConnectError(
                f"cannot listen on 127.0.0.1:{self.port} for the redirect ({exc.strerror}); "
                "free the port or use --no-browser and paste the URL"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one interval
            name="qbo-redirect-listener",
            daemon=True,
        )
        self._thread.start()

    def offer(self, redirect_url: str) -> None:
        """Hand in a redirect URL from elsewhere (pasted by the person)."""
        self._received.put(redirect_url)

    def wait(self, timeout: float) -> str | None:
        """The first redirect URL to arrive (or be offered), or None after `timeout` s."""
        try:
            return self._received.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> RedirectListener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def record_redirect(
    recorder: RequestRecorder | None,
    portal_id: str,
    redirect_url: str,
    *,
    status: int,
    error: str | None,
) -> None:
    """Log the inbound redirect in the request log: path and parameter names, but never the
    values of `code` or `state`."""
    if recorder is None:
        return
    parts = urlsplit(redirect_url.strip())
    params = {
        key: ("***" if key.lower() in _SECRET_REDIRECT_PARAMS else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    }
    recorder(
        ApiRequestRecord(
            system=SYSTEM,
            portal=portal_id,
            run_id=None,
            method="GET",
            path=parts.path or "/",
            params=params,
            status=status,
            duration_ms=0.0,
            attempt=1,
            error=error,
            started_at=datetime.now(UTC),
        )
    )


# ---------------------------------------------------------------------------------------
# Step 3: checks, code exchange, storage, proof
# ---------------------------------------------------------------------------------------


def _check_redirect(
    portal: Portal, pending: PendingAuthorization, redirect_url: str
) -> tuple[str, str]:
    """(code, realmId) of a good redirect; `ConnectError` for a bad one."""
    settings = qbo_settings(portal)
    parts = urlsplit(redirect_url.strip())
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    expected = urlsplit(pending.redirect_uri)
    if parts.path != expected.path:
        raise ConnectError(
            f"portal {portal.id}: that is not a redirect to {pending.redirect_uri} "
            f"(path {parts.path or '/'}); nothing was stored"
        )
    if not secrets.compare_digest(params.get("state", ""), pending.state):
        raise ConnectError(
            f"portal {portal.id}: the redirect's state does not match this connection request "
            "(an old or forged redirect); nothing was stored — run connect again"
        )
    if params.get("error"):
        reason = params["error"]
        if reason == "access_denied":
            raise ConnectError(
                f"portal {portal.id}: the QuickBooks consent was denied (access_denied); "
                "nothing was stored"
            )
        description = params.get("error_description")
        detail = f" ({description})" if description else ""
        raise ConnectError(
            f"portal {portal.id}: QuickBooks refused the authorization: {reason}{detail}; "
            "nothing was stored"
        )
    code = params.get("code", "")
    if not code:
        raise ConnectError(f"portal {portal.id}: the redirect has no code; nothing was stored")
    realm_id = params.get("realmId", "")
    if realm_id != settings.realm_id:
        raise ConnectError(
            f"portal {portal.id}: the company chosen in QuickBooks (realmId {realm_id or '?'}) "
            f"is not the one in portals.yaml (realm_id {settings.realm_id}); pick that "
            "company, or fix realm_id; nothing was stored"
        )
    return code, realm_id


def complete(
    portal: Portal,
    engine: Engine,
    pending: PendingAuthorization,
    redirect_url: str,
    *,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    recorder: RequestRecorder | None = None,
) -> ConnectResult:
    """Finish a connection from the URL the browser was redirected to (see the module
    docstring). `recorder` gets the outbound requests; the inbound redirect is written to
    the request log in `engine` (direction "inbound")."""
    redirect_url = redirect_url.strip().strip("'\"")  # pasted from a shell or a browser
    inbound = WarehouseRequestRecorder(engine, direction="inbound")
    try:
        code, realm_id = _check_redirect(portal, pending, redirect_url)
    except ConnectError as error:
        record_redirect(inbound, portal.id, redirect_url, status=400, error=str(error))
        inbound.flush()
        raise
    record_redirect(inbound, portal.id, redirect_url, status=200, error=None)
    inbound.flush()
    store = token_store_for(portal, engine, environ=environ, transport=transport, recorder=recorder)
    try:
        store.cipher.check()  # a code exchanged but not storable would be wasted
        try:
            tokens = store.oauth.exchange_code(code, pending.redirect_uri)
        except QBOInvalidGrantError:
            raise ConnectError(
                f"portal {portal.id}: QuickBooks refused the authorization code (expired or "
                "already used, invalid_grant); nothing was stored — run connect again"
            ) from None
        except ApiError as error:
            raise ConnectError(
                f"portal {portal.id}: exchanging the authorization code failed: "
                f"{error.outcome}; nothing was stored"
            ) from None
        # Stored and committed before any use: a crash from here on keeps the connection.
        store.save_connection(tokens)
        company = _first_call(portal, store, transport=transport, recorder=recorder)
    finally:
        store.close()
    return ConnectResult(portal.id, realm_id, str(company.get("CompanyName", "?")))


def _first_call(
    portal: Portal,
    store: QBOTokenStore,
    *,
    transport: httpx.BaseTransport | None,
    recorder: RequestRecorder | None,
) -> dict[str, Any]:
    with QBOClient.for_portal(
        portal.id, qbo_settings(portal), store, transport=transport, recorder=recorder
    ) as client:
        try:
            return client.company_info()
        except ApiError as error:
            raise ConnectError(
                f"portal {portal.id}: the tokens are stored, but the first API call "
                f"(CompanyInfo) failed: {error.outcome}"
            ) from None


def connect(
    portal: Portal,
    engine: Engine,
    *,
    open_browser: Callable[[str], Any] | None = None,
    paste: Callable[[], str | None] | None = None,
    show: Callable[[str], None] = print,
    timeout: float = 300.0,
    environ: Mapping[str, str] | None = None,
    pending_dir: Path | None = None,
    transport: httpx.BaseTransport | None = None,
    recorder: RequestRecorder | None = None,
) -> ConnectResult:
    """The whole interactive flow: show the authorize URL, open the browser (unless
    `open_browser` is None), wait for the redirect on the loopback listener — or for a URL
    the person pastes (`paste`, read on a helper thread) — then `complete` it.

    Without an answer in `timeout` seconds (or when interrupted) the pending request is
    kept: `datagate qbo connect --portal P --redirect-url URL` can still complete it."""
    pending = begin(portal, environ=environ, pending_dir=pending_dir)
    listener: RedirectListener | None
    try:
        listener = RedirectListener(pending.redirect_uri)
    except ConnectError as error:
        if paste is None:
            raise
        show(f"({error})")
        listener = None
    show(f"Open this URL to connect portal {portal.id} to QuickBooks:\n{pending.authorize_url}")
    redirect_url = _await_redirect(listener, pending, open_browser, paste, show, timeout)
    if redirect_url is None:
        raise ConnectError(
            f"portal {portal.id}: no redirect from QuickBooks within {int(timeout)} s; nothing "
            f"was stored (to finish with the URL the browser shows: datagate qbo connect "
            f"--portal {portal.id} --redirect-url URL)"
        )
    try:
        return complete(
            portal,
            engine,
            pending,
            redirect_url,
            environ=environ,
            transport=transport,
            recorder=recorder,
        )
    finally:
        # The state is single-use, whatever the outcome.
        discard_pending(portal.id, pending_dir=pending_dir, environ=environ)


def _await_redirect(
    listener: RedirectListener | None,
    pending: PendingAuthorization,
    open_browser: Callable[[str], Any] | None,
    paste: Callable[[], str | None] | None,
    show: Callable[[str], None],
    timeout: float,
) -> str | None:
    received: queue.Queue[str | None] = queue.Queue()
    if paste is not None:
        show(
            "If the browser runs on another machine, paste here the full URL it was sent to "
            "(the page will not load; copy it from the address bar):"
        )

        def read_paste() -> None:
            try:
                text = paste()
            except (EOFError, OSError):
                return
            if text and text.strip():
                received.put(text.strip())

        threading.Thread(target=read_paste, name="qbo-paste", daemon=True).start()
    try:
        if open_browser is not None:
            open_browser(pending.authorize_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if listener is not None:
                url = listener.wait(0.2)
                if url is not None:
                    return url
            try:
                return received.get(timeout=0.05 if listener is not None else 0.25)
            except queue.Empty:
                continue
        return None
    finally:
        if listener is not None:
            listener.close()


# ---------------------------------------------------------------------------------------
# Disconnect
# ---------------------------------------------------------------------------------------


def disconnect(
    portal: Portal,
    engine: Engine,
    *,
    environ: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
    recorder: RequestRecorder | None = None,
) -> DisconnectResult:
    """Revoke the portal's refresh token at Intuit (the company's connection ends) and
    forget its stored tokens. When the revoke fails the tokens are kept, so that it can be
    tried again."""
    settings = qbo_settings(portal)
    store = token_store_for(portal, engine, environ=environ, transport=transport, recorder=recorder)
    try:
        token = store.current_refresh_token()
        if token is None:
            raise ConnectError(f"portal {portal.id}: no QBO connection to disconnect")
        try:
            store.oauth.revoke(token)
        except ApiError as error:
            raise ConnectError(
                f"portal {portal.id}: revoking the QBO refresh token failed: {error.outcome}; "
                "the stored tokens were kept — try again"
            ) from None
        forgotten = store.forget()
    finally:
        store.close()
    return DisconnectResult(portal.id, settings.realm_id, revoked=True, forgotten=forgotten)
