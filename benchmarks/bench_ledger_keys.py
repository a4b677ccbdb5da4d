"""What the ledger's foreign keys cost a night's insert on PostgreSQL: two keys (the portal;
the invoice), as before migration 0015, against one (portal, invoice), as since.

Each shape is a table with the keys alone (no other index), in a throwaway schema; the
rows go in with `EXPLAIN (ANALYZE) INSERT … SELECT`, which reports the key checks' time
apart from the insert's. The shapes alternate, `--repeat` times each, in the same run.

    .venv/bin/python benchmarks/bench_ledger_keys.py --rows 1331202 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import re
import uuid

import psycopg2
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "DATAGATE_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
INVOICE_LINES_PER_INVOICE = 10
SHAPES = {
    "two keys (portal; invoice)": "portal_id varchar(64) NOT NULL REFERENCES portals (id), "
    "invoice_id int NOT NULL REFERENCES invoices (id) ON DELETE CASCADE",
    "one key (portal, invoice)": "portal_id varchar(64) NOT NULL, invoice_id int NOT NULL, "
    "FOREIGN KEY (portal_id, invoice_id) REFERENCES invoices (portal_id, id) ON DELETE CASCADE",
}
_MS = re.compile(r"(?:actual time=[\d.]+\.\.|time=)([\d.]+)")


def _connect():
    url = make_url(POSTGRES_URL)
    return psycopg2.connect(
        host=url.host, port=url.port or 5432, user=url.username, dbname=url.database
    )


def _insert(cursor, keys: str) -> dict[str, float]:
    cursor.execute("DROP TABLE IF EXISTS ledger")
    cursor.execute(
        "CREATE TABLE ledger (id serial PRIMARY KEY, product_id varchar(64) NOT NULL, "
        f"service_month date NOT NULL, {keys})"
    )
    cursor.execute("BEGIN")
    cursor.execute(
        "EXPLAIN (ANALYZE) INSERT INTO ledger (portal_id, product_id, service_month, invoice_id) "
        "SELECT * FROM source"
    )
    plan = [row[0] for row in cursor.fetchall()]
    cursor.execute("ROLLBACK")
    seconds = {"checks": 0.0}
    for line in plan:
        if line.startswith("Insert on ledger"):
            seconds["insert"] = float(_MS.search(line).group(1)) / 1000
        elif line.startswith("Trigger for constraint"):
            seconds["checks"] += float(_MS.search(line).group(1)) / 1000
        elif line.startswith("Execution Time"):
            seconds["total"] = float(re.search(r"([\d.]+) ms", line).group(1)) / 1000
    return seconds


def run(rows: int, repeat: int) -> dict[str, list[dict[str, float]]]:
    schema = f"bench_keys_{uuid.uuid4().hex[:10]}"
    connection = _connect()
    connection.autocommit = True
    cursor = connection.cursor()
    results: dict[str, list[dict[str, float]]] = {shape: [] for shape in SHAPES}
    try:
        cursor.execute(f'CREATE SCHEMA "{schema}"; SET search_path = "{schema}"')
        cursor.execute("CREATE TABLE portals (id varchar(64) PRIMARY KEY)")
        cursor.execute("INSERT INTO portals VALUES ('bench')")
        cursor.execute(
            "CREATE TABLE invoices (id serial PRIMARY KEY, portal_id varchar(64) NOT NULL "
            "REFERENCES portals (id), UNIQUE (portal_id, id))"
        )
        cursor.execute(
            "INSERT INTO invoices (portal_id) SELECT 'bench' FROM generate_series(0, %s)",
            (rows // INVOICE_LINES_PER_INVOICE,),
        )
        cursor.execute(
            "CREATE TABLE source AS SELECT 'bench'::varchar(64) AS portal_id, 'line:' || n AS "
            "product_id, date '2026-07-01' AS service_month, 1 + n / %s AS invoice_id "
            "FROM generate_series(0, %s) n",
            (INVOICE_LINES_PER_INVOICE, rows - 1),
        )
        for _ in range(repeat):
            for shape, keys in SHAPES.items():
                results[shape].append(_insert(cursor, keys))
    finally:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.close()
    return results


def markdown(results: dict[str, list[dict[str, float]]], rows: int) -> str:
    def seconds(runs, part):
        return ", ".join(f"{run[part]:.1f} s" for run in runs)

    lines = [
        f"Inserting {rows:,} ledger rows, {INVOICE_LINES_PER_INVOICE} per invoice:",
        "",
        "| | key checks | insert | total |",
        "|---|---:|---:|---:|",
    ]
    for shape, runs in results.items():
        lines.append(
            f"| {shape} | {seconds(runs, 'checks')} | {seconds(runs, 'insert')} | "
            f"{seconds(runs, 'total')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, list[dict[str, float]]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_331_202)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    results = run(args.rows, args.repeat)
    print(markdown(results, args.rows))
    return results


if __name__ == "__main__":
    main()
