"""How asset failures meet Dagster's retry policy.

Transient API trouble (429, 5xx, dropped connections) is retried by the asset's RetryPolicy
after the client's own retries ran out; so is a warehouse that went away mid-step (a
PostgreSQL restart or failover). A wrong secret, a bad portal entry or a rejected request
will not fix itself: such failures skip the retries and fail at once, with the one-line
reason as the failure's description.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from sqlalchemy.exc import InterfaceError, OperationalError

from datagate_pipelines import DatagateError
from datagate_pipelines.apiclient.errors import RateLimitedError, ServerError, TransportError
from datagate_pipelines.warehouse.db import WarehouseUnreachable

TRANSIENT = (
    RateLimitedError,
    ServerError,
    TransportError,
    # A lost or refused database connection (psycopg2 and sqlite3 raise these as
    # OperationalError or InterfaceError); a step that failed so ran in a transaction
    # that rolled back, and runs again from the start.
    OperationalError,
    InterfaceError,
    WarehouseUnreachable,
)


@contextmanager
def fail_fast_unless_transient() -> Iterator[None]:
    try:
        yield
    except TRANSIENT:
        raise
    except DatagateError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def api_retry_policy() -> dg.RetryPolicy:
    """Retries for API-bound assets: exponential backoff with jitter, after the client's own.

    `DATAGATE_ASSET_RETRY_DELAY` (seconds, default 30) sets the first wait; tests set 0.
    """
    return _backing_off(max_retries=2)


def warehouse_retry_policy() -> dg.RetryPolicy:
    """Retries for steps that only read and write the warehouse: a database restart or
    failover lasts seconds to a couple of minutes, so three tries with exponential backoff
    from `DATAGATE_ASSET_RETRY_DELAY` (default 30 s: 30, 60, 120 s) outlast it."""
    return _backing_off(max_retries=3)


def _backing_off(max_retries: int) -> dg.RetryPolicy:
    delay = float(os.environ.get("DATAGATE_ASSET_RETRY_DELAY", "30"))
    return dg.RetryPolicy(
        max_retries=max_retries,
        delay=delay,
        backoff=dg.Backoff.EXPONENTIAL,
        jitter=dg.Jitter.PLUS_MINUS,
    )
