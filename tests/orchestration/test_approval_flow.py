"""The approval desk as Dagster runs it, HaloPSA and QBO simulators on loopback:

- the nightly billing schedule's tick, evaluated, and its runs executed: with
  `invoicing.approval: manual` the closed period stops at ready-for-review drafts (nothing
  numbered or exported, `bill --export` refused); with `auto` it is finalized and exported;
- `datagate review` → `datagate approve --fingerprint` → the approvals sensor's run at the
  top of the queue → numbered and exported to both targets, the audit trail complete;
- drafts recomputed differently after the approval: the run fails and finalizes nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select, update

from datagate_pipelines.definitions import defs
from datagate_pipelines.sensors.approvals import approvals
from datagate_pipelines.warehouse import models as m
from tests.orchestration.billing_desk import (
    JULY_PARTITION,
    NIGHT_AFTER_JULY,
    RESOURCES,
    SYNC_TICK_AFTER_JULY,
    Desk,
    actions,
    execute,
    invoices,
    nightly_tick,
    record_sync,
)

pytestmark = pytest.mark.slow


def review_metadata(result) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "invoice_review"
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def review_check(result) -> dg.AssetCheckEvaluation:
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "flagged_invoices_reviewed"
    ]
    return check


def the_night_after_july(desk: Desk) -> dict[str, dg.ExecuteInProcessResult]:
    record_sync(desk.engine, SYNC_TICK_AFTER_JULY)  # the night's sync succeeded
    requests = nightly_tick(desk, NIGHT_AFTER_JULY)
    by_period = {r.tags["datagate/period"]: r for r in requests}
    assert sorted(by_period) == ["2026-07", "2026-08"]
    results = {}
    for label in ("2026-07", "2026-08"):  # the ledger bills periods in order
        results[label] = execute(desk, "billing", by_period[label])
        assert results[label].success, label
    return {"requests": by_period, **results}


def test_the_nightly_schedule_with_manual_or_auto_approval(desk, engine):
    night = the_night_after_july(desk)
    july = night["requests"]["2026-07"]
    finals = [i for i in invoices(engine) if i.status == "final"]
    if desk.portal.settings.invoicing.approval == "auto":
        assert july.run_key.startswith("close:") and july.tags["datagate/finalize"] == "true"
        assert finals and len(finals) == len(invoices(engine))
        assert len(desk.qbo.invoices()) == len(finals)
        assert actions(engine) == {"finalize": len(finals), "export": 2 * len(finals)}
        checks = {e.check_name: e for e in night["2026-07"].get_asset_check_evaluations()}
        billed_once = checks["service_months_billed_once"]
        assert billed_once.passed and billed_once.metadata["proof"].value == (
            "enforced by the warehouse's unique index uq_billing_ledger_billed_pair"
        )
        return
    # manual: ready for review, nothing numbered, nothing sent
    assert july.run_key.startswith("review:") and july.tags["datagate/finalize"] == "false"
    assert finals == [] and invoices(engine)
    assert all(i.number is None for i in invoices(engine))
    assert desk.qbo.invoices() == [] and not list(desk.halo.backend.table("Invoice").values())
    assert actions(engine) == {}
    metadata = review_metadata(night["2026-07"])
    assert metadata["state"] == "ready for review"
    assert metadata["agreements"] == len(invoices(engine))
    check = review_check(night["2026-07"])
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.passed == (metadata["unreviewed_flagged"] == 0)
    # each night until approved, July is refreshed again, never closed
    again = {
        r.tags["datagate/period"]: r for r in nightly_tick(desk, NIGHT_AFTER_JULY.replace(day=3))
    }
    assert again["2026-07"].run_key.startswith("review:")
    code, out = desk.datagate("bill", "--portal", "acme", "--period", "2026-07", "--export")
    assert code == 1
    assert out.strip().splitlines() == [
        "error: portal acme: billing period 2026-07 waits for approval (invoicing.approval: "
        "manual): `datagate review --portal acme --period 2026-07`, then "
        "`datagate approve --portal acme --period 2026-07`"
    ]


@pytest.mark.parametrize("desk", ["manual"], indirect=True)
def test_review_approve_then_the_sensor_run_numbers_and_exports(desk, engine):
    the_night_after_july(desk)
    code, out = desk.datagate("review", "--portal", "acme", "--period", "2026-07", "--json")
    assert code == 0, out
    review = json.loads(out)
    assert review["state"] == "ready for review" and len(review["fingerprint"]) == 16
    code, text_out = desk.datagate("review", "--portal", "acme", "--period", "2026-07")
    assert f"fingerprint: {review['fingerprint']}" in text_out
    assert f"--fingerprint {review['fingerprint']}" in text_out
    drafts = [i for i in invoices(engine) if i.status == "draft"]

    code, out = desk.datagate(
        "approve", "--portal", "acme", "--period", "2026-07",
        "--fingerprint", review["fingerprint"], "--note", "numbers checked",
    )  # fmt: skip
    assert code == 0, out
    recorded = re.search(
        r"approval (\d+) recorded: portal acme 2026-07 by alice, (\d+) invoice", out
    )
    assert recorded and int(recorded.group(2)) == len(drafts), out
    approval_id = recorded.group(1)  # ids run on across tests on PostgreSQL
    code, out = desk.datagate("approve", "--portal", "acme", "--period", "2026-07")
    assert code == 1 and f"is already approved (approval {approval_id} by alice" in out

    context = dg.build_sensor_context(instance=desk.instance, resources=RESOURCES)
    result = approvals(context)
    (request,) = result.run_requests
    assert request.tags["dagster/priority"] == "10"  # the top of the queue
    assert request.tags["datagate/approval"] == approval_id
    assert request.partition_key == JULY_PARTITION
    run = execute(desk, "finalize_approved", request)
    assert run.success
    assert "invoice_lines" not in {
        e.asset_key.to_user_string() for e in run.get_asset_materialization_events()
    }
    finals = [i for i in invoices(engine) if i.status == "final"]
    assert sorted(i.invoice_key for i in finals) == sorted(i.invoice_key for i in drafts)
    assert sorted(i.doc_number for i in finals) == [f"INV-{1001 + n}" for n in range(len(finals))]
    assert sorted(i["DocNumber"] for i in desk.qbo.invoices()) == sorted(
        i.doc_number for i in finals
    )
    assert len(list(desk.halo.backend.table("Invoice").values())) == len(finals)
    assert review_check(run).passed  # every flagged invoice is final now
    assert actions(engine) == {"approve": 1, "finalize": len(finals), "export": 2 * len(finals)}
    with engine.connect() as c:
        approval = c.execute(select(m.approvals)).one()
        run_ids = set(c.execute(select(m.audit_events.c.run_id)).scalars())
    assert (approval.status, approval.run_id) == ("finalized", run.run_id)
    assert run_ids == {None, run.run_id}  # the approval (CLI) has none; the run's events do

    code, out = desk.datagate("audit", "--portal", "acme", "--json")
    trail = json.loads(out)
    assert [e["action"] for e in trail][:2] == ["approve", "finalize"]
    assert trail[0]["actor"] == "alice" and trail[0]["details"]["note"] == "numbers checked"
    exported = [e for e in trail if e["action"] == "export"]
    assert {e["details"]["target"] for e in exported} == {"halopsa", "qbo"}
    key = finals[0].invoice_key
    code, out = desk.datagate("audit", "--portal", "acme", "--invoice", key, "--json")
    assert [e["action"] for e in json.loads(out)] == ["finalize", "export", "export"]
    code, out = desk.datagate("audit", "--portal", "acme", "--invoice", key)
    assert code == 0 and len(out.splitlines()) == 3
    assert f"alice (approval {approval_id}) finalize {key}" in out
    # the sensor launches nothing more, and the next night leaves July alone
    assert not approvals(
        dg.build_sensor_context(instance=desk.instance, resources=RESOURCES)
    ).run_requests
    later = {r.tags["datagate/period"] for r in nightly_tick(desk, NIGHT_AFTER_JULY.replace(day=3))}
    assert "2026-07" not in later


@pytest.mark.parametrize("desk", ["manual"], indirect=True)
def test_drafts_recomputed_differently_after_approval_finalize_nothing(desk, engine):
    night = the_night_after_july(desk)
    assert desk.datagate("approve", "--portal", "acme", "--period", "2026-07")[0] == 0
    # A sync moved a line before the approval's run: one product's quantity, then July's
    # drafts are refreshed (the nightly review run again).
    with engine.begin() as c:
        product_id = c.execute(select(m.products.c.product_id).limit(1)).scalar_one()
        c.execute(
            update(m.products)
            .where(m.products.c.product_id == product_id)
            .values(qty=m.products.c.qty + 1)
        )
    assert execute(desk, "billing", night["requests"]["2026-07"]).success
    (request,) = approvals(
        dg.build_sensor_context(instance=desk.instance, resources=RESOURCES)
    ).run_requests
    run = execute(desk, "finalize_approved", request)
    assert not run.success
    failure = next(e for e in run.all_events if e.is_step_failure)
    assert (
        "no longer matches the drafts, nothing was finalized"
        in failure.step_failure_data.error.message
    )
    assert [i for i in invoices(engine) if i.status == "final"] == []
    assert desk.qbo.invoices() == []
    with engine.connect() as c:
        assert c.execute(select(m.approvals.c.status)).scalar_one() == "refused"
    assert actions(engine) == {"approve": 1, "approval_refused": 1}
    code, out = desk.datagate("review", "--portal", "acme", "--period", "2026-07")
    assert code == 0 and re.search(r"approval \d+ by alice at .*: refused", out), out


def test_the_approve_period_job_records_what_the_cli_would(desk, engine, tmp_path: Path):
    """The launchpad's job, with its typed config, executed as the UI launches it."""
    if desk.portal.settings.invoicing.approval == "auto":
        pytest.skip("approval is for manual portals")
    the_night_after_july(desk)
    config = {
        "portal": "acme",
        "period": "2026-07",
        "approved_by": "bob",
        "note": "from the launchpad",
        "except_invoices": [],
    }
    job = defs.resolve_job_def("approve_period")
    result = job.execute_in_process(
        run_config={"ops": {"approve": {"config": config}}}, instance=desk.instance
    )
    assert result.success
    with engine.connect() as c:
        approval = c.execute(select(m.approvals)).one()
    assert (approval.approved_by, approval.note, approval.status) == (
        "bob",
        "from the launchpad",
        "pending",
    )
    with engine.connect() as c:
        event = c.execute(select(m.audit_events)).one()
    assert (event.action, event.actor, event.run_id) == ("approve", "bob", result.run_id)
    bad = job.execute_in_process(
        run_config={"ops": {"approve": {"config": {**config, "except_invoices": ["nope"]}}}},
        instance=desk.instance,
        raise_on_error=False,
    )
    assert not bad.success
    failure = next(e for e in bad.all_events if e.is_step_failure)
    assert "is already approved" in failure.step_failure_data.error.message
