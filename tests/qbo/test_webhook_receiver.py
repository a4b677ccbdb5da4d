"""The QBO webhook receiver (`datagate webhooks serve`), running on loopback: signatures,
both formats, replays, bad bodies, unknown realms, a burst; SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from datagate_pipelines.qbo.webhook_receiver import PATH, create_app
from datagate_pipelines.qbo.webhooks import sign
from datagate_pipelines.warehouse import models as m
from datagate_simulators.server import serve_in_thread

REALM = "9130350000000001"
TOKEN = "verifier-token-acme"
PORTALS = """
portals:
  - id: acme
    name: Acme
    billing_start: 2026-07
    halopsa: {client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}
    qbo: {realm_id: "REALM", client_id_env: C, client_secret_env: D, refresh_token_env: E, webhook_verifier_token_env: ACME_QBO_VERIFIER}
  - id: globex
    name: Globex
    billing_start: 2026-07
    halopsa: {client_id_env: A, client_secret_env: B, authorization_server: "https://h/auth", resource_server: "https://h/api"}
""".replace("REALM", REALM)


@dataclass
class Receiver:
    url: str
    engine: Engine
    portals_file: Path

    def post(self, body: bytes, signature: str | None = "sign") -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            signature = sign(body, TOKEN)
        if signature is not None:
            headers["intuit-signature"] = signature
        return httpx.post(self.url, content=body, headers=headers, timeout=10)

    def events(self) -> list:
        with self.engine.connect() as c:
            return c.execute(select(m.qbo_webhook_events).order_by(m.qbo_webhook_events.c.id)).all()

    def requests(self) -> list:
        with self.engine.connect() as c:
            return c.execute(
                select(m.api_requests).where(m.api_requests.c.direction == "inbound")
            ).all()


@pytest.fixture
def receiver(engine, tmp_path) -> Iterator[Receiver]:
    portals_file = tmp_path / "portals.yaml"
    portals_file.write_text(PORTALS)
    app = create_app(engine, portals_file=portals_file, environ={"ACME_QBO_VERIFIER": TOKEN})
    with serve_in_thread(app) as server:
        yield Receiver(server.base_url + PATH, engine, portals_file)


def legacy(
    realm=REALM,
    entity="Payment",
    entity_id="146",
    operation="Create",
    when="2026-08-03T10:00:00-0700",
):
    return json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": realm,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": entity,
                                "id": entity_id,
                                "operation": operation,
                                "lastUpdated": when,
                            }
                        ]
                    },
                }
            ]
        }
    ).encode()


def cloud(count=1, realm=REALM, entity="invoice", verb="updated", start=0, event_id=None):
    return json.dumps(
        [
            {
                "specversion": "1.0",
                "id": event_id or str(uuid.uuid4()),
                "source": "intuit.qbo",
                "type": f"qbo.{entity}.{verb}.v1",
                "datacontenttype": "application/json",
                "time": f"2026-08-03T17:{(start + i) // 60 % 60:02d}:{(start + i) % 60:02d}.000Z",
                "intuitentityid": str(1000 + start + i),
                "intuitaccountid": realm,
                "data": {},
            }
            for i in range(count)
        ]
    ).encode()


def test_signed_notifications_in_both_formats_are_stored(receiver):
    assert receiver.post(legacy()).status_code == 200
    response = receiver.post(cloud(entity="creditmemo", verb="created"))
    assert response.status_code == 200 and response.json() == {"stored": 1, "replayed": 0}
    events = receiver.events()
    assert [(e.portal_id, e.format, e.entity, e.operation) for e in events] == [
        ("acme", "legacy", "Payment", "Create"),
        ("acme", "cloudevents", "CreditMemo", "Create"),
    ]
    assert [r.status for r in receiver.requests()] == [200, 200]


BAD_SIGNATURES = [None, "", "bm90IHRoZSBzaWduYXR1cmU=", sign(b"other body", TOKEN)]


def test_a_missing_or_bad_signature_is_refused_and_nothing_is_stored(receiver, caplog):
    attempts = [(body, s) for body in (legacy(), cloud()) for s in BAD_SIGNATURES]
    with caplog.at_level(logging.WARNING, logger="datagate_pipelines.qbo.webhook_receiver"):
        for body, signature in attempts:
            assert receiver.post(body, signature=signature).status_code == 401, signature
    assert receiver.events() == []
    refusals = [r.getMessage() for r in caplog.records if "refused (401)" in r.getMessage()]
    assert len(refusals) == len(attempts)  # one line each
    assert all(REALM not in line and "Payment" not in line for line in refusals)  # no body
    assert sum("missing intuit-signature" in line for line in refusals) == 4
    logged = receiver.requests()
    assert [r.status for r in logged] == [401] * len(attempts)
    assert {r.portal_id for r in logged} == {None}


def test_a_signature_made_with_another_token_is_refused(receiver):
    body = legacy()
    assert receiver.post(body, signature=sign(body, "someone-elses-token")).status_code == 401
    assert receiver.events() == []


def test_a_replayed_notification_is_acknowledged_and_not_stored_again(receiver):
    body = cloud(count=3)
    assert receiver.post(body).json() == {"stored": 3, "replayed": 0}
    assert receiver.post(body).json() == {"stored": 0, "replayed": 3}  # Intuit sent it again
    # The same change under new CloudEvents ids (same entity, operation and time): a replay.
    again = cloud(count=3)
    assert receiver.post(again).json() == {"stored": 0, "replayed": 3}
    # Legacy notifications have no id: entity, operation and lastUpdated decide.
    assert receiver.post(legacy()).json()["stored"] == 1
    assert receiver.post(legacy()).json() == {"stored": 0, "replayed": 1}
    assert receiver.post(legacy(when="2026-08-03T10:00:01-0700")).json()["stored"] == 1
    assert len(receiver.events()) == 5


def test_a_malformed_body_is_a_400(receiver):
    for body in (b"{not json", b'{"hello": "world"}', b'[{"type": "qbo.invoice.updated.v1"}]'):
        response = receiver.post(body)
        assert response.status_code == 400, body
        assert response.json()["error"]
    assert receiver.events() == []


def test_an_event_for_a_realm_no_portal_has_is_accepted_with_a_warning(receiver, caplog):
    with caplog.at_level(logging.WARNING, logger="datagate_pipelines.qbo.webhook_receiver"):
        response = receiver.post(legacy(realm="4620816365000000"))
    assert response.status_code == 202
    assert response.json()["unknown_realms"] == ["4620816365000000"]
    assert any("4620816365000000" in r.getMessage() for r in caplog.records)
    assert receiver.events() == []


def test_a_burst_of_1000_events_is_stored_whole(receiver):
    response = receiver.post(cloud(count=1000))
    assert response.status_code == 200
    assert response.json() == {"stored": 1000, "replayed": 0}
    with receiver.engine.connect() as c:
        assert (
            c.execute(select(func.count()).select_from(m.qbo_webhook_events)).scalar_one() == 1000
        )


def test_a_portal_added_to_portals_yaml_is_served_without_a_restart(receiver, tmp_path):
    other = "4620816365000009"
    assert receiver.post(legacy(realm=other)).status_code == 202
    receiver.portals_file.write_text(
        PORTALS.replace(
            "  - id: globex\n    name: Globex\n    billing_start: 2026-07\n",
            "  - id: globex\n    name: Globex\n    billing_start: 2026-07\n"
            f'    qbo: {{realm_id: "{other}", client_id_env: C, client_secret_env: D, '
            "refresh_token_env: E, webhook_verifier_token_env: ACME_QBO_VERIFIER}\n",
        )
    )
    assert receiver.post(legacy(realm=other)).status_code == 200
    assert [e.portal_id for e in receiver.events()] == ["globex"]
