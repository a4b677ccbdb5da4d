"""Benchmark of billing end to end: the `invoice_lines` and `invoices` materializations'
own code (invoicing/drafts.py `compute_drafts`, then the auto-approval finalization the
`invoices` asset runs) for one portal, on PostgreSQL and SQLite.

    .venv/bin/python benchmarks/bench_billing_e2e.py                 # 100,000 customers
    .venv/bin/python benchmarks/bench_billing_e2e.py --write         # and record it
    .venv/bin/python benchmarks/bench_billing_e2e.py --customers 200 --months 3   # tiny

The portal: `--customers` customers with 1–3 sites, 1–2 contracts and 5–15 products each
(10 on average: 1,000,000 products at 100,000 customers), one usage charge each, and
`--months` months of history before the billed period — one final invoice per customer
and month, and a ledger row per product and month it was billed (2% of the products were
entered late and are caught up). Seeded with plain bulk writes (COPY on PostgreSQL,
executemany on SQLite) of the stored integer forms, then analysed, before the clock starts.

Steps (each timed, with its rows per second and its own peak RSS):
- load: `load_billing_inputs` — the warehouse read into the engine's frames;
- engine: `bill_period`;
- drafts: the rest of `compute_drafts` — checks, deleting old drafts, writing invoices,
  lines and ledger rows (`warehouse/bulk.py`);
- finalize: `finalize_period` — numbering, the invoices' updates and audit events.

Each step has a baseline measured in the same run on the same rows: a plain bulk read
(`COPY (SELECT …) TO STDOUT`; SQLite: `fetchall`) of the rows the loader reads, and a plain
bulk write (COPY; SQLite: `executemany` of tuples) of exactly the rows the step wrote, as
stored, into copies of the tables with the same indexes and foreign keys. QBO's DocNumber lookups are API
calls against QBO's budget (one query per 50 numbers): counted beside the figures, not
timed in them (`is_taken` here answers without a network).

Each database runs in its own process, so that peak RSS is that run's alone; the
PostgreSQL server's own memory is not in it.
"""

from __future__ import annotations

import argparse
import gc
import io
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
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import write_section  # noqa: E402

PERIOD = date(2026, 7, 1)
POSTGRES_URL = os.environ.get(
    "DATAGATE_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
TARGETS = {"wall_s": 60.0, "rss_gb": 4.0, "ratio": 3.0}
DOC_NUMBERS_PER_QUERY = 50  # resources/qbo.py: DocNumberLookup(prefetch=50)
# `--repairs off` sets credit_past_changes false: the ledger as runs only (invoicing/inputs.py);
# on (the default, as in the product) it reads the pairs a repair may concern row by row.
PORTAL_YAML = """
portals:
  - id: bench
    name: Bench
    billing_start: {start}
    halopsa: {{client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}}
    sync: {{in_advance_months: 0}}
    invoicing: {{approval: auto, credit_past_changes: {repairs}}}
"""


# --- Peak memory per step ---------------------------------------------------------------


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM)."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_gb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


# --- The portal, generated as stored (integers, dates, text) ----------------------------


def _month_start(index: int) -> date:
    year, month0 = divmod(index, 12)
    return date(year, month0 + 1, 1)


