"""The export assets as Dagster runs them: simulators on loopback, resources from portals.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pytest
from sqlalchemy import func, select

from datagate_pipelines.assets import exports
from datagate_pipelines.qbo.token_store import TokenCipher
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse import models as m
from datagate_simulators.server import serve_in_thread
from tests.exporting.stack import (
    FIRST_REFRESH_TOKEN,
    PORTAL_YAML,
    QBO_CLIENT_ID,
    QBO_SECRET,
    QBO_YAML,
    REALM,
    finalized_invoices,
    portal_config,
)

PARTITION = dg.MultiPartitionKey({"period": "2026-07-01", "portal": "acme"})
ASSETS = [
    exports.halo_invoice_export,
    exports.qbo_references,
    exports.qbo_invoice_export,
]


@dataclass
class Served:
    halo_url: str
    qbo_url: str
    portals_file: object


@pytest.fixture
def served(engine, engine_url, halo, qbo, tmp_path, monkeypatch) -> Iterator[Served]:
    with halo.serve() as halo_server, serve_in_thread(qbo.app) as qbo_server:
        served = Served(halo_server.base_url, qbo_server.base_url, tmp_path / "portals.yaml")
        for name, value in {
            "DATAGATE_PORTALS_FILE": str(served.portals_file),
            "DATAGATE_DATABASE_URL": engine_url,
            "ACME_HALO_CLIENT_ID": halo.client_id,
            "ACME_HALO_CLIENT_SECRET": halo.client_secret,
            "ACME_QBO_CLIENT_ID": QBO_CLIENT_ID,
            "ACME_QBO_CLIENT_SECRET": QBO_SECRET,
            "ACME_QBO_REFRESH_TOKEN": FIRST_REFRESH_TOKEN,
            "DATAGATE_TOKEN_KEY": TokenCipher.generate_key(),
        }.items():
            monkeypatch.setenv(name, value)
        yield served


def materialize(instance):
    instance.add_dynamic_partitions("portal", ["acme"])
    return dg.materialize(
        ASSETS,
        partition_key=str(PARTITION),
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


def checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_export_assets_export_and_verify(engine, served, halo, qbo, instance):
    served.portals_file.write_text(
        PORTAL_YAML.format(
            halo=served.halo_url,
            qbo=QBO_YAML.format(realm=REALM, qbo=served.qbo_url, income_accounts="{}"),
        )
    )
    finals = finalized_invoices(engine, halo, portal_config(qbo_url=served.qbo_url))
    result = materialize(instance)
    assert result.success
    for asset in ("halo_invoice_export", "qbo_invoice_export"):
        meta = metadata(result, asset)
        assert meta["exported"] == len(finals) and meta["failed"] == 0
        assert meta["rate_limited_429s"] == 0 and meta["api_calls"] > 0
        assert {"already_there", "skipped_held", "duration_seconds"} <= set(meta)
    assert metadata(result, "qbo_customers")["created"] == len({f.customer_id for f in finals})
    evaluations = checks(result)
    assert evaluations["halo_exports_match"].passed
    assert evaluations["qbo_exports_match"].passed
    with engine.connect() as c:
        logged = c.execute(
            select(m.api_requests.c.system, func.count()).group_by(m.api_requests.c.system)
        ).all()
    assert {system for system, _ in logged} == {"halopsa", "qbo"}

    again = materialize(instance)  # a re-run: nothing created anywhere
    assert metadata(again, "qbo_invoice_export")["already_there"] == len(finals)
    assert metadata(again, "halo_invoice_export")["exported"] == 0
    assert len(qbo.invoices()) == len(finals)
    assert len(list(halo.backend.table("Invoice").values())) == len(finals)


def test_a_portal_without_qbo_skips_the_qbo_assets(engine, served, halo, qbo, instance):
    served.portals_file.write_text(PORTAL_YAML.format(halo=served.halo_url, qbo=""))
    finals = finalized_invoices(engine, halo, portal_config())
    result = materialize(instance)
    assert result.success
    assert metadata(result, "halo_invoice_export")["exported"] == len(finals)
    for asset in ("qbo_customers", "qbo_invoice_export"):
        assert metadata(result, asset)["skipped"] == "no qbo section in portals.yaml"
    logs = [
        e.message
        for e in instance.all_logs(result.run_id)
        if "QBO export is off" in (e.message or "")
    ]
    assert logs
    assert qbo.invoices() == []


def test_a_refused_invoice_fails_the_step_and_its_partitions_check(
    engine, served, halo, qbo, instance
):
    served.portals_file.write_text(
        PORTAL_YAML.format(
            halo=served.halo_url,
            qbo=QBO_YAML.format(realm=REALM, qbo=served.qbo_url, income_accounts="{}"),
        )
    )
    finals = finalized_invoices(engine, halo, portal_config(qbo_url=served.qbo_url))
    victim = finals[0]
    customer = qbo.company.create("Customer", {"DisplayName": "Someone Else"})
    item = qbo.company.create("Item", {"Name": "Their Item", "IncomeAccountRef": {"value": "1"}})
    qbo.company.create(  # someone's invoice holds our number: QBO answers 6140 in the batch
        "Invoice",
        {
            "DocNumber": victim.doc_number,
            "CustomerRef": {"value": customer["Id"]},
            "Line": [
                {
                    "DetailType": "SalesItemLineDetail",
                    "Amount": 1,
                    "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
                }
            ],
        },
    )
    instance.add_dynamic_partitions("portal", ["acme"])
    result = dg.materialize(
        ASSETS,
        partition_key=str(PARTITION),
        instance=instance,
        resources={
            "portals": PortalsResource(),
            "warehouse": WarehouseResource(),
            "halopsa": HaloPSAResource(),
            "qbo": QBOResource(),
        },
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "qbo_invoice_export"
    description = failure.step_failure_data.user_failure_data.description
    assert f"1 invoice(s) not exported to qbo: {victim.doc_number}" in description
    assert "did not create" in description
    check = checks(result)["qbo_exports_match"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.partition == str(PARTITION) and victim.doc_number in check.description
    assert metadata(result, "qbo_invoice_export")["failed"] == 1  # materialized, then failed
    assert checks(result)["halo_exports_match"].passed  # HaloPSA took every invoice
