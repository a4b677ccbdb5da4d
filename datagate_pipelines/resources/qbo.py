"""QuickBooks Online as a Dagster resource: one plain-Python client per portal, built at run
time, its access tokens from the rotating refresh-token store in the warehouse.

Resources are static per code location, while credentials are per portal: the resource
holds only tuning; `client()` reads the portal's app credentials from the environment
variables portals.yaml names, and its tokens from `qbo_tokens` (qbo_tokens.py).
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import httpx
from pydantic import Field
from sqlalchemy import Engine

from datagate_pipelines.apiclient.records import RequestRecorder
from datagate_pipelines.apiclient.retries import RetryPolicy
from datagate_pipelines.config import Portal
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.qbo.token_store import QBOTokenStore, qbo_settings, token_store_for
from datagate_pipelines.warehouse.db import warehouse_engine


class DocNumberLookup:
    """`is_taken(doc_number) -> bool` over a QBO client it owns; close it when done
    (or use it as a context manager)."""

    def __init__(self, client: QBOClient, *, prefetch: int = 50):
        self.client = client
        self._is_taken = client.doc_number_lookup(prefetch=prefetch)

    def __call__(self, doc_number: str) -> bool:
        return self._is_taken(doc_number)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> DocNumberLookup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class QBOResource(dg.ConfigurableResource):
    """Builds a `QBOClient` for a portal, wired to the warehouse's token store."""

    timeout_seconds: float = Field(default=30.0, description="Per-request timeout")
    max_attempts: int = Field(
        default=6, description="Attempts per request (429, 5xx, dropped connections)"
    )
    rate_limited_backoff_seconds: float = Field(
        default=5.0, description="First wait after a 429 (doubling, capped at 60 s)"
    )
    token_margin_seconds: float = Field(
        default=300.0, description="Refresh access tokens this long before they expire"
    )

    def _retry(self) -> RetryPolicy:
        return RetryPolicy().replace(
            max_attempts=self.max_attempts, rate_limited_initial=self.rate_limited_backoff_seconds
        )

    def token_store(
        self,
        portal: Portal,
        *,
        engine: Engine | None = None,
        recorder: RequestRecorder | None = None,
        run_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> QBOTokenStore:
        """The portal's token store; `engine` defaults to the warehouse of
        DATAGATE_DATABASE_URL (assets pass `warehouse.engine()`)."""
        return token_store_for(
            portal,
            engine or warehouse_engine(),
            margin_seconds=self.token_margin_seconds,
            transport=transport,
            recorder=recorder,
            run_id=run_id,
            retry=self._retry(),
            timeout=self.timeout_seconds,
        )

    def client(
        self,
        portal: Portal,
        *,
        engine: Engine | None = None,
        recorder: RequestRecorder | None = None,
        run_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> QBOClient:
        """A client for the portal's QBO company (close it, or use it in a `with`)."""
        store = self.token_store(
            portal, engine=engine, recorder=recorder, run_id=run_id, transport=transport
        )
        return QBOClient.for_portal(
            portal.id,
            qbo_settings(portal),
            store,
            transport=transport,
            recorder=recorder,
            run_id=run_id,
            retry=self._retry(),
            timeout=self.timeout_seconds,
            close_tokens=True,
        )

    def doc_number_lookup(
        self,
        portal: Portal,
        *,
        engine: Engine | None = None,
        recorder: RequestRecorder | None = None,
        run_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        prefetch: int = 50,
    ) -> Callable[[str], bool]:
        """`is_taken(doc_number)` for `finalize_period`: whether the portal's QBO company
        has an invoice or credit memo with that DocNumber already.

        The access token is made valid here, before the caller opens its finalization
        transaction: a token refresh inside it would wait for SQLite's write lock.
        """
        client = self.client(
            portal, engine=engine, recorder=recorder, run_id=run_id, transport=transport
        )
        try:
            client.tokens.access_token()
        except BaseException:
            client.close()
            raise
        return DocNumberLookup(client, prefetch=prefetch)
