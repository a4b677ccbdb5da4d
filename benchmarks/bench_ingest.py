"""Benchmark of the HaloPSA ingest: a generated tenant, served over loopback, synced as in production.

    .venv/bin/python benchmarks/bench_ingest.py            # 5,000 customers; print the Markdown block
    .venv/bin/python benchmarks/bench_ingest.py --write    # and record it in BENCHMARKS.md
    .venv/bin/python benchmarks/bench_ingest.py --customers 50 --postgres none   # a quick look
    .venv/bin/python benchmarks/bench_ingest.py --incremental --write   # 5,000 and 50,000 customers

The tenant is `generate_tenant(customers=N, lines_per_customer=L, seed=S)`, served by
`make_sim(...).serve()` (uvicorn on 127.0.0.1) in a process of its own, as a remote HaloPSA
would be. The ingest runs the way production runs it: the `portal_sync` job through
`launch.run_sync`, on a temporary Dagster instance, against a portals.yaml that points at the
simulator, into a freshly migrated warehouse (SQLite; and PostgreSQL in a fresh schema when
it is reachable). Every measurement runs in its own process, so its peak RSS is its own.

Measured:
- the floor: the same listings (same resources, parameters, page size) read by a plain
  `httpx.Client` paging loop that only parses each page's JSON to know when to stop; no
  client library, no decoding, no warehouse, no Dagster. It is measured twice in the same
  invocation (before and after the syncs) and ingest times are reported as ratios to it,
  because the machine is shared and absolute times drift;
- the client listing: the ingest's own fetch functions through `HaloPSAClient` (rate
  limiter, retries, redaction), nothing decoded or stored: what the client library costs
  over the floor, and, under a rate limit, the limiter's own pacing;
- with the rate limit off (simulator off, portals.yaml far above anything reachable): a
  first sync into an empty warehouse and a repeat sync (nothing changed) into the same one;
  the HaloPSA snapshot step's time and the whole portal_sync's; the API calls per entity
  from the `api_requests` log against the minimum (one token + ceil(records / 100) pages);
- with the rate limit on (the same budget on the simulator and in portals.yaml): the client
  listing's and the snapshot's times against the floor `calls ÷ budget × window`, and the
  429s seen by the client and sent by the simulator (its /_sim/stats).

With `--incremental`, its own section instead (benchmarks/ingest_incremental.py): at 5,000
and 50,000 customers, syncs of an unchanged tenant and of one with 1% changed against a full
sync in the same run — calls, times, and per entity how it was read.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import write_section  # noqa: E402

SECTION_TITLE = "## HaloPSA ingest"
PORTAL_ID = "bench"
TENANT = "bench"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-value"
SEED = 20260701
DEFAULT_CUSTOMERS = 5_000
DEFAULT_LINES = 10
DEFAULT_WINDOW = 6.0
DEFAULT_BUDGETS = (300, 30)
#: The most rows HaloPSA serves per page (halopsa/client.py MAX_PAGE_SIZE); the ingest asks for it.
PAGE_SIZE = 100
#: HaloPSA's documented budget per 5 minutes (portals.yaml's default).
HALO_BUDGET = 300
#: portals.yaml needs a positive limit: "off" is a budget no run can come near.
UNLIMITED = (1_000_000, 1.0)
DEFAULT_POSTGRES = os.environ.get(
    "DATAGATE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
RESULT_MARK = "BENCH-RESULT "

# What the ingest lists, in its order, with the query it sends (assets/halopsa.py through
# clients/halopsa.py). `None` for the custom field: filled with the Datagate field's id.
LISTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("AssetGroup", {}),
    ("Item", {"includeinactive": "true"}),
    ("Tax", {}),
    ("FieldInfo", {}),
    ("Client", {"includeinactive": "true", "include_custom_fields": None}),
    ("Site", {"includeinactive": "true", "includeaddress": "true"}),
    ("ClientContract", {"includeinactive": "true"}),
    ("RecurringInvoice", {"includelines": "true", "includeinactive": "true"}),
)
#: Which listings each ingest asset makes.
ASSET_RESOURCES = {
    "halo_asset_groups": ("AssetGroup",),
    "halo_items": ("Item",),
    "halo_taxes": ("Tax",),
    "halo_clients": ("FieldInfo", "Client"),
    "halo_sites": ("Site",),
    "halo_contracts": ("ClientContract",),
    "halo_recurring_invoices": ("RecurringInvoice",),
}
TOKEN_PATH = "/auth/token"


# ---------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minimum_pages(records: int) -> int:
    """Pages needed to read `records` rows at the server's page cap (an empty list: one)."""
    return max(1, math.ceil(records / PAGE_SIZE))


