"""QBO's batch endpoint (docs/qbo-api.md §5): items named by the caller's own ids, the
request body of one chunk, and each item's answer read back by `bId` (in any order) — an
entity, a query response, or a typed error for a per-item Fault.

`QBOClient.batch` cuts items into chunks, sends each under the batch budget and uses
these helpers; nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from datagate_pipelines.qbo.errors import (
    ERRORS_BY_CODE,
    FaultEntry,
    QBOError,
    QBOFaultError,
    describe_faults,
    json_faults,
)
from datagate_pipelines.qbo.request_ids import derived_request_id

#: QBO's largest batch (§5).
MAX_BATCH_SIZE = 30
#: Batch requests per minute per company and app (§5).
BATCH_RATE = (40, 60.0)

_ENTITY = re.compile(r"^[A-Z][A-Za-z]*$")


BatchOperationName = Literal["create", "update", "delete", "void", "query"]


@dataclass(frozen=True)
class BatchItem:
    """One operation of a batch, named by the caller's own id (`our_id`), which is also the
    key of its result. Build with the class methods."""

    our_id: str
    operation: BatchOperationName
    entity: str | None = None
    body: Mapping[str, Any] | None = None
    statement: str | None = None

    @classmethod
    def create(cls, our_id: Any, entity: str, body: Mapping[str, Any]) -> BatchItem:
        return cls(str(our_id), "create", entity, dict(body))

    @classmethod
    def update(
        cls, our_id: Any, entity: str, body: Mapping[str, Any], *, sparse: bool = True
    ) -> BatchItem:
        payload = dict(body)
        if sparse:
            payload["sparse"] = True
        return cls(str(our_id), "update", entity, payload)

    @classmethod
    def delete(cls, our_id: Any, entity: str, qbo_id: Any, sync_token: Any) -> BatchItem:
        return cls(str(our_id), "delete", entity, {"Id": str(qbo_id), "SyncToken": str(sync_token)})

    @classmethod
    def void(cls, our_id: Any, entity: str, qbo_id: Any, sync_token: Any) -> BatchItem:
        return cls(str(our_id), "void", entity, {"Id": str(qbo_id), "SyncToken": str(sync_token)})

    @classmethod
    def query(cls, our_id: Any, statement: str) -> BatchItem:
        return cls(str(our_id), "query", statement=statement)

    def request_item(self, bid: str) -> dict[str, Any]:
        """The `BatchItemRequest` element for this item under `bid`."""
        if self.operation == "query":
            return {"bId": bid, "Query": self.statement}
        check_entity(self.entity or "")
        item: dict[str, Any] = {"bId": bid, self.entity: dict(self.body or {})}  # type: ignore[dict-item]
        if self.operation == "void":
            item["operation"] = "update"
            item["optionsData"] = "void"
        else:
            item["operation"] = self.operation
        return item


def check_entity(entity: str) -> str:
    if not _ENTITY.match(entity):
        raise ValueError(f"{entity!r} is not a QBO entity name (e.g. 'Invoice')")
    return entity


#: Builds the error of one failed item: (error class, item, message, fault type, faults).
ItemFailure = Callable[[type[QBOError], BatchItem, str, str | None, list[FaultEntry]], QBOError]


def batch_chunks(
    items: Iterable[BatchItem], size: int, request_id: str | None
) -> Iterator[tuple[list[BatchItem], str | None]]:
    """Items in chunks of `size`, each with a request id derived from `request_id` and the
    ids it carries: a re-run of the same items replays QBO's answers, and different items
    never replay another chunk's answer."""
    items = list(items)
    ids = [item.our_id for item in items]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"batch ids must be unique; repeated: {duplicates[:10]}")
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        chunk_id = (
            None
            if request_id is None
            else derived_request_id(request_id, *(item.our_id for item in chunk))
        )
        yield chunk, chunk_id


def batch_request_body(chunk: list[BatchItem]) -> tuple[dict[str, BatchItem], dict[str, Any]]:
    """The items by the bId sent for each, and the request body. bIds are positions: QBO
    allows 10 characters with a requestid, and results are mapped back to `our_id`."""
    by_bid = {str(position): item for position, item in enumerate(chunk, start=1)}
    return by_bid, {"BatchItemRequest": [item.request_item(bid) for bid, item in by_bid.items()]}


def read_batch_answers(
    chunk: list[BatchItem],
    by_bid: Mapping[str, BatchItem],
    body: Any,
    fail: ItemFailure,
) -> dict[str, dict[str, Any] | QBOError]:
    """Each item's result by its `our_id`; an item QBO did not answer is an error too."""
    answers = body.get("BatchItemResponse") if isinstance(body, dict) else None
    results: dict[str, dict[str, Any] | QBOError] = {}
    for answer in answers if isinstance(answers, list) else []:
        item = by_bid.get(str(answer.get("bId"))) if isinstance(answer, dict) else None
        if item is not None:
            results[item.our_id] = _item_result(item, answer, fail)
    for item in chunk:
        if item.our_id not in results:
            results[item.our_id] = fail(
                QBOError, item, "QBO's batch answer has no result for this item", None, []
            )
    return results


def _item_result(
    item: BatchItem, answer: Mapping[str, Any], fail: ItemFailure
) -> dict[str, Any] | QBOError:
    fault = answer.get("Fault") or answer.get("fault")
    if isinstance(fault, dict):
        fault_type, entries = json_faults(fault)
        kind = ERRORS_BY_CODE.get(entries[0].code, QBOFaultError) if entries else QBOFaultError
        return fail(kind, item, describe_faults(entries), fault_type, entries)
    if item.operation == "query":
        return answer.get("QueryResponse") or {}
    value = answer.get(item.entity or "")
    if isinstance(value, dict):
        return value
    return fail(QBOError, item, f"QBO's batch answer has no {item.entity} object", None, [])
