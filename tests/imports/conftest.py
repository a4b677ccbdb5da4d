"""Imports run against a warehouse that knows the portal's catalog: Bayside Dental synced
(customers 1 active and 3 inactive, sites 10 and 11, contracts 100 and 101, items 50–53)."""

from __future__ import annotations

import pytest

from tests.sync.halo_records import bayside_tenant
from tests.sync.test_apply import portal, sync_all


@pytest.fixture
def bayside(engine):
    p = portal()
    sync_all(engine, p, bayside_tenant())
    return p
