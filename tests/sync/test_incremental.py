"""Planning and checking incremental reads (sync/incremental.py): pure, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from datagate_pipelines.config import ChangeFilter
from datagate_pipelines.sync.incremental import filter_ignored, halo_time, plan_read, read
from datagate_pipelines.warehouse.sync_runs import EntityRead

FILTER = ChangeFilter(param="lastupdatefromdate", stamp_field="alastupdate")
LAST = datetime(2026, 12, 5, 2, 0, 30, 123456, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_a_read_is_incremental_only_with_a_filter_a_last_read_and_no_full_sync():
    last = EntityRead(LAST, "full")
    assert plan_read(FILTER, last, full_sync=False, overlap=HOUR).cutoff == LAST - HOUR
    assert not plan_read(None, last, full_sync=False, overlap=HOUR).incremental
    assert not plan_read(FILTER, None, full_sync=False, overlap=HOUR).incremental
    whole = plan_read(FILTER, last, full_sync=True, overlap=HOUR)
    assert not whole.incremental and whole.reason == "full sync"
    off = EntityRead(LAST, "fallback", "HaloPSA ignored it")
    stuck = plan_read(FILTER, off, full_sync=False, overlap=HOUR)
    assert not stuck.incremental and "HaloPSA ignored it" in stuck.reason


def test_the_cutoff_is_sent_in_utc_without_zone_or_fraction():
    assert halo_time(LAST) == "2026-12-05T02:00:30"
    eastern = LAST.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert halo_time(eastern) == "2026-12-05T02:00:30"


def test_an_answer_with_an_older_or_unstamped_record_shows_the_filter_ignored():
    cutoff = LAST - HOUR
    fresh = {"id": 1, "alastupdate": "2026-12-05T01:00:30"}  # the cutoff itself: honoured
    assert filter_ignored([fresh], FILTER, cutoff, "Client") is None
    assert filter_ignored([], FILTER, cutoff, "Client") is None
    old = {"id": 7, "alastupdate": "2026-11-01T06:00:00"}
    reason = filter_ignored([fresh, old], FILTER, cutoff, "Client")
    assert reason.startswith("HaloPSA ignored Client?lastupdatefromdate=2026-12-05T01:00:30")
    assert "1 of 2 record(s)" in reason and "id 7" in reason
    unstamped = filter_ignored(
        [{"id": 9, "alastupdate": "1899-12-30T00:00:00"}], FILTER, cutoff, "Client"
    )
    assert unstamped.startswith("cannot check") and "id 9" in unstamped


def test_an_ignored_filter_is_followed_by_a_whole_read_at_once():
    calls = []
    everything = [
        {"id": 1, "alastupdate": "2026-01-01T00:00:00"},
        {"id": 2, "alastupdate": "2026-12-05T03:00:00"},
    ]

    def fetch(params):
        calls.append(dict(params))
        return everything  # as Halo does with a parameter it does not know

    plan = plan_read(FILTER, EntityRead(LAST, "full"), full_sync=False, overlap=HOUR)
    outcome = read(fetch, plan, FILTER, "Client")
    assert calls == [{"lastupdatefromdate": "2026-12-05T01:00:30"}, {}]
    assert outcome.kind == "fallback" and outcome.complete and outcome.rows == everything
    assert outcome.summary()["reason"] == outcome.filter_ignored

    calls.clear()
    honoured = read(lambda params: calls.append(params) or everything[1:], plan, FILTER, "Client")
    assert honoured.kind == "incremental" and not honoured.complete and len(calls) == 1
