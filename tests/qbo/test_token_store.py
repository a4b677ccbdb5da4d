"""The rotating refresh-token store, on SQLite and PostgreSQL, against the QBO simulator.

The crash tests run a small script in other processes against the simulator served on
loopback; the store kills its own process with SIGKILL at the step named by
DATAGATE_QBO_TOKENS_CRASH_AT, and a fresh process must then still refresh. The simulator
runs on a FakeClock: its rotation grace window passes when the test says so.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from datagate_pipelines.apiclient.records import ApiRequestRecord
from datagate_pipelines.apiclient.retries import RetryPolicy
from datagate_pipelines.config import Portal, parse_portals
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.errors import QBOServerError
from datagate_pipelines.qbo.token_store import (
    CRASH_AT_ENV,
    STEPS,
    TOKEN_KEY_ENV,
    QBOTokenStore,
    ReconnectRequiredError,
    TokenCipher,
    TokenKeyError,
    token_store_for,
)
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.warehouse.models import qbo_tokens
from datagate_simulators.qbo import FakeClock, QBOBackend, create_app
from datagate_simulators.server import serve_in_thread

PROJECT = Path(__file__).resolve().parents[2]
CLIENT_ID = "ABdatagate-qbo-app-0001"
CLIENT_SECRET = "qbo-app-secret-5e4d3c2b1a"
KEY = Fernet.generate_key().decode()
TOKEN_PATH = "/oauth2/v1/tokens/bearer"


@dataclass
class QBOStack:
    """The QBO simulator on loopback, companies seeded, and the portals.yaml naming them."""

    backend: QBOBackend
    clock: FakeClock
    app: Any
    base_url: str
    tmp_path: Path
    env: dict[str, str] = field(default_factory=dict)
    portals: dict[str, Portal] = field(default_factory=dict)
    realms: dict[str, str] = field(default_factory=dict)
    first_tokens: dict[str, str] = field(default_factory=dict)

    def add_portal(self, portal_id: str, realm_id: str, **yaml_qbo: Any) -> Portal:
        variable = portal_id.upper().replace("-", "_") + "_QBO_REFRESH_TOKEN"
        first = f"AB11first-{portal_id}-refresh-token"
        if not self.backend.has_company(realm_id):
            self.backend.seed_company(
                realm_id,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                refresh_token=first,
                company_name=f"{portal_id.title()} Books",
            )
        self.env[variable] = first
        self.realms[portal_id] = realm_id
        self.first_tokens[portal_id] = first
        qbo = {
            "realm_id": realm_id,
            "client_id_env": "QBO_CLIENT_ID",
            "client_secret_env": "QBO_CLIENT_SECRET",
            "refresh_token_env": variable,
            "base_url": self.base_url,
            "token_url": f"{self.base_url}{TOKEN_PATH}",
            "revoke_url": f"{self.base_url}/v2/oauth2/tokens/revoke",
            "authorize_url": f"{self.base_url}/connect/oauth2",
            **yaml_qbo,
        }
        self.portals[portal_id] = portal_from(portal_id, qbo)
        self.write_portals_file()
        return self.portals[portal_id]

    def write_portals_file(self) -> Path:
        path = self.tmp_path / "portals.yaml"
        entries = [p.settings.model_dump(mode="json") for p in self.portals.values()]
        path.write_text(json.dumps({"portals": entries}), encoding="utf-8")
        self.env["DATAGATE_PORTALS_FILE"] = str(path)
        return path

    def current_refresh_token(self, portal_id: str) -> str | None:
        return self.backend.oauth.current_refresh_token(self.realms[portal_id])

    def token_requests(self) -> int:
        return self.app.state.request_stats.endpoint_count("POST", TOKEN_PATH)

    def store(self, engine: Any, portal_id: str, **options: Any) -> QBOTokenStore:
        return token_store_for(self.portals[portal_id], engine, environ=self.env, **options)

    def client(self, store: QBOTokenStore, **options: Any) -> QBOClient:
        portal = self.portals[store.portal_id]
        assert portal.settings.qbo is not None
        return QBOClient.for_portal(portal.id, portal.settings.qbo, store, **options)


def portal_from(portal_id: str, qbo: dict[str, Any]) -> Portal:
    entry = {
        "id": portal_id,
        "name": portal_id.title(),
        "billing_start": "2026-01",
        "halopsa": {
            "client_id_env": "HALO_CLIENT_ID",
            "client_secret_env": "HALO_CLIENT_SECRET",
            "authorization_server": "http://127.0.0.1:9/auth",
            "resource_server": "http://127.0.0.1:9/api",
        },
        "qbo": qbo,
    }
    registry = parse_portals(json.dumps({"portals": [entry]}))
    assert not registry.errors, registry.errors
    return registry.get(portal_id)


@contextmanager
def serve_qbo(tmp_path: Path) -> Iterator[QBOStack]:
    """A `QBOStack`: the simulator on loopback, no company yet; the environment it needs."""
    clock = FakeClock()
    backend = QBOBackend(clock=clock)
    app = create_app(backend)
    with serve_in_thread(app) as server:
        stack = QBOStack(backend, clock, app, server.base_url, tmp_path)
        stack.env.update(
            {
                "QBO_CLIENT_ID": CLIENT_ID,
                "QBO_CLIENT_SECRET": CLIENT_SECRET,
                TOKEN_KEY_ENV: KEY,
                "DATAGATE_DATA_DIR": str(tmp_path / "data"),
            }
        )
        yield stack


@pytest.fixture
def qbo_stack(tmp_path: Path) -> Iterator[QBOStack]:
    with serve_qbo(tmp_path) as stack:
        yield stack


def stored_row(engine: Any, portal_id: str) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = (
            connection.execute(select(qbo_tokens).where(qbo_tokens.c.portal_id == portal_id))
            .mappings()
            .first()
        )
    return dict(row) if row else None


# -- other processes ----------------------------------------------------------------------------
#
# Python takes seconds to start here, so the tests do not start one per worker: one helper
# process imports everything once, then forks a fresh child per job (os.fork in a process
# with a single thread is safe). Each child is a process of its own — own memory, own
# database connections — killed for real with SIGKILL when a crash step is set.

ZYGOTE = textwrap.dedent(
    """
    import json, os, sys, time, traceback
    from pathlib import Path
    from datagate_pipelines.qbo.client import QBOClient
    from datagate_pipelines.config import load_portals
    from datagate_pipelines.qbo.token_store import token_store_for
    from datagate_pipelines.warehouse.db import make_engine

    # Load both database drivers now, once, rather than in every child (no connection yet).
    make_engine("postgresql+psycopg2://warm@127.0.0.1:1/warm")
    make_engine("sqlite:///:memory:")


    def job(database_url, portal_ids):
        engine = make_engine(database_url)
        registry = load_portals()
        results = {}
        for portal_id in portal_ids:
            portal = registry.get(portal_id)
            store = token_store_for(portal, engine)
            hold = os.environ.get("HOLD_REFRESH_UNTIL")
            if hold:
                # Stay inside the row lock (the token request is made there) until told to.
                refresh = store.oauth.refresh

                def held(token, refresh=refresh):
                    print("in-refresh", flush=True)
                    while not Path(hold).exists():
                        time.sleep(0.02)
                    return refresh(token)

                store.oauth.refresh = held
            print("starting", flush=True)
            with QBOClient.for_portal(portal.id, portal.settings.qbo, store) as client:
                name = client.company_info()["CompanyName"]
            results[portal_id] = {"company": name, "refreshes": store.refreshes}
        print(json.dumps(results), flush=True)


    children = {}
    for line in sys.stdin:
        command = json.loads(line)
        if command["do"] == "run":
            pid = os.fork()
            if pid == 0:
                out = os.open(command["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                sys.stdout = os.fdopen(1, "w", buffering=1)
                sys.stderr = os.fdopen(2, "w", buffering=1)
                os.environ.clear()
                os.environ.update(command["env"])
                try:
                    job(command["database_url"], command["portal_ids"])
                    code = 0
                except BaseException:
                    traceback.print_exc()
                    code = 1
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            children[command["id"]] = pid
            print(json.dumps({"started": command["id"]}), flush=True)
        elif command["do"] == "wait":
            _, status = os.waitpid(children.pop(command["id"]), 0)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            print(json.dumps({"exited": command["id"], "code": code}), flush=True)
    """
)


class Workers:
    """Runs worker jobs in fresh child processes of one pre-imported helper process."""

    def __init__(self, folder: Path):
        self.folder = folder
        script = folder / "zygote.py"
        script.write_text(ZYGOTE, encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=PROJECT,
            env={**os.environ, "PYTHONPATH": str(PROJECT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.count = 0
        self.lock = threading.Lock()

    def _ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        with self.lock:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
            return json.loads(self.process.stdout.readline())

    def start(
        self,
        stack: QBOStack,
        database_url: str,
        *portal_ids: str,
        crash_at: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Job:
        self.count += 1
        env = {**os.environ, **stack.env, **(extra_env or {})}
        env.pop(CRASH_AT_ENV, None)
        if crash_at:
            env[CRASH_AT_ENV] = crash_at
        out = self.folder / f"job-{self.count}.out"
        command = {
            "do": "run",
            "id": self.count,
            "out": str(out),
            "env": env,
            "database_url": database_url,
            "portal_ids": list(portal_ids),
        }
        assert self._ask(command) == {"started": self.count}
        return Job(self, self.count, out)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(30)


@dataclass
class Job:
    workers: Workers
    id: int
    out: Path

    def finish(self) -> tuple[int, str]:
        answer = self.workers._ask({"do": "wait", "id": self.id})
        return answer["code"], self.output()

    def output(self) -> str:
        return self.out.read_text(encoding="utf-8") if self.out.exists() else ""

    def wait_for(self, marker: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.output().splitlines():
            assert time.monotonic() < deadline, f"no {marker!r}: {self.output()}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> Iterator[Workers]:
    made = Workers(tmp_path_factory.mktemp("workers"))
    yield made
    made.close()


def last_json(out: str) -> dict[str, Any]:
    return json.loads(out.strip().splitlines()[-1])


# -- crash safety -----------------------------------------------------------------------------


def test_a_process_killed_at_any_step_loses_no_token(qbo_stack, workers, engine, engine_url):
    stack = qbo_stack
    for number, step in enumerate(STEPS, start=1):
        stack.add_portal(f"p-{step}", f"91303500000000{number:02d}")
    # Every refresh rotates: the crash lands in the middle of a rotation, the hard case.
    stack.backend.oauth.force_rotation()
    crashing = {
        step: workers.start(stack, engine_url, f"p-{step}", crash_at=step) for step in STEPS
    }
    for step, job in crashing.items():
        code, out = job.finish()
        assert code == -signal.SIGKILL, f"{step}: {code}\n{out}"
        assert "starting" in out
    for step in STEPS:
        row = stored_row(engine, f"p-{step}")
        assert row is not None  # seeded before anything else
        assert stack.first_tokens[f"p-{step}"] not in json.dumps(row, default=str)
    # The server rotated for every crash after the token request; the row may lag behind.
    for step in ("refreshed", "written", "committed"):
        assert stack.current_refresh_token(f"p-{step}") != stack.first_tokens[f"p-{step}"]

    code, out = workers.start(stack, engine_url, *(f"p-{s}" for s in STEPS)).finish()
    assert code == 0, out
    results = last_json(out)
    for step in STEPS:
        portal_id = f"p-{step}"
        assert results[portal_id]["company"] == f"{portal_id.title()} Books"
        store = stack.store(engine, portal_id)
        assert store.stored().refresh_token == stack.current_refresh_token(portal_id)
    # Committed before the crash: the fresh process used the stored access token as it was.
    assert results["p-committed"]["refreshes"] == 0
    assert all(results[f"p-{s}"]["refreshes"] == 1 for s in STEPS if s != "committed")

    # Past the grace window the replaced tokens are dead: the stored ones alone must work.
    stack.clock.advance(hours=25)
    stack.backend.oauth.force_rotation()
    for step in STEPS:
        store = stack.store(engine, f"p-{step}")
        with stack.client(store) as client:
            store.refresh()
            assert client.company_info()["CompanyName"]
        assert store.stored().refresh_token == stack.current_refresh_token(f"p-{step}")


def test_two_processes_refreshing_at_once_refresh_once(qbo_stack, workers, engine, engine_url):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    stack.backend.oauth.force_rotation()
    release = stack.tmp_path / "release"
    first = workers.start(stack, engine_url, "acme", extra_env={"HOLD_REFRESH_UNTIL": str(release)})
    first.wait_for("in-refresh")
    # The first process holds the row lock, inside its token request. The second one must
    # wait for it and then use its tokens: were it not serialized it would refresh too.
    second = workers.start(stack, engine_url, "acme")
    second.wait_for("starting")
    time.sleep(0.5)  # give an unserialized refresh every chance to happen
    release.touch()
    code_1, out_1 = first.finish()
    code_2, out_2 = second.finish()
    assert (code_1, code_2) == (0, 0), out_1 + out_2
    assert stack.token_requests() == 1
    assert last_json(out_1)["acme"]["refreshes"] == 1
    assert last_json(out_2)["acme"]["refreshes"] == 0
    store = stack.store(engine, "acme")
    assert store.stored().refresh_token == stack.current_refresh_token("acme")
    assert store.stored().previous_refresh_token == stack.first_tokens["acme"]


def test_threads_of_one_process_share_one_refresh(qbo_stack, engine):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    stores = [stack.store(engine, "acme") for _ in range(4)]  # as if four steps
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda s=s: tokens.append(s.access_token())) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1 and stack.token_requests() == 1


# -- rotation and fallbacks -------------------------------------------------------------------------


def test_the_first_token_comes_from_portals_yaml_and_everything_is_encrypted(qbo_stack, engine):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    store = stack.store(engine, "acme")
    access = store.access_token()
    row = stored_row(engine, "acme")
    assert row is not None and row["realm_id"] == "9130350000000001"
    assert row["source"] == "portals.yaml" and row["version"] == 1
    text = json.dumps(row, default=str)
    assert access not in text and stack.first_tokens["acme"] not in text
    cipher = TokenCipher(KEY)
    assert cipher.decrypt(row["refresh_token"]) == stack.first_tokens["acme"]
    assert cipher.decrypt(row["access_token"]) == access
    # Another store (another process) uses the stored access token: no second refresh.
    assert stack.store(engine, "acme").access_token() == access
    assert stack.token_requests() == 1


def test_a_rotated_token_is_committed_before_the_new_access_token_is_used(qbo_stack, engine):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    store = stack.store(engine, "acme")
    seen_at_use: list[str | None] = []

    def check(record: ApiRequestRecord) -> None:
        # Runs after each API request: by then its access token had been in use.
        if record.path.startswith("/v3/"):
            row = stored_row(engine, "acme")
            seen_at_use.append(row and TokenCipher(KEY).decrypt(row["refresh_token"]))

    with stack.client(store, recorder=check) as client:
        client.company_info()
        stack.backend.oauth.force_rotation()
        stack.backend.oauth.expire_access_tokens()  # mid-run: the next call gets a 401
        client.company_info()
    rotated = stack.current_refresh_token("acme")
    assert rotated != stack.first_tokens["acme"]
    assert seen_at_use[-1] == rotated
    stored = store.stored()
    assert stored.refresh_token == rotated
    assert stored.previous_refresh_token == stack.first_tokens["acme"]
    assert stored.source == "refresh" and stored.version == 2


def test_when_the_stored_token_is_refused_the_previous_then_portals_yaml_one_is_tried(
    qbo_stack, engine, caplog
):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    cipher = TokenCipher(KEY)
    store = stack.store(engine, "acme")
    store.access_token()
    # The stored token is garbage, the previous one the live one.
    with engine.begin() as connection:
        connection.execute(
            update(qbo_tokens).values(
                refresh_token=cipher.encrypt("AB11garbage-refresh-token-1"),
                previous_refresh_token=cipher.encrypt(stack.first_tokens["acme"]),
            )
        )
    assert stack.store(engine, "acme").refresh()
    assert "refused the stored refresh token" in caplog.text
    assert stack.store(engine, "acme").stored().refresh_token == stack.first_tokens["acme"]
    # Both stored ones refused: portals.yaml's is the last resort.
    with engine.begin() as connection:
        connection.execute(
            update(qbo_tokens).values(
                refresh_token=cipher.encrypt("AB11garbage-refresh-token-2"),
                previous_refresh_token=cipher.encrypt("AB11garbage-refresh-token-3"),
            )
        )
    assert stack.store(engine, "acme").refresh()
    assert stack.store(engine, "acme").stored().refresh_token == stack.first_tokens["acme"]


def test_when_every_token_is_refused_the_error_says_to_reconnect(qbo_stack, engine):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    store = stack.store(engine, "acme")
    store.access_token()
    stack.backend.oauth.revoke(CLIENT_ID, CLIENT_SECRET, stack.first_tokens["acme"])
    before = stored_row(engine, "acme")
    with pytest.raises(ReconnectRequiredError) as caught:
        stack.store(engine, "acme").refresh()
    message = str(caught.value)
    assert message.endswith("reconnect the portal: `datagate qbo connect --portal acme`")
    assert "portal acme" in message and "\n" not in message
    assert stack.first_tokens["acme"] not in message
    assert stored_row(engine, "acme") == before  # nothing lost or changed


def test_no_stored_token_and_no_environment_variable(qbo_stack, engine):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    del stack.env["ACME_QBO_REFRESH_TOKEN"]
    with pytest.raises(ReconnectRequiredError, match="ACME_QBO_REFRESH_TOKEN is not set"):
        stack.store(engine, "acme").access_token()


def test_stored_tokens_of_another_company_are_not_used(qbo_stack, engine):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    stack.store(engine, "acme").access_token()
    with engine.begin() as connection:
        connection.execute(update(qbo_tokens).values(realm_id="9130350000000999"))
    store = stack.store(engine, "acme")
    with stack.client(store) as client:
        assert client.company_info()["CompanyName"] == "Acme Books"
    assert stored_row(engine, "acme")["realm_id"] == "9130350000000001"


def test_a_401_makes_the_store_refresh_even_before_the_stored_expiry(qbo_stack, engine):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    store = stack.store(engine, "acme")
    with stack.client(store) as client:
        client.company_info()
        stack.backend.oauth.expire_access_tokens()
        client.company_info()
    assert store.refreshes == 2


# -- the key ------------------------------------------------------------------------------------------


def test_a_missing_key_is_one_clear_line(qbo_stack, engine):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    del stack.env[TOKEN_KEY_ENV]
    with pytest.raises(TokenKeyError) as caught:
        stack.store(engine, "acme").access_token()
    message = str(caught.value)
    assert "DATAGATE_TOKEN_KEY is not set" in message and "Fernet.generate_key()" in message
    assert "\n" not in message
    assert stored_row(engine, "acme") is None
    stack.env[TOKEN_KEY_ENV] = "not-a-key"
    with pytest.raises(TokenKeyError, match="not a Fernet key"):
        stack.store(engine, "acme").access_token()


def test_a_changed_key_is_reported_and_an_old_key_can_be_kept_for_reading(qbo_stack, engine):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    stack.store(engine, "acme").access_token()
    new_key = Fernet.generate_key().decode()
    stack.env[TOKEN_KEY_ENV] = new_key
    with pytest.raises(TokenKeyError, match="cannot be decrypted"):
        stack.store(engine, "acme").access_token()
    stack.env[TOKEN_KEY_ENV] = f"{new_key},{KEY}"
    store = stack.store(engine, "acme")
    store.refresh()
    # Written again with the new key: readable with it alone.
    assert TokenCipher(new_key).decrypt(stored_row(engine, "acme")["refresh_token"])


def test_no_token_reaches_logs_records_or_errors(qbo_stack, engine, caplog):
    caplog.set_level(logging.DEBUG)
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    records: list[ApiRequestRecord] = []
    store = stack.store(engine, "acme", recorder=records.append)
    with stack.client(store, recorder=records.append) as client:
        client.company_info()
        stack.backend.oauth.force_rotation()
        stack.backend.oauth.expire_access_tokens()
        client.company_info()
        stack.backend.oauth.revoke(CLIENT_ID, CLIENT_SECRET, store.stored().refresh_token)
        stack.backend.oauth.expire_access_tokens()
        with pytest.raises(ReconnectRequiredError) as caught:
            client.company_info()
    assert any(r.path == TOKEN_PATH for r in records)
    secrets = [CLIENT_SECRET, stack.first_tokens["acme"], stack.current_refresh_token("acme") or ""]
    secrets += [t for t in stack.backend.oauth._access]
    secrets += [str(store.stored().refresh_token)]
    texts = [caplog.text, str(caught.value), repr(store.stored()), *(repr(r) for r in records)]
    for secret in filter(None, secrets):
        for text in texts:
            assert secret not in text


# -- the token endpoint failing -----------------------------------------------------------------------


def test_a_failing_token_endpoint_is_retried_and_a_lasting_failure_changes_nothing(
    qbo_stack, engine
):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    retry = RetryPolicy(sleep=lambda seconds: None, jitter=0.0)
    plan = stack.app.state.fault_plan
    plan.fail_next(1, 503, path_prefix=TOKEN_PATH)
    store = stack.store(engine, "acme", retry=retry)
    assert store.access_token()
    assert store.oauth.stats.retries == 1
    before = stored_row(engine, "acme")
    plan.fail_next(10, 503, path_prefix=TOKEN_PATH)
    with pytest.raises(QBOServerError):
        stack.store(engine, "acme", retry=retry).refresh()
    assert stored_row(engine, "acme") == before  # rolled back, lock released
    plan.clear()
    assert stack.store(engine, "acme", retry=retry).refresh()


# -- the Dagster resource --------------------------------------------------------------------------


def test_the_resource_builds_clients_wired_to_the_token_store(qbo_stack, engine, monkeypatch):
    stack = qbo_stack
    stack.add_portal("acme", "9130350000000001")
    for name, value in stack.env.items():
        monkeypatch.setenv(name, value)
    portal = stack.portals["acme"]
    resource = QBOResource(max_attempts=2)
    customer = stack.backend.company(stack.realms["acme"]).create(
        "Customer", {"DisplayName": "Resource Co"}
    )

    @dg.asset
    def qbo_customer_names(qbo: QBOResource) -> list[str]:
        with qbo.client(portal, engine=engine) as client:
            return [c["DisplayName"] for c in client.select("Customer")]

    result = dg.materialize([qbo_customer_names], resources={"qbo": resource})
    assert result.output_for_node("qbo_customer_names") == ["Resource Co"]
    assert stored_row(engine, "acme") is not None

    item = stack.backend.company(stack.realms["acme"]).create(
        "Item", {"Name": "Support", "IncomeAccountRef": {"value": "1"}}
    )
    stack.backend.company(stack.realms["acme"]).create(
        "Invoice",
        {
            "DocNumber": "1001",
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                {
                    "Amount": 1,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
                }
            ],
        },
    )
    lookup = resource.doc_number_lookup(portal, engine=engine)
    try:
        assert [lookup(n) for n in ("1000", "1001", "1002")] == [False, True, False]
    finally:
        lookup.close()  # type: ignore[attr-defined]
