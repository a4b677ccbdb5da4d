"""The incremental sync, measured: `bench_ingest.py --incremental` (see its docstring).

Per tenant size, in one warehouse (SQLite, rate limit off), one process, one after another:
a first sync into the empty warehouse; a full sync of the unchanged tenant (`--full`: every
list read whole — the baseline); a sync of the unchanged tenant between full ones; then 1% of
the clients, sites, contracts and recurring invoices changed through HaloPSA's API and a sync
again. Each run's HaloPSA calls come from `api_requests`, how each entity was read from its
`sync_runs` record, and the rows written from the ingest assets' metadata.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import bench_ingest as bench

TITLE = "## HaloPSA incremental sync"
#: What "1% changed" writes: a plain text field of each list's rows, so that nothing else
#: (names shown on other lists) changes with it.
CHANGED_FIELDS = {
    "Client": "ref",
    "Site": "ref",
    "ClientContract": "ref",
    "RecurringInvoice": "reference",
}
CHANGED_EVERY = 100  # 1%
#: The ingest assets, the lists each reads and whether HaloPSA can filter it by change date.
ASSETS = (
    ("halo_asset_groups", ("AssetGroup",)),
    ("halo_items", ("Item",)),
    ("halo_taxes", ("Tax",)),
    ("halo_clients", ("FieldInfo", "Client")),
    ("halo_sites", ("Site",)),
    ("halo_contracts", ("ClientContract",)),
    ("halo_recurring_invoices", ("RecurringInvoice",)),
)
RUNS = (
    ("first", "first sync, empty warehouse"),
    ("full", "full sync (`--full`), nothing changed: the baseline"),
    ("unchanged", "sync between full ones, nothing changed"),
    ("changed", "sync between full ones, 1% changed"),
)


def change_one_percent(base_url: str) -> dict[str, int]:
    """Write every 100th client, site, contract and recurring invoice through the API, as an
    operator editing them in HaloPSA would; how many of each."""
    import httpx

    changed = {}
    stamp = datetime.now(UTC).strftime("%H%M%S")
    with httpx.Client(base_url=f"{base_url}/api/", timeout=300) as http:
        bench.authorize(http, base_url)
        for resource, field in CHANGED_FIELDS.items():
            body = http.get(resource, params={"idonly": "true", "includeinactive": "true"}).json()
            rows = (
                body
                if isinstance(body, list)
                else next(v for v in body.values() if isinstance(v, list))
            )
            chosen = [row["id"] for row in rows][::CHANGED_EVERY]
            for start in range(0, len(chosen), 100):
                batch = chosen[start : start + 100]
                http.post(
                    resource, json=[{"id": i, field: f"changed {stamp} {i}"} for i in batch]
                ).raise_for_status()
            changed[resource] = len(chosen)
    return changed


def incremental_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """The four runs of one tenant size, in one warehouse."""
    workdir = Path(spec["workdir"])
    portals_file = workdir / "portals.yaml"
    requests, window = bench.UNLIMITED
    portals_file.write_text(
        bench.PORTALS_YAML.format(
            portal=bench.PORTAL_ID,
            tenant=bench.TENANT,
            base=spec["base_url"],
            requests=requests,
            window=window,
        )
    )
    with bench._environment(
        DATAGATE_PORTALS_FILE=str(portals_file),
        DATAGATE_DATABASE_URL=spec["database_url"],
        BENCH_HALO_CLIENT_ID=bench.CLIENT_ID,
        BENCH_HALO_CLIENT_SECRET=bench.CLIENT_SECRET,
    ):
        return _runs(spec)


def _runs(spec: dict[str, Any]) -> dict[str, Any]:
    import dagster as dg
    from sqlalchemy import select

    from datagate_pipelines.warehouse import models as m
    from datagate_pipelines.warehouse.db import warehouse_engine

    engine = warehouse_engine()
    runs: dict[str, dict[str, Any]] = {}
    changed: dict[str, int] = {}
    with dg.instance_for_test() as instance:
        for name, _label in RUNS:
            if name == "changed":
                changed = change_one_percent(spec["base_url"])
            runs[name] = bench.measured_sync(instance, engine, full=name == "full")
            with engine.connect() as connection:
                runs[name]["reads"] = connection.execute(
                    select(m.sync_runs.c.reads).where(m.sync_runs.c.run_id == runs[name]["run_id"])
                ).scalar_one()
        mirrored = bench.mirrored_counts(engine)
    engine.dispose()
    return {"runs": runs, "changed": changed, "mirrored": mirrored}


def benchmark(args: argparse.Namespace, command: str) -> dict[str, Any]:
    sizes = []
    for customers in args.incremental_sizes:
        sim = bench.Simulator(
            customers, args.lines_per_customer, args.seed, in_process=args.in_process
        )
        try:
            records = sim.stats()["halopsa"]["records"]
            with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp:
                spec = {
                    "database_url": f"sqlite:///{Path(tmp) / 'w.db'}",
                    "workdir": tmp,
                }
                result = bench._measure(sim, "incremental", spec, in_process=args.in_process)
        finally:
            sim.close()
        sizes.append({"customers": customers, "records": records, "as_of": sim.as_of, **result})
    return {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": bench._machine(),
        "load": bench._load(),
        "code": bench._code_version(),
        "in_process": args.in_process,
        "lines_per_customer": args.lines_per_customer,
        "seed": args.seed,
        "sizes": sizes,
    }


def _asset_calls(run: dict[str, Any], resources: tuple[str, ...]) -> int:
    return sum(run["calls"].get(f"/api/{r}", 0) for r in resources)


def _written(run: dict[str, Any], asset: str) -> int:
    meta = run["metadata"].get(asset, {})
    return int(meta.get("rows", 0)) + int(meta.get("recurring_invoice_lines_rows", 0))


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    fmt_s = lambda s: "—" if s is None else f"{s:.2f} s"  # noqa: E731
    lines = [
        TITLE,
        "",
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}  ",
        *([f"Code: commit {results['code']}  "] if results.get("code") else []),
        f"Machine: {machine['nproc']} CPU(s) ({machine['cpu']}), {machine['ram_gib']:.1f} GiB "
        f"RAM, {machine['python']}, Dagster {machine['dagster']}; load average when the runs "
        f"ended: {results['load']} (shared: compare the ratios, measured in the same run).",
        "",
        *(
            ["**In-process run** (`--in-process`): for checking the script, not for figures.", ""]
            if results.get("in_process")
            else []
        ),
        "Per size, one SQLite warehouse and one process, four `portal_sync` runs in a row "
        "(rate limit off): a first sync into the empty warehouse; a full sync of the "
        "unchanged tenant (`datagate sync --full`: every list read whole) — the baseline; a "
        "sync between full ones with nothing changed; and one after 1% of the clients, "
        "sites, contracts and recurring invoices were changed through HaloPSA's API. "
        "`generate_tenant(customers=N, lines_per_customer="
        f"{results['lines_per_customer']}, seed={results['seed']})`, served by the simulator "
        "in its own process; it honours `lastupdatefromdate` on Client and Site (that real "
        "HaloPSA does is unconfirmed: every answer is checked, docs/operations.md). "
        "HaloPSA budget: minutes of its 300 calls per 5 minutes the run's calls use.",
        "",
        "| customers | run | API calls | ÷ full | HaloPSA budget | snapshot | ÷ full "
        "| portal_sync | ÷ full | mirror rows written |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in results["sizes"]:
        runs = size["runs"]
        full = runs["full"]
        for name, label in RUNS:
            run = runs[name]
            written = sum(_written(run, asset) for asset, _ in ASSETS)
            lines.append(
                f"| {size['customers']:,} | {label} | {run['calls_total']} "
                f"| {run['calls_total'] / full['calls_total']:.2f} "
                f"| {run['calls_total'] / bench.HALO_BUDGET * 5:.1f} min "
                f"| {fmt_s(run['snapshot_s'])} | {run['snapshot_s'] / full['snapshot_s']:.2f} "
                f"| {fmt_s(run['wall_s'])} | {run['wall_s'] / full['wall_s']:.2f} | {written:,} |"
            )
    lines += [
        "",
        "### Per entity: how it was read, and its calls against the full sync's",
        "",
        "Goal: a sync of an unchanged tenant makes at most 10% of a full sync's calls "
        "wherever HaloPSA filters by change date (Client and Site). The other lists have no "
        "change filter (docs/halopsa-api.md §A6): they are read whole every time, and only "
        "their changed records are written (content hashes).",
        "",
        "| customers | entity | read (unchanged / 1% changed) | calls: full | unchanged "
        "| ÷ full | 1% changed | ÷ full | rows written: unchanged / 1% changed | goal met |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in results["sizes"]:
        runs = size["runs"]
        for asset, resources in ASSETS:
            full = _asset_calls(runs["full"], resources)
            same = _asset_calls(runs["unchanged"], resources)
            moved = _asset_calls(runs["changed"], resources)
            kinds = " / ".join(
                (runs[n]["reads"] or {}).get(asset, {}).get("kind", "?")
                for n in ("unchanged", "changed")
            )
            filtered = asset in ("halo_clients", "halo_sites")
            goal = ("yes" if same <= 0.10 * full else "**no**") if filtered else "— (no filter)"
            lines.append(
                f"| {size['customers']:,} | {asset} | {kinds} | {full} | {same} "
                f"| {same / full:.2f} | {moved} | {moved / full:.2f} "
                f"| {_written(runs['unchanged'], asset):,} / {_written(runs['changed'], asset):,} "
                f"| {goal} |"
            )
    lines.append("")
    for size in results["sizes"]:
        unchanged = size["runs"]["unchanged"]
        unfiltered = sum(
            _asset_calls(unchanged, resources)
            for asset, resources in ASSETS
            if asset not in ("halo_clients", "halo_sites")
        )
        lines.append(
            f"At {size['customers']:,} customers an unchanged tenant's sync spends "
            f"{unfiltered} of its {unchanged['calls_total']} calls on the lists HaloPSA cannot "
            "filter by change date (contracts and recurring invoices above all): they bound "
            "what incremental reads can save until HaloPSA offers a filter for them."
        )
        lines.append("")
    for size in results["sizes"]:
        changed = ", ".join(f"{n:,} {r}" for r, n in size["changed"].items())
        steps = size["runs"]["unchanged"]["steps"]
        catalog = sum(t for step, t in steps.items() if step != "halopsa_snapshot")
        lines.append(
            f"At {size['customers']:,} customers the 1% changed were {changed}. In the "
            "unchanged sync the steps after the snapshot (the catalog, customers → agreements, "
            f"derived from the whole mirror) took {catalog:.1f} s of its "
            f"{size['runs']['unchanged']['wall_s']:.1f} s."
        )
        lines.append("")
    return "\n".join(lines)
