"""Batch requests: several operations in one ``POST …/batch``, each answered on its own.

docs/qbo-api.md §5. Items run serially, each on its own: a failing item gets a per-item ``Fault``
and the others go on; the whole request answers 200. Results are keyed by ``bId`` — clients
must not rely on their order (the simulator can shuffle them to prove it).
"""

from __future__ import annotations

import random
from typing import Any

from .. import errors
from ..errors import QBOFault
from .company import ENTITIES, Company

__all__ = ["run_batch"]

_ITEM_KEYS = ("bId", "operation", "optionsData")


def run_batch(
    company: Company,
    body: Any,
    *,
    max_items: int,
    shuffle: bool = False,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """Run a batch; returns ``{"BatchItemResponse": [...]}`` (without ``time``)."""
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise errors.required_param_missing("BatchItemRequest")
    if len(items) > max_items:
        raise errors.batch_too_large(len(items), max_items)
    seen: set[str] = set()
    for item in items:
        bid = item.get("bId") if isinstance(item, dict) else None
        if bid is None or str(bid).strip() == "":
            raise errors.required_param_missing("BatchItemRequest.bId")
        if str(bid) in seen:
            raise errors.business_validation(f"Duplicate bId {bid} in the batch.", "bId")
        seen.add(str(bid))
    responses = []
    for item in items:
        try:
            result = _run_item(company, item)
        except QBOFault as fault:
            result = {"Fault": fault.to_json()}
        responses.append({"bId": item["bId"], **result})
    if shuffle:
        (rng or random.Random()).shuffle(responses)
    return {"BatchItemResponse": responses}


def _run_item(company: Company, item: dict[str, Any]) -> dict[str, Any]:
    if "Query" in item:
        return {"QueryResponse": company.query(str(item["Query"]))}
    payload_keys = [k for k in item if k not in _ITEM_KEYS]
    if len(payload_keys) != 1:
        raise errors.required_param_missing("BatchItemRequest.<Entity>")
    entity = payload_keys[0]
    if entity not in ENTITIES:
        raise errors.unsupported_property(entity, "BatchItemRequest")
    payload = item[entity]
    operation = item.get("operation")
    void = item.get("optionsData") == "void"
    if operation == "create":
        result = company.create(entity, payload)
    elif operation == "update" and void and ENTITIES[entity].voidable:
        result = company.void(entity, payload)
    elif operation == "update":
        result = company.update(entity, payload, ("void",) if void else ())
    elif operation == "delete":
        result = company.delete(entity, payload)
    else:
        raise errors.invalid_enumeration("operation", operation)
    return {entity: result}
