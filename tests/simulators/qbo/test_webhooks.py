"""The QBO simulator's webhooks: every change notified, signed with the verifier token, in
either format, sent again when the endpoint fails (docs/qbo-api.md §6.2–§6.3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from datagate_simulators.qbo.clock import FakeClock
from datagate_simulators.qbo.testing import make_sim
from datagate_simulators.server import SyncASGITransport

TOKEN = "verifier-123"


class Endpoint:
    """The app's webhook endpoint: records what it gets, answers the statuses it is told."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str | None]] = []
        self.statuses: list[int] = []

        async def receive(request: Request) -> Response:
            self.received.append((await request.body(), request.headers.get("intuit-signature")))
            return Response(status_code=self.statuses.pop(0) if self.statuses else 200)

        self.app = Starlette(routes=[Route("/hooks", receive, methods=["POST"])])

    def bodies(self) -> list:
        return [json.loads(body) for body, _ in self.received]


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint()


@pytest.fixture
def sim(endpoint):
    sim = make_sim(clock=FakeClock(), customers=[{"DisplayName": "Acme"}], items=[{"Name": "Svc"}])
    sim.backend.webhooks.transport = SyncASGITransport(endpoint.app)
    sim.backend.webhooks.configure(url="http://app.test/hooks", verifier_token=TOKEN)
    return sim


def invoice(sim) -> dict:
    return sim.company.create(
        "Invoice",
        {
            "CustomerRef": {"value": "1"},
            "Line": [
                {
                    "Amount": Decimal("10"),
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
                }
            ],
        },
    )


def test_changes_are_sent_as_signed_cloudevents(sim, endpoint):
    created = invoice(sim)
    sim.company.create("Term", {"Name": "Net 45", "DueDays": 45})  # not subscribed
    (delivery,) = sim.backend.webhooks.flush()
    assert delivery.status == 200 and delivery.final
    ((body, signature),) = endpoint.received
    # §6.2: base64(HMAC-SHA256(verifier token, raw body)).
    assert (
        signature
        == base64.b64encode(hmac.new(TOKEN.encode(), body, hashlib.sha256).digest()).decode()
    )
    (event,) = json.loads(body)  # §6.3: an array of CloudEvents
    assert event["type"] == "qbo.invoice.created.v1"
    assert (event["intuitentityid"], event["intuitaccountid"]) == (created["Id"], sim.realm_id)
    assert event["specversion"] == "1.0" and event["id"] and event["time"].endswith("Z")
    assert sim.backend.webhooks.flush() == []  # nothing more to send


def test_the_legacy_format(sim, endpoint):
    sim.backend.webhooks.configure(format="legacy")
    created = invoice(sim)
    sim.company.delete("Invoice", {"Id": created["Id"], "SyncToken": "0"})
    sim.backend.webhooks.flush()
    (body,) = endpoint.bodies()
    (notification,) = body["eventNotifications"]
    assert notification["realmId"] == sim.realm_id
    entities = notification["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in entities] == [
        ("Invoice", created["Id"], "Create"),
        ("Invoice", created["Id"], "Delete"),
    ]
    assert entities[0]["lastUpdated"][-5:] == "-0700"  # Intuit's example: 14:42:19-0700


def test_a_payment_notifies_the_payment_and_the_invoice_it_pays(sim, endpoint):
    created = invoice(sim)
    sim.backend.webhooks.flush()
    sim.company.create(
        "Payment",
        {
            "CustomerRef": {"value": "1"},
            "TotalAmt": 10,
            "Line": [{"Amount": 10, "LinkedTxn": [{"TxnId": created["Id"], "TxnType": "Invoice"}]}],
        },
    )
    sim.backend.webhooks.flush()
    types = [(e["type"], e["intuitentityid"]) for e in endpoint.bodies()[-1]]
    assert ("qbo.payment.created.v1", str(int(created["Id"]) + 1)) in types
    assert ("qbo.invoice.updated.v1", created["Id"]) in types


def test_a_failed_delivery_is_sent_again_the_same_then_dropped(sim, endpoint):
    emitter = sim.backend.webhooks
    emitter.configure(retry_delays=[20, 60])
    endpoint.statuses = [500, 503, 500]
    invoice(sim)
    first = emitter.flush()
    assert [(d.attempt, d.status, d.final) for d in first] == [(1, 500, False)]
    assert emitter.flush() == []  # not due yet
    sim.backend.clock.advance(seconds=20)
    assert [(d.attempt, d.status, d.final) for d in emitter.flush()] == [(2, 503, False)]
    sim.backend.clock.advance(seconds=60)
    assert [(d.attempt, d.status, d.final) for d in emitter.flush()] == [(3, 500, True)]
    bodies = [body for body, _ in endpoint.received]
    assert bodies[0] == bodies[1] == bodies[2]  # same CloudEvents ids: the receiver can tell
    sim.backend.clock.advance(seconds=600)
    assert emitter.flush() == [] and emitter.pending == 0


def test_an_unreachable_endpoint_is_retried(sim, endpoint):
    emitter = sim.backend.webhooks
    emitter.configure(url="http://127.0.0.1:9/hooks", retry_delays=[1])
    emitter.transport = None
    invoice(sim)
    (delivery,) = emitter.flush()
    assert delivery.status is None and "ConnectError" in delivery.error and not delivery.final


def test_events_wait_for_the_configured_delay(sim, endpoint):
    sim.backend.webhooks.configure(delay=60)
    invoice(sim)
    assert sim.backend.webhooks.flush() == []
    sim.backend.clock.advance(seconds=60)
    assert len(sim.backend.webhooks.flush()) == 1


def test_webhooks_are_configured_and_flushed_over_http(sim, endpoint):
    with sim.client() as http:
        settings = http.post("/_sim/qbo/webhooks", json={"format": "legacy"}).json()["settings"]
        assert settings["format"] == "legacy" and settings["verifier_token_set"]
        assert "verifier_token" not in settings
        invoice(sim)
        sent = http.post("/_sim/qbo/webhooks/flush").json()["sent"]
        assert sent == [{"attempt": 1, "status": 200, "error": None}]
        assert http.post("/_sim/qbo/webhooks", json={"colour": "red"}).status_code == 400
    assert "eventNotifications" in endpoint.bodies()[0]