def _days_in_month(index: int) -> int:
    return (_month_start(index + 1) - _month_start(index)).days


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def generate(customers: int, months: int, seed: int = 20261206) -> dict[str, dict[str, list]]:
    """Column lists per table, values as the warehouse stores them."""
    rng = np.random.default_rng(seed)
    now = datetime(2026, 6, 30, tzinfo=UTC).isoformat()
    period_index = _month_index(PERIOD)
    first_month = period_index - months
    c = np.arange(customers)
    customer_ids = c * 3 + 1000
    zips = np.array([f"{z:05d}" for z in rng.choice(np.arange(10000, 99999), 500, replace=False)])
    customer_zip = zips[rng.integers(0, len(zips), customers)]
    tables: dict[str, dict[str, list]] = {}
    tables["customers"] = {
        "halo_client_id": customer_ids.tolist(),
        "name": [f"Customer {i:06d}" for i in c.tolist()],
        "active": [True] * customers,
        "zip": customer_zip.tolist(),
        "use_site_zip_tax": (rng.random(customers) < 0.5).tolist(),
        "created_at": [now] * customers,
        "updated_at": [now] * customers,
    }
    sites_per = rng.integers(1, 4, customers)
    site_owner = np.repeat(c, sites_per)
    site_ids = np.arange(len(site_owner)) + 500_000
    site_first = np.cumsum(sites_per) - sites_per
    tables["sites"] = {
        "halo_site_id": site_ids.tolist(),
        "customer_id": customer_ids[site_owner].tolist(),
        "name": [f"Site {i}" for i in site_ids.tolist()],
        "zip": zips[rng.integers(0, len(zips), len(site_owner))].tolist(),
        "created_at": [now] * len(site_owner),
        "updated_at": [now] * len(site_owner),
    }
    contracts_per = rng.integers(1, 3, customers)
    contract_first = np.cumsum(contracts_per) - contracts_per
    contract_ids = np.arange(int(contracts_per.sum())) + 7_000_000

    per_customer = rng.integers(5, 16, customers)
    owner = np.repeat(c, per_customer)
    n = len(owner)
    line_ids = np.arange(1, n + 1)
    site = site_ids[site_first[owner] + rng.integers(0, 3, n) % sites_per[owner]]
    contract = contract_ids[contract_first[owner] + rng.integers(0, 2, n) % contracts_per[owner]]
    qty_e4 = rng.choice([10_000, 20_000, 50_000, 5_000, 13_333, 250_000], n)
    price_e4 = rng.integers(50, 50_000, n) * 100
    price_e4[rng.random(n) < 0.02] *= -1  # discount lines
    # 80% run since before the history; the rest started during it (mid-month starts).
    start_month = np.where(
        rng.random(n) < 0.8,
        first_month - rng.integers(1, 24, n),
        rng.integers(first_month, period_index + 1, n),
    )
    start_day = np.where(start_month >= first_month, rng.integers(1, 29, n), 1)
    has_end = rng.random(n) < 0.1
    end_month = np.where(has_end, start_month + rng.integers(1, 40, n), 10**6)
    end_day = rng.integers(1, 29, n)
    starts = [
        _month_start(int(m)) + timedelta(days=int(d) - 1)
        for m, d in zip(start_month, start_day, strict=True)
    ]
    ends = [
        _month_start(int(m)) + timedelta(days=int(d) - 1) if e else None
        for m, d, e in zip(end_month, end_day, has_end, strict=True)
    ]
    site_list = site.tolist()
    for i in np.flatnonzero(rng.random(n) < 0.1).tolist():
        site_list[i] = None
    contract_list = contract.tolist()
    for i in np.flatnonzero(rng.random(n) < 0.15).tolist():
        contract_list[i] = None
    descriptions = np.array(["Hosted PBX seat", "SIP trunk", "Managed router", "Fax line", "DID"])
    tables["products"] = {
        "product_id": [f"line:{i}" for i in line_ids.tolist()],
        "source_line_id": line_ids.tolist(),
        "customer_id": customer_ids[owner].tolist(),
        "site_id": site_list,
        "contract_id": contract_list,
        "item_id": rng.integers(1, 201, n).tolist(),
        "description": descriptions[rng.integers(0, len(descriptions), n)].tolist(),
        "qty": qty_e4.tolist(),
        "unit_price": price_e4.tolist(),
        "start_date": [d.isoformat() for d in starts],
        "end_date": [d.isoformat() if d else None for d in ends],
        "billing_cycle": ["monthly"] * n,
        "created_at": [now] * n,
        "updated_at": [now] * n,
    }
    tables["product_templates"] = {
        "item_id": list(range(1, 201)),
        "tax_code": [("TEL", "VOIP", "NONTAXABLE")[i % 3] for i in range(1, 201)],
        "imported_at": [now] * 200,
    }
    rate_zip, rate_code, rate_jur, rate = [], [], [], []
    for z in zips.tolist():
        for code in ("TEL", "VOIP"):
            for j in range(int(rng.integers(1, 4))):
                rate_zip.append(z)
                rate_code.append(code)
                rate_jur.append(f"J{j}")
                rate.append(int(rng.integers(0, 50_000)) * 100)  # × 10⁸
    tables["tax_rates"] = {
        "zip": rate_zip,
        "tax_code": rate_code,
        "jurisdiction": rate_jur,
        "rate": rate,
        "imported_at": [now] * len(rate),
    }
    tables["usage_batches"] = {
        "id": [1],
        "period": [PERIOD.isoformat()],
        "fingerprint": ["bench"],
        "source": ["bench.csv"],
        "row_count": [customers],
        "total": [0],
        "imported_by": ["bench"],
        "imported_at": [now],
    }
    tables["usage_charges"] = {
        "usage_id": [f"U{i}" for i in c.tolist()],
        "period": [PERIOD.isoformat()] * customers,
        "batch_id": [1] * customers,
        "customer_id": customer_ids.tolist(),
        "site_id": site_ids[site_first].tolist(),
        "contract_id": contract_ids[contract_first].tolist(),
        "description": ["Call usage"] * customers,
        "amount": rng.integers(0, 100_000, customers).tolist(),
        "tax_code": ["TEL"] * customers,
        "usage_date": [
            (PERIOD + timedelta(days=int(d))).isoformat() for d in rng.integers(0, 30, customers)
        ],
        "imported_at": [now] * customers,
    }

    # History: one final invoice per customer and month, ids k·customers + c + 1.
    history_months = np.arange(first_month, period_index)
    k = np.repeat(np.arange(months), customers)
    hc = np.tile(c, months)
    labels = [_month_start(int(m)).isoformat() for m in history_months]
    numbers = np.arange(1, months * customers + 1)
    tables["invoices"] = {
        "id": (k * customers + hc + 1).tolist(),
        "period": [labels[i] for i in k.tolist()],
        "invoice_key": [f"h{kk}:{cc}" for kk, cc in zip(k.tolist(), hc.tolist(), strict=True)],
        "customer_id": customer_ids[hc].tolist(),
        "customer_name": [tables["customers"]["name"][i] for i in hc.tolist()],
        "agreement_key": [f"{cid}:default" for cid in customer_ids[hc].tolist()],
        "status": ["final"] * len(k),
        "hold_reasons": ["[]"] * len(k),
        "number": numbers.tolist(),
        "doc_number": [str(x) for x in numbers.tolist()],
        "invoice_date": [labels[i] for i in k.tolist()],
        "due_date": [labels[i] for i in k.tolist()],
        "subtotal": [0] * len(k),
        "tax": [0] * len(k),
        "total": [0] * len(k),
        "computed_at": [now] * len(k),
        "finalized_at": [now] * len(k),
    }
    # The ledger: each product's months in [start, end] within the history, but for
    # the 2% entered late (those are caught up by the billed period).
    lo = np.maximum(start_month, first_month)
    hi = np.minimum(end_month, period_index - 1)
    late = rng.random(n) < 0.02
    lengths = np.where(late, 0, np.maximum(hi - lo + 1, 0))
    rows = np.repeat(np.arange(n), lengths)
    months_of = np.repeat(lo, lengths) + (
        np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    # Stored month after month, as billing appends it (not in the index's order).
    by_month = np.argsort(months_of, kind="stable")
    rows, months_of = rows[by_month], months_of[by_month]
    month_label = {int(m): _month_start(int(m)).isoformat() for m in history_months}
    ledger_months = [month_label[m] for m in months_of.tolist()]
    # What each row billed (rule 6 reads it back): its month's active days at the product's
    # quantity and unit price, rounded half away from zero; tax at a flat 7%. Numeric
    # columns stay numpy arrays (written chunk by chunk): 20 million rows as Python ints
    # would take gigabytes.
    days = np.array([_days_in_month(int(m)) for m in history_months])[months_of - first_month]
    first_day = np.where(months_of == start_month[rows], start_day[rows], 1)
    last_day = np.where(has_end[rows] & (months_of == end_month[rows]), end_day[rows], days)
    billed = qty_e4[rows] * price_e4[rows] * (last_day - first_day + 1)
    amount = np.sign(billed) * ((np.abs(billed) * 2 + 10**6 * days) // (2 * 10**6 * days))
    del billed, first_day, last_day, days
    tax = np.sign(amount) * ((np.abs(amount) * 7 * 2 + 100) // 200)
    ledger_rows = len(rows)
    tables["billing_ledger"] = {
        "product_id": [tables["products"]["product_id"][i] for i in rows.tolist()],
        "service_month": ledger_months,
        "period": ledger_months,
        "invoice_id": (months_of - first_month) * customers + owner[rows] + 1,
        "qty": qty_e4[rows],
        "unit_price": price_e4[rows],
        "amount": amount,
        "tax": tax,
        "tax_code": np.full(ledger_rows, "TEL", dtype=object),
        "tax_zip": customer_zip[owner[rows]],
        "tax_rate": np.full(ledger_rows, 7 * 10**6),  # 0.07 × 10**8
    }
    # Dates changed since they were billed, for rule 6 to repair: 1% of the products that
    # started during the history now start three days later.
    moved = np.flatnonzero((start_day > 1) & (start_day < 26) & (rng.random(n) < 0.01))
    for i in moved.tolist():
        tables["products"]["start_date"][i] = (starts[i] + timedelta(days=3)).isoformat()
    tables["billing_periods"] = {
        "period": labels,
        "computed_at": [now] * months,
        "invoices": [customers] * months,
        "held": [0] * months,
        "finalized_at": [now] * months,
    }
    return tables


# --- Plain bulk reads and writes (the seeding and the baselines) ------------------------


def _text(value) -> str:
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value)


def plain_write(raw, kind: str, table: str, data: dict[str, list]) -> int:
    """Rows as stored, written the fastest plain way: COPY, or executemany of tuples."""
    names = list(data)
    count = len(data[names[0]])
    if kind == "postgresql":
        with raw.cursor() as cursor:
            step = 200_000
            for start in range(0, count, step):
                cells = [[_text(v) for v in data[n][start : start + step]] for n in names]
                body = "".join(line + "\n" for line in map("\t".join, zip(*cells, strict=True)))
                cursor.copy_expert(
                    f"COPY {table} ({', '.join(names)}) FROM STDIN", io.StringIO(body)
                )
    else:
        step = 200_000
        for start in range(0, count, step):
            raw.executemany(
                f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                zip(*(_values(data[n][start : start + step]) for n in names), strict=True),
            )
    return count


def _values(column) -> list:
    """Python values of a column given as a list or a numpy array (SQLite binds no numpy)."""
    return column.tolist() if isinstance(column, np.ndarray) else column


def copy_out(raw, kind: str, query: str) -> tuple[int, object]:
    """A plain bulk read: COPY (query) TO STDOUT, or fetchall; (rows, what was read)."""
    if kind == "postgresql":
        buffer = io.StringIO()
        with raw.cursor() as cursor:
            cursor.copy_expert(f"COPY ({query}) TO STDOUT", buffer)
        text = buffer.getvalue()
        return text.count("\n"), text
    rows = raw.execute(query).fetchall()
    return len(rows), rows


def copy_in(raw, kind: str, table: str, columns: list[str], read: object) -> None:
    """Write back what `copy_out` read (the same rows, as stored) into `table`."""
    if kind == "postgresql":
        with raw.cursor() as cursor:
            cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO(read))
    else:
        raw.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            read,
        )


def make_twin(raw, kind: str, table: str) -> str:
    """An empty copy of `table` with its indexes and constraints, foreign keys included."""
    twin = f"baseline_{table}"
    if kind == "postgresql":
        with raw.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {twin}")
            cursor.execute(f"CREATE TABLE {twin} (LIKE {table} INCLUDING ALL)")
            # The same foreign keys as the table, so that both do the same checks.
            cursor.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f'",
                (table,),
            )
            for (definition,) in cursor.fetchall():
                cursor.execute(f"ALTER TABLE {twin} ADD {definition}")
        return twin
    raw.execute(f"DROP TABLE IF EXISTS {twin}")
    statements = raw.execute(
        "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
        "AND type IN ('table', 'index')",
        (table,),
    ).fetchall()
    for kind_of, sql in sorted(statements, key=lambda s: s[0] != "table"):
        sql = sql.replace(f'"{table}"', twin).replace(f" {table} ", f" {twin} ")
        sql = sql.replace(f"INDEX ix_{table}", f"INDEX ix_{twin}").replace(
            f"INDEX uq_{table}", f"INDEX uq_{twin}"
        )
        raw.execute(sql if kind_of == "table" else sql.replace(f"ON {table}", f"ON {twin}"))
    return twin


# --- One database's run ----------------------------------------------------------------


