"""`datagate` commands as an operator uses them: one-line errors, exit codes, real effects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import click
import pytest
from sqlalchemy import func, insert, select

from datagate_pipelines.cli import COMMANDS, main
from datagate_pipelines.warehouse import models as m


def test_help_lists_every_command(cli):
    code, out = cli("--help")
    assert code == 0
    for command in (
        "portals",
        "sync",
        "bill",
        "force-sync",
        "import",
        "usage",
        "invoices",
        "requests",
        "prune-requests",
        "simulators",
        "demo",
        "review",
        "approve",
        "hold",
        "release",
        "audit",
    ):
        assert command in out


def datagate_fields(backend) -> list[dict]:
    return [
        r for r in backend.list("FieldInfo").rows if r["name"].lower() in ("datagate", "cfdatagate")
    ]


def test_portals_check_creates_the_datagate_field_once(cli, halo_stack):
    backend = halo_stack.sim.backend
    for field in datagate_fields(backend):  # a tenant that never had the field
        backend.delete("FieldInfo", field["id"])
    others = len(backend.list("FieldInfo").rows)
    code, out = cli("portals", "check")
    assert code == 0, out
    assert "ok   portal acme" in out and "custom field 'Datagate' created" in out
    assert len(datagate_fields(backend)) == 1
    code, out = cli("portals", "check", "--portal", "acme")
    assert code == 0 and "custom field 'Datagate' present" in out
    assert len(datagate_fields(backend)) == 1
    assert len(backend.list("FieldInfo").rows) == others + 1


def test_portals_check_reports_a_bad_secret_and_exits_non_zero(cli, monkeypatch, halo_stack):
    monkeypatch.setenv("ACME_HALO_CLIENT_SECRET", "not-the-secret")
    code, out = cli("portals", "check")
    assert code == 1
    assert "FAIL portal acme" in out and "not-the-secret" not in out


def test_unknown_portal_is_one_line_and_non_zero(cli, halo_stack):
    code, out = cli("sync", "--portal", "nope")
    assert code == 1
    assert out.strip().splitlines() == [
        f"error: portal nope: id: no such portal in {halo_stack.portals_file}"
    ]


@pytest.mark.slow
def test_bill_refuses_periods_out_of_order(cli, halo_stack):
    code, out = cli("sync", "--portal", "acme")
    assert code == 0, out
    code, out = cli("bill", "--portal", "acme", "--period", "2026-09")
    assert code == 1
    assert "bill 2026-08 before 2026-09" in out
    assert "Traceback" not in out


@pytest.mark.slow
def test_bill_a_range_in_order_then_list_invoices_as_json(cli, engine, halo_stack):
    assert cli("sync", "--portal", "acme")[0] == 0
    code, out = cli("bill", "--portal", "acme", "--from", "2026-07", "--to", "2026-08")
    assert code == 0, out
    assert out.index("2026-07") < out.index("2026-08")
    code, out = cli("invoices", "--portal", "acme", "--period", "2026-07", "--json")
    assert code == 0
    documents = json.loads(out)
    assert documents, "the generated tenant bills something in 2026-07"
    first = documents[0]
    assert set(first) >= {
        "portal",
        "period",
        "number",
        "status",
        "hold_reasons",
        "customer",
        "agreement",
        "subtotal",
        "tax",
        "total",
        "site_subtotals",
        "lines",
        "halo_invoice_id",
        "qbo_invoice_id",
    }
    assert first["period"] == "2026-07" and first["status"] in ("draft", "held")
    for doc in documents:
        line_sum = sum(__import__("decimal").Decimal(line["amount"]) for line in doc["lines"])
        assert __import__("decimal").Decimal(doc["subtotal"]) == line_sum


@pytest.mark.slow
def test_product_template_round_trip(cli, engine, tmp_path, halo_stack):
    assert cli("sync", "--portal", "acme")[0] == 0
    template = tmp_path / "template.csv"
    code, out = cli("import", "products", "--portal", "acme", "--template", str(template))
    assert code == 0, out
    lines = template.read_text().splitlines()
    assert lines[0] == "item_id,item_name,tax_code,income_account" and len(lines) > 2
    filled = [lines[0]] + [
        row.replace(",,", ",TEL,", 1) if row.count(",") == 3 and row.endswith(",,") else row
        for row in lines[1:]
    ]
    template.write_text("\n".join([*filled, "999999,Not An Item,TEL,"]) + "\n")
    unknown = f"line {len(filled) + 1}, column item_id: no HaloPSA item 999999 in portal acme"
    for dry_run in (["--dry-run"], []):
        code, out = cli("import", "products", str(template), "--portal", "acme", *dry_run)
        assert code == 1 and unknown in out and out.endswith("1 bad row, nothing imported\n")
    with engine.connect() as c:
        assert c.execute(select(m.product_templates)).all() == []
    template.write_text("\n".join(filled) + "\n")
    code, out = cli("import", "products", str(template), "--portal", "acme")
    assert code == 0 and f"imported {len(lines) - 1} new" in out
    with engine.connect() as c:
        assert len(c.execute(select(m.product_templates)).all()) == len(lines) - 1
    code, out = cli("import", "products", "--portal", "acme", "--template", str(template))
    assert ",TEL," in template.read_text()  # already-mapped codes are kept in a new template


def test_force_sync_files_a_request_and_rejects_unknown_portals(cli, engine, halo_stack):
    code, out = cli("force-sync", "--portal", "acme")
    assert code == 0 and "filed for portal acme" in out
    code, out = cli("force-sync", "--portal", "ghost")
    assert code == 1 and out.splitlines() == [
        f"error: portal ghost: id: no such portal in {halo_stack.portals_file}"
    ]
    with engine.connect() as c:
        rows = {r.portal_id: r.status for r in c.execute(select(m.force_sync_requests))}
    assert rows == {"acme": "pending"}  # nothing is filed for an unknown portal
    code, out = cli("portals", "status", "--json")
    status = json.loads(out)
    assert status[0]["portal"] == "acme" and status[0]["pending_force_syncs"] == 1


def test_requests_log_filters_errors(cli, monkeypatch, halo_stack):
    assert cli("sync", "--portal", "acme")[0] == 0
    code, out = cli("requests", "--portal", "acme", "--json", "--limit", "500")
    records = json.loads(out)
    assert records and {r["system"] for r in records} == {"halopsa"}
    monkeypatch.setenv("ACME_HALO_CLIENT_SECRET", "wrong")
    cli("portals", "check")
    code, out = cli("requests", "--errors")
    assert code == 0 and "401" in out and "wrong" not in out


def test_an_unreachable_warehouse_is_one_line(cli, monkeypatch):
    monkeypatch.setenv("DATAGATE_DATABASE_URL", "postgresql://nobody:hunter2@127.0.0.1:1/none")
    code, out = cli("requests")
    assert code == 1
    assert len(out.strip().splitlines()) == 1 and out.startswith(
        "error: cannot reach the warehouse"
    )
    assert "hunter2" not in out


def test_prune_requests_keeps_the_retention(cli, engine, halo_stack):
    assert cli("sync", "--portal", "acme")[0] == 0
    old = datetime.now(UTC) - timedelta(days=100)
    with engine.begin() as c:
        recent = c.execute(select(func.count()).select_from(m.api_requests)).scalar_one()
        c.execute(
            insert(m.api_requests),
            [
                {
                    "system": "halopsa",
                    "direction": "outbound",
                    "portal_id": portal,
                    "method": "GET",
                    "path": "/api/Client",
                    "status": 200,
                    "duration_ms": 5,
                    "attempt": 1,
                    "started_at": old,
                }
                for portal in ("acme", "acme", "other", None)
            ],
        )

    def count() -> int:
        with engine.connect() as c:
            return c.execute(select(func.count()).select_from(m.api_requests)).scalar_one()

    code, out = cli("prune-requests", "--older-than", "90d", "--dry-run")
    assert code == 0 and out.startswith("would delete 4 request(s) started before")
    assert count() == recent + 4
    code, out = cli("prune-requests", "--older-than", "90d", "--portal", "acme")
    assert code == 0 and out.startswith("deleted 2 request(s) of portal acme")
    code, out = cli("prune-requests", "--older-than", "2160h")
    assert code == 0 and out.startswith("deleted 2 request(s)")
    assert count() == recent  # this sync's requests are kept
    code, out = cli("prune-requests", "--older-than", "soon")
    assert code == 2 and "90d" in out and count() == recent


def test_the_help_lists_each_command_with_its_own_short_help():
    context = click.Context(main)
    for name, (_module, _attribute, short) in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=1000) == short, name


READ_ONLY = """
import json, sys
from datagate_pipelines.cli import main
loaded = {}
loaded["import"] = sorted(m for m in ("dagster", "pandas", "numpy") if m in sys.modules)
for args in (["--help"], ["requests"], ["portals", "status"], ["invoices", "--portal", "acme", "--period", "2026-07"]):
    try:
        main(args, standalone_mode=False)
    except SystemExit:
        pass
    loaded[" ".join(args)] = sorted(
        m for m in ("dagster", "pandas", "numpy", "alembic") if m in sys.modules
    )
