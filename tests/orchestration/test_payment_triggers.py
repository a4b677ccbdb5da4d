"""What starts a payments run: the qbo_webhooks sensor (one run per portal, bursts coalesced)
and the nightly schedule (every portal with QBO)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy import select

from datagate_pipelines.config import parse_portals
from datagate_pipelines.definitions import defs
from datagate_pipelines.orchestration.schedules import nightly_payments
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.sensors.qbo_webhooks import qbo_webhooks
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse.portals import register_portal
from datagate_pipelines.warehouse.webhook_events import store_events

PORTALS = """
portals:
  - id: acme
    name: Acme
    billing_start: 2026-07
    halopsa: {client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}
    qbo: {realm_id: "1", client_id_env: C, client_secret_env: D, refresh_token_env: E}
  - id: beta
    name: Beta
    billing_start: 2026-07
    halopsa: {client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}
    qbo: {realm_id: "2", client_id_env: C, client_secret_env: D, refresh_token_env: E}
  - id: globex
    name: Globex
    billing_start: 2026-07
    halopsa: {client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}
"""
NOW = datetime(2026, 8, 3, 17, 0, tzinfo=UTC)


def setup(tmp_path, engine, engine_url, instance):
    (tmp_path / "portals.yaml").write_text(PORTALS)
    registry = parse_portals(PORTALS)
    with engine.begin() as c:
        for portal in registry.portals.values():
            register_portal(c, portal)
    instance.add_dynamic_partitions("portal", ["acme", "beta", "globex"])
    return {
        "portals": PortalsResource(portals_file=str(tmp_path / "portals.yaml")),
        "warehouse": WarehouseResource(database_url=engine_url),
    }


def events(engine, portal_id: str, entity: str, count: int, start: int = 0) -> None:
    with engine.begin() as c:
        store_events(
            c,
            [
                {
                    "portal_id": portal_id,
                    "realm_id": "1",
                    "event_id": None,
                    "format": "legacy",
                    "entity": entity,
                    "entity_id": str(start + n),
                    "operation": "Update",
                    "last_updated": NOW + timedelta(seconds=start + n),
                    "deleted_id": None,
                    "received_at": NOW,
                    "run_key": None,
                    "handled_at": None,
                    "note": None,
                }
                for n in range(count)
            ],
        )


def tick(instance, resources, cursor=None):
    return qbo_webhooks(
        dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    )


def notes(engine) -> dict[str, list[str | None]]:
    found: dict[str, list[str | None]] = {}
    with engine.connect() as c:
        for row in c.execute(select(m.qbo_webhook_events).order_by(m.qbo_webhook_events.c.id)):
            found.setdefault(row.portal_id, []).append(row.note)
    return found


def test_a_burst_of_events_becomes_one_run_per_portal(tmp_path, engine, engine_url, instance):
    resources = setup(tmp_path, engine, engine_url, instance)
    events(engine, "acme", "Payment", 1000)
    events(engine, "beta", "Invoice", 2)
    events(engine, "beta", "Customer", 1, start=50)  # does not move payments
    events(engine, "globex", "Payment", 1)  # no QBO company in portals.yaml
    result = tick(instance, resources)
    requests = {r.partition_key: r for r in result.run_requests}
    assert sorted(requests) == ["acme", "beta"]
    assert requests["acme"].tags["dagster/partition/portal"] == "acme"
    assert requests["acme"].tags["datagate/trigger"] == "webhook"
    assert requests["acme"].run_key.startswith("qbo-webhook:acme:")
    found = notes(engine)
    assert set(found["acme"]) == {"run requested"}
    assert found["beta"][-1] == "Customer changes do not move payments"
    assert found["globex"] == ["portal globex is not a portal with QBO in portals.yaml"]
    assert not tick(instance, resources, cursor=result.cursor).run_requests  # the cursor holds


def test_events_join_the_portals_run_that_has_not_started(tmp_path, engine, engine_url, instance):
    resources = setup(tmp_path, engine, engine_url, instance)
    waiting = instance.create_run_for_job(
        job_def=defs.resolve_job_def("payments"),
        tags={"dagster/partition": "acme", "dagster/partition/portal": "acme"},
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    events(engine, "acme", "Invoice", 3)
    result = tick(instance, resources)
    assert result.run_requests == []
    assert set(notes(engine)["acme"]) == {f"joined run {waiting.run_id}"}
    # Once it has started, new events need a run after it (the queue runs one per portal).
    instance.handle_run_event(
        waiting.run_id,
        dg.DagsterEvent(event_type_value="PIPELINE_START", job_name="payments", message="started"),
    )
    events(engine, "acme", "Invoice", 1, start=10)
    assert [r.partition_key for r in tick(instance, resources, result.cursor).run_requests] == [
        "acme"
    ]


def test_nightly_payments_runs_every_portal_with_qbo(tmp_path, engine, engine_url, instance):
    resources = setup(tmp_path, engine, engine_url, instance)
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2026, 8, 4, 5, tzinfo=UTC),
        resources={"portals": resources["portals"]},
    )
    requests = nightly_payments(context)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("acme", "nightly-payments:acme:2026-08-04"),
        ("beta", "nightly-payments:beta:2026-08-04"),
    ]
    assert all(r.tags["dagster/partition/portal"] == r.partition_key for r in requests)


def test_a_portal_heard_from_before_its_partition_exists_gets_it(
    tmp_path, engine, engine_url, instance
):
    resources = setup(tmp_path, engine, engine_url, instance)
    instance.delete_dynamic_partition("portal", "beta")  # portal_registry has not run yet
    events(engine, "beta", "Payment", 1)
    result = tick(instance, resources)
    assert [r.partition_key for r in result.run_requests] == ["beta"]
    (added,) = result.dynamic_partitions_requests
    assert isinstance(added, dg.AddDynamicPartitionsRequest)
    assert list(added.partition_keys) == ["beta"]