@contextmanager
def warehouse(kind: str):
    from sqlalchemy import create_engine, text

    from datagate_pipelines.warehouse.db import make_engine, migrate

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{tmp}/warehouse.db")
            migrate(engine)
            yield engine
            engine.dispose()
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}")
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _raw(connection):
    return connection.connection.dbapi_connection


def seed(engine, kind: str, tables: dict[str, dict[str, list]], portal) -> dict[str, float]:
    from sqlalchemy import text

    from datagate_pipelines.warehouse.portals import register_portal

    timings = {}
    with engine.begin() as connection:
        register_portal(connection, portal)
        raw = _raw(connection)
        if kind == "postgresql":  # the rows are consistent: no foreign-key check per row
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        for table, data in tables.items():
            started = time.perf_counter()
            data = {"portal_id": ["bench"] * len(next(iter(data.values()))), **data}
            if table == "tax_rates":
                data.pop("portal_id")
            plain_write(raw, kind, table, data)
            timings[table] = time.perf_counter() - started
        if kind == "postgresql":
            for table in ("invoices", "usage_batches"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
                )
        connection.execute(
            text("UPDATE portals SET next_invoice_number = :n WHERE id = 'bench'"),
            {"n": len(tables["invoices"]["id"]) + 1},
        )
    if kind == "postgresql":
        # Two years of history have long been vacuumed by autovacuum (the ledger's own
        # settings: migration 0014), which marks its pages all-visible for index-only reads.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            started = time.perf_counter()
            connection.execute(text(f"VACUUM (ANALYZE) {', '.join(tables)}"))
            timings["vacuum"] = time.perf_counter() - started
    else:
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()
    return timings


