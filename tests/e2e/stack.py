"""What the end-to-end test runs against: HaloPSA simulators on loopback, a portals.yaml,
the Dagster instance's and the warehouse's storage (SQLite files or a throw-away
PostgreSQL database), and the environment `dagster dev` and the CLI get."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from datagate_simulators.halopsa.generator import generate_tenant
from datagate_simulators.halopsa.testing import HaloSim, make_sim
from datagate_simulators.qbo import QBOBackend
from datagate_simulators.qbo import create_app as create_qbo_app
from datagate_simulators.server import RunningServer, serve_in_thread
from tests.e2e.dagster_dev import PROJECT_ROOT

# Before the periods billed, so the generated agreements are running in them.
TENANT_AS_OF = date(2026, 7, 1)
BILLING_START = "2026-06"

PORTAL = """  - id: {id}
    name: {name}
    billing_start: {billing_start}
    halopsa:
      client_id_env: {env}_HALO_CLIENT_ID
      client_secret_env: {env}_HALO_CLIENT_SECRET
      tenant: {id}
      authorization_server: {base}/auth
      resource_server: {base}/api
    sync:
      use_default_agreement: true
      in_advance_months: 1
      allow_pro_rata: true
    invoicing: {{number_prefix: "{prefix}-", next_number: 1001, payment_terms_days: 30, approval: {approval}}}
"""
QBO_SECTION = """    qbo:
      realm_id: "{realm}"
      client_id_env: {env}_QBO_CLIENT_ID
      client_secret_env: {env}_QBO_CLIENT_SECRET
      refresh_token_env: {env}_QBO_REFRESH_TOKEN
      base_url: {base}
      token_url: {base}/oauth2/v1/tokens/bearer
      revoke_url: {base}/v2/oauth2/tokens/revoke
      authorize_url: {base}/connect/oauth2
      income_account: Services
