"""Idempotent writes: deterministic `requestid`s, so a retried or re-run create replays QBO's first answer (docs/qbo-api.md §7.1)."""

from __future__ import annotations

import uuid
from typing import Any

#: `requestid` limits (§7.1): 50 characters, 36 on a batch.
REQUEST_ID_MAX = 50
BATCH_REQUEST_ID_MAX = 36


# A fixed namespace: request ids must come out the same in every process, for ever.
_REQUEST_ID_NAMESPACE = uuid.UUID("5b0e4f1c-9a57-4c1e-8d7a-2f1e7a3c9b10")


# ---------------------------------------------------------------------------------------
# Idempotency
# ---------------------------------------------------------------------------------------


def request_id_for(portal_id: str, our_id: Any, operation: str) -> str:
    """The `requestid` of one write: the same (portal, Datagate id, operation) always gives
    the same id, so a retried or re-run create replays QBO's first answer.

    36 characters: fits both limits (50, and 36 on a batch). To write the same record again
    on purpose (say, re-export after the first invoice was deleted in QBO), change
    `operation` (`"create:2"`): QBO would otherwise replay the first answer.
    """
    if not portal_id or our_id is None or str(our_id) == "" or not operation:
        raise ValueError("request_id_for needs a portal, our id and an operation")
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, f"{portal_id}\x1f{our_id}\x1f{operation}"))


def derived_request_id(request_id: str, *parts: Any) -> str:
    """A request id for a part of one logical request (a batch chunk, a stale-token retry)."""
    text = "\x1f".join([request_id, *(str(p) for p in parts)])
    return str(uuid.uuid5(_REQUEST_ID_NAMESPACE, text))


def check_request_id(request_id: str | None, limit: int) -> None:
    if request_id is not None and not 0 < len(request_id) <= limit:
        raise ValueError(f"a QBO requestid has 1 to {limit} characters, not {len(request_id)}")
