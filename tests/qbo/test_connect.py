"""Connecting and disconnecting a portal (OAuth authorization code) against the QBO simulator
on loopback. The simulator's consent page answers at once with a redirect, which a "browser"
(an HTTP client in a thread) follows to our listener — or which is pasted."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from datagate_pipelines.commands.qbo import qbo
from datagate_pipelines.qbo import connect as qbo_connect
from datagate_pipelines.qbo.connect import ConnectError
from datagate_pipelines.qbo.token_store import TOKEN_KEY_ENV, TokenKeyError
from datagate_pipelines.warehouse.models import api_requests, qbo_tokens
from tests.qbo.test_token_store import CLIENT_ID, CLIENT_SECRET, QBOStack, serve_qbo, stored_row

REALM = "9130350000000001"
OTHER_REALM = "9130350000000002"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def qbo_stack(tmp_path: Path) -> Iterator[QBOStack]:
    with serve_qbo(tmp_path) as made:
        yield made


@pytest.fixture
def stack(qbo_stack: QBOStack) -> QBOStack:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    qbo_stack.add_portal("acme", REALM, redirect_uri=redirect)
    return qbo_stack


def redirect_of(authorize_url: str) -> str:
    """What the browser is sent to after consent (the simulator answers at once)."""
    response = httpx.get(authorize_url, follow_redirects=False)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def browse_in_background(url: str) -> None:
    """A browser on this machine: follows the redirect to the listener."""
    threading.Thread(target=lambda: httpx.get(url, follow_redirects=True), daemon=True).start()


def inbound_rows(engine: Any) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(api_requests).where(api_requests.c.direction == "inbound")
        ).mappings()
        return [dict(r) for r in rows]


def all_request_text(engine: Any) -> str:
    with engine.connect() as connection:
        rows = connection.execute(select(api_requests)).mappings().all()
    return json.dumps([dict(r) for r in rows], default=str)


def connect(stack: QBOStack, engine: Any, **options: Any) -> qbo_connect.ConnectResult:
    return qbo_connect.connect(
        stack.portals["acme"],
        engine,
        show=lambda text: None,
        timeout=30,
        environ=stack.env,
        **options,
    )


# -- the happy paths -----------------------------------------------------------------------------


def test_connect_through_the_loopback_listener_stores_tokens_and_proves_them(stack, engine):
    result = connect(stack, engine, open_browser=browse_in_background)
    assert (result.portal_id, result.realm_id, result.company_name) == ("acme", REALM, "Acme Books")
    store = stack.store(engine, "acme")
    stored = store.stored()
    assert stored.source == "connect" and stored.realm_id == REALM
    # A new grant: its refresh token is the server's current one, not portals.yaml's.
    assert stored.refresh_token == stack.current_refresh_token("acme")
    assert stored.refresh_token != stack.first_tokens["acme"]
    row = stored_row(engine, "acme")
    assert stored.refresh_token not in json.dumps(row, default=str)
    # The redirect is in the request log, without its code or state.
    [inbound] = inbound_rows(engine)
    assert (inbound["system"], inbound["method"], inbound["path"]) == ("qbo", "GET", "/callback")
    assert inbound["query"] == {"code": "***", "state": "***", "realmId": REALM}
    assert inbound["status"] == 200
    assert not (Path(stack.env["DATAGATE_DATA_DIR"]) / "qbo-connect-acme.json").exists()


def test_a_url_pasted_while_the_listener_waits_completes_the_connection(stack, engine):
    answers: list[str] = []

    def paste() -> str:
        # The person copies the address bar of a browser on another machine.
        while not answers:
            time.sleep(0.01)
        return answers[0]

    def remote_browser(url: str) -> None:
        answers.append(redirect_of(url))

    result = connect(stack, engine, open_browser=remote_browser, paste=paste)
    assert result.company_name == "Acme Books"


def test_the_cli_completes_a_pasted_redirect_url(stack, engine, engine_url):
    env = {**stack.env, "DATAGATE_DATABASE_URL": engine_url}
    pending = qbo_connect.begin(stack.portals["acme"], environ=env)
    location = redirect_of(pending.authorize_url)
    code = parse_qs(urlsplit(location).query)["code"][0]
    result = CliRunner().invoke(
        qbo, ["connect", "--portal", "acme", "--redirect-url", location], env=env
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "ok   portal acme: connected to QuickBooks company 'Acme Books'"
    )
    assert stored_row(engine, "acme")["source"] == "connect"
    text = all_request_text(engine)
    assert code not in text and pending.state not in text
    assert "/oauth2/v1/tokens/bearer" in text  # the outbound exchange is logged too
    for secret in (CLIENT_SECRET, stack.current_refresh_token("acme")):
        assert secret not in text and secret not in result.output


def test_the_cli_waits_for_the_browser_on_the_listener(stack, engine, engine_url):
    env = {**stack.env, "DATAGATE_DATABASE_URL": engine_url}
    pending_file = Path(stack.env["DATAGATE_DATA_DIR"]) / "qbo-connect-acme.json"

    def person() -> None:
        deadline = time.monotonic() + 30
        while not pending_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        location = redirect_of(json.loads(pending_file.read_text())["authorize_url"])
        # The listener starts right after the pending file is written: knock until it answers.
        while time.monotonic() < deadline:
            try:
                httpx.get(location)
                return
            except httpx.ConnectError:
                time.sleep(0.02)

    threading.Thread(target=person, daemon=True).start()
    result = CliRunner().invoke(
        qbo, ["connect", "--portal", "acme", "--no-browser", "--timeout", "30"], env=env, input=""
    )
    assert result.exit_code == 0, result.output
    assert "Open this URL to connect portal acme" in result.output
    assert "ok   portal acme: connected" in result.output


def test_the_pending_state_is_its_owners_alone_and_never_half_written(stack):
    pending = qbo_connect.begin(stack.portals["acme"], environ=stack.env)
    folder = Path(stack.env["DATAGATE_DATA_DIR"])
    [saved] = folder.glob("qbo-connect-acme*")  # renamed into place: no partial file remains
    assert saved.name == "qbo-connect-acme.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert json.loads(saved.read_text())["state"] == pending.state


# -- every failure: one line, non-zero, nothing stored --------------------------------------------------


def fail_cli(stack: QBOStack, engine_url: str, redirect_url: str) -> str:
    env = {**stack.env, "DATAGATE_DATABASE_URL": engine_url}
    result = CliRunner().invoke(
        qbo, ["connect", "--portal", "acme", "--redirect-url", redirect_url], env=env
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: portal acme: ")
    return lines[0]


def test_a_wrong_state_is_refused(stack, engine, engine_url):
    pending = qbo_connect.begin(stack.portals["acme"], environ=stack.env)
    location = redirect_of(pending.authorize_url)
    forged = location.replace(f"state={pending.state}", "state=forged-state-value")
    line = fail_cli(stack, engine_url, forged)
    assert "state does not match" in line and "nothing was stored" in line
    assert stored_row(engine, "acme") is None
    [inbound] = inbound_rows(engine)
    assert inbound["status"] == 400 and inbound["query"]["state"] == "***"
    assert stack.token_requests() == 0  # the code was never exchanged


def test_denied_consent_is_refused(stack, engine, engine_url):
    stack.backend.oauth.approve = False
    pending = qbo_connect.begin(stack.portals["acme"], environ=stack.env)
    line = fail_cli(stack, engine_url, redirect_of(pending.authorize_url))
    assert "consent was denied (access_denied)" in line
    assert stored_row(engine, "acme") is None and stack.token_requests() == 0


def test_a_code_for_another_company_is_refused(stack, engine, engine_url):
    stack.backend.seed_company(OTHER_REALM, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    stack.backend.oauth.consent_realm = OTHER_REALM  # the person picked the wrong company
    pending = qbo_connect.begin(stack.portals["acme"], environ=stack.env)
    line = fail_cli(stack, engine_url, redirect_of(pending.authorize_url))
    assert f"realmId {OTHER_REALM}" in line and f"realm_id {REALM}" in line
    assert stored_row(engine, "acme") is None and stack.token_requests() == 0


def test_an_expired_or_used_code_is_refused(stack, engine):
    portal = stack.portals["acme"]
    pending = qbo_connect.begin(portal, environ=stack.env)
    location = redirect_of(pending.authorize_url)
    stack.clock.advance(timedelta(minutes=11).total_seconds())  # codes live ~10 minutes
    with pytest.raises(ConnectError, match="expired or already used, invalid_grant"):
        qbo_connect.complete(portal, engine, pending, location, environ=stack.env)
    assert stored_row(engine, "acme") is None

    pending = qbo_connect.begin(portal, environ=stack.env)
    location = redirect_of(pending.authorize_url)
    qbo_connect.complete(portal, engine, pending, location, environ=stack.env)
    first = stored_row(engine, "acme")
    with pytest.raises(ConnectError, match="already used"):
        qbo_connect.complete(portal, engine, pending, location, environ=stack.env)
    assert stored_row(engine, "acme") == first  # the good connection is untouched


def test_no_token_key_stops_before_the_person_consents(stack, engine):
    del stack.env[TOKEN_KEY_ENV]
    with pytest.raises(TokenKeyError, match="DATAGATE_TOKEN_KEY is not set"):
        qbo_connect.begin(stack.portals["acme"], environ=stack.env)


def test_a_redirect_uri_elsewhere_needs_the_pasted_url(qbo_stack, engine):
    qbo_stack.add_portal("acme", REALM, redirect_uri="https://datagate.example/qbo/callback")
    with pytest.raises(ConnectError, match="not on this machine"):
        connect(qbo_stack, engine, open_browser=None)


def test_a_pasted_redirect_needs_a_pending_connection(stack, engine_url):
    line = fail_cli(stack, engine_url, "http://127.0.0.1:1/callback?code=x&state=y")
    assert "no pending QBO connection" in line


def test_without_a_redirect_in_time_the_pasted_url_can_finish_later(stack, engine, engine_url):
    with pytest.raises(ConnectError, match="no redirect from QuickBooks within 0 s") as caught:
        qbo_connect.connect(
            stack.portals["acme"], engine, show=lambda t: None, timeout=0.3, environ=stack.env
        )
    assert "--redirect-url URL" in str(caught.value) and stored_row(engine, "acme") is None
    pending = qbo_connect.load_pending("acme", environ=stack.env)
    env = {**stack.env, "DATAGATE_DATABASE_URL": engine_url}
    location = redirect_of(pending.authorize_url)
    result = CliRunner().invoke(
        qbo, ["connect", "--portal", "acme", "--redirect-url", f"'{location}'"], env=env
    )
    assert result.exit_code == 0, result.output
    # The state is single-use: the same URL again finds nothing pending.
    assert "no pending QBO connection" in fail_cli(stack, engine_url, location)


# -- disconnect -----------------------------------------------------------------------------------------


def test_disconnect_revokes_the_refresh_token_and_forgets_it(stack, engine, engine_url):
    connect(stack, engine, open_browser=browse_in_background)
    refresh_token = stack.store(engine, "acme").stored().refresh_token
    env = {**stack.env, "DATAGATE_DATABASE_URL": engine_url}
    result = CliRunner().invoke(qbo, ["disconnect", "--portal", "acme"], env=env)
    assert result.exit_code == 0, result.output
    assert "disconnected" in result.output and refresh_token not in result.output
    assert stack.backend.oauth.refresh_token_state(refresh_token)["revoked"] is True
    with engine.connect() as connection:
        assert connection.execute(select(qbo_tokens)).all() == []
    assert refresh_token not in all_request_text(engine)


def test_disconnect_keeps_the_tokens_when_the_revoke_fails(stack, engine):
    connect(stack, engine, open_browser=browse_in_background)
    before = stored_row(engine, "acme")
    stack.env["QBO_CLIENT_SECRET"] = "a-wrong-client-secret"
    with pytest.raises(ConnectError, match="tokens were kept"):
        qbo_connect.disconnect(stack.portals["acme"], engine, environ=stack.env)
    assert stored_row(engine, "acme") == before


@pytest.fixture(autouse=True)
def _no_real_browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The CLI opens a browser unless told not to; a test must never start one.
    monkeypatch.setattr("webbrowser.open", lambda url: False)
    yield
