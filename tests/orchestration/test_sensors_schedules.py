"""The portal registry and force-sync sensors, and the nightly schedules."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import pytest
from sqlalchemy import select

from datagate_pipelines.definitions import defs
from datagate_pipelines.orchestration import schedules
from datagate_pipelines.orchestration.jobs import EXPORT_ASSETS
from datagate_pipelines.orchestration.schedules import (
    billing_run_requests,
    night_sync_tick,
    nightly_billing,
    nightly_sync,
)
from datagate_pipelines.orchestration.tags import FULL_SYNC_TAG, SYNCED_SINCE_TAG
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.sensors.force_sync import force_sync
from datagate_pipelines.sensors.portals import portal_registry
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.force_sync import file_request

PORTALS = """
portals:
{entries}
"""
ENTRY = """  - id: {id}
    name: {id}
    billing_start: 2026-07
    halopsa: {{client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}}
    invoicing: {{approval: auto}}
"""


def resources(tmp_path, engine_url):
    return {
        "portals": PortalsResource(portals_file=str(tmp_path / "portals.yaml")),
        "warehouse": WarehouseResource(database_url=engine_url),
    }


def write_portals(tmp_path, *ids, broken=()):
    entries = "".join(ENTRY.format(id=i) for i in ids) + "".join(
        ENTRY.format(id=b).replace("name:", "colour: red\n    name:") for b in broken
    )
    (tmp_path / "portals.yaml").write_text(PORTALS.format(entries=entries))


def tick(sensor, instance, res, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=res)
    return sensor(context)


def apply(instance, result):
    for request in result.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def test_portal_registry_follows_portals_yaml(tmp_path, engine, engine_url, instance):
    res = resources(tmp_path, engine_url)
    write_portals(tmp_path, "acme", "globex")
    apply(instance, tick(portal_registry, instance, res))
    assert sorted(instance.get_dynamic_partitions("portal")) == ["acme", "globex"]
    # globex removed; beta invalid (kept out, but does not stop the others)
    write_portals(tmp_path, "acme", broken=["beta"])
    apply(instance, tick(portal_registry, instance, res))
    assert instance.get_dynamic_partitions("portal") == ["acme"]
    with engine.connect() as c:
        removed = {r.id: r.removed_at is not None for r in c.execute(select(m.portals))}
    assert removed == {"acme": False, "globex": True}  # the removed portal's data is kept
    result = tick(portal_registry, instance, res)
    assert not result.dynamic_partitions_requests


def test_an_unreadable_portals_file_removes_nothing(tmp_path, engine, engine_url, instance):
    res = resources(tmp_path, engine_url)
    write_portals(tmp_path, "acme")
    apply(instance, tick(portal_registry, instance, res))
    (tmp_path / "portals.yaml").write_text("portals: [")
    result = tick(portal_registry, instance, res)
    assert (
        not result.dynamic_partitions_requests and "unreadable" in result.skip_reason.skip_message
    )


def test_force_sync_runs_at_top_priority_coalesces_and_fails_unknown_portals(
    tmp_path, engine, engine_url, instance
):
    res = resources(tmp_path, engine_url)
    write_portals(tmp_path, "acme", "globex")
    apply(instance, tick(portal_registry, instance, res))
    with engine.begin() as c:
        ids = [
            file_request(c, "acme", "ops"),
            file_request(c, "acme", "ana"),
            file_request(c, "ghost", "ops"),
        ]
    result = tick(force_sync, instance, res)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.partition_key == "acme"
    assert (
        request.tags["dagster/priority"] == "10"
        and request.tags["dagster/partition/portal"] == "acme"
    )
    assert result.cursor == str(ids[-1])
    with engine.connect() as c:
        status = {r.id: (r.status, r.error) for r in c.execute(select(m.force_sync_requests))}
    assert status[ids[0]][0] == status[ids[1]][0] == "launched"
    assert status[ids[2]][0] == "failed" and "unknown portal 'ghost'" in status[ids[2]][1]
    # Nothing new: the cursor keeps old requests from launching twice.
    assert not tick(force_sync, instance, res, cursor=result.cursor).run_requests


def test_a_full_force_sync_launches_a_full_run_not_joining_a_plain_one(
    tmp_path, engine, engine_url, instance
):
    res = resources(tmp_path, engine_url)
    write_portals(tmp_path, "acme")
    apply(instance, tick(portal_registry, instance, res))
    with engine.begin() as c:
        file_request(c, "acme", "ops")
    plain = tick(force_sync, instance, res)
    (request,) = plain.run_requests
    assert FULL_SYNC_TAG not in request.tags
    # The plain run is still queued when a full sync is asked for: it gets its own run.
    job = defs.resolve_job_def("portal_sync")
    instance.create_run_for_job(
        job, run_id=None, tags={**request.tags}, status=dg.DagsterRunStatus.NOT_STARTED
    )
    with engine.begin() as c:
        file_request(c, "acme", "ana", full=True)
    (full,) = tick(force_sync, instance, res, cursor=plain.cursor).run_requests
    assert full.tags[FULL_SYNC_TAG] == "true" and full.run_key != request.run_key


def test_nightly_billing_closes_last_month_once_and_refreshes_the_open_one():
    today = date(2026, 9, 2)
    starts = {"acme": date(2026, 7, 1)}
    first = billing_run_requests(["acme"], today, {}, starts)
    assert [
        (r.partition_key, r.run_config["ops"]["invoices"]["config"]["finalize"]) for r in first
    ] == [
        ("2026-08-01|acme", True),
        ("2026-09-01|acme", False),
    ]
    later = billing_run_requests(["acme"], date(2026, 9, 3), {"acme": {date(2026, 8, 1)}}, starts)
    assert [r.partition_key for r in later] == ["2026-09-01|acme"]
    assert billing_run_requests(["acme"], date(2026, 6, 2), {}, starts) == []


def test_nightly_billing_retries_the_exports_of_any_period_until_none_is_open():
    starts = {"acme": date(2025, 1, 1)}
    closed = {"acme": {date(2026, 8, 1)}}
    unexported = {"acme": [date(2025, 3, 1), date(2026, 8, 1)]}
    requests = billing_run_requests(["acme"], date(2026, 9, 3), closed, starts, unexported)
    retries = [r for r in requests if r.tags.get("datagate/kind") == "exports"]
    assert [r.partition_key for r in retries] == ["2025-03-01|acme", "2026-08-01|acme"]
    for request in retries:
        assert request.tags["dagster/partition/portal"] == "acme" and not request.run_config
        assert {key.to_user_string() for key in request.asset_selection} == set(EXPORT_ASSETS)
    # The period closed tonight exports in its closing run: no second run for it.
    tonight = billing_run_requests(["acme"], date(2026, 9, 2), {}, starts, unexported)
    assert [r.partition_key for r in tonight if r.tags.get("datagate/kind") == "exports"] == [
        "2025-03-01|acme"
    ]


def test_the_export_steps_are_the_exports_group():
    graph = defs.resolve_asset_graph()
    group = dg.AssetSelection.groups("exports").resolve(graph)
    assert {key.to_user_string() for key in group} == set(EXPORT_ASSETS)


def test_nightly_sync_requests_every_portal_with_the_portal_tag(instance):
    instance.add_dynamic_partitions("portal", ["acme", "globex"])
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 9, 2, 2, tzinfo=UTC)
    )
    requests = nightly_sync(context)
    assert [(r.partition_key, r.tags["dagster/partition/portal"]) for r in requests] == [
        ("acme", "acme"),
        ("globex", "globex"),
    ]
    # Ahead of the nightly billing runs (no priority tag: 0) in the run queue.
    assert {r.tags["dagster/priority"] for r in requests} == {"1"}
    assert all(
        "dagster/priority" not in r.tags
        for r in billing_run_requests(["acme"], date(2026, 9, 2), {}, {"acme": date(2026, 7, 1)})
    )


@pytest.mark.parametrize(
    ("sync_cron", "billing_tick", "sync_tick"),
    [
        ("0 2 * * *", datetime(2026, 9, 2, 4, tzinfo=UTC), datetime(2026, 9, 2, 2, tzinfo=UTC)),
        # the same time: the sync goes first in the queue (its priority), so it counts
        ("0 4 * * *", datetime(2026, 9, 2, 4, tzinfo=UTC), datetime(2026, 9, 2, 4, tzinfo=UTC)),
        # a late sync: billing on the day after follows the evening before's sync
        (
            "30 23 * * *",
            datetime(2026, 9, 2, 4, tzinfo=UTC),
            datetime(2026, 9, 1, 23, 30, tzinfo=UTC),
        ),
        # billing before the sync's hour: the night before's sync
        ("0 4 * * *", datetime(2026, 9, 2, 2, tzinfo=UTC), datetime(2026, 9, 1, 4, tzinfo=UTC)),
        # across a month end, and a sync on weekdays only (2026-09-07 is a Monday)
        ("0 2 * * *", datetime(2026, 10, 1, 1, tzinfo=UTC), datetime(2026, 9, 30, 2, tzinfo=UTC)),
        ("0 2 * * 1-5", datetime(2026, 9, 7, 1, tzinfo=UTC), datetime(2026, 9, 4, 2, tzinfo=UTC)),
    ],
)
def test_the_night_sync_tick_is_the_latest_sync_tick_at_or_before_billing(
    sync_cron, billing_tick, sync_tick
):
    assert night_sync_tick(billing_tick, sync_cron) == sync_tick


def test_only_the_closing_run_carries_the_sync_tick():
    tick = datetime(2026, 9, 2, 2, tzinfo=UTC)
    starts = {"acme": date(2025, 1, 1), "globex": date(2025, 1, 1)}
    requests = billing_run_requests(
        ["acme", "globex"],
        date(2026, 9, 2),
        {},
        starts,
        {"acme": [date(2025, 3, 1)]},
        needs_approval={"globex"},
        synced_since=tick,
    )
    tagged = {
        r.run_key.split(":")[0] + ":" + r.partition_key: r.tags.get(SYNCED_SINCE_TAG)
        for r in requests
    }
    assert tagged == {
        "export:2025-03-01|acme": None,
        "close:2026-08-01|acme": "2026-09-02T02:00:00+00:00",
        "refresh:2026-09-01|acme": None,
        "review:2026-08-01|globex": None,  # manual approval: nothing finalized, not held back
        "refresh:2026-09-01|globex": None,
    }


@pytest.mark.parametrize(
    ("sync_cron", "billing_tick", "synced_since"),
    [
        ("0 2 * * *", datetime(2026, 9, 2, 4, tzinfo=UTC), "2026-09-02T02:00:00+00:00"),
        ("0 4 * * *", datetime(2026, 9, 2, 4, tzinfo=UTC), "2026-09-02T04:00:00+00:00"),
        ("30 23 * * *", datetime(2026, 9, 2, 4, tzinfo=UTC), "2026-09-01T23:30:00+00:00"),
    ],
)
def test_the_nightly_billing_schedule_tags_its_close_with_the_nights_sync_tick(
    tmp_path, engine, engine_url, instance, monkeypatch, sync_cron, billing_tick, synced_since
):
    monkeypatch.setattr(schedules, "SYNC_CRON", sync_cron)  # DATAGATE_SYNC_CRON, read at import
    write_portals(tmp_path, "acme")
    instance.add_dynamic_partitions("portal", ["acme"])
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=billing_tick,
        resources=resources(tmp_path, engine_url),
        repository_def=defs.get_repository_def(),
    )
    requests = nightly_billing.evaluate_tick(context).run_requests
    assert [(r.run_key, r.tags.get(SYNCED_SINCE_TAG)) for r in requests] == [
        ("close:acme:2026-08:2026-09-02", synced_since),
        ("refresh:acme:2026-09:2026-09-02", None),
    ]
