"""Telling people: a failed run and a period waiting for approval reach the portal's
operators through a real SMTP server (aiosmtpd) and a webhook receiver, both on loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from datagate_pipelines.config import parse_portals
from datagate_pipelines.definitions import defs
from datagate_pipelines.imports.product_templates import import_product_templates
from datagate_pipelines.imports.tax_rates import import_tax_rates
from datagate_pipelines.invoicing.approval import approve_period
from datagate_pipelines.invoicing.drafts import compute_drafts
from datagate_pipelines.resources.notifier import NotificationError, NotifierResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.sensors.notifications import approval_reminders, run_failure_notices
from tests.invoicing.test_billing_flow import JULY, TAX_RATES, TEMPLATES
from tests.sync.halo_records import bayside_tenant
from tests.sync.test_apply import sync_all

PORTALS = """
portals:
  - id: acme
    name: Acme Telecom
    billing_start: 2026-07
    halopsa: {client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}
    invoicing: {approval: manual}
    review: {remind_after_days: 5}
    notify: {email: [billing@acme.example], webhook_url_env: ACME_WEBHOOK_URL}
"""


class Inbox:
    """What the SMTP server on loopback received."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler, port = Inbox(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


class Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def webhook(monkeypatch) -> Iterator[type[Receiver]]:
    receiver = type("OneReceiver", (Receiver,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # a token in the path, as Slack's incoming webhooks have: it must never be shown
    monkeypatch.setenv(
        "ACME_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hooks/T0KEN-SECRET"
    )
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def deployment(tmp_path, engine, engine_url, monkeypatch):
    (tmp_path / "portals.yaml").write_text(PORTALS)
    monkeypatch.setenv("DATAGATE_PORTALS_FILE", str(tmp_path / "portals.yaml"))
    monkeypatch.setenv("DATAGATE_DATABASE_URL", engine_url)
    return parse_portals(PORTALS).get("acme")


def notifier(port: int) -> NotifierResource:
    return NotifierResource(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        email_from="datagate@ops.example",
        email_to="oncall@ops.example",
        ui_url="http://127.0.0.1:3000",
    )


def resources(port: int) -> dict:
    return {
        "portals": PortalsResource(),
        "warehouse": WarehouseResource(),
        "notifier": notifier(port),
    }


def test_a_failed_run_reaches_the_portals_operators(deployment, inbox, webhook, instance):
    handler, port = inbox
    instance.add_dynamic_partitions("portal", ["acme"])
    # August before July was ever billed: the run fails, naming why.
    run = defs.resolve_job_def("billing").execute_in_process(
        partition_key="2026-08-01|acme", instance=instance, raise_on_error=False
    )
    assert not run.success
    failure = next(
        e.dagster_event
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
    )
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_notices",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id),
        resources=resources(port),
    ).for_run_failure()
    run_failure_notices(context)

    ((recipients, message),) = handler.messages
    assert sorted(recipients) == ["billing@acme.example", "oncall@ops.example"]
    assert message["Subject"] == "datagate: billing failed (acme, 2026-08-01|acme)"
    body = message.get_content()
    assert f"The billing run {run.run_id} of portal acme failed." in body
    assert "bill 2026-07 before 2026-08" in body
    assert f"http://127.0.0.1:3000/runs/{run.run_id}" in body
    (posted,) = webhook.received
    assert (posted["kind"], posted["portal"], posted["run_id"], posted["job"]) == (
        "run_failure",
        "acme",
        run.run_id,
        "billing",
    )
    assert posted["text"].startswith("datagate: billing failed")


@pytest.fixture
def july_waiting(deployment, engine):
    """July 2026 billed and closed (today is later), drafts waiting for approval."""
    sync_all(engine, deployment, bayside_tenant())
    with engine.begin() as c:
        import_tax_rates(c, TAX_RATES)
        import_product_templates(c, "acme", TEMPLATES)
    sync_all(engine, deployment)
    with engine.begin() as c:
        compute_drafts(c, deployment.settings, JULY)
    return deployment


def test_a_period_waiting_too_long_reminds_once_per_interval(
    july_waiting, engine, inbox, webhook, instance
):
    handler, port = inbox
    waited = (datetime.now(UTC).date() - JULY.replace(month=8)).days
    assert waited > 5, "the test needs July 2026 closed for more than remind_after_days"
    first = approval_reminders(
        dg.build_sensor_context(instance=instance, resources=resources(port))
    )
    assert not first.skip_reason
    ((recipients, message),) = handler.messages
    assert sorted(recipients) == ["billing@acme.example", "oncall@ops.example"]
    assert message["Subject"] == (
        f"datagate: Acme Telecom 2026-07 has waited {waited} days for approval"
    )
    body = message.get_content()
    assert (
        "closed on 2026-08-01 and waits for approval: 1 draft invoice(s), total 363.23" in body
    )  # no usage imported
    assert "datagate review --portal acme --period 2026-07" in body
    (posted,) = webhook.received
    assert (posted["kind"], posted["period"], posted["waiting_days"]) == (
        "approval_reminder",
        "2026-07",
        waited,
    )
    # the next tick (same day): reminded already
    again = approval_reminders(
        dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources(port))
    )
    assert again.skip_reason and len(handler.messages) == 1
    # approved: nothing to remind of, whatever the cursor
    with engine.begin() as c:
        approve_period(c, july_waiting.settings, JULY, approved_by="alice")
    done = approval_reminders(dg.build_sensor_context(instance=instance, resources=resources(port)))
    assert done.skip_reason and len(handler.messages) == 1


def test_a_notification_nobody_received_fails_the_tick_without_the_secret(
    july_waiting, webhook, instance
):
    webhook.status = 500
    dead_mail = free_port()  # nothing listens there
    with pytest.raises(NotificationError) as failed:
        approval_reminders(
            dg.build_sensor_context(instance=instance, resources=resources(dead_mail))
        )
    message = str(failed.value)
    assert "webhook ACME_WEBHOOK_URL: answered 500" in message
    assert "email to " in message and "billing@acme.example" in message
    assert "T0KEN-SECRET" not in message and "127.0.0.1:" not in message.split("email")[0]
