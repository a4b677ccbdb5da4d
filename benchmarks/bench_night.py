"""A night of many portals through the real deployment shape, with a PostgreSQL restart and a
killed daemon on the way.

    .venv/bin/python benchmarks/bench_night.py                    # 100 portals, print the report
    .venv/bin/python benchmarks/bench_night.py --write            # and record it in BENCHMARKS.md
    .venv/bin/python benchmarks/bench_night.py --portals 10 --no-faults
    .venv/bin/python benchmarks/bench_night.py --results night.json  # keep the raw facts
    .venv/bin/python benchmarks/bench_night.py --report-from night.json --write

100 portals are 300 runs of ~12 s of CPU each: about 45 minutes on 2 cores, longer when
other work shares them (BENCHMARKS.md); choose --portals for the machine.

What runs, all on this machine:
- a throw-away PostgreSQL database `bench_night_<random>` on 127.0.0.1:5432 holding the
  Dagster instance (run, event-log and schedule storage, `deploy/dagster.postgres.yaml` as
  deployed) and, in schema `warehouse`, the warehouse; dropped at the end;
- a gRPC code server (`dagster api grpc`), `dagster-daemon run` and `dagster-webserver`,
  sharing one DAGSTER_HOME whose workspace points at the code server; runs are launched by
  the DefaultRunLauncher (one process per run) through the QueuedRunCoordinator;
- one HaloPSA simulator per portal (mixed sizes, routed under one loopback server) and one
  QBO simulator with a company per portal, their rate limits compressed in time by
  `--time-scale` (HaloPSA's 300 per 5 min becomes 300 per 30 s at 10×; the portals'
  clients are told the same limits); every portal on `approval: auto`;
- what an operator set up on an earlier day: the portals registered, product templates and
  tax rates imported (else every invoice would be held).

The nightly sync and billing schedules are the project's own, ticked by the daemon: their
crons (DATAGATE_SYNC_CRON, DATAGATE_BILLING_CRON) are moved to the next minutes, sync one
minute before billing so each portal's sync is queued ahead of its billing runs. Once a
third of the runs have finished PostgreSQL is restarted (`pg_ctlcluster … restart`), once
two thirds have the daemon is SIGKILLed and started again (`--no-faults` skips both).

Reported: makespan (first run queued → last run finished) against the floor — the larger of
the slowest portal's API floor (its HaloPSA and QBO calls against their budgets) and the CPU
all our processes used ÷ cores —, launch overhead per run (launched → started, and the part
of a run not spent in steps), the queue's maximum depth, overlapping runs of one portal
(from run storage), 429s per simulator, and whether every portal's period was billed
exactly once (warehouse, HaloPSA and QBO counts) with every run succeeded or retried to
success.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from benchmarks.report import write_section  # noqa: E402
from datagate_pipelines.billing.periods import add_months, period_label  # noqa: E402
from datagate_pipelines.config import parse_portals  # noqa: E402
from datagate_pipelines.demo.pipeline import TAX_CODE_BY_GROUP, demo_tax_rates  # noqa: E402
from datagate_pipelines.imports.tax_rates import import_tax_rates  # noqa: E402
from datagate_pipelines.warehouse import models as m  # noqa: E402
from datagate_pipelines.warehouse.db import warehouse_engine  # noqa: E402
from datagate_pipelines.warehouse.portals import register_portal  # noqa: E402
from datagate_simulators.halopsa import RateLimit  # noqa: E402
from datagate_simulators.halopsa.generator import generate_tenant  # noqa: E402
from datagate_simulators.halopsa.testing import HaloSim, make_sim  # noqa: E402
from datagate_simulators.qbo import QBOBackend  # noqa: E402
from datagate_simulators.qbo import create_app as qbo_app  # noqa: E402
from datagate_simulators.qbo.settings import QBOSettings, ThrottleSettings  # noqa: E402
from datagate_simulators.server import serve_in_thread  # noqa: E402

SECTION = "## A night of many portals"
POSTGRES_URL = os.environ.get(
    "DATAGATE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
LOCATION = "datagate"
PORTAL_TAG = "dagster/partition/portal"
NEVER = "0 0 1 1 *"
# Seconds from starting the processes to the sync tick: their start-up on a busy 2-core
# machine, with room to spare (a late start fails the benchmark, it never skews it).
START_LEAD = 150
START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on PythonError { message }
  }
}"""
RELOAD = (
    f'mutation {{ reloadRepositoryLocation(repositoryLocationName: "{LOCATION}") '
    "{ __typename } }"
)
# Customers per portal, cycled: most tenants small, a few large, one in twenty-five big.
SIZES = (20, 20, 40, 20, 80, 20, 40, 150, 20, 40, 20, 80, 20, 40, 20, 300, 20, 40, 20, 80,
         20, 40, 20, 150, 600)  # fmt: skip
