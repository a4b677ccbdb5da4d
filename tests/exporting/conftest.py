"""Fixtures: a HaloPSA tenant billed and finalized for July 2026, and a QBO company."""

from __future__ import annotations

import dagster as dg
import pytest

from tests.exporting.stack import (
    QBO_URL,
    finalized_invoices,
    halo_sim,
    portal_config,
    qbo_sim,
)


@pytest.fixture
def halo():
    return halo_sim()


@pytest.fixture
def portal():
    return portal_config(qbo_url=QBO_URL)


@pytest.fixture
def finals(engine, halo, portal):
    """The final invoices of July 2026 (real ones: ingest → sync → bill → finalize)."""
    rows = finalized_invoices(engine, halo, portal)
    assert len(rows) >= 8
    return rows


@pytest.fixture
def qbo():
    return qbo_sim()


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance
