"""The accounts-receivable aging model (dbt_like_sql/ar_aging.sql) and its asset: buckets by
days past due from due dates and balances, a Markdown table and a chart in the metadata;
SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest
from sqlalchemy import insert, inspect, text

from datagate_pipelines.assets.sql import sql_model_assets, upstream_keys
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.warehouse import models as m
from datagate_pipelines.warehouse import sql_models

NOW = datetime.now(UTC)
TODAY = NOW.date()


@pytest.fixture
def warehouse(engine):
    yield engine
    cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as c:
        for view in inspect(c).get_view_names():
            c.execute(text(f"DROP VIEW IF EXISTS {view}{cascade}"))


def invoice(c, number: int, customer: int, name: str, days_past_due: int, total: str, **values):
    status = values.pop("status", "final")
    numbered = status == "final"
    result = c.execute(
        insert(m.invoices).values(
            portal_id="acme",
            period=TODAY.replace(day=1),
            invoice_key=f"k{number}",
            customer_id=customer,
            customer_name=name,
            agreement_key=f"customer:{customer}",
            status=status,
            hold_reasons=[],
            number=number if numbered else None,
            doc_number=f"INV-{number}" if numbered else None,
            invoice_date=TODAY - timedelta(days=days_past_due + 30),
            due_date=TODAY - timedelta(days=days_past_due),
            subtotal=Decimal(total),
            tax=Decimal("0.00"),
            total=Decimal(total),
            computed_at=NOW,
            **values,
        )
    )
    return result.inserted_primary_key[0]


@pytest.fixture
def receivables(warehouse):
    with warehouse.begin() as c:
        c.execute(
            insert(m.portals).values(
                id="acme", name="Acme", currency="USD", registered_at=NOW, next_invoice_number=1
            )
        )
        # Days past due away from the bucket edges: CURRENT_DATE may be a day off ours.
        invoice(c, 1, 7, "Bayside Dental", -10, "100.00")  # not due yet
        invoice(c, 2, 7, "Bayside Dental", 15, "200.00", balance=Decimal("150.00"))
        invoice(c, 3, 7, "Bayside Dental", 45, "300.00", payment_status="partly_paid",
                balance=Decimal("30.00"))  # fmt: skip
        invoice(c, 4, 8, "Harbor Vet", 75, "400.00")
        invoice(c, 5, 8, "Harbor Vet", 120, "500.00")
        invoice(c, 6, 8, "Harbor Vet", 200, "600.00", payment_status="paid", balance=Decimal(0))
        invoice(c, 7, 8, "Harbor Vet", 200, "50.00", payment_status="credited",
                balance=Decimal(0))  # fmt: skip
        invoice(c, 8, 9, "Draft Only", 50, "70.00", status="draft")
        voided = invoice(c, 9, 9, "Voided By Us", 50, "80.00")
        c.execute(
            insert(m.exports).values(
                invoice_id=voided,
                target="qbo",
                status="voided",
                request_id="r",
                attempts=1,
                updated_at=NOW,
            )
        )
    return warehouse


def test_customers_owe_by_days_past_due(receivables):
    model = next(x for x in sql_models.discover() if x.name == "ar_aging")
    assert [k.to_user_string() for k in upstream_keys(model)] == [
        "halo_invoice_export",
        "invoices",
        "qbo_invoice_export",
        "qbo_payments",
    ]
    sql_models.materialize(receivables, model)
    with receivables.connect() as c:
        rows = c.execute(text("SELECT * FROM ar_aging ORDER BY customer_id")).mappings().all()
    assert [
        (
            r["customer_name"],
            r["open_invoices"],
            r["current_minor"],
            r["days_1_30_minor"],
            r["days_31_60_minor"],
            r["days_61_90_minor"],
            r["over_90_minor"],
            r["total_minor"],
        )
        for r in rows
    ] == [
        ("Bayside Dental", 3, 10000, 15000, 3000, 0, 0, 28000),
        ("Harbor Vet", 2, 0, 0, 0, 40000, 50000, 90000),
    ]
    assert rows[1]["oldest_days_past_due"] in (119, 120, 121)


def test_the_aging_asset_shows_a_table_and_a_chart(receivables, engine_url, instance):
    assets = [a for a in sql_model_assets() if a.key.to_user_string() == "ar_aging"]
    result = dg.materialize(
        assets,
        instance=instance,
        resources={"warehouse": WarehouseResource(database_url=engine_url)},
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["total_owed"] == "1180.00"
    table = metadata["aging"].splitlines()
    assert (
        table[0]
        == "| portal | customer | invoices | current | 1–30 | 31–60 | 61–90 | 90+ | total |"
    )
    assert table[2] == "| acme | Harbor Vet | 2 | 0.00 | 0.00 | 0.00 | 400.00 | 500.00 | 900.00 |"
    assert "**1,180.00**" in table[-1] and "all 2 customers" in table[-1]
    prefix = "![AR aging](data:image/svg+xml;base64,"
    assert metadata["aging_chart"].startswith(prefix)
    svg = base64.b64decode(metadata["aging_chart"][len(prefix) : -1]).decode()
    assert svg.startswith("<svg") and svg.count("<rect") == 5
    for label in ("current", "1–30", "31–60", "61–90", "90+", ">500<", ">400<"):
        assert label in svg
