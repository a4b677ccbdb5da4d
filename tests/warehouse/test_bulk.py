"""warehouse/bulk.py: COPY on PostgreSQL, executemany on SQLite — the same rows stored
either way: exact money, text with tabs, newlines and backslashes, NULL apart from the
empty string, JSON, and an upsert whose rows repeat a key."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import insert, select

from datagate_pipelines.warehouse.bulk import insert_columns, update_rows, upsert
from datagate_pipelines.warehouse.frames import read_columns
from datagate_pipelines.warehouse.models import api_requests, invoices, portals, tax_rates

T = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)


def _portal(c) -> None:
    c.execute(
        insert(portals).values(
            id="acme", name="Acme", currency="USD", registered_at=T, next_invoice_number=1
        )
    )


def _invoice(key: str, total: str, name: str) -> dict:
    return {
        "portal_id": "acme",
        "period": date(2026, 7, 1),
        "invoice_key": key,
        "customer_id": 1,
        "customer_name": name,
        "agreement_key": "1:default",
        "status": "draft",
        "hold_reasons": ["no tax rate", 'quote " and \\ back'],
        "invoice_date": date(2026, 8, 1),
        "due_date": date(2026, 8, 31),
        "subtotal": Decimal(total),
        "tax": Decimal("0.00"),
        "total": Decimal(total),
        "computed_at": T,
    }


def test_values_come_back_exactly(engine):
    names = ["tab\there", "line\nbreak\r\n", "back\\slash \\N", "", "ärzte ✓", "plain"]
    totals = ["92233720368547.75", "-0.01", "0.10", "1234.50", "0.00", "7.07"]
    rows = [_invoice(f"k{i}", t, n) for i, (t, n) in enumerate(zip(totals, names, strict=True))]
    with engine.begin() as c:
        _portal(c)
        written = insert_columns(c, invoices, {k: [r[k] for r in rows] for k in rows[0]})
    assert written == len(rows)
    with engine.connect() as c:
        stored = c.execute(
            select(
                invoices.c.customer_name,
                invoices.c.total,
                invoices.c.hold_reasons,
                invoices.c.computed_at,
                invoices.c.number,
            ).order_by(invoices.c.invoice_key)
        ).all()
    assert [s.customer_name for s in stored] == names
    assert [s.total for s in stored] == [Decimal(t) for t in totals]
    assert all(s.hold_reasons == ["no tax rate", 'quote " and \\ back'] for s in stored)
    assert all(s.computed_at == T and s.number is None for s in stored)


def test_a_bulk_read_gives_what_a_plain_read_gives(engine):
    """read_columns (COPY … TO STDOUT on PostgreSQL) against the rows of a plain read."""
    names = ["tab\there", "line\nbreak\r\n", 'back\\slash \\N, "quoted"', "", "ärzte ✓", "x"]
    totals = ["92233720368547.75", "-0.01", "0.10", "1234.50", "0.00", "7.07"]
    rows = [_invoice(f"k{i}", t, n) for i, (t, n) in enumerate(zip(totals, names, strict=True))]
    rows[1] |= {"number": 12, "doc_number": "INV-12", "status": "final"}
    with engine.begin() as c:
        _portal(c)
        insert_columns(c, invoices, {k: [r.get(k) for r in rows] for k in rows[1]})
    query = select(
        invoices.c.customer_name,
        invoices.c.total,
        invoices.c.number,
        invoices.c.doc_number,
        invoices.c.period,
        invoices.c.status == "final",
    ).order_by(invoices.c.invoice_key)
    columns = ["name", "total", "number", "doc_number", "period", "final"]
    with engine.connect() as c:
        plain = c.execute(query).all()
        read = read_columns(c, query, columns)
    assert list(read.columns) == columns
    as_read = [  # missing as a plain read says it (the frame: None, NaN or NA)
        tuple(None if pd.api.types.is_scalar(v) and pd.isna(v) else v for v in row)
        for row in read.astype(object).itertuples(index=False)
    ]
    assert as_read == [tuple(row) for row in plain]
    assert as_read[1][2:4] == (12, "INV-12") and as_read[0][2:4] == (None, None)


def test_floats_and_extra_places_are_refused(engine):
    with engine.begin() as c:
        _portal(c)
        with pytest.raises(TypeError, match="float"):
            insert_columns(c, invoices, {**_columns("k1"), "total": [1.1]})
        with pytest.raises(ValueError, match="more than 2 decimal places"):
            insert_columns(c, invoices, {**_columns("k2"), "total": [Decimal("1.001")]})


def test_a_bad_value_past_the_first_chunk_writes_nothing(engine, monkeypatch):
    """Rows stream in chunks; a bad value in a later one is reported as itself and leaves
    the transaction as it was: no row of the call stored, the next write still works. (The
    float equals the exact values before it: it is refused all the same.)"""
    monkeypatch.setattr("datagate_pipelines.warehouse.bulk.COPY_CHUNK_ROWS", 2)
    rows = [_invoice(f"k{i}", "1.00", "C") for i in range(5)]
    data = {k: [r[k] for r in rows] for k in rows[0]}
    data["total"][4] = 1.0
    with engine.begin() as c:
        _portal(c)
        with pytest.raises(TypeError, match="float"):
            insert_columns(c, invoices, data)
        assert c.execute(select(invoices.c.id)).all() == []
        data["total"][4] = Decimal("1.00")
        assert insert_columns(c, invoices, data) == 5
    with engine.connect() as c:
        assert len(c.execute(select(invoices.c.id)).all()) == 5


def _columns(key: str) -> dict:
    return {k: [v] for k, v in _invoice(key, "1.00", "C").items()}


def test_an_upsert_applies_repeated_keys_in_order(engine):
    """Rows repeating a key leave what executing them one by one would: the last row's
    updated columns, the first row's others."""

    def rate(value: str, at: datetime) -> dict:
        return {
            "zip": "12345",
            "tax_code": "TEL",
            "jurisdiction": "J",
            "rate": Decimal(value),
            "imported_at": at,
        }

    later = datetime(2026, 8, 1, tzinfo=UTC)
    with engine.begin() as c:
        upsert(c, tax_rates, [rate("0.01", T)], key=("zip", "tax_code", "jurisdiction"))
        count = upsert(
            c,
            tax_rates,
            [rate("0.02", later), rate("0.0725", later), {**rate("0.05", T), "zip": "99999"}],
            key=("zip", "tax_code", "jurisdiction"),
            update_columns=("rate",),
        )
    assert count == 3
    with engine.connect() as c:
        stored = dict(
            c.execute(select(tax_rates.c.zip, tax_rates.c.rate).order_by(tax_rates.c.zip)).all()
        )
        imported = c.execute(
            select(tax_rates.c.imported_at).where(tax_rates.c.zip == "12345")
        ).scalar_one()
    assert stored == {"12345": Decimal("0.0725"), "99999": Decimal("0.05")}
    assert imported == T  # not an update column


