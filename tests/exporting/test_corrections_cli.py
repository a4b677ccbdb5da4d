"""`datagate credit` / `datagate void` and the credit_invoice / void_invoice jobs, over
loopback HTTP to both simulators, on invoices finalized and exported for July 2026; SQLite
and PostgreSQL."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from datagate_pipelines.cli import main
from datagate_pipelines.definitions import defs
from datagate_pipelines.warehouse import models as m
from datagate_simulators.server import serve_in_thread
from tests.exporting.stack import PORTAL_YAML, QBO_YAML, REALM, sections, set_environment
from tests.exporting.test_corrections import export_all


def datagate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def launch(job: str, op: str, config: dict, instance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(
        run_config={"ops": {op: {"config": config}}}, instance=instance, raise_on_error=False
    )


@pytest.mark.slow
def test_credit_and_void_from_the_command_line_and_the_jobs(
    engine, engine_url, halo, qbo, portal, finals, tmp_path, monkeypatch
):
    export_all(engine, halo, qbo, portal)
    with halo.serve() as halo_server, serve_in_thread(qbo.app) as qbo_server:
        portals_file = tmp_path / "portals.yaml"
        qbo_section = QBO_YAML.format(realm=REALM, qbo=qbo_server.base_url, income_accounts="{}")
        portals_file.write_text(
            PORTAL_YAML.format(halo=halo_server.base_url, qbo=qbo_section + sections(None))
        )
        set_environment(monkeypatch, engine_url, portals_file, halo)
        monkeypatch.setenv("DATAGATE_OPERATOR", "alice")
        command_line(engine, finals[0].doc_number, finals[1].doc_number)
        with dg.instance_for_test() as instance:
            jobs(engine, finals[2], finals[3], instance)


def command_line(engine, first: str, second: str) -> None:
    count = len(finals_now(engine))
    code, out = datagate(
        "credit", "--portal", "acme", "--invoice", first, "--amount", "10.00",
        "--reason", "outage", "--dry-run",
    )  # fmt: skip
    assert code == 0 and out.startswith(f"would credit on invoice {first}"), out
    assert len(finals_now(engine)) == count  # a dry run writes nothing
    code, out = datagate(
        "credit", "--portal", "acme", "--invoice", first, "--amount", "10.00", "--reason", "outage"
    )
    assert code == 0 and "subtotal -10.00" in out, out
    code, out = datagate(
        "credit", "--portal", "acme", "--invoice", first, "--line", "99", "--reason", "x"
    )
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 1, out
    assert lines[0].startswith(f"error: portal acme, invoice {first}, --line: line 99 is not on")
    code, out = datagate("void", "--portal", "acme", "--invoice", second, "--reason", "dup")
    assert code == 0 and "voided in QBO and HaloPSA" in out, out
    code, out = datagate("void", "--portal", "acme", "--invoice", first, "--reason", "x")
    assert code == 1 and "void the credit note first" in out, out
    code, out = datagate("invoices", "--portal", "acme", "--period", "2026-07", "--json")
    shown = {d["number"]: d for d in json.loads(out)}
    (note,) = [d for d in shown.values() if d["kind"] == "credit_note"]
    assert note["credits"] == first and note["reason"] == "outage"
    assert note["status"] == "exported" and note["total"].startswith("-")
    assert shown[second]["status"] == "voided" and shown[second]["reason"] == "dup"
    code, out = datagate("invoices", "--portal", "acme", "--period", "2026-07")
    assert f"{note['number']}: credit note on {first}: outage" in out
    assert f"{second}: voided: dup" in out


def jobs(engine, credited, voided, instance) -> None:
    with engine.connect() as c:
        charge = c.execute(
            select(m.invoice_lines.c.line_no).where(
                m.invoice_lines.c.invoice_id == credited.id, m.invoice_lines.c.amount > 0
            )
        ).first()[0]
    credit = launch(
        "credit_invoice",
        "credit",
        {
            "portal": "acme",
            "invoice": credited.doc_number,
            "reason": "from the launchpad",
            "credited_by": "bob",
            "lines": [charge],
        },
        instance,
    )
    assert credit.success
    void_config = {
        "portal": "acme",
        "invoice": voided.doc_number,
        "reason": "wrong customer",
        "voided_by": "bob",
    }
    void = launch("void_invoice", "void", void_config, instance)
    assert void.success
    with engine.connect() as c:
        by_bob = c.execute(
            select(m.audit_events).where(
                m.audit_events.c.action.in_(("credit", "void")), m.audit_events.c.actor == "bob"
            )
        ).all()
    assert sorted(e.action for e in by_bob) == ["credit", "void"]
    assert {e.run_id for e in by_bob} == {credit.run_id, void.run_id}
    refused = launch("void_invoice", "void", {**void_config, "reason": "again"}, instance)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "voided already" in failure.step_failure_data.error.message


def finals_now(engine) -> list:
    with engine.connect() as c:
        return c.execute(select(m.invoices)).all()