print(json.dumps(loaded))
"""


def test_help_and_the_read_only_commands_load_neither_dagster_nor_pandas(cli, halo_stack, tmp_path):
    assert cli("requests")[0] == 0  # the warehouse exists, at the newest revision
    result = subprocess.run(
        [sys.executable, "-c", READ_ONLY],
        capture_output=True,
        text=True,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = eval(result.stdout.strip().splitlines()[-1])
    assert loaded == {
        "import": [],
        "--help": [],
        "requests": [],
        "portals status": [],
        "invoices --portal acme --period 2026-07": [],
    }


def add_requests(engine, count: int) -> None:
    with engine.begin() as c:
        c.execute(
            insert(m.api_requests),
            [
                {
                    "system": "halopsa",
                    "direction": "outbound",
                    "portal_id": "acme",
                    "method": "GET",
                    "path": f"/api/Client/{n}",
                    "status": 200,
                    "duration_ms": 5,
                    "attempt": 1,
                    "started_at": datetime(2026, 7, 1, tzinfo=UTC) + timedelta(seconds=n),
                }
                for n in range(count)
            ],
        )


def test_requests_says_when_the_limit_hides_rows(datagate, engine, halo_stack):
    add_requests(engine, 1234)
    result = datagate("requests", "--portal", "acme")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 51 and "/api/Client/1233" in lines[0]
    assert lines[-1] == "showing 50 of 1,234; use --limit 1234 to see them all"

    result = datagate("requests", "--portal", "acme", "--limit", "3", "--json")
    assert [r["path"] for r in json.loads(result.stdout)] == [
        "/api/Client/1233",
        "/api/Client/1232",
        "/api/Client/1231",
    ]
    assert result.stderr == "showing 3 of 1,234; use --limit 1234 to see them all\n"

    result = datagate("requests", "--portal", "acme", "--limit", "1234")
    assert len(result.stdout.splitlines()) == 1234  # all shown: no note


def test_requests_says_nothing_more_when_everything_is_shown(datagate, engine, halo_stack):
    add_requests(engine, 3)
    result = datagate("requests", "--limit", "3", "--json")
    assert len(json.loads(result.stdout)) == 3 and result.stderr == ""
