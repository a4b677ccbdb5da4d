"""QBO webhooks: both payload formats read into one event shape, and the `intuit-signature`
check (docs/qbo-api.md §6.2–§6.3).

Intuit signs the raw request body: `intuit-signature` = base64(HMAC-SHA256(key = the app's
verifier token, message = the body)). The signature is checked on the bytes as received,
before anything is parsed. A notification carries ids only; what changed is read through the
API (CDC) afterwards.

- Legacy: `{"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{"name",
  "id", "operation", "lastUpdated", "deletedId"?}]}}]}`.
- CloudEvents: a JSON array of `{"specversion", "id", "type": "qbo.invoice.updated.v1",
  "time", "intuitentityid", "intuitaccountid" (the realm), "data"}`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from datagate_pipelines import DatagateError

SIGNATURE_HEADER = "intuit-signature"
LEGACY, CLOUDEVENTS = "legacy", "cloudevents"

#: CloudEvents spell entities in lower case (`qbo.creditmemo.created.v1`); the API's names.
ENTITY_NAMES = {
    name.lower(): name
    for name in (
        "Account", "Bill", "BillPayment", "Budget", "Class", "CreditMemo", "Currency",
        "Customer", "Department", "Deposit", "Employee", "Estimate", "Invoice", "Item",
        "JournalCode", "JournalEntry", "Payment", "PaymentMethod", "Preferences",
        "Purchase", "PurchaseOrder", "RefundReceipt", "SalesReceipt", "TaxAgency", "Term",
        "TimeActivity", "Transfer", "Vendor", "VendorCredit",
    )
}  # fmt: skip
#: CloudEvents verbs → the legacy operation names (Create, Update, Delete, Merge, Void, Emailed).
OPERATIONS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "voided": "Void",
    "emailed": "Emailed",
}


class MalformedWebhookError(DatagateError):
    """The body is not a QBO webhook notification in either format; says where and why."""


@dataclass(frozen=True)
class WebhookEvent:
    """One changed entity, whatever format announced it."""

    realm_id: str
    entity: str
    entity_id: str
    operation: str
    last_updated: datetime | None
    format: str
    event_id: str | None = None
    deleted_id: str | None = None


def sign(body: bytes, verifier_token: str) -> str:
    """The `intuit-signature` of `body` under `verifier_token`."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_by(body: bytes, signature: str | None, verifier_tokens: Iterable[str]) -> str | None:
    """Which of the verifier tokens signed `body` (compared in constant time); None if none
    did, or the signature is missing."""
    if not signature:
        return None
    given = signature.strip().encode()
    for token in verifier_tokens:
        if hmac.compare_digest(sign(body, token).encode(), given):
            return token
    return None


def parse_notification(body: bytes) -> list[WebhookEvent]:
    """The events of a notification in either format; `MalformedWebhookError` otherwise."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedWebhookError("the body is not JSON") from None
    if isinstance(document, list):
        return [_cloud_event(item, index) for index, item in enumerate(document)]
    if isinstance(document, dict) and "eventNotifications" in document:
        return _legacy(document["eventNotifications"])
    raise MalformedWebhookError(
        "neither format: expected an eventNotifications object or a CloudEvents array"
    )


def _legacy(notifications: Any) -> list[WebhookEvent]:
    if not isinstance(notifications, list):
        raise MalformedWebhookError("eventNotifications is not a list")
    events = []
    for n, notification in enumerate(notifications):
        where = f"eventNotifications[{n}]"
        if not isinstance(notification, dict):
            raise MalformedWebhookError(f"{where} is not an object")
        realm = _text(notification.get("realmId"), f"{where}.realmId")
        change = notification.get("dataChangeEvent")
        entities = change.get("entities") if isinstance(change, dict) else None
        if not isinstance(entities, list):
            raise MalformedWebhookError(f"{where}.dataChangeEvent.entities is not a list")
        for e, entity in enumerate(entities):
            place = f"{where}.dataChangeEvent.entities[{e}]"
            if not isinstance(entity, dict):
                raise MalformedWebhookError(f"{place} is not an object")
            events.append(
                WebhookEvent(
                    realm_id=realm,
                    entity=_text(entity.get("name"), f"{place}.name"),
                    entity_id=_text(entity.get("id"), f"{place}.id"),
                    operation=_text(entity.get("operation"), f"{place}.operation"),
                    last_updated=_time(entity.get("lastUpdated"), f"{place}.lastUpdated"),
                    format=LEGACY,
                    deleted_id=_optional_text(entity.get("deletedId")),
                )
            )
    return events


def _cloud_event(item: Any, index: int) -> WebhookEvent:
    where = f"[{index}]"
    if not isinstance(item, dict):
        raise MalformedWebhookError(f"{where} is not an object")
    kind = _text(item.get("type"), f"{where}.type")
    parts = kind.split(".")
    if len(parts) < 3 or parts[0] != "qbo":
        raise MalformedWebhookError(f"{where}.type {kind!r} is not qbo.<entity>.<verb>[.v1]")
    entity, verb = parts[1].lower(), parts[2].lower()
    data = item.get("data") if isinstance(item.get("data"), dict) else {}
    return WebhookEvent(
        realm_id=_text(item.get("intuitaccountid"), f"{where}.intuitaccountid"),
        entity=ENTITY_NAMES.get(entity, entity[:1].upper() + entity[1:]),
        entity_id=_text(item.get("intuitentityid"), f"{where}.intuitentityid"),
        operation=OPERATIONS.get(verb, verb[:1].upper() + verb[1:]),
        last_updated=_time(item.get("time"), f"{where}.time"),
        format=CLOUDEVENTS,
        event_id=_text(item.get("id"), f"{where}.id"),
        deleted_id=_optional_text(data.get("deletedId")),
    )


def _text(value: Any, where: str) -> str:
    text = _optional_text(value)
    if text is None:
        raise MalformedWebhookError(f"{where} is missing")
    return text


def _optional_text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text or None


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise MalformedWebhookError(f"{where} {value!r} is not an ISO date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