def _process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of another process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine() -> dict[str, Any]:
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 1024**2
    except OSError:
        pass
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import dagster

        dagster_version = dagster.__version__
    except ImportError:  # pragma: no cover
        dagster_version = "?"
    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "ram_gib": ram,
        "cpu": model or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "dagster": dagster_version,
    }


def _code_version() -> str | None:
    """The commit measured, and whether the package had uncommitted changes (read-only git)."""
    try:
        commit = subprocess.run(
            ["git", "log", "-1", "--format=%h (%s)"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "datagate_pipelines"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (", with uncommitted changes under datagate_pipelines/" if dirty else "")


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------------------
# The simulator, in a process of its own
# ---------------------------------------------------------------------------------------


def _build_simulator(customers: int, lines_per_customer: int, seed: int) -> tuple[Any, str]:
    """The simulator with the generated tenant, rate limit off; and the tenant's as-of date."""
    from datagate_simulators.halopsa import RateLimit
    from datagate_simulators.halopsa.generator import generate_tenant
    from datagate_simulators.halopsa.testing import make_sim

    sim = make_sim(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        tenant=TENANT,
        rate_limit=RateLimit(enabled=False),
    )
    tenant = generate_tenant(
        sim.backend, customers=customers, seed=seed, lines_per_customer=lines_per_customer
    )
    return sim, str(tenant.as_of)


def serve_simulator(customers: int, lines_per_customer: int, seed: int) -> None:
    """Generate the tenant, serve it on loopback, print the base URL, serve until stdin closes."""
    sim, as_of = _build_simulator(customers, lines_per_customer, seed)
    with sim.serve() as server:
        print(RESULT_MARK + json.dumps({"base_url": server.base_url, "as_of": as_of}), flush=True)
        sys.stdin.read()  # the parent closes our stdin when it is done


class Simulator:
    """The simulator, in a process of its own (or, `in_process`, served from a thread of this
    one: for the smoke test), and its control endpoints (/_sim/...)."""

    def __init__(
        self, customers: int, lines_per_customer: int, seed: int, *, in_process: bool = False
    ):
        import httpx

        self.process: subprocess.Popen[str] | None = None
        self._serving: Any = None
        if in_process:
            sim, self.as_of = _build_simulator(customers, lines_per_customer, seed)
            self._serving = sim.serve()
            self.base_url: str = self._serving.__enter__().base_url
        else:
            command = [sys.executable, __file__, "--serve-sim"]
            command += [str(customers), str(lines_per_customer), str(seed)]
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            line = ""
            assert self.process.stdout is not None
            while not line.startswith(RESULT_MARK):
                line = self.process.stdout.readline()
                if not line and self.process.poll() is not None:
                    raise RuntimeError("the HaloPSA simulator did not start")
            ready = json.loads(line[len(RESULT_MARK) :])
            self.base_url = ready["base_url"]
            self.as_of = ready["as_of"]
        self.control = httpx.Client(base_url=f"{self.base_url}/_sim", timeout=60)

    def set_rate_limit(self, requests: int | None, window_seconds: float = 1.0) -> None:
        """Budget per rolling window for the application (None: off); windows start empty."""
        spec: dict[str, Any] = {"kind": "rate_limit", "enabled": requests is not None}
        if requests is not None:
            spec.update(requests=requests, window_seconds=window_seconds)
        self.control.post("/faults", json=spec).raise_for_status()

    def reset(self) -> None:
        """Zero the request counters (and the rate-limit windows)."""
        self.control.post("/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self.control.get("/stats")
        response.raise_for_status()
        return response.json()

    def cpu_seconds(self) -> float | None:
        """The simulator process's CPU seconds so far (None when it shares this process)."""
        return None if self.process is None else _process_cpu_seconds(self.process.pid)

    def close(self) -> None:
        self.control.close()
        if self._serving is not None:
            self._serving.__exit__(None, None, None)
        if self.process is None:
            return
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            self.process.wait(timeout=30)


# ---------------------------------------------------------------------------------------
# Workers: one measurement each, in a fresh process
# ---------------------------------------------------------------------------------------


def authorize(http: Any, base_url: str) -> None:
    """Fetch a token (client credentials) and send it with every later request of `http`."""
    token = http.post(
        f"{base_url}/auth/token",
        params={"tenant": TENANT},
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": "all",
        },
    )
    token.raise_for_status()
    http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"


def floor_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """The same listings as the ingest, by a bare httpx paging loop; JSON parsed, nothing else."""
    import httpx

    base_url = spec["base_url"]
    rss_ready = peak_rss_mb()
    calls: dict[str, int] = defaultdict(int)
    records: dict[str, int] = {}
    received = 0
    started, started_cpu = time.perf_counter(), time.process_time()
    with httpx.Client(base_url=f"{base_url}/api/", timeout=60) as http:
        authorize(http, base_url)
        calls[TOKEN_PATH] += 1
        field_id = None
        for name, query in LISTINGS:
            if "include_custom_fields" in query:
                query = {**query, "include_custom_fields": field_id}
            rows_read: list[Any] = []
            for page_no in range(1, 100_000):
                page = {**query, "pageinate": "true", "page_size": PAGE_SIZE, "page_no": page_no}
                response = http.get(name, params=page)
                response.raise_for_status()
                calls[f"/api/{name}"] += 1
                received += len(response.content)
                body = response.json()
                if isinstance(body, list):
                    rows, count = body, None
                else:
                    rows = next(v for k, v in body.items() if isinstance(v, list))
                    count = body.get("record_count")
                rows_read += rows
                if not rows or (count is not None and len(rows_read) >= count):
                    break
            records[name] = len(rows_read)
            if name == "FieldInfo":
                field_id = next(
                    (
                        f["id"]
                        for f in rows_read
                        if str(f.get("name", "")).casefold() in {"datagate", "cfdatagate"}
                    ),
                    None,
                )
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - started_cpu,
        "calls": dict(calls),
        "calls_total": sum(calls.values()),
        "records": records,
        "bytes": received,
        "rss_ready_mb": rss_ready,
        "rss_peak_mb": peak_rss_mb(),
    }


def client_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """The ingest's own fetch functions (assets/halopsa.ENTITIES) through `HaloPSAClient` with
    its rate limiter, retries and redaction, no decoding, no warehouse, no Dagster run."""
    from datagate_pipelines.assets.halopsa import ENTITIES
    from datagate_pipelines.halopsa.client import HaloPSAClient

    base_url = spec["base_url"]
    requests, window = spec["rate_limit"]
    rss_ready = peak_rss_mb()
    records: dict[str, int] = {}
    started, started_cpu = time.perf_counter(), time.process_time()
    with HaloPSAClient(
        PORTAL_ID,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        tenant=TENANT,
        authorization_server=f"{base_url}/auth",
        resource_server=f"{base_url}/api",
        rate_limit=(requests, window),
        page_size=PAGE_SIZE,
    ) as client:
        for entity in ENTITIES:
            records[entity.asset] = len(entity.fetch(client, "Datagate", {}))
        stats = client.stats.as_dict()
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - started_cpu,
        "calls_total": int(stats["calls"]),
        "rate_limited": int(stats["rate_limited"]),
        "throttle_wait_s": stats["throttle_wait_seconds"],
        "records": records,
        "rss_ready_mb": rss_ready,
        "rss_peak_mb": peak_rss_mb(),
    }


