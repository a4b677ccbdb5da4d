"""What the credit_invoice and void_invoice jobs share: their clients, built from the
resources for one portal, every request in the request log."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from sqlalchemy import Engine

from datagate_pipelines.config import Portal
from datagate_pipelines.halopsa.client import HaloPSAClient
from datagate_pipelines.qbo.client import QBOClient
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.warehouse.request_log import recording


@contextmanager
def portal_clients(
    portal: Portal, engine: Engine, halopsa: HaloPSAResource, qbo: QBOResource, run_id: str
) -> Iterator[tuple[HaloPSAClient, QBOClient | None]]:
    """(HaloPSA client, QBO client or None when the portal has no `qbo:` section)."""
    with ExitStack() as stack:
        recorder = stack.enter_context(recording(engine))
        halo = stack.enter_context(halopsa.client(portal, recorder=recorder, run_id=run_id))
        books = None
        if portal.settings.qbo is not None:
            books = stack.enter_context(
                qbo.client(portal, engine=engine, recorder=recorder, run_id=run_id)
            )
        yield halo, books