"""

# Schedules are not what this test exercises: keep them from firing during it.
NEVER_DURING_THE_TEST = "0 0 1 1 *"


class Gate:
    """ASGI wrapper that holds HaloPSA API requests while closed: a sync run then lasts as
    long as the test needs (the simulator's `delay` faults are fixed lengths). A request is
    held at most `max_hold` seconds, under the client's 30 s timeout, so nothing is retried;
    a sync makes enough requests to stay busy for minutes."""

    def __init__(self, app: Any, *, max_hold: float = 20.0) -> None:
        self.app = app
        self.max_hold = max_hold
        self._open = threading.Event()
        self._open.set()
        self.held = 0

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].lower().startswith("/api"):
            deadline = time.monotonic() + self.max_hold
            if not self._open.is_set():
                self.held += 1
            while not self._open.is_set() and time.monotonic() < deadline:
                await anyio.sleep(0.05)
        await self.app(scope, receive, send)


@dataclass
class PortalSim:
    """One portal's HaloPSA simulator, served on loopback behind a `Gate`."""

    id: str
    sim: HaloSim
    server: RunningServer
    gate: Gate

    @property
    def env_prefix(self) -> str:
        return self.id.upper()

    @property
    def secrets(self) -> dict[str, str]:
        return {
            f"{self.env_prefix}_HALO_CLIENT_ID": self.sim.client_id,
            f"{self.env_prefix}_HALO_CLIENT_SECRET": self.sim.client_secret,
        }


@contextlib.contextmanager
def portal_sim(portal_id: str, customers: int, seed: int) -> Iterator[PortalSim]:
    sim = make_sim(
        client_id=f"{portal_id}-client",
        client_secret=f"{portal_id}-secret-{uuid.uuid4().hex}",
        tenant=portal_id,
    )
    generate_tenant(sim.backend, customers=customers, seed=seed, as_of=TENANT_AS_OF)
    gate = Gate(sim.app)
    with serve_in_thread(gate) as server:
        yield PortalSim(portal_id, sim, server, gate)


@dataclass
class QBOSim:
    """A QuickBooks Online company for one portal, served on loopback."""

    portal_id: str
    realm_id: str
    backend: QBOBackend
    server: RunningServer
    client_id: str
    client_secret: str
    refresh_token: str

    @property
    def secrets(self) -> dict[str, str]:
        prefix = self.portal_id.upper()
        return {
            f"{prefix}_QBO_CLIENT_ID": self.client_id,
            f"{prefix}_QBO_CLIENT_SECRET": self.client_secret,
            f"{prefix}_QBO_REFRESH_TOKEN": self.refresh_token,
        }

    def invoices(self) -> list[dict[str, Any]]:
        return self.backend.company(self.realm_id).all_live("Invoice")


@contextlib.contextmanager
def qbo_sim(portal_id: str, realm_id: str = "9130350000000077") -> Iterator[QBOSim]:
    backend = QBOBackend()
    sim = dict(
        client_id=f"{portal_id}-qbo-app",
        client_secret=f"{portal_id}-qbo-secret-{uuid.uuid4().hex}",
        refresh_token=f"RT-{uuid.uuid4().hex}",
    )
    backend.seed_company(realm_id, company_name=f"{portal_id.title()} Books", **sim)
    with serve_in_thread(create_qbo_app(backend)) as server:
        yield QBOSim(portal_id, realm_id, backend, server, **sim)


def write_portals_yaml(
    path: Path,
    sims: list[PortalSim],
    qbo: dict[str, QBOSim] | None = None,
    approval: dict[str, str] | None = None,
) -> None:
    """portals.yaml for the simulated portals; those in `qbo` export to their QBO company.
    Approval is `auto` (closing a period is not what most phases test) unless `approval`
    names a portal's."""
    entries = "".join(
        PORTAL.format(
            id=s.id,
            name=f"{s.id.title()} Telecom",
            billing_start=BILLING_START,
            env=s.env_prefix,
            base=s.server.base_url,
            prefix=s.id[:3].upper(),
            approval=(approval or {}).get(s.id, "auto"),
        )
        + (
            QBO_SECTION.format(
                realm=qbo[s.id].realm_id, env=s.env_prefix, base=qbo[s.id].server.base_url
            )
            if qbo and s.id in qbo
            else ""
        )
        for s in sims
    )
    path.write_text("portals:\n" + entries, encoding="utf-8")


@dataclass
class Storage:
    """Where the Dagster instance and the two warehouses live, for one storage kind."""

    kind: str
    instance_yaml: dict
    warehouse_url: str
    # A second warehouse, billed period by period in-process, to compare the backfill with.
    reference_url: str
    env: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    # Bugs in deploy/ worked around in this copy (the test xfails naming them).
    known_bugs: list[str] = field(default_factory=list)


def _instance_yaml(name: str) -> dict:
    return yaml.safe_load((PROJECT_ROOT / "deploy" / name).read_text())


@contextlib.contextmanager
def sqlite_storage(folder: Path) -> Iterator[Storage]:
    yield Storage(
        "sqlite",
        _instance_yaml("dagster.yaml"),
        f"sqlite:///{folder / 'warehouse.db'}",
        f"sqlite:///{folder / 'reference.db'}",
    )


def _postgres_instance_yaml() -> tuple[dict, list[str]]:
    config = _instance_yaml("dagster.postgres.yaml")
    postgres_db = config["storage"]["postgres"].get("postgres_db")
    if postgres_db is None or "scheme" in postgres_db:
        return config, []
    # dagster-postgres builds `postgresql://…` from postgres_db; SQLAlchemy 2.1 reads that as
    # psycopg 3, which is not installed (dagster-postgres ships psycopg2).
    postgres_db["scheme"] = "postgresql+psycopg2"
    return config, [
        "BUG deploy/dagster.postgres.yaml: storage.postgres.postgres_db needs "
        "`scheme: postgresql+psycopg2` (without it: ModuleNotFoundError: No module named "
        "'psycopg' when any Dagster process opens the instance)"
    ]


def postgres_admin_url() -> str:
    from tests.conftest import POSTGRES_URL, _postgres_or_skip

    _postgres_or_skip()
    return POSTGRES_URL


@contextlib.contextmanager
def postgres_storage() -> Iterator[Storage]:
    """A fresh database: Dagster's tables in `public`, the warehouses in their own schemas
    (both use an `alembic_version` table); dropped at the end, whatever is connected."""
    admin_url = make_url(postgres_admin_url())
    database = f"e2e_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'create database "{database}"'))
    try:
        url = admin_url.set(database=database)
        with create_engine(url).begin() as connection:
            connection.execute(text("create schema warehouse"))
            connection.execute(text("create schema reference"))
        base = url.render_as_string(hide_password=False)
        instance_yaml, bugs = _postgres_instance_yaml()
        yield Storage(
            "postgres",
            instance_yaml,
            f"{base}?options={quote('-csearch_path=warehouse')}",
            f"{base}?options={quote('-csearch_path=reference')}",
            env={
                "DAGSTER_PG_USERNAME": admin_url.username or "postgres",
                "DAGSTER_PG_PASSWORD": admin_url.password or "",
                "DAGSTER_PG_HOST": admin_url.host or "127.0.0.1",
                "DAGSTER_PG_PORT": str(admin_url.port or 5432),
                "DAGSTER_PG_DB": database,
            },
            database=database,
            known_bugs=bugs,
        )
    finally:
        drop_database(database)
        admin.dispose()


def drop_database(database: str) -> None:
    admin = create_engine(make_url(postgres_admin_url()), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'drop database if exists "{database}" with (force)'))
    finally:
        admin.dispose()


