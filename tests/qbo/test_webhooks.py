"""QBO webhook payloads: both formats read into one event shape, and intuit-signature
(docs/qbo-api.md §6.2–§6.3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime

import pytest

from datagate_pipelines.qbo.webhooks import (
    CLOUDEVENTS,
    LEGACY,
    MalformedWebhookError,
    parse_notification,
    sign,
    signed_by,
)

# Intuit's own examples (docs/qbo-api.md §6.2, §6.3).
LEGACY_BODY = (
    b'{"eventNotifications":[{"realmId":"1185883450","dataChangeEvent":{"entities":'
    b'[{"name":"Customer","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"}]}}]}'
)
CLOUD_BODY = json.dumps(
    [
        {
            "specversion": "1.0",
            "id": "6f1c3f8e-0a4b-4f7e-9e57-2c1d1e0b6a11",
            "source": "intuit.qbo",
            "type": "qbo.creditmemo.created.v1",
            "datacontenttype": "application/json",
            "time": "2025-09-10T21:31:25.179851517Z",
            "intuitentityid": "1234",
            "intuitaccountid": "310687",
            "data": {},
        }
    ]
).encode()


def test_the_signature_is_base64_hmac_sha256_of_the_raw_body():
    expected = base64.b64encode(hmac.new(b"verifier", LEGACY_BODY, hashlib.sha256).digest())
    assert sign(LEGACY_BODY, "verifier") == expected.decode()
    assert signed_by(LEGACY_BODY, expected.decode(), ["other", "verifier"]) == "verifier"
    assert signed_by(LEGACY_BODY, expected.decode(), ["other"]) is None
    assert signed_by(LEGACY_BODY + b" ", expected.decode(), ["verifier"]) is None
    assert signed_by(LEGACY_BODY, None, ["verifier"]) is None
    assert signed_by(LEGACY_BODY, "", ["verifier"]) is None


def test_the_legacy_format():
    (event,) = parse_notification(LEGACY_BODY)
    assert (event.realm_id, event.entity, event.entity_id, event.operation, event.format) == (
        "1185883450",
        "Customer",
        "1",
        "Create",
        LEGACY,
    )
    assert event.last_updated == datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC)
    assert event.event_id is None


def test_the_cloudevents_format():
    (event,) = parse_notification(CLOUD_BODY)
    assert (event.realm_id, event.entity, event.entity_id, event.operation, event.format) == (
        "310687",
        "CreditMemo",
        "1234",
        "Create",
        CLOUDEVENTS,
    )
    assert event.event_id == "6f1c3f8e-0a4b-4f7e-9e57-2c1d1e0b6a11"
    assert event.last_updated == datetime(2025, 9, 10, 21, 31, 25, 179851, tzinfo=UTC)


def test_a_legacy_notification_may_carry_several_realms_and_entities():
    body = {
        "eventNotifications": [
            {
                "realmId": "1",
                "dataChangeEvent": {
                    "entities": [
                        {"name": "Invoice", "id": "7", "operation": "Update"},
                        {"name": "Customer", "id": "9", "operation": "Merge", "deletedId": "8"},
                    ]
                },
            },
            {"realmId": "2", "dataChangeEvent": {"entities": []}},
        ]
    }
    events = parse_notification(json.dumps(body).encode())
    assert [(e.realm_id, e.entity, e.operation, e.deleted_id) for e in events] == [
        ("1", "Invoice", "Update", None),
        ("1", "Customer", "Merge", "8"),
    ]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"not json", "not JSON"),
        (b'{"something": 1}', "neither format"),
        (b'{"eventNotifications": {}}', "not a list"),
        (b'{"eventNotifications": [{"dataChangeEvent": {"entities": []}}]}', "realmId"),
        (
            b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": "Invoice"}]}}]}',
            "entities[0].id",
        ),
        (b'[{"type": "qbo.invoice.updated.v1", "intuitentityid": "1"}]', "intuitaccountid"),
        (b'[{"type": "bogus", "intuitentityid": "1", "intuitaccountid": "2"}]', "type"),
        (
            b'[{"id": "x", "type": "qbo.invoice.updated.v1", "intuitentityid": "1", '
            b'"intuitaccountid": "2", "time": "yesterday"}]',
            "time",
        ),
    ],
)
def test_malformed_bodies_say_where(body, where):
    with pytest.raises(MalformedWebhookError, match=re.escape(where)):
        parse_notification(body)