# The real budgets (HaloPSA per application, QBO per company), compressed by --time-scale.
HALO_BUDGET = (300, 300.0)
QBO_BUDGET = (500, 60.0)
QBO_BATCHES = 40


class NightError(RuntimeError):
    """Something in the stack did not come up or the night did not finish."""


# ---------------------------------------------------------------------------- simulators


class TenantRouter:
    """One loopback server for many HaloPSA simulators: `/<portal>/…` is that portal's app,
    which sees the path without the prefix, as if served alone."""

    def __init__(self, apps: dict[str, Any]) -> None:
        self.apps = apps

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        portal = scope["path"].lstrip("/").partition("/")[0]
        app = self.apps.get(portal)
        if app is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"no such portal"})
            return
        prefix = "/" + portal
        path = scope["path"][len(prefix) :] or "/"
        await app(
            {**scope, "path": path, "raw_path": path.encode(), "root_path": prefix},
            receive,
            send,
        )


@dataclass
class Portal:
    id: str
    customers: int
    halo: HaloSim
    realm: str
    qbo_client_id: str
    qbo_client_secret: str
    qbo_refresh_token: str

    @property
    def env_prefix(self) -> str:
        return self.id.upper()

    def secrets(self) -> dict[str, str]:
        p = self.env_prefix
        return {
            f"{p}_HALO_CLIENT_ID": self.halo.client_id,
            f"{p}_HALO_CLIENT_SECRET": self.halo.client_secret,
            f"{p}_QBO_CLIENT_ID": self.qbo_client_id,
            f"{p}_QBO_CLIENT_SECRET": self.qbo_client_secret,
            f"{p}_QBO_REFRESH_TOKEN": self.qbo_refresh_token,
        }


def portal_sizes(count: int) -> list[int]:
    return [SIZES[i % len(SIZES)] for i in range(count)]


def scaled(budget: tuple[int, float], scale: float) -> tuple[int, float]:
    return budget[0], budget[1] / scale


def make_portals(count: int, tenant_as_of: date, scale: float, qbo: QBOBackend) -> list[Portal]:
    halo_requests, halo_window = scaled(HALO_BUDGET, scale)
    portals = []
    for index, customers in enumerate(portal_sizes(count)):
        portal_id = f"p{index + 1:03d}"
        halo = make_sim(
            client_id=f"{portal_id}-client",
            client_secret=f"{portal_id}-{uuid.uuid4().hex}",
            tenant=portal_id,
            rate_limit=RateLimit(halo_requests, halo_window),
        )
        generate_tenant(halo.backend, customers=customers, seed=index, as_of=tenant_as_of)
        realm = f"91303500{index + 1:08d}"
        secrets = {
            "client_id": f"{portal_id}-qbo-app",
            "client_secret": f"{portal_id}-qbo-{uuid.uuid4().hex}",
            "refresh_token": f"RT-{uuid.uuid4().hex}",
        }
        qbo.seed_company(realm, company_name=f"{portal_id} Books", **secrets)
        portals.append(
            Portal(
                portal_id,
                customers,
                halo,
                realm,
                secrets["client_id"],
                secrets["client_secret"],
                secrets["refresh_token"],
            )
        )
    return portals


def portals_yaml(portals: list[Portal], halo_url: str, qbo_url: str, period: date, scale: float):
    halo_requests, halo_window = scaled(HALO_BUDGET, scale)
    qbo_requests, qbo_window = scaled(QBO_BUDGET, scale)
    entries = []
    for portal in portals:
        p, base = portal.env_prefix, f"{halo_url}/{portal.id}"
        entries.append(
            {
                "id": portal.id,
                "name": f"Portal {portal.id}",
                "billing_start": period_label(period),
                "halopsa": {
                    "client_id_env": f"{p}_HALO_CLIENT_ID",
                    "client_secret_env": f"{p}_HALO_CLIENT_SECRET",
                    "tenant": portal.id,
                    "authorization_server": f"{base}/auth",
                    "resource_server": f"{base}/api",
                    "rate_limit_requests": halo_requests,
                    "rate_limit_window_seconds": halo_window,
                },
                "sync": {"use_default_agreement": True, "in_advance_months": 1},
                "invoicing": {
                    "number_prefix": f"{p}-",
                    "next_number": 1001,
                    "payment_terms_days": 30,
                    "approval": "auto",
                },
                "qbo": {
                    "realm_id": portal.realm,
                    "client_id_env": f"{p}_QBO_CLIENT_ID",
                    "client_secret_env": f"{p}_QBO_CLIENT_SECRET",
                    "refresh_token_env": f"{p}_QBO_REFRESH_TOKEN",
                    "base_url": qbo_url,
                    "token_url": f"{qbo_url}/oauth2/v1/tokens/bearer",
                    "revoke_url": f"{qbo_url}/v2/oauth2/tokens/revoke",
                    "authorize_url": f"{qbo_url}/connect/oauth2",
                    "income_account": "Services",
                    "rate_limit_requests": qbo_requests,
                    "rate_limit_window_seconds": qbo_window,
                    "batch_rate_limit_requests": QBO_BATCHES,
                },
            }
        )
    return yaml.safe_dump({"portals": entries}, sort_keys=False)