def database_exists(database: str) -> bool:
    admin = create_engine(make_url(postgres_admin_url()))
    try:
        with admin.connect() as connection:
            return bool(
                connection.execute(
                    text("select 1 from pg_database where datname = :name"), {"name": database}
                ).first()
            )
    finally:
        admin.dispose()


def make_dagster_home(folder: Path, storage: Storage) -> Path:
    """A fresh DAGSTER_HOME with the storage kind's dagster.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(yaml.safe_dump(storage.instance_yaml))
    return folder


def environment(
    portals_file: Path, storage: Storage, sims: list[PortalSim], qbo: tuple[QBOSim, ...] = ()
) -> dict[str, str]:
    """What `dagster dev` and the CLI run with: ours on top of the current environment."""
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAGATE_", "DAGSTER_"))}
    for sim in [*sims, *qbo]:
        env.update(sim.secrets)
    env.update(storage.env)
    env.update(
        {
            "DATAGATE_PORTALS_FILE": str(portals_file),
            "DATAGATE_DATABASE_URL": storage.warehouse_url,
            "DATAGATE_ASSET_RETRY_DELAY": "0",
            "DATAGATE_OPERATOR": "e2e-test",
            "DATAGATE_SYNC_CRON": NEVER_DURING_THE_TEST,
            "DATAGATE_BILLING_CRON": NEVER_DURING_THE_TEST,
            # Encrypts the QBO refresh tokens stored in the warehouse.
            "DATAGATE_TOKEN_KEY": Fernet.generate_key().decode(),
        }
    )
    return env


def datagate_command() -> list[str]:
    """The `datagate` console script next to this interpreter, else `python -m …cli`."""
    script = Path(sys.executable).with_name("datagate")
    if script.exists():
        return [str(script)]
    found = shutil.which("datagate")
    return [found] if found else [sys.executable, "-m", "datagate_pipelines.cli"]


def datagate(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run the CLI as an operator would; fail with its output when it exits non-zero."""
    result = subprocess.run(
        [*datagate_command(), *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"`datagate {' '.join(args)}` exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )
    return result.stdout
