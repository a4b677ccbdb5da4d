"""The whole pipeline as operators run it: `dagster dev` on SQLite and on PostgreSQL storage,
HaloPSA and QBO simulators on loopback, the `datagate` CLI, GraphQL and the UI in Chromium.

One test per storage kind, in phases (a second warehouse, billed in-process period by
period with launch.run_sync/run_billing, is the reference for the backfill):

1. the portal_registry sensor adds both portals' partitions by itself;
2. `datagate force-sync` → the force_sync sensor → a top-priority portal_sync run → the
   warehouse (customers, products, agreements, last sync time);
3. tax rates, product templates and usage are imported (checked against what the sync
   brought: a file naming an unknown customer or item would be refused whole);
4. an asset backfill of three billing periods starts; meanwhile, force syncs of one portal
   never overlap: a request filed while the first run is held busy waits in the queue, a
   third joins it, and the other portal's backfill runs are not held up;
5. the backfill bills the periods in order, exactly as billing them one by one does;
6. closing June (finalize) numbers the invoices and exports them to HaloPSA and QBO, and
   the same run again exports nothing twice;
7. acme turns to `approval: manual`: `datagate review` gives July's fingerprint, the
   `approve_period` job launched through GraphQL as the UI's launchpad does records the
   approval, and the approvals sensor's `finalize_approved` run (priority 10) numbers and
   exports July;
8. the asset graph and the invoice_review asset's page render in headless Chromium
   (screenshots in test-output/e2e/<kind>/);
9. everything stops: no process, database or secret is left behind.

Known bugs of the code under test are worked around where they would block the rest, and
the test then ends XFAIL naming them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import pytest
from sqlalchemy import Engine, func, select, text

from datagate_pipelines.demo.pipeline import TAX_CODE_BY_GROUP, demo_tax_rates, demo_usage
from datagate_pipelines.imports.product_templates import import_product_templates
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.imports.usage import import_usage
from datagate_pipelines.orchestration.launch import run_billing, run_sync
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.db import make_engine, warehouse_engine
from datagate_pipelines.warehouse.force_sync import file_request
from tests.e2e import stack
from tests.e2e.browser import MISSING, find_chromium, render
from tests.e2e.dagster_dev import PROJECT_ROOT, REPOSITORY, DagsterDev, launch_dagster_dev, tag

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    # A hung server must not hang CI; cleanup (the ExitStack) still runs on timeout.
    pytest.mark.timeout(1500),
]

OUTPUT = PROJECT_ROOT / "test-output" / "e2e"
PERIODS = [date(2026, 6, 1), date(2026, 7, 1), date(2026, 8, 1)]
USAGE_PERIOD = date(2026, 7, 1)
FORCE_SYNC_TAG = "datagate/force-sync"
PORTAL_TAG = "dagster/partition/portal"

# Generous: the machine is small and other suites may share it.
STARTUP_TIMEOUT = 180
SENSOR_TIMEOUT = 120  # force_sync ticks every 15 s, portal_registry every 60 s
RUN_TIMEOUT = 240
BACKFILL_TIMEOUT = 420

SENSOR_TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState {
        status
        ticks(limit: 50) {
          status
          dynamicPartitionsRequestResults { partitionsDefName partitionKeys type }
        }
      }
    }
  }
}"""

PARTITION_KEYS = """
query Keys($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { partitionKeys } }
}"""

LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""

BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      numPartitions
      error { message }
      runs(limit: 50) {
        runId status startTime endTime assetSelection { path } tags { key value }
      }
    }
    ... on Error { message }
  }
}"""


LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}"""


