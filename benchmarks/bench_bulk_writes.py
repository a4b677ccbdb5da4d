"""Benchmark of the warehouse's bulk writes on PostgreSQL: before (SQLAlchemy's
`executemany`, psycopg2 `values_plus_batch`) and after (warehouse/bulk.py: COPY, into a
staging table plus one INSERT … ON CONFLICT for an upsert), against a plain COPY of the
same rows measured in the same run.

    .venv/bin/python benchmarks/bench_bulk_writes.py                # 200,000 rows
    .venv/bin/python benchmarks/bench_bulk_writes.py --write        # and record it
    .venv/bin/python benchmarks/bench_bulk_writes.py --rows 500      # tiny

Writes timed, each in its own transaction on a fresh schema:
- upsert of products (the sync's mirrored and catalog rows): first into an empty table
  (every row inserted), then the same keys again with a changed description (every row
  updated);
- insert of invoice lines (the drafts' lines), into a table with its foreign key.
"Before" runs the very code path bulk.py keeps for other databases, on PostgreSQL.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from unittest import mock
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text  # noqa: E402

from benchmarks.report import write_section  # noqa: E402
from datagate_pipelines.warehouse import bulk  # noqa: E402
from datagate_pipelines.warehouse.db import make_engine, migrate  # noqa: E402
from datagate_pipelines.warehouse.models import invoice_lines, invoices, portals, products  # noqa: E402

POSTGRES_URL = os.environ.get(
    "DATAGATE_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
T = datetime(2026, 7, 1, tzinfo=UTC)


@contextmanager
def fresh_schema():
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}")
    try:
        migrate(engine)
        with engine.begin() as c:
            c.execute(
                insert(portals).values(
                    id="acme", name="Acme", currency="USD", registered_at=T, next_invoice_number=1
                )
            )
            c.execute(
                insert(invoices).values(
                    id=1, portal_id="acme", period=date(2026, 7, 1), invoice_key="k",
                    customer_id=1, customer_name="C", agreement_key="1:default", status="draft",
                    hold_reasons=[], invoice_date=date(2026, 8, 1), due_date=date(2026, 8, 31),
                    subtotal=Decimal(0), tax=Decimal(0), total=Decimal(0), computed_at=T,
                )
            )  # fmt: skip
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def product_rows(count: int, description: str) -> list[dict]:
    return [
        {
            "portal_id": "acme",
            "product_id": f"line:{i}",
            "source_line_id": i,
            "customer_id": 1000 + i // 10,
            "site_id": 500_000 + i // 20,
            "contract_id": None if i % 7 == 0 else 7_000_000 + i // 15,
            "item_id": i % 200,
            "description": description,
            "qty": Decimal(1 + i % 5),
            "unit_price": Decimal(i % 5000).scaleb(-2),
            "start_date": date(2025, 1 + i % 12, 1),
            "end_date": None,
            "billing_cycle": "monthly",
            "ended_reason": None,
            "created_at": T,
            "updated_at": T,
        }
        for i in range(count)
    ]


def line_rows(count: int) -> list[dict]:
    return [
        {
            "invoice_id": 1,
            "line_no": i + 1,
            "kind": "recurring",
            "product_id": f"line:{i}",
            "usage_id": None,
            "description": "Hosted PBX seat",
            "service_month": date(2026, 7, 1),
            "site_id": 500_000 + i // 20,
            "qty": Decimal(1 + i % 5),
            "unit_price": Decimal(i % 5000).scaleb(-2),
            "amount": Decimal((1 + i % 5) * (i % 5000)).scaleb(-2),
            "tax_code": "TEL",
            "tax_zip": "12345",
            "tax_rate": Decimal("0.0725"),
            "tax": Decimal(i % 300).scaleb(-2),
        }
        for i in range(count)
    ]


WHAT_CHANGED = (
    "What changed: every upsert (the sync's mirrored and catalog rows, imports, refer"
    "ences, payment records) and the drafts' inserts go through `warehouse/bulk.py`. "
    "Before, SQLAlchemy sent them as `executemany` (psycopg2 `values_plus_batch`: 100"
    " statements a round trip, each planned and executed row by row on the server); a"
    "fter, one COPY of the rows in PostgreSQL's text format — into a temporary stagin"
    "g table followed by one `INSERT … SELECT … ON CONFLICT` for an upsert — so the s"
    "erver parses once and streams the rows. What remains above a plain COPY is the s"
    "taging table's second pass and the conflict checks of the merge, and converting "
    "each value through its column type (once per distinct value). SQLite keeps `exec"
    "utemany` (no COPY; one compiled statement is its fastest path). Semantics are un"
    "changed: rows repeating a key within one call leave what applying them in order "
    "would; exact numbers travel as integers or Decimal text, never floats."
)


@contextmanager
def before():
    """The executemany path bulk.py keeps for databases without COPY."""
    with mock.patch.object(bulk, "uses_copy", lambda connection: False):
        yield


@contextmanager
def after():
    yield


def _timed(engine, write) -> float:
    with engine.begin() as c:
        started = time.perf_counter()
        write(c)
        return time.perf_counter() - started


def _plain_copy(engine, table: str, query: str) -> float:
    """COPY out the rows as stored, then time a plain COPY of them into a twin table."""
    with engine.begin() as c:
        raw = c.connection.dbapi_connection
        buffer = io.StringIO()
        with raw.cursor() as cursor:
            cursor.copy_expert(f"COPY ({query}) TO STDOUT", buffer)
            cursor.execute(f"CREATE TABLE twin (LIKE {table} INCLUDING ALL)")
            cursor.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f'",
                (table,),
            )
            for (definition,) in cursor.fetchall():
                cursor.execute(f"ALTER TABLE twin ADD {definition}")
            started = time.perf_counter()
            cursor.copy_expert("COPY twin FROM STDIN", io.StringIO(buffer.getvalue()))
            seconds = time.perf_counter() - started
            cursor.execute("DROP TABLE twin")
    return seconds


def measure(rows: int) -> dict:
    results: dict[str, dict[str, float]] = {}
    first, again, lines = (
        product_rows(rows, "seat"),
        product_rows(rows, "seat (renamed)"),
        line_rows(rows),
    )
    key = ("portal_id", "product_id")
    for name, path in (("before", before), ("after", after)):
        with fresh_schema() as engine:
            with path():
                insert_s = _timed(engine, lambda c: bulk.upsert(c, products, first, key=key))
                update_s = _timed(engine, lambda c: bulk.upsert(c, products, again, key=key))
                lines_s = _timed(
                    engine,
                    lambda c: bulk.insert_columns(
                        c, invoice_lines, {k: [r[k] for r in lines] for k in lines[0]}
                    ),
                )
            results[name] = {"upsert_new": insert_s, "upsert_changed": update_s, "lines": lines_s}
            if name == "after":
                results["copy"] = {
                    "products": _plain_copy(engine, "products", "SELECT * FROM products"),
                    "lines": _plain_copy(engine, "invoice_lines", "SELECT * FROM invoice_lines"),
                }
            with engine.connect() as c:  # both paths stored the same rows
                results[name]["check"] = c.execute(
                    text("SELECT count(*), sum(unit_price), max(description) FROM products")
                ).one()._asdict() | {
                    "lines": c.execute(
                        text("SELECT count(*), sum(amount), sum(tax) FROM invoice_lines")
                    )
                    .one()
                    ._asdict()
                }
    return results


def markdown(rows: int, r: dict, command: str) -> str:
    b, a, copy = r["before"], r["after"], r["copy"]
    same = b["check"] == a["check"]

    def line(what: str, before_s: float, after_s: float, copy_s: float) -> str:
        return (
            f"| {what} | {before_s:.2f} s | {after_s:.2f} s | {before_s / after_s:.1f}× | "
            f"{copy_s:.2f} s | {after_s / copy_s:.1f}× |"
        )

    return "\n".join(
        [
            "## Bulk writes on PostgreSQL: executemany before, COPY after",
            "",
            f"Command: `{command}`  ",
            f"Machine: {platform.machine()}, CPython {platform.python_version()}, "
            f"{os.cpu_count()} CPU(s), shared with other work; load average when the runs "
            f"ended: {', '.join(f'{x:.1f}' for x in os.getloadavg())}. {rows:,} rows each; "
            "each write one transaction on a fresh schema.",
            "",
            "| write | before (executemany) | after (COPY) | speed-up | plain COPY of the same rows | after ÷ plain COPY |",
            "|---|---:|---:|---:|---:|---:|",
            line("upsert products, all new", b["upsert_new"], a["upsert_new"], copy["products"]),
            line(
                "upsert products, all changed",
                b["upsert_changed"],
                a["upsert_changed"],
                copy["products"],
            ),
            line("insert invoice lines", b["lines"], a["lines"], copy["lines"]),
            "",
            f"Both paths stored the same rows (count, sums of the exact columns, text): "
            f"{'yes' if same else '**NO**'}. The plain COPY writes the rows as stored (already "
            "integers and text) into a copy of the table with its indexes and foreign keys; "
            "the bulk path also converts each value through its column type "
            "(warehouse/types.py).",
            "",
            WHAT_CHANGED,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--write", action="store_true", help="record the section in BENCHMARKS.md")
    args = parser.parse_args(argv)
    results = measure(args.rows)
    command = " ".join(
        ["benchmarks/bench_bulk_writes.py", *(argv if argv is not None else sys.argv[1:])]
    )
    print(markdown(args.rows, results, f".venv/bin/python {command}"))
    if args.write:
        write_section(
            "## Bulk writes on PostgreSQL: executemany before, COPY after",
            markdown(args.rows, results, f".venv/bin/python {command}"),
        )
    return results


if __name__ == "__main__":
    main()
