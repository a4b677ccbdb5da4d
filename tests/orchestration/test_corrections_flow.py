"""`datagate credit` / `datagate void` and the credit_invoice / void_invoice jobs, over
loopback HTTP to both simulators, after a real night of billing (approval auto), on SQLite
and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from datagate_pipelines.definitions import defs
from datagate_pipelines.warehouse import models as m
from tests.orchestration.test_approval_flow import (  # noqa: F401 (the fixture)
    desk,
    invoices,
    the_night_after_july,
)


@pytest.fixture
def night(desk):  # noqa: F811
    the_night_after_july(desk)
    return desk


@pytest.mark.slow
@pytest.mark.parametrize("desk", ["auto"], indirect=True)  # one night of billing is enough
def test_credit_and_void_from_the_command_line_and_the_jobs(night, engine):
    finals = sorted(invoices(engine), key=lambda i: i.number)
    first, second = finals[0].doc_number, finals[1].doc_number
    code, out = night.datagate(
        "credit", "--portal", "acme", "--invoice", first, "--amount", "10.00",
        "--reason", "outage", "--dry-run",
    )  # fmt: skip
    assert code == 0 and out.startswith(f"would credit on invoice {first}"), out
    assert len(invoices(engine)) == len(finals)  # a dry run writes nothing
    code, out = night.datagate(
        "credit", "--portal", "acme", "--invoice", first, "--amount", "10.00", "--reason", "outage"
    )
    assert code == 0, out
    assert "subtotal -10.00" in out
    code, out = night.datagate(
        "credit", "--portal", "acme", "--invoice", first, "--line", "99", "--reason", "x"
    )
    assert code == 1 and out.strip().splitlines() == [
        f"error: portal acme, invoice {first}, --line: line 99 is not on the invoice "
        + out.split("(", 1)[1].strip().join(["(", ""])
    ], out
    code, out = night.datagate("void", "--portal", "acme", "--invoice", second, "--reason", "dup")
    assert code == 0 and "voided in QBO and HaloPSA" in out, out
    code, out = night.datagate("void", "--portal", "acme", "--invoice", first, "--reason", "x")
    assert code == 1 and "void the credit note first" in out, out
    code, out = night.datagate("invoices", "--portal", "acme", "--period", "2026-07", "--json")
    shown = {d["number"]: d for d in json.loads(out)}
    (note,) = [d for d in shown.values() if d["kind"] == "credit_note"]
    assert note["credits"] == first and note["reason"] == "outage" and note["total"] < "0"
    assert shown[second]["status"] == "voided" and shown[second]["reason"] == "dup"
    # The launchpad's jobs, with their typed config, on two other invoices (one night of
    # billing set up for both halves: it is the slow part).
    jobs_do_what_the_commands_do(night, engine, finals[2:4])


def jobs_do_what_the_commands_do(night, engine, finals):
    with engine.connect() as c:
        charge = c.execute(
            select(m.invoice_lines.c.line_no).where(
                m.invoice_lines.c.invoice_id == finals[0].id, m.invoice_lines.c.amount > 0
            )
        ).first()[0]
    credit = defs.resolve_job_def("credit_invoice").execute_in_process(
        run_config={
            "ops": {
                "credit": {
                    "config": {
                        "portal": "acme",
                        "invoice": finals[0].doc_number,
                        "reason": "from the launchpad",
                        "credited_by": "bob",
                        "lines": [charge],
                    }
                }
            }
        },
        instance=night.instance,
    )
    assert credit.success
    void = defs.resolve_job_def("void_invoice").execute_in_process(
        run_config={
            "ops": {
                "void": {
                    "config": {
                        "portal": "acme",
                        "invoice": finals[1].doc_number,
                        "reason": "wrong customer",
                        "voided_by": "bob",
                    }
                }
            }
        },
        instance=night.instance,
    )
    assert void.success
    with engine.connect() as c:
        events = c.execute(
            select(m.audit_events).where(m.audit_events.c.action.in_(("credit", "void")))
        ).all()
    by_bob = [e for e in events if e.actor == "bob"]
    assert sorted(e.action for e in by_bob) == ["credit", "void"]
    assert {e.run_id for e in by_bob} == {credit.run_id, void.run_id}
    refused = defs.resolve_job_def("void_invoice").execute_in_process(
        run_config={
            "ops": {
                "void": {
                    "config": {
                        "portal": "acme",
                        "invoice": finals[1].doc_number,
                        "reason": "again",
                        "voided_by": "bob",
                    }
                }
            }
        },
        instance=night.instance,
        raise_on_error=False,
    )
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "voided already" in failure.step_failure_data.error.message