def seed_setup(warehouse_url: str, portals_file: Path, portals: list[Portal]) -> None:
    """What an operator set up on an earlier day, before this night: the portals, their
    product templates (tax code per item, by item group, as the demo does) and the tax rates
    of every zip their sites have. Templates go in directly: the import checks items
    against a sync, and the night's sync has not run yet."""
    registry = parse_portals(portals_file.read_text(), portals_file)
    engine = warehouse_engine(warehouse_url)
    now = datetime.now(UTC)
    zips: set[str] = set()
    with engine.begin() as connection:
        for portal in portals:
            register_portal(connection, registry.get(portal.id))
            backend = portal.halo.backend
            groups = {g["id"]: g["name"] for g in backend.table("AssetGroup").values()}
            templates = [
                {
                    "portal_id": portal.id,
                    "item_id": item["id"],
                    "item_name": item["name"],
                    "tax_code": TAX_CODE_BY_GROUP.get(groups.get(item.get("assetgroup_id")), "SVC"),
                    "income_account": None,
                    "imported_at": now,
                }
                for item in backend.table("Item").values()
            ]
            connection.execute(insert(m.product_templates), templates)
            for site in backend.table("Site").values():
                postcode = (site.get("delivery_address") or {}).get("postcode")
                if postcode:
                    zips.add(postcode.split("-")[0].strip().upper())
        rates = portals_file.with_name("tax-rates.csv")
        rates.write_text(demo_tax_rates(zips))
        import_tax_rates(connection, rates)
    engine.dispose()


# ---------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Dagster processes stop cleanly on SIGINT, unless started with SIGINT ignored (a shell's
# background job): reset it before exec-ing.
SIGINT_DEFAULT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@dataclass
class Stack:
    """The deployment's processes, each in its own session so it is stopped as a group."""

    home: Path
    env: dict[str, str]
    grpc_port: int
    web_port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def command(self, name: str) -> list[str]:
        bin_dir = Path(sys.executable).parent
        workspace = ["-w", str(self.home / "workspace.yaml")]
        if name == "code-server":
            return [str(bin_dir / "dagster"), "api", "grpc", "-m", "datagate_pipelines.definitions",
                    "-a", "defs", "-h", "127.0.0.1", "-p", str(self.grpc_port),
                    "--location-name", LOCATION, "--log-level", "warning"]  # fmt: skip
        if name == "daemon":
            return [str(bin_dir / "dagster-daemon"), "run", *workspace]
        return [str(bin_dir / "dagster-webserver"), *workspace, "-h", "127.0.0.1",
                "-p", str(self.web_port)]  # fmt: skip

    def start(self, name: str) -> None:
        with (self.home / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-c", SIGINT_DEFAULT_THEN_EXEC, *self.command(name)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def kill(self, name: str) -> None:
        """SIGKILL, as an OOM killer or a lost node would."""
        process = self.processes[name]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.home / f"{name}.log").read_text(errors="replace")[-3000:]
                raise NightError(f"{name} exited with {process.returncode}:\n{tail}")

    def wait_until_loaded(self, timeout: float = 180) -> None:
        """The webserver answers and sees the code server's location loaded."""
        query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        query += "locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(base_url=f"http://127.0.0.1:{self.web_port}", timeout=10) as http:
            while time.monotonic() < deadline:
                self.check_alive()
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                    body = http.post("/graphql", json={"query": query}).json()
                    for entry in body["data"]["workspaceOrError"]["locationEntries"]:
                        loaded = entry["locationOrLoadError"] or {}
                        if loaded.get("__typename") == "PythonError":
                            # The code server may still be starting: reload and ask again.
                            last = loaded["message"]
                            http.post("/graphql", json={"query": RELOAD})
                        elif entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
                            return
                time.sleep(2)
        raise NightError(f"the code location did not load within {timeout:.0f} s: {last}")

    def start_schedule(self, name: str) -> None:
        selector = {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "scheduleName": name,
        }
        with httpx.Client(base_url=f"http://127.0.0.1:{self.web_port}", timeout=60) as http:
            body = http.post(
                "/graphql", json={"query": START_SCHEDULE, "variables": {"selector": selector}}
            ).json()
        result = (body.get("data") or {}).get("startSchedule") or {}
        if result.get("__typename") != "ScheduleStateResult":
            raise NightError(f"could not start schedule {name}: {body}")


