"""Which step failures Dagster retries: lost connections (APIs and the warehouse) are;
bad input, bad secrets and a warehouse at the wrong schema are not."""

from __future__ import annotations

import dagster as dg
import pytest
from sqlalchemy.exc import InterfaceError, OperationalError

from datagate_pipelines.assets.failures import fail_fast_unless_transient
from datagate_pipelines.definitions import defs
from datagate_pipelines.warehouse.db import WarehouseError, WarehouseUnreachable

LOST = OperationalError("UPDATE invoices …", {}, Exception("server closed the connection"))


@pytest.mark.parametrize(
    "error",
    [
        LOST,
        InterfaceError("SELECT 1", {}, Exception("connection already closed")),
        WarehouseUnreachable("cannot reach the warehouse at postgresql+psycopg2://…"),
    ],
    ids=["operational", "interface", "unreachable"],
)
def test_a_lost_database_is_left_to_the_retry_policy(error):
    with pytest.raises(type(error)), fail_fast_unless_transient():
        raise error


def test_a_warehouse_at_the_wrong_schema_fails_at_once():
    with pytest.raises(dg.Failure) as info, fail_fast_unless_transient():
        raise WarehouseError("the warehouse is at revision 0009, this code needs 0010")
    assert info.value.allow_retries is False
    assert "0009" in (info.value.description or "")


@pytest.mark.parametrize(
    "asset",
    [
        "customers",
        "sites",
        "products",
        "product_sites",
        "agreements",
        "invoice_lines",
        "invoices",
        "invoice_review",
    ],
)
def test_warehouse_steps_outlast_a_database_restart(asset):
    policy = defs.get_assets_def(asset).op.retry_policy
    assert policy is not None
    assert policy.max_retries == 3
    assert policy.backoff == dg.Backoff.EXPONENTIAL
