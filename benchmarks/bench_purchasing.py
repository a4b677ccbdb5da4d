"""Benchmark of the purchasing export: 2,000 suppliers as QBO vendors, and 1,000 purchase
orders (5,000 lines) as QBO PurchaseOrders, 400 of them billed — against the QBO simulator
over loopback, with its throttles on.

    .venv/bin/python benchmarks/bench_purchasing.py              # print the Markdown block
    .venv/bin/python benchmarks/bench_purchasing.py --write      # and record it in BENCHMARKS.md
    .venv/bin/python benchmarks/bench_purchasing.py --suppliers 200 --orders 100

As benchmarks/bench_export.py (whose simulator process, client and recorder this reuses):
the warehouse (a fresh SQLite file) is filled directly with what the HaloPSA ingest would
have stored, then, as the assets do: `link_vendors` and `export_purchases` (purchase
orders, then their bills). 1% of the suppliers are named like a customer already in QBO,
so they meet 6240 and take their ' (supplier <id>)' name. The minimum is one batch per 30
creates plus one lookup query per 100 documents (1,000 vendors per list page), the chart of
accounts once, and two calls per name clash (the lookup and the create under the new name).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from benchmarks.bench_export import (  # noqa: E402
    BATCH_LIMIT,
    CONCURRENT,
    LIMIT,
    PORTAL_YAML,
    REALM,
    Calls,
    bench_client,
    qbo_simulator,
    simulator_stats,
)
from benchmarks.report import write_section  # noqa: E402
from datagate_pipelines.config import parse_portals  # noqa: E402
from datagate_pipelines.exporting.purchasing import export_purchases  # noqa: E402
from datagate_pipelines.exporting.vendors import link_vendors, load_suppliers  # noqa: E402
from datagate_pipelines.warehouse import models as m  # noqa: E402
from datagate_pipelines.warehouse.db import make_engine, migrate  # noqa: E402
from datagate_pipelines.warehouse.portals import register_portal  # noqa: E402

SEED = 20261206
SECTION = "## Purchasing export"
#: Purchase nominal codes of the lines; all in the simulated company's numbered chart.
CODES = ("5010", "5020", "5030", "5100", "5200", "5900")


def fill_warehouse(engine, portal, *, suppliers: int, orders: int, lines: int, billed: float):
    """Suppliers and purchase orders as the ingest stores them: every order sent, the
    first `billed` share received (so billed)."""
    rng = random.Random(SEED)
    now = datetime.now(UTC)
    seen = {"raw": {}, "first_seen_at": now, "last_seen_at": now}
    pid = portal.id
    with engine.begin() as c:
        register_portal(c, portal)
        c.execute(
            insert(m.halo_suppliers),
            [
                {
                    "portal_id": pid,
                    "halo_id": 1 + i,
                    "name": f"Supplier {i + 1:05d} {rng.choice(['Distribution', 'Telecom', 'Cloud'])}",
                    "inactive": False,
                    "email": f"ap{i}@supplier.example",
                    "address": f"{i} Market St\nSan Francisco\nCA\n94107",
                    "list_hash": f"{i:064d}",
                    "detail_read_at": now,
                    **seen,
                }
                for i in range(suppliers)
            ],
        )
        headers, rows, next_line, total = [], [], 1, Decimal("0.00")
        for n in range(1, orders + 1):
            received = n <= orders * billed
            headers.append(
                {
                    "portal_id": pid,
                    "halo_id": n,
                    "po_ref": f"PO-{n:06d}",
                    "supplier_id": rng.randint(1, suppliers),
                    "status": 4 if received else 3,  # received / sent (the default mapping)
                    "goodsin_status": 2 if received else 0,
                    "order_date": date(2026, 11, 1) + timedelta(days=n % 28),
                    "currency_code": 1,
                    **seen,
                }
            )
            for line_no in range(1, lines + 1):
                qty = Decimal(rng.randint(1, 24))
                cost = Decimal(rng.choice(["2.10", "19.80", "121.00", "480.00", "35.00"]))
                rows.append(
                    {
                        "portal_id": pid,
                        "halo_id": next_line,
                        "purchase_order_id": n,
                        "line_no": line_no,
                        "description": f"Line {line_no} of PO {n}",
                        "qty": qty,
                        "unit_cost": cost,
                        "amount": qty * cost,
                        "nominal_code": rng.choice(CODES),
                        **seen,
                    }
                )
                total += qty * cost
                next_line += 1
        c.execute(insert(m.halo_purchase_orders), headers)
        for start in range(0, len(rows), 2000):
            c.execute(insert(m.halo_purchase_order_lines), rows[start : start + 2000])
    return {"suppliers": suppliers, "orders": orders, "lines": len(rows), "total": total}


def run(args) -> dict:
    window = args.window
    folder = Path(tempfile.mkdtemp(prefix="bench-purchasing-"))
    engine = make_engine(args.database or f"sqlite:///{folder / 'warehouse.db'}")
    migrate(engine)
    calls = Calls()
    with qbo_simulator(window) as base_url:
        yaml = PORTAL_YAML.format(realm=REALM, url=base_url) + "    purchasing: {}\n"
        portal = parse_portals(yaml).get("bench")
        filled = fill_warehouse(
            engine,
            portal,
            suppliers=args.suppliers,
            orders=args.orders,
            lines=args.lines,
            billed=args.billed,
        )
        with engine.connect() as c:
            suppliers = load_suppliers(c, portal.id)
        clashes = sorted(suppliers)[:: max(1, round(100 / args.clash_percent))]
        with bench_client(base_url, calls, window) as client:
            # Setup, not measured: customers named like some suppliers (6240 for those).
            for sid in clashes:
                client.create("Customer", {"DisplayName": suppliers[sid].name}, request_id=None)
            time.sleep(window)
            start_mark, started = len(calls.records), time.monotonic()
            vendors = link_vendors(engine, client, portal.settings, suppliers)
            linked, mark = time.monotonic(), len(calls.records)
            outcome = export_purchases(engine, client, portal.settings)
            exported, end_mark = time.monotonic(), len(calls.records)
            in_qbo = {
                entity: client.count(entity) for entity in ("Vendor", "PurchaseOrder", "Bill")
            }
        stats = simulator_stats(base_url)
    return {
        "filled": filled,
        "clashes": len(clashes),
        "vendors": vendors.counts(),
        "vendor_failures": list(vendors.failed.items())[:3],
        "outcome": outcome.counts(),
        "failed_sample": [
            *list(outcome.purchase_orders.failed.items())[:2],
            *list(outcome.bills.failed.items())[:2],
        ],
        "bills": len(outcome.bills.created),
        "in_qbo": in_qbo,
        "link_s": linked - started,
        "export_s": exported - linked,
        "calls_link": calls.kinds(start_mark) - calls.kinds(mark),
        "calls_export": calls.kinds(mark) - calls.kinds(end_mark),
        "sim": stats,
        "window": window,
    }


def markdown(args, r: dict) -> str:
    window, f = r["window"], r["filled"]
    link, export = r["calls_link"], r["calls_export"]
    suppliers, orders, bills = f["suppliers"], f["orders"], r["bills"]

    def total(kinds) -> int:
        return sum(v for k, v in kinds.items() if k != "429")

    # The minimum: a batch per 30 creates; one query for the company's vendors (none yet);
    # per name clash a lookup and a create; for the documents, a query per 100 lookups and
    # the chart once.
    minimum_link = math.ceil(suppliers / 30) + 1 + 2 * r["clashes"]
    minimum_export = (
        1  # the chart of accounts
        + math.ceil(orders / 30) + math.ceil(orders / 100)  # purchase orders: creates, lookups
        + math.ceil(bills / 30) + 2 * math.ceil(bills / 100)  # bills: creates, lookups, their POs
    )  # fmt: skip
    zero_429 = link["429"] + export["429"] == 0
    rows = [
        ("link 2,000 suppliers to vendors" if suppliers == 2000 else "link suppliers to vendors",
         r["link_s"], link, total(link), minimum_link),
        ("export POs, then bills", r["export_s"], export, total(export), minimum_export),
    ]  # fmt: skip
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python benchmarks/bench_purchasing.py --suppliers {suppliers} "
        f"--orders {orders} --lines {args.lines} --billed {args.billed:g} --window {window:g}"
        f"{' --write' if args.write else ''}`  ",
        f"Machine: {platform.machine()}, CPython {platform.python_version()}, "
        f"{os.cpu_count()} CPU(s). The QBO simulator in its own process on loopback, throttles "
        f"on ({LIMIT} requests and {BATCH_LIMIT} batch requests per {window:g} s window, "
        f'{CONCURRENT} in flight; the client\'s limiters the same), as in "QBO export" above. '
        f"Warehouse: SQLite. Data: {suppliers:,} suppliers ({r['clashes']} named like a QBO "
        f"customer), {orders:,} purchase orders with {f['lines']:,} lines on nominal codes, "
        f"{bills:,} of them received (billed).",
        "",
        "| phase | wall | API calls | minimum | batch | query | other | 429s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, seconds, kinds, calls, minimum in rows:
        lines.append(
            f"| {label} | {seconds:.1f} s | {calls} | {minimum} | {kinds['batch']} | "
            f"{kinds['query']} | {kinds['other'] + kinds['token']} | {kinds['429']} |"
        )
    out, q = r["outcome"], r["in_qbo"]
    lines += [
        "",
        f"Result: vendors {r['vendors']}; purchase orders {out['purchase_orders_exported']:,} "
        f"exported, {out['purchase_orders_failed']} failed; bills {out['bills_exported']:,} "
        f"exported, {out['bills_failed']} failed. In QBO: {q['Vendor']:,} vendors, "
        f"{q['PurchaseOrder']:,} purchase orders, {q['Bill']:,} bills (one each). The simulator "
        f"counted {r['sim']['requests']} requests in all (setup and counts included), "
        f"{r['sim']['throttled']} throttled.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| vendor calls ≤ the minimum ({minimum_link}) | {total(link)} | "
        f"{'yes' if total(link) <= minimum_link else '**NO**'} |",
        f"| PO and bill calls ≤ the minimum ({minimum_export}) | {total(export)} | "
        f"{'yes' if total(export) <= minimum_export else '**NO**'} |",
        f"| zero 429s | {link['429'] + export['429']} | {'yes' if zero_429 else '**NO**'} |",
        "",
        "Batches are the binding limit (40 a window, 30 creates each), as for invoices; "
        "the other calls are the lookups before the creates (what makes a re-run or a "
        "killed run safe) and the one read of the chart of accounts.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suppliers", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=5, help="lines per purchase order")
    parser.add_argument("--billed", type=float, default=0.4, help="share of orders received")
    parser.add_argument("--clash-percent", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=12.0, help="throttle window, seconds")
    parser.add_argument("--database", help="warehouse URL (default: a fresh SQLite file)")
    parser.add_argument("--write", action="store_true", help="record it in BENCHMARKS.md")
    args = parser.parse_args(argv)
    result = run(args)
    text = markdown(args, result)
    print(text)
    if args.write:
        write_section(SECTION, text)
    return result


if __name__ == "__main__":
    main()