class CpuMeter:
    """CPU seconds of this process and every descendant (code server, daemon, webserver, run
    workers), sampled every `interval`: a process's last < interval before it exits is
    missed. PostgreSQL's own CPU is not ours to count (shared server)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)
        self.me = psutil.Process()

    def _sample(self) -> None:
        for proc in [self.me, *self.me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                self.seen[(proc.pid, proc.create_time())] = times.user + times.system

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._sample()
        self.start = dict(self.seen)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def seconds(self) -> float:
        return sum(v - self.start.get(k, 0.0) for k, v in self.seen.items())


# ---------------------------------------------------------------------------- database


@contextlib.contextmanager
def night_database() -> Iterator[str]:
    """A fresh database (Dagster in `public`, the warehouse in schema `warehouse`); dropped
    at the end whatever is still connected."""
    admin_url = make_url(POSTGRES_URL)
    name = f"bench_night_{uuid.uuid4().hex[:10]}"
    # Pre-ping: the night restarts PostgreSQL, which closes every pooled connection.
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'create database "{name}"'))
    try:
        url = admin_url.set(database=name)
        with create_engine(url).begin() as connection:
            connection.execute(text("create schema warehouse"))
        yield url.render_as_string(hide_password=False)
    finally:
        try:
            with admin.connect() as connection:
                connection.execute(text(f'drop database if exists "{name}" with (force)'))
        except Exception as exc:  # the night's figures matter more: say what is left
            print(f"could not drop database {name} ({exc.__class__.__name__}): drop it by hand")
        admin.dispose()


def restart_postgres() -> float:
    """`pg_ctlcluster … restart` of the local cluster; returns the seconds it took."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


# ---------------------------------------------------------------------------- the night


@dataclass
class NightConfig:
    portals: int = 100
    time_scale: float = 10.0
    faults: bool = True
    max_concurrent_runs: int | None = None  # None: as deploy/dagster.postgres.yaml says
    timeout: float = 3600.0
    # Before the period billed, so the generated agreements run through it.
    today: date = field(default_factory=lambda: datetime.now(UTC).date())