class Steps:
    """Times of the code path's calls, taken by wrapping the functions it calls."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}  # this process's CPU time (not the database's)
        self.rows: dict[str, int] = {}
        self.peak: dict[str, float] = {}

    def _add(self, name: str, wall: float, cpu: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    @contextmanager
    def step(self, name: str, rows: int | None = None):
        gc.collect()
        _reset_peak_rss()
        started, cpu = time.perf_counter(), time.process_time()
        yield
        self._add(name, time.perf_counter() - started, time.process_time() - cpu)
        self.peak[name] = max(self.peak.get(name, 0.0), _peak_rss_gb())
        if rows is not None:
            self.rows[name] = rows

    def wrap(self, module, attribute: str, name: str, rows=None):
        original = getattr(module, attribute)

        def timed(*args, **kwargs):
            started, cpu = time.perf_counter(), time.process_time()
            result = original(*args, **kwargs)
            self._add(name, time.perf_counter() - started, time.process_time() - cpu)
            if rows is not None:
                self.rows[name] = self.rows.get(name, 0) + rows(args, result)
            return result

        setattr(module, attribute, timed)


LOAD_QUERIES = {
    "products": "SELECT p.product_id, p.customer_id, p.site_id, p.contract_id, p.description, "
    "p.qty, p.unit_price, t.tax_code, p.start_date, p.end_date, p.billing_cycle, "
    "p.ended_reason, p.source_line_id FROM products p LEFT JOIN product_templates t "
    "ON t.portal_id = p.portal_id AND t.item_id = p.item_id WHERE p.portal_id = 'bench'",
    "ledger": "SELECT product_id, service_month, period, invoice_id FROM billing_ledger "
    "WHERE portal_id = 'bench'",
    "customers": "SELECT halo_client_id, name, zip, use_site_zip_tax FROM customers "
    "WHERE portal_id = 'bench'",
    "sites": "SELECT halo_site_id, customer_id, zip FROM sites WHERE portal_id = 'bench'",
    "usage": "SELECT * FROM usage_charges WHERE portal_id = 'bench'",
    "rates": "SELECT zip, tax_code, jurisdiction, rate FROM tax_rates",
}
# With repairs on the loader reads the ledger's billed terms too (where a repair may concern
# a pair): the plain read covers those columns.
LEDGER_WITH_TERMS = (
    "SELECT product_id, service_month, period, invoice_id, kind, qty, unit_price, amount, "
    "tax, released_at FROM billing_ledger WHERE portal_id = 'bench'"
)
WRITTEN = {  # the rows each step wrote, read back as stored, for the write baselines
    "invoices": ("SELECT {cols} FROM invoices WHERE portal_id = 'bench' AND period = '{period}'"),
    "invoice_lines": (
        "SELECT {cols} FROM invoice_lines WHERE invoice_id IN (SELECT id FROM invoices "
        "WHERE portal_id = 'bench' AND period = '{period}')"
    ),
    "billing_ledger": "SELECT {cols} FROM billing_ledger WHERE portal_id = 'bench' AND period = '{period}'",
    "audit_events": "SELECT {cols} FROM audit_events WHERE portal_id = 'bench'",
}


def _columns(raw, kind: str, table: str) -> list[str]:
    if kind == "postgresql":
        with raw.cursor() as cursor:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                "AND table_schema = current_schema() ORDER BY ordinal_position",
                (table,),
            )
            return [r[0] for r in cursor.fetchall()]
    return [r[1] for r in raw.execute(f"PRAGMA table_info({table})").fetchall()]


def baseline_write(engine, kind: str, table: str) -> tuple[int, float]:
    """Plain bulk write of the rows the run wrote to `table`: (rows, seconds)."""
    with engine.begin() as connection:
        raw = _raw(connection)
        columns = _columns(raw, kind, table)
        query = WRITTEN[table].format(cols=", ".join(columns), period=PERIOD.isoformat())
        rows, read = copy_out(raw, kind, query)
        twin = make_twin(raw, kind, table)
        started = time.perf_counter()
        copy_in(raw, kind, twin, columns, read)
        seconds = time.perf_counter() - started
        if kind == "postgresql":
            with raw.cursor() as cursor:
                cursor.execute(f"DROP TABLE {twin}")
        else:
            raw.execute(f"DROP TABLE {twin}")
    return rows, seconds


def worker(kind: str, customers: int, months: int, repairs: bool = True) -> dict:
    from datagate_pipelines.assets import billing as billing_assets
    from datagate_pipelines.config import parse_portals
    from datagate_pipelines.invoicing import drafts, finalize, inputs, integrity

    portal = parse_portals(
        PORTAL_YAML.format(
            start=_month_start(_month_index(PERIOD) - months).strftime("%Y-%m"),
            repairs="true" if repairs else "false",
        )
    ).get("bench")
    out: dict = {"kind": kind, "customers": customers, "months": months, "repairs": repairs}
    started = time.perf_counter()
    tables = generate(customers, months)
    out["generate_s"] = time.perf_counter() - started
    out["seeded_rows"] = {t: len(next(iter(d.values()))) for t, d in tables.items()}
    with warehouse(kind) as engine:
        started = time.perf_counter()
        out["seed_per_table_s"] = seed(engine, kind, tables, portal)
        out["seed_s"] = time.perf_counter() - started
        del tables
        gc.collect()

        steps = Steps()
        # The code path's own calls, timed where they are made.
        steps.wrap(
            drafts, "load_billing_inputs", "load", lambda a, r: sum(len(f) for f in r.values())
        )
        ledger_read = "_ledger_mixed" if repairs else "_ledger_runs"
        steps.wrap(inputs, ledger_read, "load: ledger", lambda a, r: len(r))
        steps.wrap(inputs, "_billed_runs", "load: ledger runs", lambda a, r: len(r))
        if repairs:
            steps.wrap(inputs, "_ledger_rows", "load: ledger rows", lambda a, r: len(r))
        steps.wrap(drafts, "bill_period", "engine", lambda a, r: len(r.invoice_lines))
        steps.wrap(drafts, "insert_columns", "drafts: writes", lambda a, r: r)
        steps.wrap(finalize, "update_rows", "finalize: writes", lambda a, r: r)
        steps.wrap(finalize, "record_events", "finalize: writes", lambda a, r: r)
        for read in CHECK_READS:
            steps.wrap(integrity, read, f"checks: {read}", _found)
        lookups = {"n": 0}

        def is_taken(_doc_number: str) -> bool:
            lookups["n"] += 1
            return False

        with steps.step("invoice_lines"), engine.begin() as connection:
            outcome = drafts.compute_drafts(connection, portal.settings, PERIOD, run_id="bench")
        with steps.step("invoices (finalize)"):
            done = billing_assets._finalize(engine, portal.settings, PERIOD, None, is_taken)
        with steps.step("invoices (checks)"), engine.connect() as connection:
            found = integrity.read_integrity(connection, portal.id, PERIOD)
        # A bench that found its own rows wrong measures nothing worth reporting.
        assert not found.billed_twice and not found.numbers_reused, found
        out["counts"] = outcome.counts
        out["finalized"] = len(done.finalized)
        out["lookups"] = lookups["n"]
        out["seconds"] = steps.seconds
        out["cpu"] = steps.cpu
        out["load_average"] = os.getloadavg()
        out["rows"] = steps.rows
        out["peak_gb"] = steps.peak
        out["process_peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

        # Baselines on the same rows, measured in the same run.
        base: dict[str, tuple[int, float]] = {}
        with engine.connect() as connection:
            raw = _raw(connection)
            rows = seconds = 0
            queries = {**LOAD_QUERIES, "ledger": LEDGER_WITH_TERMS} if repairs else LOAD_QUERIES
            for query in queries.values():
                started = time.perf_counter()
                count, _read = copy_out(raw, kind, query)
                seconds += time.perf_counter() - started
                rows += count
            base["load"] = (rows, seconds)
        for table in ("invoices", "invoice_lines", "billing_ledger", "audit_events"):
            base[table] = baseline_write(engine, kind, table)
        out["baseline"] = base
    return out


# --- Report ------------------------------------------------------------------------------


#: The blocking checks' reads (invoicing/integrity.py), each timed apart.
CHECK_READS = {
    "enforcing_index": "the unique indexes that enforce pairs and numbers once (catalog)",
    "_line_sums": "line sums of the period's invoices",
    "_billed_twice": "the pairs the period bills, billed by no other bill (no index)",
    "_numbers_reused": "the portal's numbers, each used once (no index)",
}


def _found(_args, result) -> int:
    """Rows a check's read found (an index's name: one)."""
    return int(result is not None) if isinstance(result, str | None) else len(result)


def _rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "—"


def markdown(results: list[dict], command: str) -> str:
    lines = [
        "## Billing end to end",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, CPython {platform.python_version()}, "
        f"{os.cpu_count()} CPU(s), shared with other work; load average when the runs ended: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
    ]
    for r in results:
        s, rows, peak, b = r["seconds"], r["rows"], r["peak_gb"], r["baseline"]
        cpu = r["cpu"]
        drafts_rest_cpu = cpu["invoice_lines"] - cpu["load"] - cpu["engine"] - cpu["drafts: writes"]
        fin_rest_cpu = cpu["invoices (finalize)"] - cpu.get("finalize: writes", 0.0)
        total_cpu = cpu["invoice_lines"] + cpu["invoices (finalize)"] + cpu["invoices (checks)"]
        drafts_rest = s["invoice_lines"] - s["load"] - s["engine"] - s["drafts: writes"]
        write_base = sum(b[t][1] for t in ("invoices", "invoice_lines", "billing_ledger"))
        write_rows = sum(b[t][0] for t in ("invoices", "invoice_lines", "billing_ledger"))
        fin_base = b["audit_events"][1] + b["invoices"][1]
        fin_writes = s.get("finalize: writes", 0.0)
        fin_rest = s["invoices (finalize)"] - fin_writes
        total = s["invoice_lines"] + s["invoices (finalize)"] + s["invoices (checks)"]
        all_base = b["load"][1] + write_base + fin_base
        name = "PostgreSQL" if r["kind"] == "postgresql" else "SQLite"
        seeded = r["seeded_rows"]
        ledger_form = "runs, and rows where a repair may concern a pair" if r["repairs"] else "runs"
        lines += [
            f"### {name}, repairs {'on' if r['repairs'] else 'off'}",
            "",
            f"Portal: {r['customers']:,} customers, {seeded['products']:,} products, "
            f"{r['months']} months of history ({seeded['invoices']:,} final invoices, "
            f"{seeded['billing_ledger']:,} ledger rows). Seeded in {r['seed_s']:.1f} s "
            f"(products {r['seed_per_table_s']['products']:.1f} s, ledger "
            f"{r['seed_per_table_s']['billing_ledger']:.1f} s"
            + (
                f", vacuum {r['seed_per_table_s']['vacuum']:.1f} s"
                if "vacuum" in r["seed_per_table_s"]
                else ""
            )
            + f"; generated in {r['generate_s']:.1f} s).",
            "",
            "| step | wall | CPU² | rows | rows/s | peak RSS | baseline | ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            f"| load (`load_billing_inputs`) | {s['load']:.2f} s | {cpu['load']:.2f} s | {rows['load']:,} | "
            f"{_rate(rows['load'], s['load'])} | {peak['invoice_lines']:.2f} GB¹ | "
            f"{b['load'][1]:.2f} s ({b['load'][0]:,} rows read) | {s['load'] / b['load'][1]:.1f}× |",
            f"| … of which the ledger ({ledger_form}) | {s['load: ledger']:.2f} s | "
            f"{cpu['load: ledger']:.2f} s | {rows['load: ledger']:,} | "
            f"{_rate(rows['load: ledger'], s['load: ledger'])} | | | |",
            *(
                f"| … … {label} | {s[step]:.2f} s | {cpu[step]:.2f} s | {rows[step]:,} | "
                f"{_rate(rows[step], s[step])} | | | |"
                for step, label in (
                    ("load: ledger runs", "runs of billed months (`GROUP BY` product)"),
                    ("load: ledger rows", "rows of the pairs a repair may concern"),
                )
                if step in s
            ),
            f"| engine (`bill_period`) | {s['engine']:.2f} s | {cpu['engine']:.2f} s | {rows['engine']:,} lines | "
            f"{_rate(rows['engine'], s['engine'])} | ¹ | — | — |",
            f"| drafts: invoices, lines, ledger written | {s['drafts: writes']:.2f} s | {cpu['drafts: writes']:.2f} s | "
            f"{rows['drafts: writes']:,} | {_rate(rows['drafts: writes'], s['drafts: writes'])} | ¹ | "
            f"{write_base:.2f} s ({write_rows:,} rows) | {s['drafts: writes'] / write_base:.1f}× |",
            f"| drafts: the rest (checks, old drafts deleted, ids, holds) | {drafts_rest:.2f} s | {drafts_rest_cpu:.2f} s | | | ¹ | | |",
            f"| finalize: invoices updated, audit events written | {fin_writes:.2f} s | {cpu.get('finalize: writes', 0):.2f} s | "
            f"{rows.get('finalize: writes', 0):,} | {_rate(rows.get('finalize: writes', 0), fin_writes)} | "
            f"{peak['invoices (finalize)']:.2f} GB | {fin_base:.2f} s | "
            f"{fin_writes / fin_base:.1f}× |",
            f"| finalize: the rest (history read, numbering) | {fin_rest:.2f} s | {fin_rest_cpu:.2f} s | | | | | |",
            f"| checks (the `invoices` asset's blocking checks' reads) | {s['invoices (checks)']:.2f} s | "
            f"{cpu['invoices (checks)']:.2f} s | | | {peak['invoices (checks)']:.2f} GB | | |",
            *(
                f"| … {label} | {s[f'checks: {read}']:.2f} s | {cpu[f'checks: {read}']:.2f} s | "
                f"{rows[f'checks: {read}']:,} | | | | |"
                for read, label in CHECK_READS.items()
                if f"checks: {read}" in s  # a read the indexes made needless is not made
            ),
            f"| **end to end** | **{total:.2f} s** | {total_cpu:.2f} s | | | "
            f"**{max(peak.values()):.2f} GB** | {all_base:.2f} s³ | {total / all_base:.1f}× |",
            "",
            f"¹ `invoice_lines` as one step: its peak RSS covers load, engine and writes. "
            f"Invoices: {r['counts']['invoices']:,} ({r['counts']['held']:,} held), lines "
            f"{r['counts']['lines']:,}, ledger rows {r['counts']['ledger_rows']:,}; finalized "
            f"{r['finalized']:,}. QBO DocNumber lookups (beside the figure, not in it): "
            f"{r['lookups']:,} numbers checked, {math.ceil(r['lookups'] / DOC_NUMBERS_PER_QUERY):,} "
            f"QBO queries of {DOC_NUMBERS_PER_QUERY}. ² CPU time of the benchmark's process "
            f"(the database server's is not in it); load average when the steps ended: "
            f"{', '.join(f'{x:.1f}' for x in r['load_average'])}. ³ The three baselines "
            f"together: what the rows read and written cost this machine in plain bulk "
            f"reads and writes, which is how runs on a faster or slower day compare.",
            "",
        ]
        r["_checks"] = (
            total,
            max(peak.values()),
            [
                s["load"] / b["load"][1],
                s["drafts: writes"] / write_base,
                fin_writes / fin_base,
            ],
        )
    lines += ["| target | measured | met |", "|---|---|---|"]
    for r in results:
        total, rss, ratios = r.pop("_checks")
        name = "PostgreSQL" if r["kind"] == "postgresql" else "SQLite"
        if r["kind"] == "postgresql":
            lines.append(
                f"| {name}: end to end ≤ {TARGETS['wall_s']:.0f} s | {total:.1f} s | "
                f"{'yes' if total <= TARGETS['wall_s'] else '**NO**'} |"
            )
        lines.append(
            f"| {name}: peak RSS ≤ {TARGETS['rss_gb']:.0f} GB | {rss:.2f} GB | "
            f"{'yes' if rss <= TARGETS['rss_gb'] else '**NO**'} |"
        )
        worst = max(ratios)
        lines.append(
            f"| {name}: no step > {TARGETS['ratio']:.0f}× its baseline | worst {worst:.1f}× | "
            f"{'yes' if worst <= TARGETS['ratio'] else '**NO**'} |"
        )
    return "\n".join([*lines, "", *HOW]) + "\n"


HOW = [
    "What the steps are. *load*, *engine* and *drafts* are `compute_drafts` (what the "
    "`invoice_lines` asset runs), split by timing the functions it calls; *finalize* is the "
    "auto-approval finalization the `invoices` asset runs with `finalize: true` "
    "(`assets/billing.py` `_finalize`); *checks* are the reads of the `invoices` asset's "
    "blocking checks afterwards (`invoicing/integrity.py`: line sums per invoice, the "
    "ledger's pairs billed once, numbers used once; the last two read from the catalog "
    "where a valid unique index enforces them). Baselines: *load* against a plain bulk read of the rows the loader's "
    "queries cover (every product, every ledger row of the portal, customers, sites, "
    "usage, rates); *drafts* against a plain bulk write of the invoices, lines and ledger "
    "rows it wrote; *finalize* against a plain bulk write of the invoices it finalized and "
    "the audit events it wrote (it updates rows, the baseline inserts them). The engine "
    'has no database baseline: its own benchmark is "Billing engine" above.',
    "",
    "How the path keeps to its baselines (each found by profiling this benchmark):",
    "",
    "- The ledger is read as runs of months. Two years of history are ~24 ledger rows per "
    "product; the loader asks the database for each product's first and last billed month "
    "and their count (`GROUP BY`), and reads month by month only the rare products whose "
    "months have gaps (`invoicing/inputs.py`); the engine takes the runs as they are "
    "(`through_month`, billing/recurring.py). Python reads one row per product instead "
    "of 24, and the ledger's memory no longer grows with the history.",
    "- With repairs on (rule 6), only the pairs a repair may concern come row by row with "
    "what each row billed — months outside the product's full months under its current "
    "dates, pairs with a credit or re-bill, an amount that is not a full month of its "
    "quantity and unit price, or terms missing — decided per pair by the database; every "
    "other pair stays in its run, which is clipped to the full months and cut where a pair "
    "comes row by row (`invoicing/inputs.py` `_ledger_mixed`).",
    "- On PostgreSQL the loader's frames are read through `COPY (…) TO STDOUT` "
    "(`warehouse/bulk.py` `read_columns`), not a Python tuple per row.",
    "- Drafts, lines, ledger rows, finalized numbers and audit events are written column "
    "by column through `warehouse/bulk.py`: COPY on PostgreSQL (an update: COPY into a "
    "staging table, then one `UPDATE … FROM`), one `executemany` on SQLite. Each column's "
    "values pass through the column type (scaled integers, JSON, UTC) once per distinct "
    "value, not once per cell.",
    "- The engine's output is checked by its pandera schemas once per distinct value.",
    "- Finalization reads only the earlier invoices not yet final (the only ones that can "
    "block a period), not the portal's whole history.",
]


def run_worker(kind: str, customers: int, months: int, repairs: bool) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, str(customers), str(months), str(repairs)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:  # the worker's own traceback, not just its exit status
        raise SystemExit(f"the {kind} worker failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24, help="months of history")
    parser.add_argument("--database", choices=["postgresql", "sqlite", "both"], default="both")
    parser.add_argument("--write", action="store_true", help="record the section in BENCHMARKS.md")
    parser.add_argument(
        "--repairs",
        choices=["on", "off"],
        default="on",
        help="invoicing.credit_past_changes (rule 6), on by default as in the product",
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, customers, months, repairs = args.worker
        print(json.dumps(worker(kind, int(customers), int(months), repairs == "True"), default=str))
        return []
    kinds = ["postgresql", "sqlite"] if args.database == "both" else [args.database]
    results = [
        run_worker(kind, args.customers, args.months, args.repairs == "on") for kind in kinds
    ]
    command = " ".join(
        ["benchmarks/bench_billing_e2e.py", *(argv if argv is not None else sys.argv[1:])]
    )
    text = markdown(results, f".venv/bin/python {command}")
    print(text)
    if args.write:
        write_section("## Billing end to end", text)
    return results


if __name__ == "__main__":
    main()
