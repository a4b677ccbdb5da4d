"""The nightly close waits for the night's sync, as Dagster runs it (the billing desk of
billing_desk.py, `approval: auto`): without a successful sync since the night's sync tick
the closing run refreshes the drafts, finalizes and exports nothing, fails with one line,
and `portals status` says why; the next night closes the period — billed and exported once.
A close launched by hand is not held back."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import func, select

from datagate_pipelines.invoicing.close_gate import refusal_message
from datagate_pipelines.orchestration.tags import SYNCED_SINCE_TAG
from datagate_pipelines.warehouse import models as m
from tests.orchestration.billing_desk import (
    NIGHT_AFTER_JULY,
    SYNC_TICK_AFTER_JULY,
    Desk,
    actions,
    execute,
    invoices,
    nightly_tick,
    record_sync,
)

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("desk", ["auto"], indirect=True)]

DAY = timedelta(days=1)


def tonight(desk: Desk, when: datetime = NIGHT_AFTER_JULY) -> dict[str, dg.RunRequest]:
    return {r.tags["datagate/period"]: r for r in nightly_tick(desk, when)}


def failure_message(run: dg.ExecuteInProcessResult) -> str:
    (failure,) = [e for e in run.all_events if e.is_step_failure]
    assert failure.step_key == "invoices"
    return failure.step_failure_data.user_failure_data.description


def status(desk: Desk) -> dict:
    code, out = desk.datagate("portals", "status", "--json")
    assert code == 0, out
    (row,) = json.loads(out)
    return row


def exported(engine) -> int:
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(m.exports)).scalar_one()


def test_a_close_without_the_nights_sync_is_refused_then_the_next_night_closes_once(desk, engine):
    # The night's sync failed; the one before succeeded. (Which syncs count — none, one
    # still running, one a second before the tick — is tests/invoicing/test_close_gate.py.)
    last_sync = SYNC_TICK_AFTER_JULY - DAY
    record_sync(engine, last_sync, "succeeded")
    record_sync(engine, SYNC_TICK_AFTER_JULY, "failed")
    night = tonight(desk)
    july = night["2026-07"]
    assert july.run_key.startswith("close:")
    assert july.tags[SYNCED_SINCE_TAG] == "2026-08-02T02:00:00+00:00"
    assert SYNCED_SINCE_TAG not in night["2026-08"].tags

    refused = execute(desk, "billing", july)
    assert not refused.success
    message = failure_message(refused)
    assert message == refusal_message("acme", date(2026, 7, 1), SYNC_TICK_AFTER_JULY, last_sync)
    assert message.startswith("portal acme: billing period 2026-07 not closed: ")
    # The drafts were refreshed; nothing final, numbered or exported; no export step ran.
    materialized = {
        e.asset_key.to_user_string() for e in refused.get_asset_materialization_events()
    }
    assert materialized == {"invoice_lines"}
    drafts = invoices(engine)
    assert drafts and {i.status for i in drafts} <= {"draft", "held"}
    assert all(i.doc_number is None for i in drafts)
    assert exported(engine) == 0 and desk.qbo.invoices() == []
    assert not list(desk.halo.backend.table("Invoice").values())
    assert actions(engine) == {"close_refused": 1}
    # The open month's refresh is not held back.
    assert execute(desk, "billing", night["2026-08"]).success
    # portals status: July not closed, and why.
    row = status(desk)
    assert [
        (r["period"], r["waited_for_sync_since"], r["last_successful_sync"])
        for r in row["close_refused"]
    ] == [("2026-07", "2026-08-02T02:00:00+00:00", last_sync.isoformat() if last_sync else None)]
    code, text = desk.datagate("portals", "status")
    assert code == 0, text
    assert "; 2026-07 not closed: the nightly close at " in text
    assert "waited for a sync since 2026-08-02T02:00:00" in text

    # The next night: July is still open, so it is closed again, after that night's sync.
    record_sync(engine, SYNC_TICK_AFTER_JULY + DAY + timedelta(minutes=3))
    next_july = tonight(desk, NIGHT_AFTER_JULY + DAY)["2026-07"]
    assert next_july.tags[SYNCED_SINCE_TAG] == "2026-08-03T02:00:00+00:00"
    assert execute(desk, "billing", next_july).success
    finals = invoices(engine)
    assert {i.status for i in finals} == {"final"} and len(finals) == len(drafts)
    assert len(desk.qbo.invoices()) == len(finals)
    assert len(list(desk.halo.backend.table("Invoice").values())) == len(finals)
    assert exported(engine) == 2 * len(finals)
    assert actions(engine) == {
        "close_refused": 1,
        "finalize": len(finals),
        "export": 2 * len(finals),
    }
    assert status(desk)["close_refused"] == []
    assert "2026-07" not in tonight(desk, NIGHT_AFTER_JULY + 2 * DAY)


def test_a_close_launched_by_hand_carries_no_tick_and_is_not_held_back(desk, engine):
    """`datagate bill --export`, the UI and backfills launch without the tag: no sync
    recorded at all, and the close goes on."""
    july = tonight(desk)["2026-07"]
    by_hand = dg.RunRequest(
        partition_key=july.partition_key,
        run_config=july.run_config,
        tags={k: v for k, v in july.tags.items() if k != SYNCED_SINCE_TAG},
    )
    assert execute(desk, "billing", by_hand).success
    finals = invoices(engine)
    assert finals and {i.status for i in finals} == {"final"}
    assert len(desk.qbo.invoices()) == len(finals)
    assert "close_refused" not in actions(engine)
