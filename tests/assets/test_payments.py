"""Payments as Dagster runs them: a payment made in the QBO simulator reaches the warehouse
and HaloPSA's invoice, once — by webhook (emitter → receiver → sensor → run) and by the
nightly schedule. Simulators and the receiver on loopback; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select

from datagate_pipelines.assets import payments
from datagate_pipelines.orchestration.schedules import nightly_payments
from datagate_pipelines.qbo.token_store import TokenCipher
from datagate_pipelines.qbo.webhook_receiver import PATH, create_app
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.sensors.qbo_webhooks import qbo_webhooks
from datagate_pipelines.warehouse import models as m
from datagate_simulators.server import serve_in_thread
from tests.exporting.payments_stack import export_everywhere, pay, qbo_invoice_ids, rows
from tests.exporting.stack import (
    FIRST_REFRESH_TOKEN,
    PORTAL_YAML,
    QBO_CLIENT_ID,
    QBO_SECRET,
    QBO_YAML,
    REALM,
    finalized_invoices,
    halo_sim,
    portal_config,
    qbo_sim,
)

VERIFIER = "intuit-verifier-token"
# Two simulators, the receiver and Dagster runs per test: `make test` runs these.
pytestmark = pytest.mark.slow


@dataclass
class Stack:
    engine: object
    instance: dg.DagsterInstance
    halo: object
    qbo: object
    receiver_url: str
    finals: list

    def resources(self) -> dict:
        return {
            "portals": PortalsResource(),
            "warehouse": WarehouseResource(),
            "halopsa": HaloPSAResource(),
            "qbo": QBOResource(),
        }

    def run(self, tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [payments.qbo_payments, payments.halo_invoice_payments],
            partition_key="acme",
            instance=self.instance,
            resources=self.resources(),
            tags=tags,
        )

    def halo_invoice(self, invoice_id: int) -> dict:
        with self.engine.connect() as c:
            halo_id = c.execute(
                select(m.exports.c.external_id).where(
                    m.exports.c.invoice_id == invoice_id, m.exports.c.target == "halopsa"
                )
            ).scalar_one()
        return self.halo.backend.get("Invoice", halo_id)

    def halo_payments(self) -> list[dict]:
        return list(self.halo.backend.table("InvoicePayment").values())


@pytest.fixture
def stack(engine, engine_url, tmp_path: Path, monkeypatch, instance) -> Iterator[Stack]:
    halo, qbo = halo_sim(), qbo_sim()
    with halo.serve() as halo_server, serve_in_thread(qbo.app) as qbo_server:
        qbo_section = QBO_YAML.format(realm=REALM, qbo=qbo_server.base_url, income_accounts="{}")
        qbo_section += "      webhook_verifier_token_env: ACME_QBO_VERIFIER\n"
        portals_file = tmp_path / "portals.yaml"
        portals_file.write_text(PORTAL_YAML.format(halo=halo_server.base_url, qbo=qbo_section))
        for name, value in {
            "DATAGATE_PORTALS_FILE": str(portals_file),
            "DATAGATE_DATABASE_URL": engine_url,
            "ACME_HALO_CLIENT_ID": halo.client_id,
            "ACME_HALO_CLIENT_SECRET": halo.client_secret,
            "ACME_QBO_CLIENT_ID": QBO_CLIENT_ID,
            "ACME_QBO_CLIENT_SECRET": QBO_SECRET,
            "ACME_QBO_REFRESH_TOKEN": FIRST_REFRESH_TOKEN,
            "ACME_QBO_VERIFIER": VERIFIER,
            "DATAGATE_TOKEN_KEY": TokenCipher.generate_key(),
        }.items():
            monkeypatch.setenv(name, value)
        portal = portal_config(qbo_url=qbo_server.base_url)
        finals = finalized_invoices(engine, halo, portal)
        export_everywhere(engine, portal, qbo, halo)
        instance.add_dynamic_partitions("portal", ["acme"])
        with serve_in_thread(create_app(engine, portals_file=portals_file)) as receiver:
            yield Stack(engine, instance, halo, qbo, receiver.base_url + PATH, finals)


def metadata(result, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"no materialization of {asset}")


def sensor_tick(stack: Stack, cursor: str | None = None) -> dg.SensorResult:
    resources = stack.resources()
    context = dg.build_sensor_context(
        instance=stack.instance,
        cursor=cursor,
        resources={"portals": resources["portals"], "warehouse": resources["warehouse"]},
    )
    return qbo_webhooks(context)


def test_a_payment_reaches_warehouse_and_halopsa_by_webhook_sensor_and_run(stack):
    first = stack.run()  # the portal's first refresh: our open invoices
    assert first.success and metadata(first, "qbo_payments")["mode"] == "open_invoices"
    emitter = stack.qbo.backend.webhooks
    emitter.configure(url=stack.receiver_url, verifier_token=VERIFIER, format="cloudevents")
    paid = stack.finals[0]
    payment = pay(stack.qbo, qbo_invoice_ids(stack.engine)[paid.id], paid.total)

    deliveries = emitter.flush()  # Intuit posts the notification
    assert [d.status for d in deliveries] == [200]
    stored = {(e.entity, e.entity_id) for e in rows(stack.engine, m.qbo_webhook_events)}
    assert ("Payment", payment["Id"]) in stored

    tick = sensor_tick(stack)
    (request,) = tick.run_requests
    assert request.partition_key == "acme" and request.tags["datagate/trigger"] == "webhook"
    result = stack.run(tags=request.tags)
    assert result.success
    read = metadata(result, "qbo_payments")
    assert (read["mode"], read["applied"], read["paid"]) == ("cdc", 1, 1)
    assert read["api_calls"] <= 2
    assert metadata(result, "halo_invoice_payments")["recorded"] == 1
    (application,) = rows(stack.engine, m.payment_applications)
    assert (application.invoice_id, application.amount) == (paid.id, paid.total)
    halo_invoice = stack.halo_invoice(paid.id)
    assert (Decimal(str(halo_invoice["amountpaid"])), halo_invoice["paymentstatus"]) == (
        paid.total,
        2,
    )

    # Intuit sends the notification again, and the nightly run comes too: still once.
    emitter.configure(url=stack.receiver_url)
    assert not sensor_tick(stack, tick.cursor).run_requests
    again = stack.run()
    assert metadata(again, "qbo_payments")["applications_recorded"] == 0
    assert metadata(again, "halo_invoice_payments")["already_recorded"] == 1
    assert len(stack.halo_payments()) == 1


def test_the_nightly_refresh_brings_payments_without_webhooks(stack):
    stack.run()
    partly = stack.finals[1]
    pay(stack.qbo, qbo_invoice_ids(stack.engine)[partly.id], "12.34")
    (request,) = nightly_payments(
        dg.build_schedule_context(
            instance=stack.instance,
            scheduled_execution_time=datetime.now(UTC),
            resources={"portals": PortalsResource()},
        )
    )
    result = stack.run(tags=request.tags)
    assert result.success and metadata(result, "qbo_payments")["partly_paid"] == 1
    halo_invoice = stack.halo_invoice(partly.id)
    assert (Decimal(str(halo_invoice["amountpaid"])), halo_invoice["paymentstatus"]) == (
        Decimal("12.34"),
        1,
    )
    assert len(stack.halo_payments()) == 1


def test_a_webhook_for_a_deleted_invoice_is_reported(stack):
    stack.run()
    emitter = stack.qbo.backend.webhooks
    emitter.configure(url=stack.receiver_url, verifier_token=VERIFIER, format="legacy")
    gone = stack.finals[2]
    record = stack.qbo.company.read("Invoice", qbo_invoice_ids(stack.engine)[gone.id])
    stack.qbo.company.delete("Invoice", {"Id": record["Id"], "SyncToken": record["SyncToken"]})
    assert [d.status for d in emitter.flush()] == [200]
    (request,) = sensor_tick(stack).run_requests
    result = stack.run(tags=request.tags)
    assert result.success
    assert gone.invoice_key in metadata(result, "qbo_payments")["deleted_in_qbo_invoices"]
    (state,) = [s for s in rows(stack.engine, m.invoice_payment_states) if s.qbo_state == "deleted"]
    assert state.invoice_id == gone.id