class Phases:
    """Wall-clock time per phase, written next to the screenshots."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seconds: dict[str, float] = {}
        self.started = time.monotonic()

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - began, 1)
            self.write()

    def write(self) -> dict[str, float]:
        report = {**self.seconds, "total": round(time.monotonic() - self.started, 1)}
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "timings.json").write_text(json.dumps(report, indent=2) + "\n")
        return report


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_end_to_end(kind, tmp_path, monkeypatch, record_property):
    output = OUTPUT / kind
    output.mkdir(parents=True, exist_ok=True)
    for old in output.glob("*.png"):
        old.unlink()
    phases = Phases(output)
    known_bugs: list[str] = []
    chromium = find_chromium()  # fails at once under CI=true when missing
    with contextlib.ExitStack() as stack_:
        with phases("start"):
            acme = stack_.enter_context(stack.portal_sim("acme", customers=30, seed=7))
            globex = stack_.enter_context(stack.portal_sim("globex", customers=6, seed=11))
            sims = [acme, globex]
            qbo = stack_.enter_context(stack.qbo_sim("acme"))
            portals_file = tmp_path / "portals.yaml"
            stack.write_portals_yaml(portals_file, sims, {"acme": qbo})
            # The reference billing (in-process) needs HaloPSA only.
            reference_portals = tmp_path / "portals-reference.yaml"
            stack.write_portals_yaml(reference_portals, sims)
            storage = stack_.enter_context(
                stack.sqlite_storage(tmp_path) if kind == "sqlite" else stack.postgres_storage()
            )
            known_bugs += storage.known_bugs
            env = stack.environment(portals_file, storage, sims, (qbo,))
            for name, value in env.items():  # the in-process reference runs read them too
                if name.endswith(("_HALO_CLIENT_ID", "_HALO_CLIENT_SECRET")):
                    monkeypatch.setenv(name, value)
            # Migrated here, so nothing else races to do it.
            warehouse = warehouse_engine(storage.warehouse_url)
            reference = warehouse_engine(storage.reference_url)
            stack_.callback(warehouse.dispose)
            stack_.callback(reference.dispose)
            home = stack.make_dagster_home(tmp_path / "dagster_home", storage)
            dev = launch_dagster_dev(home, env, output / "dagster-dev.log")
            stack_.callback(dev.stop)
            # While dagster dev starts: the reference's first sync, whose catalog the
            # operator's CSV imports are written from.
            instance = stack_.enter_context(dg.instance_for_test())
            reference_sync(instance, reference, reference_portals)
            write_imports(reference, tmp_path)
            dev.wait_until_loaded(STARTUP_TIMEOUT)

        with phases("portals registered by the sensor"):
            portals_are_registered_by_the_sensor(dev, warehouse)

        with phases("force sync"):
            force_sync_fills_the_warehouse(dev, env, warehouse)

        with phases("imports"):
            import_tax_rates_products_and_usage(warehouse, tmp_path)

        with phases("force syncs serialized per portal"):
            # acme's backfill runs while globex's syncs are held and queued.
            backfill_id = launch_backfill(dev)
            force_syncs_of_a_portal_never_overlap(
                dev,
                warehouse,
                globex,
                meanwhile=lambda: a_successful_run_of(dev, backfill_id),
            )

        with phases("backfill + reference billing"):
            # Bill the same periods one by one meanwhile (the backfill mostly waits on ticks).
            with reference.begin() as connection:
                import_files(connection, tmp_path)
            reference_bill(instance, reference, reference_portals)
            backfill_runs = wait_for_backfill(dev, backfill_id)
            known_bugs += assert_periods_ran_in_order(backfill_runs)
            assert_same_invoices(billed(warehouse), billed(reference))

        if exports_are_defined(dev):
            with phases("close a period: finalize + export"):
                closing_a_period_exports_it_exactly_once(dev, warehouse, qbo)
            with phases("approve a period from the launchpad"):
                stack.write_portals_yaml(portals_file, sims, {"acme": qbo}, {"acme": "manual"})
                approving_from_the_launchpad_finalizes_and_exports(dev, env, warehouse, qbo)

        if chromium:
            with phases("UI"):
                the_asset_graph_renders(dev, chromium, output)

        known_bugs += force_sync_requests_left_open(warehouse)

        with phases("shutdown"):
            leftovers = dev.stop()
            assert leftovers == [], f"processes outlived dagster dev: {leftovers}"
            assert dev.process.returncode is not None
            secrets = [sim.sim.client_secret for sim in sims]
            secrets += [qbo.client_secret, qbo.refresh_token]
            no_secret_leaked(dev, warehouse, storage, secrets)
            stack_.close()  # engines, simulators, then the PostgreSQL database
            for server in [sim.server for sim in sims] + [qbo.server]:
                assert not server.thread or not server.thread.is_alive()
            if storage.database:
                assert not stack.database_exists(storage.database), storage.database

    report = phases.write()
    record_property("timings", report)
    print(f"\n{kind} timings (s): {report}")
    if not chromium:
        pytest.skip(f"SKIPPED THE UI CHECK (the rest passed): {MISSING}")
    # Dagster's own behaviour worth knowing (not ours to fix) is printed; our bugs fail.
    for note in (b for b in known_bugs if not b.startswith("BUG")):
        print(f"note: {note}")
    assert not [b for b in known_bugs if b.startswith("BUG")], known_bugs


# --------------------------------------------------------------------------- phases


def portals_are_registered_by_the_sensor(dev: DagsterDev, warehouse: Engine) -> None:
    """The portal_registry sensor (RUNNING by default) adds one partition per portal."""

    def keys() -> list[str] | None:
        found = dev.graphql(PARTITION_KEYS, assetKey={"path": ["customers"]})["assetNodeOrError"]
        keys = found.get("partitionKeys") or []
        return keys if {"acme", "globex"} <= set(keys) else None

    assert sorted(dev.wait_for("portal partitions", keys, SENSOR_TIMEOUT)) == ["acme", "globex"]
    selector = {**REPOSITORY, "sensorName": "portal_registry"}
    sensor = dev.graphql(SENSOR_TICKS, selector=selector)["sensorOrError"]
    assert sensor["sensorState"]["status"] == "RUNNING"
    added = [
        key
        for tick in sensor["sensorState"]["ticks"]
        for result in tick["dynamicPartitionsRequestResults"]
        if result["type"] == "ADD_PARTITIONS" and result["partitionsDefName"] == "portal"
        for key in result["partitionKeys"] or []
    ]
    assert sorted(added) == ["acme", "globex"], "the partitions were not added by the sensor"
    with warehouse.connect() as connection:
        registered = connection.execute(select(m.portals.c.id).order_by(m.portals.c.id))
        assert registered.scalars().all() == ["acme", "globex"]


def force_sync_fills_the_warehouse(dev: DagsterDev, env: dict[str, str], warehouse: Engine):
    request_id = file_force_sync(env, "acme")
    run = wait_for_force_sync_run(dev, "acme", request_id)
    finished = dev.wait_for_run(run["runId"], "SUCCESS", RUN_TIMEOUT)
    assert finished["jobName"] == "portal_sync"
    for key, value in {
        "dagster/partition": "acme",
        PORTAL_TAG: "acme",
        FORCE_SYNC_TAG: "acme",
        "dagster/priority": "10",
        "datagate/requested-by": "e2e-test",
    }.items():
        assert tag(finished, key) == value, key

    with warehouse.connect() as connection:
        for table in (m.customers, m.products, m.agreements, m.sites):
            count = connection.execute(
                select(func.count()).select_from(table).where(table.c.portal_id == "acme")
            ).scalar_one()
            assert count > 0, f"no {table.name} after the sync"
        synced = connection.execute(
            select(m.portals.c.last_successful_sync_at).where(m.portals.c.id == "acme")
        ).scalar_one()
        assert synced is not None
        request = request_row(connection, request_id)
        assert request.status in ("launched", "done"), request
        assert request.run_id == f"force-sync:acme:{request_id}"
        # globex was registered, never synced.
        assert (
            connection.execute(
                select(func.count())
                .select_from(m.customers)
                .where(m.customers.c.portal_id == "globex")
            ).scalar_one()
            == 0
        )


def import_tax_rates_products_and_usage(warehouse: Engine, folder: Path) -> None:
    """The operator's CSV imports (written from the reference's first sync, like `datagate
    demo` does), after the first sync: each file is checked against the portal's customers
    and items. In-process: the CLI's import commands have their own tests and would cost
    seconds of start-up each here."""
    with warehouse.begin() as connection:
        import_files(connection, folder)
    with warehouse.connect() as connection:
        for table in (m.tax_rates, m.product_templates, m.usage_batches):
            assert connection.execute(select(func.count()).select_from(table)).scalar_one() > 0


def import_files(connection, folder: Path) -> None:
    import_tax_rates(connection, folder / "tax-rates.csv")
    import_product_templates(connection, "acme", folder / "products.csv")
    import_usage(connection, "acme", USAGE_PERIOD, folder / "usage.csv", imported_by="e2e-test")


def force_syncs_of_a_portal_never_overlap(
    dev: DagsterDev,
    warehouse: Engine,
    held: stack.PortalSim,
    *,
    meanwhile: Callable[[], dict[str, Any]],
) -> None:
    """Run 1 of the `held` portal is kept busy (its HaloPSA answers only when the test lets
    it); a request filed meanwhile becomes run 2, which the run queue holds until run 1 has
    ended; a third request joins run 2. `meanwhile` waits for another portal's run, which
    the held one must not hold up."""
    portal = held.id
    held.gate.close()
    try:
        first_id = file_request_now(warehouse, portal)
        first = wait_for_force_sync_run(dev, portal, first_id)
        dev.wait_for_run(first["runId"], "STARTED", RUN_TIMEOUT)
        dev.wait_for("run 1 to call HaloPSA", lambda: held.gate.held > 0, RUN_TIMEOUT)

        second_id = file_request_now(warehouse, portal)
        second = wait_for_force_sync_run(dev, portal, second_id)
        # Created NOT_STARTED, then submitted to the queue, where the portal limit keeps it.
        second = dev.wait_for(
            "run 2 to be submitted",
            lambda: (run := dev.run(second["runId"]))["status"] != "NOT_STARTED" and run,
            RUN_TIMEOUT,
        )
        assert second["status"] == "QUEUED", second
        assert dev.run(first["runId"])["status"] == "STARTED"

        third_id = file_request_now(warehouse, portal)

        def third_handled() -> Any:
            with warehouse.connect() as connection:
                row = request_row(connection, third_id)
            return row if row.status != "pending" else None

        third = dev.wait_for("request 3 to be handled", third_handled, SENSOR_TIMEOUT)
        assert (third.status, third.run_id) == ("coalesced", second["runId"])

        other = meanwhile()
        assert dev.run(first["runId"])["status"] == "STARTED"
        assert dev.run(second["runId"])["status"] == "QUEUED"
    finally:
        held.gate.open()

    first = dev.wait_for_run(first["runId"], "SUCCESS", RUN_TIMEOUT)
    second = dev.wait_for_run(second["runId"], "SUCCESS", RUN_TIMEOUT)
    assert second["startTime"] >= first["endTime"], (first, second)
    # The other portal's run ended while run 1 was busy: checked above by run 1's status
    # (STARTED) once `meanwhile` had returned, and here by the end times. Not by run 1's
    # startTime: one CI run saw Dagster report it seconds after the other run had ended,
    # though run 1 had been STARTED (and calling HaloPSA) before that run began.
    assert other["endTime"] < first["endTime"], (first, other)
    with warehouse.connect() as connection:
        statuses = [request_row(connection, i).status for i in (first_id, second_id, third_id)]
        assert statuses[0] in ("launched", "done") and statuses[1] in ("launched", "done")
        assert statuses[2] in ("coalesced", "done"), statuses
        pending = connection.execute(
            select(func.count())
            .select_from(m.force_sync_requests)
            .where(m.force_sync_requests.c.status == "pending")
        ).scalar_one()
        assert pending == 0
        synced = connection.execute(
            select(m.portals.c.last_successful_sync_at).where(m.portals.c.id == portal)
        ).scalar_one()
        assert synced is not None


def a_successful_run_of(dev: DagsterDev, backfill_id: str) -> dict[str, Any]:
    def succeeded() -> dict[str, Any] | None:
        runs = dev.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]["runs"]
        return next((run for run in runs if run["status"] == "SUCCESS"), None)

    return dev.wait_for(f"a run of backfill {backfill_id}", succeeded, BACKFILL_TIMEOUT)


def launch_backfill(dev: DagsterDev) -> str:
    """An asset backfill of invoice_lines + invoices for three periods of acme."""
    keys = [str(dg.MultiPartitionKey({"period": p.isoformat(), "portal": "acme"})) for p in PERIODS]
    assert keys[0] == "2026-06-01|acme"
    launched = dev.graphql(
        LAUNCH_BACKFILL,
        params={
            "assetSelection": [{"path": ["invoice_lines"]}, {"path": ["invoices"]}],
            "partitionNames": keys,
            "title": "e2e: acme 2026-06 … 2026-08",
            "tags": [{"key": "datagate/e2e", "value": "backfill"}],
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def wait_for_backfill(dev: DagsterDev, backfill_id: str) -> list[dict[str, Any]]:
    def done() -> dict[str, Any] | None:
        backfill = dev.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        if backfill["status"] in {"REQUESTED", "CANCELING", "FAILING"}:
            return None
        return backfill

    backfill = dev.wait_for(f"backfill {backfill_id}", done, BACKFILL_TIMEOUT, interval=1.0)
    if backfill["status"] != "COMPLETED_SUCCESS":
        failures = "\n".join(
            f"{run['runId']} {tag(run, 'dagster/partition')}: {dev.failure_summary(run['runId'])}"
            for run in backfill["runs"]
            if run["status"] != "SUCCESS"
        )
        pytest.fail(f"backfill ended {backfill['status']}: {backfill['error']}\n{failures}")
    assert backfill["numPartitions"] == len(PERIODS)
    return backfill["runs"]


def assert_periods_ran_in_order(runs: list[dict[str, Any]]) -> list[str]:
    """Each asset's periods ran one after another, in period order, and a period's invoices
    after its invoice lines. Returns the known bugs seen (the test xfails on them at the end)."""
    seen = sorted(
        (
            run["startTime"],
            run["endTime"],
            tag(run, "dagster/partition"),
            tuple(sorted(key["path"][-1] for key in run["assetSelection"] or [])),
            run["status"],
        )
        for run in runs
    )
    assert all(status == "SUCCESS" for *_, status in seen), seen
    keys = [f"{p.isoformat()}|acme" for p in PERIODS]
    finished: dict[tuple[str, str], float] = {}
    for asset in ("invoice_lines", "invoices"):
        mine = [(start, end, key) for start, end, key, assets, _ in seen if asset in assets]
        assert [key for *_, key in mine] == keys, (asset, seen)
        for (_, before_end, _), (after_start, _, _) in itertools.pairwise(mine):
            assert after_start >= before_end, (asset, seen)
        finished.update({(asset, key): end for _, end, key in mine})
    for start, _, key, assets, _ in seen:
        if assets == ("invoices",):
            assert start >= finished[("invoice_lines", key)], seen
    if len(seen) == len(PERIODS):
        return []
    # Observed with invoice_lines and invoices as two assets, each depending on its own
    # previous period: Dagster runs every period of invoice_lines, then every period of
    # invoices ("parent invoice_lines is requesting a different set of partitions from
    # invoices, meaning they cannot be grouped together in the same run"), one daemon tick
    # (30 s) each; invoice_lines of P+1 does not wait for invoices of P.
    return [
        f"the backfill made {len(seen)} runs, not one per period (still in order) "
        f"(all invoice_lines periods first, then all invoices periods): {[s[2:4] for s in seen]}"
    ]


def reference_sync(instance: dg.DagsterInstance, reference: Engine, portals_file: Path) -> None:
    """acme synced in-process (launch.run_sync) into the reference warehouse."""
    run_sync(instance, "acme", resources=reference_resources(reference, portals_file))


def reference_bill(instance: dg.DagsterInstance, reference: Engine, portals_file: Path) -> None:
    """acme billed period by period in-process (launch.run_billing), in the reference."""
    for period in PERIODS:
        run_billing(
            instance, "acme", period, resources=reference_resources(reference, portals_file)
        )


def reference_resources(reference: Engine, portals_file: Path) -> dict[str, dict[str, str]]:
    return {
        "portals": {"portals_file": str(portals_file)},
        "warehouse": {"database_url": reference.url.render_as_string(hide_password=False)},
    }


def closing_a_period_exports_it_exactly_once(
    dev: DagsterDev, warehouse: Engine, qbo: stack.QBOSim
) -> None:
    """The nightly close, launched by hand: the billing job with finalize for June numbers the
    drafts and exports them to HaloPSA and QBO; the same run again exports nothing twice."""
    period = PERIODS[0]
    first = dev.wait_for_run(launch_billing_run(dev, period, finalize=True), timeout=RUN_TIMEOUT)
    with warehouse.connect() as connection:
        final = dict(
            connection.execute(
                select(m.invoices.c.id, m.invoices.c.doc_number).where(
                    m.invoices.c.portal_id == "acme",
                    m.invoices.c.period == period,
                    m.invoices.c.status == "final",
                )
            ).all()
        )
        exported = exports_of(connection, final)
    assert final and all(final.values()), "nothing was finalized and numbered"
    for target in ("halopsa", "qbo"):
        done = {i for (i, t), row in exported.items() if t == target and row[0] == "exported"}
        assert done == set(final), f"{target}: {len(done)} of {len(final)} exported"
    in_qbo = sorted(invoice["DocNumber"] for invoice in qbo.invoices())
    assert in_qbo == sorted(final.values())

    again = dev.wait_for_run(launch_billing_run(dev, period, finalize=True), timeout=RUN_TIMEOUT)
    assert again["startTime"] >= first["endTime"]
    with warehouse.connect() as connection:
        assert exports_of(connection, final) == exported
    assert sorted(invoice["DocNumber"] for invoice in qbo.invoices()) == in_qbo


def approving_from_the_launchpad_finalizes_and_exports(
    dev: DagsterDev, env: dict[str, str], warehouse: Engine, qbo: stack.QBOSim
) -> None:
    """July, now that acme approves by hand: the review's fingerprint (CLI), the approve_period
    job launched with its typed config through GraphQL (what the launchpad sends), then the
    sensor's finalize_approved run at the top of the queue numbers and exports July."""
    period = PERIODS[1]
    review = json.loads(
        stack.datagate(env, "review", "--portal", "acme", "--period", "2026-07", "--json")
    )
    assert review["state"] == "ready for review" and review["fingerprint"]
    launched = dev.graphql(
        LAUNCH_RUN,
        params={
            "selector": {**REPOSITORY, "jobName": "approve_period"},
            "runConfigData": {
                "ops": {
                    "approve": {
                        "config": {
                            "portal": "acme",
                            "period": "2026-07",
                            "approved_by": "e2e-operator",
                            "fingerprint": review["fingerprint"],
                            "note": "approved from the launchpad",
                            "except_invoices": [],
                        }
                    }
                }
            },
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    dev.wait_for_run(launched["run"]["runId"], timeout=RUN_TIMEOUT)

    def finalize_run() -> dict[str, Any] | None:
        runs = dev.runs(job="finalize_approved", tags={"datagate/approval": "1"})
        return runs[0] if runs else None

    run = dev.wait_for("the approval's finalize_approved run", finalize_run, SENSOR_TIMEOUT)
    finished = dev.wait_for_run(run["runId"], timeout=RUN_TIMEOUT)
    assert tag(finished, "dagster/priority") == "10"
    assert tag(finished, "dagster/partition") == "2026-07-01|acme"
    with warehouse.connect() as connection:
        finals = dict(
            connection.execute(
                select(m.invoices.c.invoice_key, m.invoices.c.doc_number).where(
                    m.invoices.c.portal_id == "acme",
                    m.invoices.c.period == period,
                    m.invoices.c.status == "final",
                )
            ).all()
        )
        approval = connection.execute(select(m.approvals)).one()
        trail = connection.execute(
            select(m.audit_events.c.action, m.audit_events.c.actor).where(
                m.audit_events.c.period == period
            )
        ).all()
    # every approved draft is final (rule 4 could hold one back only behind a June hold)
    assert finals and set(finals) <= set(approval.invoices)
    assert (approval.status, approval.approved_by) == ("finalized", "e2e-operator")
    assert ("approve", "e2e-operator") in trail
    assert sum(1 for action, _ in trail if action == "finalize") == len(finals)
    july_numbers = set(finals.values())
    assert july_numbers <= {invoice["DocNumber"] for invoice in qbo.invoices()}


def exports_of(connection, invoices: dict[int, str]) -> dict[tuple[int, str], tuple]:
    rows = connection.execute(
        select(m.exports).where(m.exports.c.invoice_id.in_(list(invoices)))
    ).all()
    return {
        (row.invoice_id, row.target): (row.status, row.external_id, row.external_number)
        for row in rows
    }


def launch_billing_run(dev: DagsterDev, period: date, *, finalize: bool) -> str:
    """A billing run for acme and `period` submitted through GraphQL (queued like any run)."""
    partition = str(dg.MultiPartitionKey({"period": period.isoformat(), "portal": "acme"}))
    tags = {
        "dagster/partition": partition,
        "dagster/partition/period": period.isoformat(),
        PORTAL_TAG: "acme",
    }
    launched = dev.graphql(
        LAUNCH_RUN,
        params={
            "selector": {**REPOSITORY, "jobName": "billing"},
            "runConfigData": {"ops": {"invoices": {"config": {"finalize": finalize}}}},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def exports_are_defined(dev: DagsterDev) -> bool:
    """Whether the code location has the QBO export assets (then the test exports too)."""
    found = dev.graphql(
        "query Node($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename } }",
        key={"path": ["qbo_invoice_export"]},
    )
    return found["assetNodeOrError"]["__typename"] == "AssetNode"


def the_asset_graph_renders(dev: DagsterDev, chromium: str, output: Path) -> None:
    """The billing and HaloPSA asset groups' graphs, with their assets, in headless Chromium."""
    dev.graphql("mutation { setNuxSeen }")  # no "join the community" dialog over the graph
    pages = {
        "billing": ["invoice_lines", "invoices"],
        "halopsa": ["halo_clients", "halo_recurring_invoices"],
    }
    for group, assets in pages.items():
        page = render(
            chromium,
            f"{dev.url}/locations/datagate/asset-groups/{group}",
            output / f"asset-graph-{group}.png",
            wait_for_text=assets,
        )
        (output / f"asset-graph-{group}.html").write_text(page.html)
        for asset in assets:
            assert asset in page.text
        assert page.screenshot.stat().st_size > 20_000  # a drawn graph, not a blank page
    # The review an operator reads before approving: July's invoice_review partition.
    partition = quote("2026-07-01|acme", safe="")
    page = render(
        chromium,
        f"{dev.url}/assets/invoice_review?view=partitions&partition={partition}",
        output / "invoice-review.png",
        wait_for_text=["invoice_review", "fingerprint"],
    )
    (output / "invoice-review.html").write_text(page.html)
    for label in ("flagged_invoices", "changes_by_kind", "total_by_period"):
        assert label in page.text, label


def no_secret_leaked(
    dev: DagsterDev, warehouse: Engine, storage: stack.Storage, secrets: list[str]
) -> None:
    """No client secret or refresh token in dagster dev's log, DAGSTER_HOME (run logs, compute
    logs, SQLite event logs), Dagster's PostgreSQL event log, or the warehouse's request log."""
    files = [dev.log, *(p for p in dev.home.rglob("*") if p.is_file())]
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"a client secret is in {path}"
    with warehouse.connect() as connection:
        logged = connection.execute(
            select(m.api_requests.c.path, m.api_requests.c.query, m.api_requests.c.error)
        ).all()
    assert logged, "the request log is empty"
    for secret in secrets:
        assert not [row for row in logged if secret in repr(tuple(row))], "a secret was logged"
    if storage.database:
        dagster_db = make_engine(
            storage.warehouse_url.split("?", 1)[0]
        )  # Dagster's tables are in the public schema
        try:
            with dagster_db.connect() as connection:
                for secret in secrets:
                    found = connection.execute(
                        text("select count(*) from event_logs where event like :s"),
                        {"s": f"%{secret}%"},
                    ).scalar_one()
                    assert found == 0, "a client secret is in Dagster's event log"
        finally:
            dagster_db.dispose()


# --------------------------------------------------------------------------- helpers


def force_sync_requests_left_open(warehouse: Engine) -> list[str]:
    """Minutes after their runs succeeded, no force-sync request should still look open."""
    requests = m.force_sync_requests
    with warehouse.connect() as connection:
        still = dict(
            connection.execute(
                select(requests.c.status, func.count())
                .where(requests.c.status.in_(("pending", "launched")))
                .group_by(requests.c.status)
            ).all()
        )
    if not still:
        return []
    return [
        f"BUG sensors/force_sync.py: force-sync requests whose runs succeeded stay open {still}: "
        "nothing writes status 'done', so `datagate portals status` (open_requests_by_portal) "
        "counts them as open forever"
    ]


def file_force_sync(env: dict[str, str], portal_id: str) -> int:
    out = stack.datagate(env, "force-sync", "--portal", portal_id)
    match = re.search(r"force-sync request (\d+) filed for portal", out)
    assert match, out
    return int(match.group(1))


def file_request_now(warehouse: Engine, portal_id: str) -> int:
    """What `datagate force-sync` does, without its few seconds of start-up (the CLI itself
    is exercised by the first force sync)."""
    with warehouse.begin() as connection:
        return file_request(connection, portal_id, "e2e-test")


def wait_for_force_sync_run(dev: DagsterDev, portal_id: str, request_id: int) -> dict[str, Any]:
    """The run the force_sync sensor launched for this request (its run key names it)."""
    run_key = f"force-sync:{portal_id}:{request_id}"

    def launched() -> dict[str, Any] | None:
        runs = dev.runs(job="portal_sync", tags={"dagster/run_key": run_key})
        return runs[0] if runs else None

    return dev.wait_for(f"the run for force-sync request {request_id}", launched, SENSOR_TIMEOUT)


def request_row(connection, request_id: int):
    return connection.execute(
        select(m.force_sync_requests).where(m.force_sync_requests.c.id == request_id)
    ).one()


def write_imports(synced: Engine, folder: Path) -> None:
    """tax-rates.csv, products.csv and usage.csv for acme, from a synced warehouse."""
    with synced.connect() as connection:
        groups = dict(
            connection.execute(
                select(m.item_groups.c.halo_id, m.item_groups.c.name).where(
                    m.item_groups.c.portal_id == "acme"
                )
            ).all()
        )
        items = connection.execute(
            select(m.items.c.halo_id, m.items.c.name, m.items.c.item_group_id).where(
                m.items.c.portal_id == "acme"
            )
        ).all()
        zips = {
            z.split("-")[0].strip().upper()
            for z in connection.execute(
                select(m.sites.c.zip).where(m.sites.c.portal_id == "acme")
            ).scalars()
            if z
        }
        customer_ids = (
            connection.execute(
                select(m.customers.c.halo_client_id)
                .where(m.customers.c.portal_id == "acme", m.customers.c.active.is_(True))
                .order_by(m.customers.c.halo_client_id)
            )
            .scalars()
            .all()
        )
    assert items and zips and customer_ids
    (folder / "products.csv").write_text(
        "item_id,item_name,tax_code,income_account\n"
        + "".join(
            f"{item.halo_id},,{TAX_CODE_BY_GROUP.get(groups.get(item.item_group_id, ''), 'SVC')},\n"
            for item in items
        )
    )
    (folder / "tax-rates.csv").write_text(demo_tax_rates(zips))
    (folder / "usage.csv").write_text(demo_usage(list(customer_ids), USAGE_PERIOD))


def billed(engine: Engine) -> dict[tuple[date, str], dict[str, Any]]:
    """acme's invoices for PERIODS by (period, invoice key), with their lines."""
    invoices, lines = m.invoices, m.invoice_lines
    with engine.connect() as connection:
        rows = connection.execute(
            select(invoices).where(invoices.c.portal_id == "acme", invoices.c.period.in_(PERIODS))
        ).all()
        line_rows = connection.execute(
            select(lines, invoices.c.invoice_key)
            .join(invoices, invoices.c.id == lines.c.invoice_id)
            .where(invoices.c.portal_id == "acme", invoices.c.period.in_(PERIODS))
            .order_by(lines.c.line_no)
        ).all()
    by_invoice: dict[str, list[tuple]] = {}
    for line in line_rows:
        by_invoice.setdefault(line.invoice_key, []).append(
            (
                line.line_no,
                line.kind,
                line.product_id,
                line.description,
                line.service_month,
                line.site_id,
                line.qty,
                line.unit_price,
                line.amount,
                line.tax_code,
                line.tax_rate,
                line.tax,
            )
        )
    return {
        (row.period, row.invoice_key): {
            "customer_id": row.customer_id,
            "agreement_key": row.agreement_key,
            "status": row.status,
            "hold_reasons": row.hold_reasons,
            "invoice_date": row.invoice_date,
            "due_date": row.due_date,
            "subtotal": row.subtotal,
            "tax": row.tax,
            "total": row.total,
            "lines": by_invoice.get(row.invoice_key, []),
        }
        for row in rows
    }


def assert_same_invoices(backfilled: dict, one_by_one: dict) -> None:
    assert {period for period, _key in backfilled} == set(PERIODS), "a period billed nothing"
    assert any(invoice["tax"] for invoice in backfilled.values()), "no invoice carries tax"
    assert backfilled.keys() == one_by_one.keys()
    for key, invoice in backfilled.items():
        assert invoice == one_by_one[key], key
