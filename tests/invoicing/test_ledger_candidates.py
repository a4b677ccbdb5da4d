"""With repairs on, the loader reads the ledger row by row only for the pairs a repair may
concern and as runs elsewhere (invoicing/inputs.py `_ledger_mixed`); the engine bills that
mixed ledger exactly as it bills the whole ledger read row by row (on SQLite and
PostgreSQL), over varied histories: date changes both ways, pro-rata months, credits and
re-bills already made, voided invoices' released rows, a held invoice, drafts and a final
invoice of the period being billed, gaps and hand-edited amounts."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import partial

import pandas as pd
import pytest
from sqlalchemy import BigInteger, and_, insert, select, type_coerce

from datagate_pipelines.billing import BillingSettings, bill_period
from datagate_pipelines.billing.periods import add_months
from datagate_pipelines.invoicing import inputs
from datagate_pipelines.invoicing.inputs import load_billing_inputs
from datagate_pipelines.warehouse.models import (
    billing_ledger,
    customers,
    invoices,
    portals,
    products,
)

T = datetime(2026, 7, 1, tzinfo=UTC)
START = date(2025, 7, 1)  # the portal's billing start
JULY = date(2026, 7, 1)  # the period billed (one month in advance: it bills August)
PERIODS = [add_months(START, i) for i in range(12)]  # the periods billed before July
HELD, VOIDED, DRAFT, FINAL_OF_JULY = 100, 101, 102, 103
RATE = Decimal("0.05")


def _invoice(id_: int, period: date, status: str, voided: bool = False) -> dict:
    return {
        "id": id_,
        "portal_id": "acme",
        "period": period,
        "invoice_key": f"k{id_}",
        "customer_id": 1,
        "customer_name": "C",
        "agreement_key": "1:default",
        "status": status,
        "hold_reasons": [],
        "number": id_ if status == "final" else None,
        "doc_number": f"INV-{id_}" if status == "final" else None,
        "invoice_date": period,
        "due_date": period,
        "subtotal": 0,
        "tax": 0,
        "total": 0,
        "computed_at": T,
        "voided_at": T if voided else None,
    }


def _cents(value: Decimal) -> Decimal:
    sign = -1 if value < 0 else 1
    return sign * abs(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _amount(qty, price, month: date, start: date, end: date | None, pro_rata: bool) -> Decimal:
    """What (product, month) bills under the dates given (docs/billing.md)."""
    days = (add_months(month, 1) - month).days
    first = max(start, month)
    last = (
        min(end, add_months(month, 1) - timedelta(days=1)) if end else month + timedelta(days - 1)
    )
    active = max((last - first).days + 1, 0)
    if not pro_rata:
        return _cents(qty * price) if active else Decimal(0)
    return _cents(qty * price * active / days)


def _row(
    product_id, qty, price, start, end, pro_rata, month, invoice, period, kind="bill", amount=None
):
    """A ledger row: what (product, month) billed under the dates billed then."""
    billed = _amount(qty, price, month, start, end, pro_rata) if amount is None else amount
    return {
        "portal_id": "acme",
        "product_id": product_id,
        "service_month": month,
        "period": period,
        "invoice_id": invoice,
        "kind": kind,
        "qty": qty,
        "unit_price": price,
        "amount": billed,
        "tax": _cents(billed * RATE),
        "tax_code": "TEL",
        "tax_zip": "94107",
        "tax_rate": RATE,
    }


def _history(rng: random.Random, pro_rata: bool) -> tuple[list[dict], list[dict]]:
    """Products (with their current dates) and ledger rows (billed under earlier dates)."""
    product_rows, ledger_rows = [], []
    for line in range(1, 61):
        product_id = f"line:{line}"
        qty = rng.choice([Decimal(1), Decimal("2.5"), Decimal(3)])
        price = rng.choice([Decimal("10.00"), Decimal("19.99"), Decimal("7.3333")])
        start = date(2025, 5, 1) + timedelta(days=rng.randrange(0, 390))
        if rng.random() < 0.4:  # a start on the 1st: a first month billed in full
            start = start.replace(day=1)
        end = start + timedelta(days=rng.randrange(20, 400)) if rng.random() < 0.3 else None

        row = partial(_row, product_id, qty, price, start, end, pro_rata)
        voided_month = None
        for period in PERIODS:
            month = add_months(period, 1)
            if month < start.replace(day=1) or (end and month > end):
                continue
            draw = rng.random()
            if draw < 0.04:  # a gap: the next invoice catches it up
                continue
            if period == PERIODS[-1] and draw < 0.12:
                ledger_rows.append(row(month, HELD, period))  # on a held invoice
                continue
            if voided_month is None and draw > 0.95:
                voided = row(month, VOIDED, PERIODS[8])
                ledger_rows.append({**voided, "released_at": T})
                voided_month = month
                if rng.random() < 0.5:  # billed again since, or not yet (catch-up)
                    ledger_rows.append(row(month, 10 + PERIODS.index(PERIODS[9]), PERIODS[9]))
                continue
            bill = row(month, 10 + PERIODS.index(period), period)
            if draw > 0.92:  # amended by hand: not what the terms make
                bill["amount"] += Decimal("0.01")
            if 0.08 < draw < 0.1:
                bill["amount"] = bill["tax"] = None  # terms lost
            ledger_rows.append(bill)
            later = [p for p in PERIODS if p > period]
            if later and 0.85 < draw <= 0.92:  # repaired already: credited and billed again
                at = rng.choice(later)
                invoice = 10 + PERIODS.index(at)
                credit = row(month, invoice, at, "credit", -(bill["amount"] or 0))
                ledger_rows.append(credit)
                if rng.random() < 0.7:
                    ledger_rows.append(
                        row(month, invoice, at, "rebill", _cents(bill["amount"] / 2))
                    )
        august = add_months(JULY, 1)
        if not end or end >= august:  # July's own drafts (recomputed) or a final invoice
            invoice = FINAL_OF_JULY if rng.random() < 0.2 else DRAFT
            ledger_rows.append(row(august, invoice, JULY))
        # The dates as they are now: unchanged, or moved either way.
        change = rng.random()
        if change < 0.25:
            start += timedelta(days=rng.randrange(1, 70))
        elif change < 0.45:
            start -= timedelta(days=rng.randrange(1, 70))
        if rng.random() < 0.3:
            end = None if end else start + timedelta(days=rng.randrange(0, 300))
        elif end:
            end += timedelta(days=rng.randrange(-40, 40))
        product_rows.append(
            {
                "portal_id": "acme",
                "product_id": product_id,
                "source_line_id": line,
                "customer_id": 1,
                "description": f"seat {line}",
                "qty": qty,
                "unit_price": price,
                "start_date": start,
                "end_date": end,
                "billing_cycle": "monthly",
                "created_at": T,
                "updated_at": T,
            }
        )
    return product_rows, ledger_rows


def _whole_ledger(connection) -> pd.DataFrame:
    """The reference: every ledger row of the portal with what it billed (the loader's
    earlier row-by-row read)."""
    ledger = billing_ledger
    frame = pd.DataFrame(
        connection.execute(
            select(
                products.c.source_line_id,
                ledger.c.service_month,
                ledger.c.period,
                invoices.c.status == "final",
                ledger.c.product_id,
                ledger.c.kind,
                products.c.customer_id,
                products.c.site_id,
                products.c.contract_id,
                products.c.description,
                *(
                    type_coerce(column, BigInteger)
                    for column in (ledger.c.qty, ledger.c.unit_price, ledger.c.amount, ledger.c.tax)
                ),
                ledger.c.tax_code,
                ledger.c.tax_zip,
                ledger.c.tax_rate,
                invoices.c.doc_number,
                products.c.start_date,
                products.c.end_date,
            )
            .join(invoices, invoices.c.id == ledger.c.invoice_id)
            .join(products, and_(products.c.product_id == ledger.c.product_id))
            .where(ledger.c.portal_id == "acme", invoices.c.voided_at.is_(None))
            .order_by(ledger.c.product_id, ledger.c.service_month)
        ).all(),
        columns=[
            "product_key",
            "service_month",
            "period",
            "final",
            "product_id",
            "kind",
            "customer_id",
            "site_id",
            "contract_id",
            "description",
            "qty_e4",
            "unit_price_e4",
            "amount_cents",
            "tax_cents",
            "tax_code",
            "tax_zip",
            "tax_rate",
            "invoice",
            "start_date",
            "end_date",
        ],
    ).astype(object)
    integers = ("site_id", "contract_id", "qty_e4", "unit_price_e4", "amount_cents", "tax_cents")
    return frame.astype(dict.fromkeys(integers, "Int64"))


def _seed(engine, seed: int, pro_rata: bool) -> None:
    product_rows, ledger_rows = _history(random.Random(seed), pro_rata)
    with engine.begin() as c:
        c.execute(
            insert(portals).values(
                id="acme", name="Acme", currency="USD", registered_at=T, next_invoice_number=10
            )
        )
        c.execute(
            insert(customers).values(
                portal_id="acme",
                halo_client_id=1,
                name="C",
                active=True,
                use_site_zip_tax=False,
                zip="94107",
                created_at=T,
                updated_at=T,
            )
        )
        c.execute(
            insert(invoices),
            [_invoice(10 + i, period, "final") for i, period in enumerate(PERIODS)]
            + [
                _invoice(HELD, PERIODS[-1], "held"),
                _invoice(VOIDED, PERIODS[8], "final", voided=True),
                _invoice(DRAFT, JULY, "draft"),
                _invoice(FINAL_OF_JULY, JULY, "final"),
            ],
        )
        c.execute(insert(products), product_rows)
        c.execute(insert(billing_ledger), [{"released_at": None, **r} for r in ledger_rows])


def _frames(result) -> dict[str, pd.DataFrame]:
    return {
        "invoices": result.invoices,
        "invoice_lines": result.invoice_lines,
        "ledger": result.ledger,
        "rejects": result.rejects,
    }


def _equal(one: dict[str, pd.DataFrame], other: dict[str, pd.DataFrame]) -> bool:
    return all(one[name].equals(other[name]) for name in one)


@pytest.mark.parametrize(("seed", "pro_rata"), [(1, True), (2, True), (3, False)])
def test_the_mixed_ledger_bills_as_the_whole_ledger(engine, seed, pro_rata):
    _seed(engine, seed, pro_rata)
    settings = BillingSettings(billing_start=START, allow_pro_rata=pro_rata)
    with engine.connect() as c:
        inputs = load_billing_inputs(c, "acme", JULY, repairs=True)
        whole = _whole_ledger(c)
    mixed = inputs["ledger"]
    by_row = mixed["through_month"].isna()
    assert 0 < by_row.sum() < len(whole) / 2  # most pairs come as runs
    # Each pair one way (a month in a run and in rows would cost the engine its fast path).
    in_runs = {
        (key, add_months(first, step))
        for key, first, last in mixed.loc[
            ~by_row, ["product_key", "service_month", "through_month"]
        ].itertuples(index=False)
        for step in range((last.year - first.year) * 12 + last.month - first.month + 1)
    }
    assert in_runs.isdisjoint(
        zip(mixed["product_key"][by_row], mixed["service_month"][by_row], strict=True)
    )

    expected = _frames(bill_period(JULY, settings, **{**inputs, "ledger": whole}))
    got = _frames(bill_period(JULY, settings, **inputs))
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, check_dtype=False, obj=name)

    # The histories make repairs and catch-up lines, so a pair missed would show.
    kinds = set(expected["invoice_lines"]["kind"])
    assert {"credit", "rebill", "recurring"} <= kinds
    assert (expected["ledger"]["service_month"] < add_months(JULY, 1)).any()  # catch-up
    # The comparison can fail: without its rows, the mixed ledger bills differently.
    runs_only = _frames(bill_period(JULY, settings, **{**inputs, "ledger": mixed[~by_row]}))
    assert not _equal(runs_only, expected)


def test_repairs_look_their_rows_up_without_reading_the_history(engine, monkeypatch):
    """The pairs a repair may concern are found through the index of irregular ledger rows,
    and their other bills fetched pair by pair, so the cost of repairs follows the few pairs
    concerned, not the years of history (SQLite's query plans; PostgreSQL's are chosen by
    cost and measured in BENCHMARKS.md)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's plans follow from the query; PostgreSQL's from the data")
    _seed(engine, 1, True)
    plans: list[str] = []
    read = inputs.read_columns

    def explained(connection, query, names):
        sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
        plans.append("\n".join(row[-1] for row in plan))
        return read(connection, query, names)

    monkeypatch.setattr(inputs, "read_columns", explained)
    with engine.begin() as c:
        load_billing_inputs(c, "acme", JULY, repairs=True)
    irregular = [p for p in plans if "ix_billing_ledger_irregular" in p]
    assert len(irregular) == 1  # the irregular rows, from their index
    assert "SCAN billing_ledger" not in irregular[0]
    by_pair = "(portal_id=? AND product_id=? AND service_month=?)"
    bills = [p for p in plans if "datagate_candidate_pairs" in p]
    assert len(bills) == 1  # the other bills of the pairs concerned, pair by pair
    assert f"USING INDEX uq_billing_ledger_billed_pair {by_pair}" in bills[0]
    assert "SCAN billing_ledger" not in bills[0]


def test_the_runs_of_billed_months_come_from_the_index_alone(engine, monkeypatch):
    """On PostgreSQL the index of billed pairs carries all the runs' query needs (its
    period and invoice, migration 0014), so once vacuumed the years of history are read
    from the index, not the table. Whether the planner takes that path depends on the data;
    here it is made to show the path exists: without the columns it would be an index scan
    reading the table."""
    if engine.dialect.name != "postgresql":
        pytest.skip("an index-only read of included columns is PostgreSQL's")
    _seed(engine, 1, True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM (ANALYZE) billing_ledger")
    plans: list[str] = []
    read = inputs.read_columns

    def explained(connection, query, names):
        sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
        if "GROUP BY" in sql:
            plan = connection.exec_driver_sql(f"EXPLAIN {sql}").scalars().all()
            plans.append("\n".join(plan))
        return read(connection, query, names)

    monkeypatch.setattr(inputs, "read_columns", explained)
    with engine.begin() as c:
        c.exec_driver_sql("SET LOCAL enable_seqscan = off")
        c.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        load_billing_inputs(c, "acme", JULY, repairs=True)
    assert len(plans) == 1
    assert "Index Only Scan using uq_billing_ledger_billed_pair" in plans[0]
