"""Batches sent a few at a time, answered in the caller's thread.

A batch of 30 creates spends most of its time at QBO; QBO allows 10 requests in flight
(and 40 batches a minute, which the client's batch limiter keeps to), so sending the next
batches while one is processed fills that budget instead of waiting on each answer in turn.
Only the HTTP exchange runs in the worker threads: the caller records every result itself,
in its own thread and transactions, as the answers arrive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from datagate_pipelines.qbo.batch import BatchItem
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.errors import QBOError

#: Batches in flight at once: enough to keep QBO busy, well under its 10 concurrent.
PARALLEL_BATCHES = 4

BatchResults = dict[str, dict[str, Any] | QBOError]


def send_batches(
    client: QBOClient,
    chunks: Sequence[Sequence[BatchItem]],
    request_ids: Sequence[str | None],
    *,
    parallel: int = PARALLEL_BATCHES,
) -> Iterator[tuple[int, BatchResults | BaseException]]:
    """Send each chunk as one batch request (at most `parallel` at a time); yield
    `(index, results by our id)` — or `(index, the error)` when the whole request failed —
    in the order the answers arrive. Stopping the iteration early (an exception in the
    caller) sends no further chunk; those in flight finish."""
    if parallel <= 1 or len(chunks) <= 1:
        for index, chunk in enumerate(chunks):
            try:
                yield index, client.batch(chunk, request_id=request_ids[index])
            except QBOError as error:
                yield index, error
        return
    executor = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="qbo-batch")
    pending: dict[Future[BatchResults], int] = {}
    next_index = 0
    try:
        while next_index < len(chunks) or pending:
            while next_index < len(chunks) and len(pending) < parallel:
                future = executor.submit(
                    client.batch, chunks[next_index], request_id=request_ids[next_index]
                )
                pending[future] = next_index
                next_index += 1
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=pending.__getitem__):
                index = pending.pop(future)
                error = future.exception()
                yield index, (error if error is not None else future.result())
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