def instance_yaml(max_concurrent_runs: int | None) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "deploy" / "dagster.postgres.yaml").read_text())
    if max_concurrent_runs is not None:
        config["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
    return config


def next_minutes(now: datetime, lead: timedelta) -> tuple[datetime, datetime]:
    """The sync tick at the first whole minute at least `lead` away; billing a minute later."""
    sync = (now + lead).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return sync, sync + timedelta(minutes=1)


def cron_at(moment: datetime) -> str:
    return f"{moment.minute} {moment.hour} {moment.day} {moment.month} *"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portals", type=int, default=100)
    parser.add_argument(
        "--time-scale",
        type=float,
        default=10.0,
        help="compress the APIs' rate-limit windows by this factor (default 10)",
    )
    parser.add_argument(
        "--no-faults", action="store_true", help="no PostgreSQL restart and no daemon kill"
    )
    parser.add_argument("--max-concurrent-runs", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--write", action="store_true", help="record the report in BENCHMARKS.md")
    parser.add_argument("--results", type=Path, help="also save the raw facts as JSON here")
    parser.add_argument("--report-from", type=Path, help="report a night saved with --results")
    args = parser.parse_args(argv)
    command = "benchmarks/bench_night.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.report_from:
        saved = json.loads(args.report_from.read_text())
        results, command = saved["results"], saved["command"]
    else:
        config = NightConfig(
            portals=args.portals,
            time_scale=args.time_scale,
            faults=not args.no_faults,
            max_concurrent_runs=args.max_concurrent_runs,
            timeout=args.timeout,
        )
        results = json.loads(json.dumps(run_night(config), default=str))
        if args.results:
            args.results.write_text(json.dumps({"command": command, "results": results}))
    section = report(results, command.strip())
    print(section)
    if args.write:
        write_section(SECTION, section)
    return results


def run_night(config: NightConfig) -> dict[str, Any]:
    period = add_months(config.today.replace(day=1), -1)  # the period the night closes
    qbo = QBOBackend(
        QBOSettings(
            throttle=ThrottleSettings(
                limit=QBO_BUDGET[0],
                window=QBO_BUDGET[1] / config.time_scale,
                batch_limit=QBO_BATCHES,
                batch_window=QBO_BUDGET[1] / config.time_scale,
            )
        )
    )
    started = time.monotonic()
    portals = make_portals(config.portals, add_months(period, -1), config.time_scale, qbo)
    generated = time.monotonic() - started
    router = TenantRouter({p.id: p.halo.app for p in portals})
    with (
        tempfile.TemporaryDirectory(prefix="bench-night-") as folder,
        serve_in_thread(router) as halo_server,
        serve_in_thread(qbo_app(qbo)) as qbo_server,
        night_database() as database_url,
    ):
        home = Path(folder)
        (home / "portals.yaml").write_text(
            portals_yaml(
                portals, halo_server.base_url, qbo_server.base_url, period, config.time_scale
            )
        )
        (home / "dagster.yaml").write_text(
            yaml.safe_dump(instance_yaml(config.max_concurrent_runs))
        )
        grpc_port, web_port = free_port(), free_port()
        server = {"host": "127.0.0.1", "port": grpc_port, "location_name": LOCATION}
        (home / "workspace.yaml").write_text(
            yaml.safe_dump({"load_from": [{"grpc_server": server}]})
        )
        warehouse_url = f"{database_url}?options={quote('-csearch_path=warehouse')}"
        seed_setup(warehouse_url, home / "portals.yaml", portals)
        sync_at, billing_at = next_minutes(datetime.now(UTC), timedelta(seconds=START_LEAD))
        url = make_url(database_url)
        env = environment(home, portals, warehouse_url, url, sync_at, billing_at)
        stack = Stack(home, env, grpc_port, web_port)
        try:
            return night(config, stack, portals, qbo, period, sync_at, generated)
        finally:
            stack.stop()


def environment(home, portals, warehouse_url, url, sync_at, billing_at) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAGATE_", "DAGSTER_"))}
    for portal in portals:
        env.update(portal.secrets())
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_USERNAME": url.username or "postgres",
            "DAGSTER_PG_PASSWORD": url.password or "",
            "DAGSTER_PG_HOST": url.host or "127.0.0.1",
            "DAGSTER_PG_PORT": str(url.port or 5432),
            "DAGSTER_PG_DB": url.database or "",
            "DATAGATE_PORTALS_FILE": str(home / "portals.yaml"),
            "DATAGATE_DATABASE_URL": warehouse_url,
            "DATAGATE_TOKEN_KEY": Fernet.generate_key().decode(),
            "DATAGATE_OPERATOR": "bench-night",
            "DATAGATE_ASSET_RETRY_DELAY": "2",
            # As deploy/README.md advises for a busy host: a launch waits for the run's
            # process to load the code, which takes longer than 60 s when 2 cores are full.
            "DAGSTER_GRPC_TIMEOUT_SECONDS": "180",
            "DATAGATE_SYNC_CRON": cron_at(sync_at),
            "DATAGATE_BILLING_CRON": cron_at(billing_at),
            "DATAGATE_PAYMENTS_CRON": NEVER,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def night(config, stack, portals, qbo, period, sync_at, generated) -> dict[str, Any]:
    from dagster import DagsterInstance

    os.environ["DAGSTER_HOME"] = str(stack.home)
    for name in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST",
                 "DAGSTER_PG_PORT", "DAGSTER_PG_DB"):  # fmt: skip
        os.environ[name] = stack.env[name]
    events: list[str] = []
    with CpuMeter() as cpu:
        stack.start("code-server")
        stack.start("webserver")
        stack.start("daemon")
        stack.wait_until_loaded()
        instance = DagsterInstance.get()
        # What the portal_registry sensor would add: the schedules read the portal partitions.
        instance.add_dynamic_partitions("portals", [p.id for p in portals])
        if datetime.now(UTC) > sync_at - timedelta(seconds=5):
            raise NightError(f"the stack took too long to start: the sync tick at {sync_at} passed")
        # Started explicitly (not only "running by default"), so the scheduler counts ticks
        # from now: one it reaches late, because the daemon was slow to load, still fires.
        for schedule in ("nightly_sync", "nightly_billing"):
            stack.start_schedule(schedule)
        expected = 3 * len(portals)  # per portal: sync, close last period, refresh this one
        faults_due = (
            [(expected // 3, "postgres"), (2 * expected // 3, "daemon")] if config.faults else []
        )
        deadline = time.monotonic() + config.timeout
        while True:
            stack.check_alive()
            snapshot = poll(instance)
            if snapshot is None:
                time.sleep(1)
                continue
            done, finished, pending = snapshot
            if faults_due and finished >= faults_due[0][0]:
                _, fault = faults_due.pop(0)
                events.append(inject(fault, stack, finished))
            if done >= expected and pending == 0 and not faults_due:
                break
            if time.monotonic() > deadline:
                raise NightError(f"night not over after {config.timeout:.0f} s: {snapshot}")
            time.sleep(2)
    runs = run_facts(instance)
    billing = billed_once(stack.env["DATAGATE_DATABASE_URL"], portals, qbo, period)
    return {
        "portals": [(p.id, p.customers) for p in portals],
        "time_scale": config.time_scale,
        "generated_s": generated,
        "cpu_s": cpu.seconds(),
        "cores": os.cpu_count() or 1,
        "events": events,
        "runs": runs,
        "billing": billing,
        "throttled": throttled(portals, qbo),
        "calls": calls(portals, qbo),
        "sync_at": sync_at,
        "instance": instance_yaml(config.max_concurrent_runs),
        "loadavg": os.getloadavg(),
    }


def inject(fault: str, stack: Stack, finished: int) -> str:
    at = datetime.now(UTC).strftime("%H:%M:%S")
    if fault == "postgres":
        took = restart_postgres()
        return f"{at} — {finished} runs finished: PostgreSQL restarted ({took:.1f} s)"
    stack.kill("daemon")
    time.sleep(5)
    stack.start("daemon")
    return f"{at} — {finished} runs finished: daemon SIGKILLed, started again 5 s later"


def poll(instance) -> tuple[int, int, int] | None:
    """(root runs seen, runs finished, runs not yet settled), or None while the database is
    unreachable. A failed run is settled once the retry daemon decided (dagster/will_retry)
    and, when it retries, its retry exists."""
    from dagster import DagsterRunStatus

    try:
        runs = instance.get_runs()
    except Exception:  # PostgreSQL restarting: ask again
        return None
    finished_states = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE,
                       DagsterRunStatus.CANCELED}  # fmt: skip
    parents = {r.parent_run_id for r in runs if r.parent_run_id}
    roots = [r for r in runs if not r.parent_run_id]
    finished = sum(r.status in finished_states for r in runs)
    pending = 0
    for run in runs:
        if run.status not in finished_states:
            pending += 1
        elif run.status == DagsterRunStatus.FAILURE and run.run_id not in parents:
            will_retry = run.tags.get("dagster/will_retry")
            if will_retry is None or will_retry == "true":
                pending += 1
    return len(roots), finished, pending


# ---------------------------------------------------------------------------- the facts


def run_facts(instance) -> list[dict[str, Any]]:
    """Every run with its portal, job, outcome and the times of its life from the event log."""
    from dagster import DagsterEventType

    wanted = {
        DagsterEventType.RUN_ENQUEUED: "enqueued",
        DagsterEventType.RUN_DEQUEUED: "dequeued",
        DagsterEventType.RUN_STARTING: "launched",
        DagsterEventType.RUN_START: "started",
        DagsterEventType.STEP_START: "step_start",
        DagsterEventType.STEP_SUCCESS: "step_end",
        DagsterEventType.STEP_FAILURE: "step_end",
        DagsterEventType.STEP_SKIPPED: "step_end",
    }
    facts = []
    for record in instance.get_run_records():
        run = record.dagster_run
        times: dict[str, float] = {}
        step_open: dict[str, float] = {}
        in_steps = 0.0
        for entry in instance.all_logs(run.run_id, of_type=set(wanted)):
            kind = wanted[entry.dagster_event.event_type]
            if kind == "step_start":
                step_open[entry.step_key] = entry.timestamp
            elif kind == "step_end":
                in_steps += entry.timestamp - step_open.pop(entry.step_key, entry.timestamp)
            else:
                times.setdefault(kind, entry.timestamp)
        facts.append(
            {
                "run_id": run.run_id,
                "job": run.job_name,
                "portal": run.tags.get(PORTAL_TAG),
                "status": run.status.value,
                "parent": run.parent_run_id,
                "created": record.create_timestamp.timestamp(),
                "start": record.start_time,
                "end": record.end_time,
                "in_steps": in_steps,
                **times,
            }
        )
    return facts


def billed_once(warehouse_url: str, portals: list[Portal], qbo: QBOBackend, period: date):
    """Per portal: the closed period's final invoices, each exported once to each target, and
    the targets holding exactly those invoices (no duplicate numbers)."""
    engine = create_engine(warehouse_url)
    out = {}
    with engine.connect() as connection:
        finalized = dict(
            connection.execute(
                select(m.billing_periods.c.portal_id, m.billing_periods.c.finalized_at).where(
                    m.billing_periods.c.period == period
                )
            ).all()
        )
        final = dict(
            connection.execute(
                select(m.invoices.c.portal_id, func.count())
                .where(m.invoices.c.period == period, m.invoices.c.status == "final")
                .group_by(m.invoices.c.portal_id)
            ).all()
        )
        exported: dict[tuple[str, str], int] = defaultdict(int)
        for portal_id, target, count in connection.execute(
            select(m.invoices.c.portal_id, m.exports.c.target, func.count())
            .join(m.exports, m.exports.c.invoice_id == m.invoices.c.id)
            .where(m.invoices.c.period == period, m.exports.c.status == "exported")
            .group_by(m.invoices.c.portal_id, m.exports.c.target)
        ):
            exported[(portal_id, target)] = count
    engine.dispose()
    for portal in portals:
        # Invoices with a negative total go to QBO as credit memos (one DocNumber space).
        company = qbo.company(portal.realm)
        in_qbo = [
            doc["DocNumber"] for kind in ("Invoice", "CreditMemo") for doc in company.all_live(kind)
        ]
        out[portal.id] = {
            "finalized": finalized.get(portal.id) is not None,
            "final": final.get(portal.id, 0),
            "exported_halopsa": exported[(portal.id, "halopsa")],
            "exported_qbo": exported[(portal.id, "qbo")],
            "in_halopsa": portal.halo.backend.count("Invoice"),
            "in_qbo": len(in_qbo),
            "qbo_distinct": len(set(in_qbo)),
        }
    return out


def throttled(portals: list[Portal], qbo: QBOBackend) -> dict[str, dict[str, int]]:
    return {
        p.id: {"halopsa": p.halo.stats.count(429), "qbo": qbo.stats.get(p.realm, "throttled")}
        for p in portals
    }


def calls(portals: list[Portal], qbo: QBOBackend) -> dict[str, dict[str, int]]:
    return {
        p.id: {
            "halopsa": p.halo.stats.requests,
            "qbo": qbo.stats.get(p.realm, "requests"),
            "qbo_batches": qbo.stats.get(p.realm, "batches"),
        }
        for p in portals
    }


def budget_floor(count: int, budget: tuple[int, float]) -> float:
    """The least time `count` requests take under `budget` requests per rolling window: every
    full budget beyond the first costs one window."""
    requests, window = budget
    return max(0, math.ceil(count / requests) - 1) * window


def api_floor(portal_calls: dict[str, int], scale: float) -> float:
    return (
        budget_floor(portal_calls["halopsa"], scaled(HALO_BUDGET, scale))
        + budget_floor(portal_calls["qbo"], scaled(QBO_BUDGET, scale))
        + budget_floor(portal_calls["qbo_batches"], (QBO_BATCHES, QBO_BUDGET[1] / scale))
    )


def overlaps(runs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Pairs of runs of one portal whose [start, end] intervals intersect."""
    by_portal: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        if run["portal"] and run["start"]:
            by_portal[run["portal"]].append(run)
    found = []
    for portal, portal_runs in by_portal.items():
        portal_runs.sort(key=lambda r: r["start"])
        for before, after in itertools.pairwise(portal_runs):
            if before["end"] is None or after["start"] < before["end"]:
                found.append((portal, before["run_id"], after["run_id"]))
    return found


def max_queue_depth(runs: list[dict[str, Any]]) -> int:
    """Most runs queued at once: each is queued from its enqueue event to its dequeue."""
    marks = []
    for run in runs:
        if "enqueued" in run:
            marks.append((run["enqueued"], 1))
            marks.append((run.get("dequeued", run.get("end") or math.inf), -1))
    depth = deepest = 0
    for _, step in sorted(marks):
        depth += step
        deepest = max(deepest, depth)
    return deepest


def outcome(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs that failed, and whether each failed run's retry chain ended in success."""
    by_parent = {r["parent"]: r for r in runs if r["parent"]}
    failed = [r for r in runs if r["status"] != "SUCCESS"]
    unrecovered = []
    for run in failed:
        current = run
        while current["status"] != "SUCCESS" and current["run_id"] in by_parent:
            current = by_parent[current["run_id"]]
        if current["status"] != "SUCCESS":
            unrecovered.append(run["run_id"])
    return {"failed": len(failed), "retries": len(by_parent), "unrecovered": unrecovered}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    runs = results["runs"]
    scale = results["time_scale"]
    first = min(r.get("enqueued", r["created"]) for r in runs)
    last = max(r["end"] or 0 for r in runs)
    floors = {p: api_floor(c, scale) for p, c in results["calls"].items()}
    slowest = max(floors, key=floors.get)
    cpu_floor = results["cpu_s"] / results["cores"]
    floor = max(floors[slowest], cpu_floor)
    launched = [r["started"] - r["launched"] for r in runs if "started" in r and "launched" in r]
    outside = [
        (r["end"] - r["launched"]) - r["in_steps"] for r in runs if r["end"] and "launched" in r
    ]
    billing = results["billing"]
    bad_billing = [
        p
        for p, b in billing.items()
        # A period with held invoices stays open (finalized_at unset) until they are dealt
        # with: what counts is that each final invoice reached each target exactly once.
        if not b["final"]
        or not b["final"] == b["exported_halopsa"] == b["in_halopsa"]
        or not b["final"] == b["exported_qbo"] == b["in_qbo"] == b["qbo_distinct"]
    ]
    return {
        "makespan": last - first,
        "api_floor": floors[slowest],
        "slowest": slowest,
        "cpu_floor": cpu_floor,
        "floor": floor,
        "ratio": (last - first) / floor if floor else math.inf,
        "launch_p50": percentile(launched, 0.5),
        "launch_p95": percentile(launched, 0.95),
        "outside_p50": percentile(outside, 0.5),
        "outside_mean": sum(outside) / len(outside) if outside else 0.0,
        "queue_depth": max_queue_depth(runs),
        "overlaps": overlaps(runs),
        "throttled": sum(v["halopsa"] + v["qbo"] for v in results["throttled"].values()),
        "outcome": outcome(runs),
        "bad_billing": bad_billing,
        "invoices": sum(b["final"] for b in billing.values()),
        "jobs": dict(sorted(_count(r["job"] for r in runs).items())),
        "duration_p50": {
            job: percentile(
                [r["end"] - r["start"] for r in runs if r["job"] == job and r["end"]], 0.5
            )
            for job in sorted({r["job"] for r in runs})
        },
        "cpu_per_run": results["cpu_s"] / len(runs) if runs else 0.0,
    }


def _count(items) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item] += 1
    return counts


def report(results: dict[str, Any], command: str) -> str:
    s = summarize(results)
    scale = results["time_scale"]
    sizes = _count(c for _, c in results["portals"])
    limits = results["instance"]["concurrency"]["runs"]
    retries = results["instance"]["run_retries"]
    halo_calls = sum(c["halopsa"] for c in results["calls"].values())
    qbo_calls = sum(c["qbo"] for c in results["calls"].values())
    slowest = results["calls"][s["slowest"]]
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python {command}` — {platform.machine()}, {results['cores']} "
        f"cores (shared with other work while measured), Python {platform.python_version()}.",
        "",
        f"{len(results['portals'])} portals (customers × portals: "
        + ", ".join(f"{k}×{v}" for k, v in sorted(sizes.items()))
        + f"), `approval: auto`; rate-limit windows compressed {scale:g}× "
        f"(HaloPSA {HALO_BUDGET[0]} per {HALO_BUDGET[1] / scale:g} s, QBO "
        f"{QBO_BUDGET[0]} and {QBO_BATCHES} batches per {QBO_BUDGET[1] / scale:g} s). "
        f"Code server + daemon + webserver on PostgreSQL, QueuedRunCoordinator with "
        f"max_concurrent_runs {limits['max_concurrent_runs']} and one run per portal, "
        f"DefaultRunLauncher; run retries {retries}. Runs by job: "
        + ", ".join(f"{k} {v}" for k, v in s["jobs"].items())
        + f"; {s['invoices']} invoices finalized and exported.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| makespan (first run queued → last run finished) | {s['makespan']:.0f} s |",
        f"| floor: slowest portal's API budget ({s['slowest']}) | {s['api_floor']:.0f} s |",
        f"| floor: CPU of all our processes ÷ cores ({results['cpu_s']:.0f} s ÷ "
        f"{results['cores']}) | {s['cpu_floor']:.0f} s |",
        f"| **makespan ÷ floor** (target ≤ 1.5) | **{s['ratio']:.2f}** |",
        f"| launch → run started, per run (p50 / p95) | {s['launch_p50']:.1f} s / "
        f"{s['launch_p95']:.1f} s |",
        f"| run time outside its steps, per run (p50 / mean) | {s['outside_p50']:.1f} s / "
        f"{s['outside_mean']:.1f} s |",
        f"| queue's maximum depth | {s['queue_depth']} runs |",
        f"| runs of one portal overlapping (run storage start/end) | {len(s['overlaps'])} |",
        f"| 429s from the simulators (HaloPSA + QBO, all portals) | {s['throttled']} |",
        f"| runs failed / retried / not recovered | {s['outcome']['failed']} / "
        f"{s['outcome']['retries']} / {len(s['outcome']['unrecovered'])} |",
        f"| portals not billed exactly once | {len(s['bad_billing'])} |",
        f"| CPU per run (all our processes' CPU ÷ runs) | {s['cpu_per_run']:.1f} s |",
        "| run duration, started → finished, p50 | "
        + ", ".join(f"{job} {value:.0f} s" for job, value in s["duration_p50"].items())
        + " |",
        f"| requests (all portals; the slowest portal) | HaloPSA {halo_calls:,}, QBO {qbo_calls:,}; "
        f"{s['slowest']}: HaloPSA {slowest['halopsa']:,}, QBO {slowest['qbo']:,} |",
        "",
        "Faults injected: " + ("; ".join(results["events"]) or "none") + ".",
        f"Load average when the night ended: {', '.join(f'{v:.1f}' for v in results['loadavg'])} "
        "(other work shares the machine: makespan includes waiting for the CPU, the CPU floor "
        "counts only our processes).",
    ]
    if s["bad_billing"]:
        lines.append(f"Not billed exactly once: {', '.join(s['bad_billing'])}.")
    if s["outcome"]["unrecovered"]:
        lines.append(f"Runs not recovered: {', '.join(s['outcome']['unrecovered'])}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