def test_update_rows_changes_the_matching_rows_only(engine):
    with engine.begin() as c:
        _portal(c)
        insert_columns(
            c,
            invoices,
            {k: [v, v] for k, v in _invoice("k1", "1.00", "C").items()}
            | {"invoice_key": ["k1", "k2"]},
        )
        changed = update_rows(
            c,
            invoices,
            [
                {
                    "portal_id": "acme",
                    "invoice_key": "k2",
                    "status": "final",
                    "number": 7,
                    "doc_number": "7",
                },
                {
                    "portal_id": "acme",
                    "invoice_key": "k9",
                    "status": "final",
                    "number": 8,
                    "doc_number": "8",
                },
            ],
            key=("portal_id", "invoice_key"),
        )
    assert changed == 2
    with engine.connect() as c:
        stored = c.execute(
            select(invoices.c.invoice_key, invoices.c.status, invoices.c.doc_number).order_by(
                invoices.c.invoice_key
            )
        ).all()
    assert [tuple(r) for r in stored] == [("k1", "draft", None), ("k2", "final", "7")]


def test_a_column_default_is_filled_as_insert_would(engine):
    with engine.begin() as c:
        insert_columns(
            c,
            api_requests,
            {
                "system": ["qbo"],
                "method": ["GET"],
                "path": ["/v3/company/1/query"],
                "query": [{"query": "select *"}],
                "duration_ms": [12],
                "attempt": [1],
                "started_at": [T],
            },
        )
        stored = c.execute(select(api_requests.c.direction, api_requests.c.query)).one()
    assert tuple(stored) == ("outbound", {"query": "select *"})