PORTALS_YAML = """\
portals:
  - id: {portal}
    name: Benchmark Telecom
    billing_start: 2026-01
    halopsa:
      client_id_env: BENCH_HALO_CLIENT_ID
      client_secret_env: BENCH_HALO_CLIENT_SECRET
      tenant: {tenant}
      authorization_server: {base}/auth
      resource_server: {base}/api
      rate_limit_requests: {requests}
      rate_limit_window_seconds: {window}
    invoicing: {{approval: auto}}
"""


def sync_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec["runs"]` portal_sync runs, one after another, into one warehouse."""
    workdir = Path(spec["workdir"])
    portals_file = workdir / "portals.yaml"
    requests, window = spec["rate_limit"]
    portals_file.write_text(
        PORTALS_YAML.format(
            portal=PORTAL_ID, tenant=TENANT, base=spec["base_url"], requests=requests, window=window
        )
    )
    with _environment(
        DATAGATE_PORTALS_FILE=str(portals_file),
        DATAGATE_DATABASE_URL=spec["database_url"],
        BENCH_HALO_CLIENT_ID=CLIENT_ID,
        BENCH_HALO_CLIENT_SECRET=CLIENT_SECRET,
    ):
        return _sync_runs(spec)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables set for the block and restored after it (the smoke test runs
    the workers inside the test process)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _sync_runs(spec: dict[str, Any]) -> dict[str, Any]:
    import dagster as dg

    from datagate_pipelines.warehouse.db import warehouse_engine

    # A production warehouse is migrated already: migrate before any clock starts.
    engine = warehouse_engine()
    rss_ready = peak_rss_mb()
    with dg.instance_for_test() as instance:
        runs = [
            measured_sync(
                instance,
                engine,
                profile=spec.get("profile") if index == 0 else None,
            )
            for index in range(spec["runs"])
        ]
        mirrored = mirrored_counts(engine)
    engine.dispose()
    return {"runs": runs, "mirrored": mirrored, "rss_ready_mb": rss_ready}


def measured_sync(
    instance: Any, engine: Any, *, full: bool = False, profile: str | None = None
) -> dict[str, Any]:
    """One portal_sync run: its times, its HaloPSA calls (from `api_requests`) and its
    assets' metadata."""
    import dagster as dg
    from sqlalchemy import select

    from datagate_pipelines.orchestration.launch import run_sync
    from datagate_pipelines.warehouse import models as m

    profiler = cProfile.Profile() if profile else None
    started, started_cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    outcome = run_sync(instance, PORTAL_ID, full=full)
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    wall = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    steps = {
        s.step_key: s.end_time - s.start_time
        for s in instance.get_run_step_stats(outcome.run_id)
        if s.end_time and s.start_time
    }
    metadata = _materializations(dg, instance, outcome.run_id)
    with engine.connect() as connection:
        logged = connection.execute(
            select(
                m.api_requests.c.path,
                m.api_requests.c.status,
                m.api_requests.c.duration_ms,
            ).where(m.api_requests.c.run_id == outcome.run_id)
        ).all()
    calls: dict[str, int] = defaultdict(int)
    http_ms: dict[str, int] = defaultdict(int)
    statuses: dict[str, int] = defaultdict(int)
    for path, status, duration in logged:
        calls[path] += 1
        http_ms[path] += int(duration or 0)
        statuses[str(status)] += 1
    return {
        "run_id": outcome.run_id,
        "wall_s": wall,
        "cpu_s": cpu,
        "steps": steps,
        "snapshot_s": steps.get("halopsa_snapshot"),
        "calls": dict(calls),
        "calls_total": sum(calls.values()),
        "http_ms": dict(http_ms),
        "statuses": dict(statuses),
        "metadata": metadata,
        "rss_peak_mb": peak_rss_mb(),
    }


def mirrored_counts(engine: Any) -> dict[str, int]:
    """Live (not deleted) rows per mirror table."""
    from sqlalchemy import func, select

    from datagate_pipelines.warehouse import models as m

    counts = {}
    with engine.connect() as connection:
        for table in (
            m.item_groups,
            m.items,
            m.halo_taxes,
            m.halo_clients,
            m.halo_sites,
            m.contracts,
            m.recurring_invoices,
            m.recurring_invoice_lines,
        ):
            counts[table.name] = connection.execute(
                select(func.count())
                .select_from(table)
                .where(table.c.portal_id == PORTAL_ID, table.c.deleted_at.is_(None))
            ).scalar_one()
    return counts


def _materializations(dg: Any, instance: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """Each materialized asset's metadata, as plain values."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        materialization = event.step_materialization_data.materialization
        out[event.asset_key.to_user_string()] = {
            key: value.value
            for key, value in materialization.metadata.items()
            if isinstance(value.value, int | float | str | None)
        }
    return out


WORKERS = {"floor": floor_worker, "client": client_worker, "sync": sync_worker}


def worker(kind: str) -> Any:
    if kind == "incremental":  # its module imports this one: looked up when asked for
        from benchmarks.ingest_incremental import incremental_worker

        return incremental_worker
    return WORKERS[kind]


def run_worker(kind: str, spec: dict[str, Any], *, in_process: bool = False) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (or, `in_process`, in this one); its result
    comes back as JSON either way."""
    if in_process:
        return json.loads(json.dumps(worker(kind)(spec)))
    command = [sys.executable, __file__, "--worker", kind, json.dumps(spec)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    marked = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode or not marked:
        raise RuntimeError(
            f"the {kind} worker failed (exit {done.returncode}):\n{done.stderr[-6000:]}"
        )
    return json.loads(marked[-1][len(RESULT_MARK) :])


# ---------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------


def _postgres_schema(url: str) -> tuple[str, str] | None:
    """A fresh schema on the PostgreSQL at `url`: (database URL, schema), or None if unreachable."""
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text(f'create schema "{schema}"'))
        engine.dispose()
    except Exception:
        return None
    return f"{url}?options={quote(f'-csearch_path={schema}')}", schema


def _drop_schema(url: str, schema: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'drop schema if exists "{schema}" cascade'))
    engine.dispose()


def _measure(
    sim: Simulator, kind: str, spec: dict[str, Any], *, in_process: bool = False
) -> dict[str, Any]:
    """One worker run, with the simulator's CPU time and request counts over it."""
    sim.reset()
    before = sim.cpu_seconds()
    result = run_worker(kind, {"base_url": sim.base_url, **spec}, in_process=in_process)
    after = sim.cpu_seconds()
    result["sim_cpu_s"] = None if before is None or after is None else after - before
    stats = sim.stats()
    result["sim_requests"] = stats["requests"]
    result["sim_429s"] = stats["rate_limited"]
    return result


def benchmark(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Every measurement; the results as one dict (what `markdown` prints)."""
    sim = Simulator(args.customers, args.lines_per_customer, args.seed, in_process=args.in_process)
    schemas: list[tuple[str, str]] = []
    try:
        stats = sim.stats()["halopsa"]
        tenant = {
            "customers": args.customers,
            "lines_per_customer": args.lines_per_customer,
            "seed": args.seed,
            "as_of": sim.as_of,
            "records": stats["records"],
            "lines": stats["lines"],
        }
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            workdir = Path(tmp)

            def sync(name: str, url: str, runs: int, limit: tuple[int, float]) -> dict[str, Any]:
                run_dir = workdir / name
                run_dir.mkdir()
                spec = {
                    "database_url": url,
                    "runs": runs,
                    "rate_limit": list(limit),
                    "workdir": str(run_dir),
                }
                if args.profile and name == "sqlite":
                    spec["profile"] = str(Path(args.profile).resolve())
                return _measure(sim, "sync", spec, in_process=args.in_process)

            sim.set_rate_limit(None)
            floors = [_measure(sim, "floor", {}, in_process=args.in_process)]
            listing = _measure(sim, "client", {"rate_limit": UNLIMITED}, in_process=args.in_process)
            warehouses = {"SQLite": sync("sqlite", f"sqlite:///{workdir / 'w.db'}", 2, UNLIMITED)}
            if args.postgres != "none":
                made = _postgres_schema(args.postgres)
                if made is None:
                    warehouses["PostgreSQL"] = None
                else:
                    schemas.append((args.postgres, made[1]))
                    warehouses["PostgreSQL"] = sync("postgres", made[0], 2, UNLIMITED)
            floors.append(_measure(sim, "floor", {}, in_process=args.in_process))
            limited = []
            for budget in args.rate_requests:
                sim.set_rate_limit(budget, args.rate_window)
                limit = {"rate_limit": [budget, args.rate_window]}
                listed = _measure(sim, "client", limit, in_process=args.in_process)
                run = sync(
                    f"limited-{budget}",
                    f"sqlite:///{workdir / f'limited-{budget}.db'}",
                    1,
                    (budget, args.rate_window),
                )
                limited.append(
                    {"requests": budget, "window_s": args.rate_window, "listing": listed, **run}
                )
            sim.set_rate_limit(None)
    finally:
        sim.close()
        for url, schema in schemas:
            _drop_schema(url, schema)
    return {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "load": _load(),
        "code": _code_version(),
        "in_process": args.in_process,
        "tenant": tenant,
        "floors": floors,
        "listing": listing,
        "warehouses": warehouses,
        "limited": limited,
    }


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def _rows_listed(tenant: dict[str, Any]) -> int:
    """Rows the ingest mirrors: every listed record, plus the recurring invoices' lines."""
    records = tenant["records"]
    listed = sum(records.get(name, 0) for name, _ in LISTINGS if name != "FieldInfo")
    return listed + tenant["lines"]


def call_table(tenant: dict[str, Any], calls: dict[str, int], floor_calls: dict[str, int]) -> list:
    """Per request path: records, the minimum calls, the calls made (ingest and floor)."""
    rows = [(TOKEN_PATH, None, 1, calls.get(TOKEN_PATH, 0), floor_calls.get(TOKEN_PATH, 0))]
    for name, _ in LISTINGS:
        count = tenant["records"].get(name, 0)
        path = f"/api/{name}"
        rows.append(
            (path, count, minimum_pages(count), calls.get(path, 0), floor_calls.get(path, 0))
        )
    return rows


def _why(path: str, extra: int) -> str:
    if extra == 0:
        return ""
    if path in ("/api/Tax", "/api/AssetGroup", "/api/FieldInfo"):
        return "bare array without record_count: only an empty page shows the end"
    return "unexplained"


def markdown(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    tenant, machine = results["tenant"], results["machine"]
    records = tenant["records"]
    rows = _rows_listed(tenant)
    floors = results["floors"]
    floor_s = min(f["wall_s"] for f in floors)
    first_sqlite = results["warehouses"]["SQLite"]["runs"][0]
    fmt_s = lambda s: "—" if s is None else f"{s:.2f} s"  # noqa: E731
    fmt_mb = lambda mb: f"{mb:,.0f} MB"  # noqa: E731
    lines = [
        SECTION_TITLE,
        "",
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}  ",
        *([f"Code: commit {results['code']}  "] if results.get("code") else []),
        f"Machine: {machine['nproc']} CPU(s) (nproc; {machine['cpu']}, {machine['arch']}), "
        f"{machine['ram_gib']:.1f} GiB RAM, {machine['python']}, Dagster {machine['dagster']}; "
        f"load average when the runs ended: {results['load']} (the machine is shared: compare "
        "the ratios to the floor, measured in the same invocation, rather than absolute times).",
        "",
        *(
            [
                "**In-process run** (`--in-process`): the simulator and every measurement "
                "shared one process, so peak RSS and the simulator's CPU are not measured "
                "apart; for checking the script, not for figures.",
                "",
            ]
            if results.get("in_process")
            else []
        ),
        f"Tenant: `generate_tenant(customers={tenant['customers']:,}, "
        f"lines_per_customer={tenant['lines_per_customer']}, seed={tenant['seed']})` "
        f"(as of {tenant['as_of']}): {records['Client']:,} clients, {records['Site']:,} sites, "
        f"{records['ClientContract']:,} contracts, {records['RecurringInvoice']:,} recurring "
        f"invoices with {tenant['lines']:,} lines, {records['Item']:,} items, {records['Tax']:,} "
        f"taxes, {records['AssetGroup']:,} asset groups — {rows:,} rows to mirror. Served by "
        "`make_sim(...).serve()` (uvicorn) in its own process on 127.0.0.1. Each measurement "
        "runs in a fresh process (peak RSS is its own, Python and Dagster included); the "
        "warehouse is migrated before the clock starts; the ingest is the `portal_sync` job "
        "through `launch.run_sync` on `dg.instance_for_test()`. *Snapshot* is the "
        "`halopsa_snapshot` step (all HaloPSA requests, decoding, pandera, warehouse writes); "
        "*portal_sync* adds Dagster's run overhead and the catalog steps.",
        "",
        "### Rate limit off",
        "",
        "| run | snapshot | ÷ floor | portal_sync | ÷ floor | rows/s (snapshot) "
        "| API calls | 429s | CPU (ingest process) | CPU (simulator) | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for index, floor in enumerate(floors):
        when = "before" if index == 0 else "after"
        lines.append(
            f"| floor ({when} the syncs): httpx paging loop, JSON parsed, nothing stored "
            f"| {fmt_s(floor['wall_s'])} | {floor['wall_s'] / floor_s:.2f} | — | — "
            f"| {rows / floor['wall_s']:,.0f} | {floor['calls_total']} | {floor['sim_429s']} "
            f"| {fmt_s(floor['cpu_s'])} | {fmt_s(floor['sim_cpu_s'])} "
            f"| {fmt_mb(floor['rss_peak_mb'])} |"
        )
    listing = results["listing"]
    lines.append(
        "| HaloPSAClient listing: the ingest's fetch functions, no decoding, nothing stored "
        f"| {fmt_s(listing['wall_s'])} | {listing['wall_s'] / floor_s:.2f} | — | — "
        f"| {rows / listing['wall_s']:,.0f} | {listing['calls_total']} | {listing['sim_429s']} "
        f"| {fmt_s(listing['cpu_s'])} | {fmt_s(listing['sim_cpu_s'])} "
        f"| {fmt_mb(listing['rss_peak_mb'])} |"
    )
    for warehouse, result in results["warehouses"].items():
        if result is None:
            lines.append(
                f"| portal_sync, {warehouse}: not reachable, skipped | | | | | | | | | | |"
            )
            continue
        for index, run in enumerate(result["runs"]):
            kind = "first sync, empty warehouse" if index == 0 else "repeat sync, nothing changed"
            client_429s = run["statuses"].get("429", 0)
            cpu_sim = result["sim_cpu_s"] if index == len(result["runs"]) - 1 else None
            lines.append(
                f"| portal_sync, {warehouse}, {kind} | {fmt_s(run['snapshot_s'])} "
                f"| {run['snapshot_s'] / floor_s:.2f} | {fmt_s(run['wall_s'])} "
                f"| {run['wall_s'] / floor_s:.2f} | {rows / run['snapshot_s']:,.0f} "
                f"| {run['calls_total']} | {client_429s} | {fmt_s(run['cpu_s'])} "
                + (f"| {fmt_s(cpu_sim)} (both runs) " if cpu_sim is not None else "| (below) ")
                + f"| {fmt_mb(run['rss_peak_mb'])} |"
            )
    lines += [
        "",
        f"Peak RSS of a sync process is {fmt_mb(results['warehouses']['SQLite']['rss_ready_mb'])} "
        "before the first run (Python, Dagster, the definitions, SQLAlchemy imported and the "
        "warehouse migrated); the rest is the runs'. The floor's peak RSS is its process with "
        "httpx alone.",
        "",
        "### API calls per entity (first SQLite sync, from `api_requests`)",
        "",
        "Minimum: one token, and per listing ceil(records / 100) pages (one for an empty list).",
        "",
        "| request | records | minimum | ingest | extra | floor loop | why |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    table = call_table(tenant, first_sqlite["calls"], floors[0]["calls"])
    for path, count, minimum, made, floor_made in table:
        extra = made - minimum
        lines.append(
            f"| {'POST' if path == TOKEN_PATH else 'GET'} {path} "
            f"| {'—' if count is None else f'{count:,}'} | {minimum} | {made} | {extra:+d} "
            f"| {floor_made} | {_why(path, extra)} |"
        )
    total_min = sum(r[2] for r in table)
    total_made = sum(r[3] for r in table)
    unknown = sorted(set(first_sqlite["calls"]) - {r[0] for r in table})
    lines += [
        f"| **all** | | **{total_min}** | **{total_made}** | **{total_made - total_min:+d}** "
        f"| {sum(r[4] for r in table)} | |",
        "",
    ]
    if unknown:
        lines += [f"Other requests logged: {', '.join(unknown)}.", ""]
    lines += [
        "### Where the snapshot's time goes (first SQLite sync)",
        "",
        "Per ingest asset: the asset's `duration_seconds` (its listings, then decoding, "
        "pandera, the warehouse writes), of which HTTP is the sum of its requests' "
        "`duration_ms` in `api_requests` (client side: send, server, receive, JSON not yet "
        "parsed).",
        "",
        "| asset | rows | total | HTTP | the rest (parse, decode, validate, write) |",
        "|---|---:|---:|---:|---:|",
    ]
    metadata = first_sqlite["metadata"]
    for asset, resources in ASSET_RESOURCES.items():
        meta = metadata.get(asset, {})
        total = meta.get("duration_seconds")
        http = sum(first_sqlite["http_ms"].get(f"/api/{r}", 0) for r in resources) / 1000
        count = meta.get("rows", 0) + meta.get("recurring_invoice_lines_rows", 0)
        lines.append(
            f"| {asset} | {count:,} | {fmt_s(total)} | {http:.2f} s "
            f"| {fmt_s(None if total is None else total - http)} |"
        )
    accounted = sum(metadata.get(a, {}).get("duration_seconds", 0) for a in ASSET_RESOURCES)
    lines += [
        f"| (step total: {fmt_s(first_sqlite['snapshot_s'])}; assets {accounted:.2f} s; "
        "the rest is the step's set-up: portal, token, sync run row) | | | | |",
        "",
        "Catalog steps of that run: "
        + ", ".join(
            f"{step} {first_sqlite['steps'][step]:.2f} s"
            for step in sorted(first_sqlite["steps"])
            if step != "halopsa_snapshot"
        )
        + ". (`--profile FILE` writes a cProfile of this run.)",
        "",
        "### Rate limit on",
        "",
        "The same budget on the simulator (per application, rolling window) and in portals.yaml "
        "(`halopsa.rate_limit_requests` / `rate_limit_window_seconds`); HaloPSA's real limit is "
        "300 per 5 minutes, the window is shortened for the run. Floor = calls ÷ budget × "
        "window; a fresh SQLite warehouse each.",
        "",
        "*Client listing* is the HaloPSAClient listing above (the ingest's fetch functions, "
        "its rate limiter, nothing decoded or stored) under the same budget: the limiter's "
        "own pacing. The snapshot adds decoding and writing, which the ingest does after each "
        "entity's last page (the window refills meanwhile, so part of it is hidden).",
        "",
        "| budget | API calls | floor | client listing | ÷ floor | snapshot | ÷ floor "
        "| portal_sync | 429s: listing (client / simulator) | 429s: sync (client log / "
        "simulator) | within 10% of the floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    within = lambda r: "yes" if abs(r - 1) <= 0.10 else "**no**"  # noqa: E731
    for run in results["limited"]:
        only, listed = run["runs"][0], run["listing"]
        calls = only["calls_total"]
        floor = calls / run["requests"] * run["window_s"]
        ratio = only["snapshot_s"] / floor
        listing_ratio = listed["wall_s"] / floor
        if calls > run["requests"]:
            verdict = f"listing {within(listing_ratio)}, snapshot {within(ratio)}"
        else:
            verdict = (
                f"not binding: {calls} calls fit in one window of {run['requests']}; "
                f"listing {listed['wall_s'] / listing['wall_s']:.2f}× and snapshot "
                f"{only['snapshot_s'] / first_sqlite['snapshot_s']:.2f}× their unlimited times"
            )
        lines.append(
            f"| {run['requests']} per {run['window_s']:g} s | {calls} | {floor:.2f} s "
            f"| {fmt_s(listed['wall_s'])} | {listing_ratio:.2f} "
            f"| {fmt_s(only['snapshot_s'])} | {ratio:.2f} | {fmt_s(only['wall_s'])} "
            f"| {listed['rate_limited']} / {listed['sim_429s']} "
            f"| {only['statuses'].get('429', 0)} / {run['sim_429s']} | {verdict} |"
        )
    calls = first_sqlite["calls_total"]
    if calls <= HALO_BUDGET:
        lines += [
            "",
            f"At this size a sync makes {calls} calls: under HaloPSA's real budget "
            f"({HALO_BUDGET} per 5 minutes) it fits in one window, so the limit does not slow "
            "it; the shortened windows above show how the limiter paces a sync that does not.",
        ]
    lines.append("")
    return "\n".join(lines)


def _command(argv: list[str]) -> str:
    return " ".join([".venv/bin/python benchmarks/bench_ingest.py", *argv])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--lines-per-customer", type=int, default=DEFAULT_LINES)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--rate-window",
        type=float,
        default=DEFAULT_WINDOW,
        help="rolling window of the rate-limited runs, seconds (HaloPSA's is 300)",
    )
    parser.add_argument(
        "--rate-requests",
        type=int,
        nargs="+",
        default=list(DEFAULT_BUDGETS),
        help="budgets per window: one rate-limited run each (HaloPSA's is 300)",
    )
    parser.add_argument(
        "--postgres",
        default=DEFAULT_POSTGRES,
        help="PostgreSQL URL for the extra runs (a fresh schema, dropped after), or 'none'",
    )
    parser.add_argument("--profile", help="write a cProfile of the first SQLite sync here")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the simulator and every measurement in this process (quick; peak RSS and "
        "the simulator's CPU are then not measured apart): for the smoke test",
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="measure the incremental sync instead (its own section): an unchanged tenant "
        "and one with 1%% changed, against a full sync, at each --incremental-sizes",
    )
    parser.add_argument(
        "--incremental-sizes",
        type=int,
        nargs="+",
        default=[5_000, 50_000],
        help="customers of each tenant the incremental measurement generates",
    )
    parser.add_argument("--write", action="store_true", help="record the section in BENCHMARKS.md")
    parser.add_argument("--serve-sim", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its Markdown block (and record it with --write); the results."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.serve_sim:
        serve_simulator(*args.serve_sim)
        return {}
    if args.worker:
        kind, spec = args.worker
        print(RESULT_MARK + json.dumps(worker(kind)(json.loads(spec))), flush=True)
        return {}
    if args.incremental:
        from benchmarks import ingest_incremental

        results = ingest_incremental.benchmark(args, _command(argv))
        results["markdown"] = ingest_incremental.markdown(results)
        print(results["markdown"])
        if args.write:
            write_section(ingest_incremental.TITLE, results["markdown"])
        return results
    results = benchmark(args, _command(argv))
    results["markdown"] = markdown(results)
    print(results["markdown"])
    if args.write:
        write_section(SECTION_TITLE, results["markdown"])
    return results


if __name__ == "__main__":
    main()
