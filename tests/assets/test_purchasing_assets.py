"""The purchasing assets as Dagster runs them: HaloPSA and QBO simulators on loopback,
resources from portals.yaml; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest
from sqlalchemy import func, select

from datagate_pipelines.assets import halopsa, purchasing
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse import models as m
from datagate_simulators.halopsa.generator import generate_purchasing
from datagate_simulators.server import serve_in_thread
from tests.exporting.stack import (
    JULY,
    PORTAL_YAML,
    QBO_YAML,
    REALM,
    halo_sim,
    qbo_sim,
    sections,
    set_environment,
)

ASSETS = [
    halopsa.halopsa_snapshot,
    purchasing.halopsa_purchasing,
    purchasing.qbo_vendors,
    purchasing.qbo_purchase_orders,
]


@pytest.fixture
def stack(engine_url, tmp_path, monkeypatch) -> Iterator:
    halo = halo_sim(customers=4)
    generate_purchasing(halo.backend, suppliers=8, purchase_orders=15, seed=6, as_of=JULY)
    qbo = qbo_sim()
    with halo.serve() as halo_server, serve_in_thread(qbo.app) as qbo_server:
        path = tmp_path / "portals.yaml"
        set_environment(monkeypatch, engine_url, path, halo)

        def configure(purchasing: str | None = "      write_vendor_ids: true") -> None:
            qbo_section = QBO_YAML.format(
                realm=REALM, qbo=qbo_server.base_url, income_accounts="{}"
            )
            path.write_text(
                PORTAL_YAML.format(
                    halo=halo_server.base_url, qbo=qbo_section + sections(purchasing)
                )
            )

        yield halo, qbo, configure


def materialize(instance):
    instance.add_dynamic_partitions("portal", ["acme"])
    return dg.materialize(
        ASSETS,
        partition_key="acme",
        instance=instance,
        resources={
            "portals": PortalsResource(),
            "warehouse": WarehouseResource(),
            "halopsa": HaloPSAResource(),
            "qbo": QBOResource(),
        },
    )


def metadata(result, asset):
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"no materialization of {asset}")


@pytest.mark.slow
def test_suppliers_and_purchase_orders_flow_into_qbo_once(engine, stack, instance):
    halo, qbo, configure = stack
    configure()
    result = materialize(instance)
    assert result.success
    suppliers = metadata(result, "halo_suppliers")
    assert suppliers["details_read"] == 8 and suppliers["rejects"] == 0
    assert suppliers["rate_limited_429s"] == 0
    orders = metadata(result, "halo_purchase_orders")
    assert orders["rows"] == 15 and orders["halo_purchase_order_lines_rows"] > 15
    vendors = metadata(result, "qbo_vendors")
    assert vendors["created"] == len(qbo.company.records("Vendor")) > 0 and vendors["failed"] == 0
    exported = metadata(result, "qbo_purchase_orders")
    assert exported["purchase_orders_failed"] == exported["bills_failed"] == 0
    assert exported["purchase_orders_exported"] == len(qbo.company.records("PurchaseOrder")) > 0
    assert exported["bills_exported"] == len(qbo.company.records("Bill")) > 0
    assert exported["rate_limited_429s"] == 0
    assert all(e.passed for e in result.get_asset_check_evaluations())
    linked = {s["id"]: s["accounts_id"] for s in halo.backend.table("Supplier").values()}
    assert all(
        linked[sid] for sid in linked if not halo.backend.table("Supplier").get(sid)["inactive"]
    )

    again = materialize(instance)  # a re-run: details reused, nothing created
    assert metadata(again, "halo_suppliers")["details_read"] == 0
    assert metadata(again, "qbo_vendors")["created"] == 0
    assert metadata(again, "qbo_purchase_orders")["purchase_orders_exported"] == 0
    with engine.connect() as c:
        rows = c.execute(select(func.count()).select_from(m.purchasing_exports)).scalar_one()
    assert rows == exported["purchase_orders_exported"] + exported["bills_exported"]


def test_a_portal_without_purchasing_skips_it(engine, stack, instance):
    _halo, qbo, configure = stack
    configure(None)
    result = materialize(instance)
    assert result.success
    for asset in ("halo_suppliers", "halo_purchase_orders", "qbo_vendors", "qbo_purchase_orders"):
        assert metadata(result, asset)["skipped"] == "no purchasing section in portals.yaml"
    assert qbo.company.records("Vendor") == []
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.halo_suppliers)).scalar_one() == 0
