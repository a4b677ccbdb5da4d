"""The warehouse schema: migrations, exact numbers and the money invariants."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from datagate_pipelines.warehouse.db import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from datagate_pipelines.warehouse.models import (
    billing_ledger,
    exports,
    invoice_lines,
    invoices,
    metadata,
    portals,
    tax_rates,
    usage_batches,
    usage_charges,
)

NOW = datetime(2026, 8, 1, tzinfo=UTC)


def test_upgrade_from_empty_reaches_head_and_matches_the_models(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_migrate_twice_is_harmless(database_url):
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)
    assert current_revision(engine) == head_revision()


def _portal(connection, portal_id="acme"):
    connection.execute(
        insert(portals).values(
            id=portal_id, name="Acme", currency="USD", registered_at=NOW, next_invoice_number=1001
        )
    )


def _invoice(connection, key="2026-07:customer:1", number=None, total=Decimal("376.46")):
    result = connection.execute(
        insert(invoices).values(
            portal_id="acme",
            period=date(2026, 7, 1),
            invoice_key=key,
            customer_id=1,
            customer_name="Bayside Dental",
            agreement_key="customer:1",
            status="draft",
            hold_reasons=[],
            number=number,
            doc_number=None if number is None else str(number),
            invoice_date=date(2026, 8, 1),
            due_date=date(2026, 8, 31),
            subtotal=Decimal("350.85"),
            tax=Decimal("25.61"),
            total=total,
            computed_at=NOW,
        )
    )
    return result.inserted_primary_key[0]


def test_money_and_rates_round_trip_exactly(engine):
    with engine.begin() as connection:
        _portal(connection)
        invoice_id = _invoice(connection, total=Decimal("12345678901.99"))
        connection.execute(
            insert(invoice_lines).values(
                invoice_id=invoice_id,
                line_no=1,
                kind="recurring",
                description="Hosted PBX seat",
                qty=Decimal("10.1234"),
                unit_price=Decimal("-24.9999"),
                amount=Decimal("0.01"),
                tax_rate=Decimal("0.06125"),
                tax=Decimal("0.00"),
            )
        )
        connection.execute(
            insert(tax_rates).values(
                zip="94107",
                tax_code="TEL",
                jurisdiction="CA",
                rate=Decimal("0.0725"),
                imported_at=NOW,
            )
        )
    with engine.connect() as connection:
        assert connection.execute(select(invoices.c.total)).scalar_one() == Decimal(
            "12345678901.99"
        )
        line = connection.execute(select(invoice_lines)).one()
        assert (line.qty, line.unit_price, line.amount) == (
            Decimal("10.1234"),
            Decimal("-24.9999"),
            Decimal("0.01"),
        )
        assert line.tax_rate == Decimal("0.06125")
        assert connection.execute(select(tax_rates.c.rate)).scalar_one() == Decimal("0.0725")


def test_exact_columns_refuse_floats_and_excess_precision(engine):
    with engine.begin() as connection:
        _portal(connection)
    for bad in (376.46, Decimal("1.001")):
        with pytest.raises(Exception, match=r"float|decimal places"), engine.begin() as connection:
            _invoice(connection, total=bad)


def test_a_service_month_is_billed_once(engine):
    with engine.begin() as connection:
        _portal(connection)
        invoice_id = _invoice(connection)
        row = dict(
            portal_id="acme",
            product_id="line:1",
            service_month=date(2026, 8, 1),
            period=date(2026, 7, 1),
            invoice_id=invoice_id,
        )
        connection.execute(insert(billing_ledger).values(**row))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(billing_ledger).values(**{**row, "period": date(2026, 8, 1)}))


def test_a_ledger_row_names_an_invoice_of_its_own_portal(engine):
    """One key (portal, invoice) since 0015: a row cannot bill a pair of one portal on
    another portal's invoice, and an invoice's rows go with it."""
    with engine.begin() as connection:
        _portal(connection)
        _portal(connection, "globex")
        invoice_id = _invoice(connection)
        row = dict(
            product_id="line:1",
            service_month=date(2026, 8, 1),
            period=date(2026, 7, 1),
            invoice_id=invoice_id,
        )
        connection.execute(insert(billing_ledger).values(portal_id="acme", **row))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            insert(billing_ledger).values(portal_id="globex", **{**row, "product_id": "line:2"})
        )
    with engine.begin() as connection:
        connection.execute(sa.delete(invoices).where(invoices.c.id == invoice_id))
    with engine.connect() as connection:
        assert connection.execute(select(sa.func.count()).select_from(billing_ledger)).scalar() == 0


def test_an_invoice_number_is_used_once_per_portal(engine):
    with engine.begin() as connection:
        _portal(connection)
        _invoice(connection, key="a", number=1001)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        _invoice(connection, key="b", number=1001)


def test_an_invoice_is_exported_once_per_target(engine):
    with engine.begin() as connection:
        _portal(connection)
        invoice_id = _invoice(connection)
        row = dict(
            invoice_id=invoice_id,
            target="qbo",
            status="pending",
            request_id="r1",
            attempts=0,
            updated_at=NOW,
        )
        connection.execute(insert(exports).values(**row))
        connection.execute(insert(exports).values(**{**row, "target": "halopsa"}))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(exports).values(**row))


def test_default_database_is_a_sqlite_file_made_on_first_use(tmp_path, monkeypatch):
    from datagate_pipelines.warehouse.db import database_url

    monkeypatch.delenv("DATAGATE_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    url = database_url()
    assert url.startswith("sqlite:///") and url.endswith(".datagate/warehouse.db")
    assert (tmp_path / ".datagate").is_dir()


def test_plain_postgresql_urls_use_the_installed_driver(monkeypatch):
    from datagate_pipelines.warehouse.db import database_url

    monkeypatch.setenv("DATAGATE_DATABASE_URL", "postgresql://u@h/db")
    assert database_url() == "postgresql+psycopg2://u@h/db"


def test_unreachable_database_is_one_clear_error():
    from datagate_pipelines.warehouse.db import WarehouseError, WarehouseUnreachable

    engine = make_engine("postgresql+psycopg2://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(WarehouseError) as info:
        migrate(engine)
    assert "cannot reach the warehouse" in str(info.value)
    assert "secret" not in str(info.value)
    # Worth retrying (the database may be restarting), unlike a wrong schema version.
    assert isinstance(info.value, WarehouseUnreachable)


def _insert_rows(connection, table: str, *rows: dict) -> None:
    """Rows into a table as an older revision defines it (the models describe the newest)."""
    columns = list(rows[0])
    connection.execute(
        sa.text(
            f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(':' + c for c in columns)})"
        ),
        list(rows),
    )


def test_usage_imported_before_batches_gets_one_batch_per_file_and_back(database_url):
    """Migration 0008 on a warehouse with data: charges imported before batches existed get
    one batch per (portal, period, file); products' tax codes live in the templates alone.
    The downgrade puts both back."""
    engine = make_engine(database_url)
    config = alembic_config(engine)
    command.upgrade(config, "0003")
    july, now = date(2026, 7, 1), datetime(2026, 8, 2, 9, 30, tzinfo=UTC)
    with engine.begin() as c:
        _insert_rows(
            c,
            "portals",
            dict(id="acme", name="Acme", currency="USD", registered_at=now, next_invoice_number=1),
        )
        charge = dict(
            portal_id="acme", period=july, customer_id=1, description="calls", usage_date=july,
            imported_at=now,
        )  # fmt: skip
        _insert_rows(
            c,
            "usage_charges",
            {**charge, "usage_id": "u:0", "amount": 1234, "source": "a.csv"},
            {**charge, "usage_id": "u:1", "amount": 500, "source": "a.csv"},
            {**charge, "usage_id": "u:2", "amount": 1234, "source": "copy-of-a.csv"},
        )
        _insert_rows(
            c,
            "products",
            dict(
                portal_id="acme", product_id="line:1", source_line_id=1, customer_id=1,
                item_id=50, description="seat", qty=10000, unit_price=249500, tax_code="TEL",
                start_date=july, billing_cycle="monthly", created_at=now, updated_at=now,
            ),
        )  # fmt: skip
        _insert_rows(
            c,
            "product_templates",
            dict(portal_id="acme", item_id=50, tax_code="TEL", imported_at=now),
        )
    migrate(engine)
    with engine.connect() as c:
        batches = {
            b.source: b for b in c.execute(select(usage_batches).order_by(usage_batches.c.id))
        }
        charges = dict(c.execute(select(usage_charges.c.usage_id, usage_charges.c.batch_id)).all())
        columns = {column["name"] for column in sa.inspect(c).get_columns("products")}
    assert {s: (b.row_count, b.total, b.imported_at) for s, b in batches.items()} == {
        "a.csv": (2, Decimal("17.34"), now),
        "copy-of-a.csv": (1, Decimal("12.34"), now),
    }
    a, copy = batches["a.csv"].id, batches["copy-of-a.csv"].id
    assert charges == {"u:0": a, "u:1": a, "u:2": copy}
    assert "tax_code" not in columns
    command.downgrade(config, "0003")
    with engine.connect() as c:
        sources = c.execute(sa.text("SELECT usage_id, source FROM usage_charges")).all()
        assert dict(sources) == {"u:0": "a.csv", "u:1": "a.csv", "u:2": "copy-of-a.csv"}
        assert c.execute(sa.text("SELECT tax_code FROM products")).scalar_one() == "TEL"
    migrate(engine)


def test_a_billed_month_takes_repairs_but_never_a_second_bill(engine):
    """Rule 6: credit and re-bill rows of a pair on later invoices; the money invariant
    (billed once) holds for bills."""
    with engine.begin() as connection:
        _portal(connection)
        first, later = _invoice(connection), _invoice(connection, key="2026-08:customer:1")
        pair = dict(portal_id="acme", product_id="line:1", service_month=date(2026, 8, 1))
        connection.execute(
            insert(billing_ledger),
            [
                {**pair, "period": date(2026, 7, 1), "invoice_id": first, "kind": "bill"},
                {**pair, "period": date(2026, 8, 1), "invoice_id": later, "kind": "credit"},
                {**pair, "period": date(2026, 8, 1), "invoice_id": later, "kind": "rebill"},
            ],
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            insert(billing_ledger).values(**pair, period=date(2026, 8, 1), invoice_id=later)
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            insert(billing_ledger).values(
                **pair, period=date(2026, 8, 1), invoice_id=later, kind="refund"
            )
        )


def test_ledger_rows_billed_before_0011_take_their_terms_from_their_lines(database_url):
    engine = make_engine(database_url)
    config = alembic_config(engine)
    command.upgrade(config, "0010")
    july, august, now = date(2026, 7, 1), date(2026, 8, 1), datetime(2026, 8, 2, tzinfo=UTC)
    with engine.begin() as c:
        _insert_rows(
            c,
            "portals",
            dict(id="acme", name="Acme", currency="USD", registered_at=now, next_invoice_number=1),
        )
        invoice = dict(
            portal_id="acme", period=july, invoice_key="2026-07:customer:1", customer_id=1,
            customer_name="Bayside", agreement_key="customer:1", status="final",
            hold_reasons="[]", invoice_date=august, due_date=august, subtotal=24950, tax=1809,
            total=26759, computed_at=now,
        )  # fmt: skip
        _insert_rows(c, "invoices", invoice)
        invoice_id = c.execute(sa.text("SELECT id FROM invoices")).scalar_one()
        _insert_rows(
            c,
            "invoice_lines",
            dict(
                invoice_id=invoice_id, line_no=1, kind="recurring", product_id="line:1",
                description="seat", service_month=august, qty=100000, unit_price=249500,
                amount=24950, tax_code="TEL", tax_zip="94107", tax_rate=7250000, tax=1809,
            ),
        )  # fmt: skip
        _insert_rows(
            c,
            "billing_ledger",
            dict(
                portal_id="acme", product_id="line:1", service_month=august, period=july,
                invoice_id=invoice_id,
            ),
        )  # fmt: skip
    migrate(engine)
    with engine.connect() as c:
        row = c.execute(select(billing_ledger)).one()
    assert (row.kind, row.qty, row.unit_price, row.amount, row.tax) == (
        "bill",
        Decimal("10"),
        Decimal("24.95"),
        Decimal("249.50"),
        Decimal("18.09"),
    )
    assert (row.tax_code, row.tax_zip, row.tax_rate) == ("TEL", "94107", Decimal("0.0725"))
    command.downgrade(config, "0010")
    migrate(engine)
