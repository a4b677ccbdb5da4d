"""Nothing fails silently: each fault, the same truth in four places (issue "Nothing fails
silently", Tests) — the Dagster run and its asset check, the CLI's exit status and output,
`portals status`, and `invoices --json`. On SQLite and PostgreSQL; real HTTP to the
HaloPSA and QBO simulators on loopback, the CLI in-process on its own Dagster home.

| fault | run / check | CLI | portals status | invoices --json |
|---|---|---|---|---|
| QBO refuses an invoice inside a batch | FAILURE / ERROR | 3, the line | 1 failed | qbo failed, code |
| HaloPSA answers 400 to a create | FAILURE / ERROR | 3, the line | 1 failed | halopsa failed, HTTP 400 |
| a negative total | SUCCESS / passed | 0 | 0 failed | credit memo + credit note |
| a secret unset | no run | 1, names it | unchanged | unchanged |
| an expired refresh token | FAILURE | 1, reconnect | last run FAILURE | nothing numbered |
| a bad CSV row of each kind | no run | 1, the row | unchanged | unchanged |
| the same usage under two names | no run | 1, the batch | unchanged | usage billed once |
| a run failing inside Dagster | FAILURE | 1, root cause | last run FAILURE | unchanged |
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import func, select

from datagate_pipelines.warehouse import models as m
from tests.commands.conftest import QBOCompany, without_progress

JULY, AUGUST = "2026-07", "2026-08"


@pytest.fixture
def desk(datagate, engine, halo_stack, qbo_company, tmp_path, monkeypatch):
    """A portal ready to bill: synced, with a tax rate for every zip and a template for
    every item its products use; its commands and the four places to look."""
    monkeypatch.chdir(tmp_path)
    return Desk(datagate, engine, halo_stack, qbo_company, tmp_path)


class Desk:
    def __init__(self, datagate, engine, stack, qbo: QBOCompany, folder: Path):
        self.run, self.engine, self.stack, self.qbo, self.folder = (
            datagate,
            engine,
            stack,
            qbo,
            folder,
        )

    # -- the work ---------------------------------------------------------------------------

    def prepare(self) -> None:
        assert self.run("sync", "--portal", "acme").exit_code == 0
        with self.engine.connect() as c:
            zips = {z.split("-")[0] for (z,) in c.execute(select(m.customers.c.zip)) if z}
            zips |= {z.split("-")[0] for (z,) in c.execute(select(m.sites.c.zip)) if z}
            items = sorted(set(c.execute(select(m.products.c.item_id)).scalars()))
        self.write("rates.csv", "zip,tax_code,jurisdiction,rate\n")
        self.write(
            "rates.csv",
            "zip,tax_code,jurisdiction,rate\n"
            + "".join(f"{z},TEL,State,0.0625\n" for z in sorted(zips)),
        )
        self.write(
            "products.csv",
            "item_id,item_name,tax_code,income_account\n" + "".join(f"{i},,TEL,\n" for i in items),
        )
        assert self.run("import", "tax-rates", "rates.csv").exit_code == 0
        assert self.run("import", "products", "products.csv", "--portal", "acme").exit_code == 0

    def write(self, name: str, text: str) -> None:
        (self.folder / name).write_text(text)

    def bill(self, period: str) -> Any:
        return self.run("bill", "--portal", "acme", "--period", period, "--export")

    # -- the four places --------------------------------------------------------------------

    def last_run(self) -> dg.DagsterRun | None:
        home = self.folder / "dagster_home"
        if not (home / "dagster.yaml").exists():
            return None
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(limit=1)
            return runs[0] if runs else None

    def check(self, name: str, asset: str, period: str) -> Any:
        """The latest evaluation of an export check, for the period's partition."""
        partition = str(dg.MultiPartitionKey({"period": f"{period}-01", "portal": "acme"}))
        with dg.DagsterInstance.from_config(str(self.folder / "dagster_home")) as instance:
            key = dg.AssetCheckKey(dg.AssetKey(asset), name)
            records = instance.event_log_storage.get_asset_check_execution_history(key, limit=20)
        for record in records:
            evaluation = record.event.dagster_event.event_specific_data if record.event else None
            if evaluation is not None and evaluation.partition == partition:
                return evaluation
        return None

    def status(self) -> dict[str, Any]:
        result = self.run("portals", "status", "--json")
        assert result.exit_code == 0, result.output
        (row,) = [r for r in json.loads(result.stdout) if r["portal"] == "acme"]
        return row

    def invoices(self, period: str) -> list[dict[str, Any]]:
        result = self.run("invoices", "--portal", "acme", "--period", period, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def exports(self, period: str, target: str) -> dict[str, dict[str, Any]]:
        """Each final invoice's export to `target`, by its number."""
        return {
            doc["number"]: next(e for e in doc["exports"] if e["target"] == target)
            for doc in self.invoices(period)
            if doc["exports"]
        }


def failed(exports: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {number: e for number, e in exports.items() if e["status"] == "failed"}


def test_qbo_refusing_an_invoice_inside_a_batch(desk):
    desk.prepare()
    assert desk.bill(JULY).exit_code == 0
    # Someone makes an item inactive in QuickBooks: the invoices using it are refused (610)
    # inside batches answered with HTTP 200; the other invoices go through.
    company = desk.qbo.backend.company("9130350000000077")
    item = company.records("Item")[-1]
    company.update(
        "Item", {"Id": item["Id"], "SyncToken": item["SyncToken"], "sparse": True, "Active": False}
    )
    result = desk.bill(AUGUST)

    refused = failed(desk.exports(AUGUST, "qbo"))
    assert refused and {e["code"] for e in refused.values()} == {"610"}
    number = min(refused)
    assert result.exit_code == 3
    lines = [line for line in result.stderr.splitlines() if line.startswith("export failed: ")]
    assert len(lines) == len(refused) and all("→ qbo:" in line and "610" in line for line in lines)
    run = desk.last_run()
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
    check = desk.check("qbo_exports_match", "qbo_invoice_export", AUGUST)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert number in check.description
    assert desk.check("halo_exports_match", "halo_invoice_export", AUGUST).passed
    status = desk.status()
    assert status["failed_exports"] == len(refused) and status["oldest_failed_export_since"]
    assert status["last_run"]["status"] == "FAILURE"
    errors = desk.run("requests", "--errors", "--system", "qbo", "--json").stdout
    assert any("batch item bId" in (r["error"] or "") for r in json.loads(errors))


def test_halopsa_refusing_a_create(desk):
    desk.prepare()
    with desk.engine.connect() as c:
        item_id = c.execute(select(m.products.c.item_id).limit(1)).scalar_one()
    # The item is deleted in HaloPSA after the sync: HaloPSA answers 400 to the invoices using it.
    desk.stack.sim.backend.table("Item").remove(item_id)
    result = desk.bill(JULY)

    refused = failed(desk.exports(JULY, "halopsa"))
    assert refused and {e["code"] for e in refused.values()} == {"HTTP 400"}
    assert all(f"Item {item_id} does not exist" in e["error"] for e in refused.values())
    assert result.exit_code == 3
    assert sum("→ halopsa: HTTP 400" in line for line in result.stderr.splitlines()) == len(refused)
    assert desk.last_run().status == dg.DagsterRunStatus.FAILURE
    check = desk.check("halo_exports_match", "halo_invoice_export", JULY)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert desk.status()["failed_exports"] == len(refused)


def test_a_negative_total_becomes_a_credit_in_both_targets(desk):
    desk.prepare()
    customer = with_a_discount_larger_than_its_charges(desk)
    assert desk.run("sync", "--portal", "acme").exit_code == 0
    result = desk.bill(JULY)

    assert result.exit_code == 0, result.output
    (credit,) = [d for d in desk.invoices(JULY) if d["customer"]["halo_id"] == customer]
    assert Decimal(credit["total"]) < 0
    assert credit["status"] == "exported" and credit["number"]
    types = {e["target"]: e["type"] for e in credit["exports"]}
    assert types == {"halopsa": "credit_note", "qbo": "CreditMemo"}
    assert desk.last_run().status == dg.DagsterRunStatus.SUCCESS
    assert desk.check("qbo_exports_match", "qbo_invoice_export", JULY).passed
    assert desk.status()["failed_exports"] == 0


def with_a_discount_larger_than_its_charges(desk) -> int:
    """One billed product's recurring-invoice line (quantity above 0; a 0 bills 0.00) at
    -9999.99 in HaloPSA, synced once before: its customer's invoice totals below zero.
    Returns the customer's HaloPSA id."""
    sim = desk.stack.sim
    with desk.engine.connect() as c:
        customer, line_id = c.execute(
            select(m.products.c.customer_id, m.products.c.source_line_id)
            .join(m.customers, m.customers.c.halo_client_id == m.products.c.customer_id)
            .where(m.customers.c.active.is_(True), m.products.c.end_date.is_(None))
            .where(m.products.c.qty > 0)
            .order_by(m.products.c.customer_id, m.products.c.source_line_id)
            .limit(1)
        ).one()
    (header,) = [
        r
        for r in sim.backend.table("RecurringInvoice").values()
        if any(line["id"] == line_id for line in r["lines"])
    ]
    lines = [dict(line) for line in header["lines"]]
    for line in lines:
        if line["id"] == line_id:
            line["unit_price"] = -9999.99
    sim.backend.upsert("RecurringInvoice", [{"id": header["id"], "lines": lines}])
    return customer


def test_a_secret_unset(desk, monkeypatch):
    desk.prepare()
    before = (desk.status(), desk.invoices(JULY), desk.last_run().run_id)
    monkeypatch.delenv("ACME_QBO_CLIENT_SECRET")
    result = desk.bill(JULY)

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert "ACME_QBO_CLIENT_SECRET" in result.stderr and "portal acme" in result.stderr
    assert (desk.status(), desk.invoices(JULY), desk.last_run().run_id) == before  # no run


def test_an_expired_refresh_token(desk):
    desk.prepare()
    assert desk.run("sync", "--portal", "acme").exit_code == 0
    desk.qbo.clock.advance(timedelta(days=102).total_seconds())  # past a token's 100 days
    result = desk.bill(JULY)

    assert result.exit_code == 1
    # Progress lines of the steps that ran, then one line: the root cause.
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert line == result.stderr.splitlines()[-1] and "reconnect" in line
    assert desk.last_run().status == dg.DagsterRunStatus.FAILURE
    # Numbering asks QBO which numbers are taken: without QBO nothing is numbered or sent.
    invoices = desk.invoices(JULY)
    assert invoices and all(d["number"] is None and d["exports"] == [] for d in invoices)
    assert {d["status"] for d in invoices} <= {"draft", "held"}
    status = desk.status()
    assert status["last_run"]["status"] == "FAILURE" and status["failed_exports"] == 0


@pytest.mark.parametrize(
    ("kind", "args", "text", "reason"),
    [
        ("tax-rates", [], "zip,tax_code,jurisdiction,rate\n94107,TEL,State,1,5\n", "line 2"),
        ("products", ["--portal", "acme"], "item_id,item_name,tax_code,income_account\n999999,,TEL,\n", "line 2"),
        ("usage", ["--portal", "acme", "--period", JULY], "customer_id,customer_name,site_id,description,amount,tax_code,usage_date\n1,,,Calls,abc,TEL,2026-07-10\n", "line 2"),
    ],
    ids=["tax-rates", "products", "usage"],
)  # fmt: skip
def test_a_bad_csv_row_writes_nothing(desk, kind, args, text, reason):
    assert desk.run("sync", "--portal", "acme").exit_code == 0
    tables = (m.tax_rates, m.product_templates, m.usage_charges)
    before = (desk.status(), desk.invoices(JULY), count_rows(desk.engine, tables))
    desk.write("bad.csv", text)
    result = desk.run("import", kind, "bad.csv", *args)

    assert result.exit_code == 1
    assert reason in result.stderr and "nothing imported" in result.stderr.splitlines()[-1]
    assert (desk.status(), desk.invoices(JULY), count_rows(desk.engine, tables)) == before


def test_the_same_usage_under_two_names_is_billed_once(desk):
    desk.prepare()
    with desk.engine.connect() as c:
        customer = c.execute(
            select(func.min(m.products.c.customer_id))
            .join(m.customers, m.customers.c.halo_client_id == m.products.c.customer_id)
            .where(m.customers.c.active.is_(True))
        ).scalar_one()
    usage = (
        "customer_id,customer_name,site_id,description,amount,tax_code,usage_date\n"
        f"{customer},,,Calls July,12.34,TEL,2026-07-20\n"
    )
    desk.write("usage-a.csv", usage)
    desk.write("usage-b.csv", usage)
    usage_args = ("--portal", "acme", "--period", JULY)
    assert desk.run("import", "usage", "usage-a.csv", *usage_args).exit_code == 0
    again = desk.run("import", "usage", "usage-b.csv", *usage_args)

    assert again.exit_code == 1 and "usage-a.csv" in again.stderr
    assert desk.bill(JULY).exit_code == 0
    usage_lines = [
        line for doc in desk.invoices(JULY) for line in doc["lines"] if line["kind"] == "usage"
    ]
    assert [line["amount"] for line in usage_lines] == ["12.34"]
    assert desk.status()["failed_exports"] == 0


def test_a_run_failing_inside_dagster(desk, monkeypatch):
    monkeypatch.setenv("ACME_HALO_CLIENT_SECRET", "not-the-secret")  # set, but wrong
    result = desk.run("sync", "--portal", "acme")

    assert result.exit_code == 1
    (line,) = without_progress(result.stderr)
    assert line.startswith("error: halopsa portal acme: POST /auth/token failed: HTTP 401")
    assert "not-the-secret" not in result.output and "Traceback" not in result.output
    assert desk.last_run().status == dg.DagsterRunStatus.FAILURE
    assert desk.status()["last_run"]["status"] == "FAILURE"
    assert desk.invoices(JULY) == []


def count_rows(engine, tables) -> list[int]:
    with engine.connect() as c:
        return [c.execute(select(func.count()).select_from(t)).scalar_one() for t in tables]
