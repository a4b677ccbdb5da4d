"""Property tests: random portals billed by the engine and by the oracle must agree invoice by
invoice, line by line, to the cent — for single periods and for sequences of periods that
feed the ledger forward."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datagate_pipelines.billing import BillingSettings
from datagate_pipelines.billing.money import (
    div_round_half_away,
    from_minor_units,
    mul_div_round_half_away,
    round_half_away,
    to_minor_units,
)
from datagate_pipelines.billing.periods import add_months
from tests.billing.portal import Portal, assert_same, plain_records

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
SEQUENCES = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))

MONTH_ENDS = [
    date(2026, 1, 31),
    date(2026, 2, 28),
    date(2026, 3, 31),
    date(2026, 4, 30),
    date(2026, 6, 30),
    date(2026, 7, 31),
    date(2026, 8, 31),
    date(2026, 9, 30),
    date(2026, 12, 31),
    date(2028, 2, 29),
]
DAYS = st.one_of(
    st.dates(date(2025, 10, 1), date(2027, 3, 31)),
    st.sampled_from(MONTH_ENDS),
    st.sampled_from(MONTH_ENDS).map(lambda d: d + timedelta(days=1)),
)


def decimals(bound: int, max_places: int) -> st.SearchStrategy[Decimal]:
    """Decimals with up to `max_places` decimals, |value| < bound, zero included."""
    return st.builds(
        lambda n, places: Decimal(n).scaleb(-places),
        st.one_of(st.integers(-bound, bound), st.just(0), st.integers(-5, 5)),
        st.integers(0, max_places),
    )


# Mostly good data, with every kind of gap now and then.
ZIPS = st.sampled_from(["94107"] * 3 + ["94110-1234", "94110", " sw1a 1aa ", "SW1A 1AA", None, ""])
CODES = st.sampled_from(["TEL"] * 6 + ["NONTAXABLE"] * 2 + ["VOIP", None, " TEL", "tel"])


@st.composite
def portals(draw) -> tuple[Portal, date]:
    billing_start = draw(st.dates(date(2026, 1, 1), date(2026, 6, 30)))
    config = BillingSettings(
        billing_start=billing_start,
        in_advance_months=draw(st.sampled_from([0, 1])),
        allow_pro_rata=draw(st.booleans()),
        use_default_agreement=draw(st.booleans()),
        payment_terms_days=draw(st.integers(0, 60)),
    )
    customer_ids = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4, unique=True))
    customers = [
        {
            "customer_id": cid,
            "name": draw(st.sampled_from(["alpha", "Alpha", "beta", "Ärzte", "zeta", ""])),
            "zip": draw(ZIPS),
            "use_site_zip_tax": draw(st.booleans()),
        }
        for cid in customer_ids
    ]
    owners = st.sampled_from([*customer_ids] * 4 + [99])
    billed = st.sampled_from([*customer_ids] * 6 + [77])
    sites = [
        {"site_id": sid, "customer_id": draw(owners), "zip": draw(ZIPS)}
        for sid in draw(st.lists(st.integers(1, 8), max_size=4, unique=True))
    ]
    contracts = [
        {"contract_id": cid, "customer_id": draw(st.sampled_from(customer_ids))}
        for cid in draw(st.lists(st.integers(1000, 1010), max_size=4, unique=True))
    ]

    def site_of(customer: int) -> int | None:
        own = [s["site_id"] for s in sites if s["customer_id"] == customer]
        others = [s["site_id"] for s in sites] + [50]  # another customer's, or unknown
        return draw(st.one_of(st.none(), st.sampled_from(own * 8 + others)))

    def contract_of(customer: int) -> int | None:
        own = [c["contract_id"] for c in contracts if c["customer_id"] == customer]
        others = [c["contract_id"] for c in contracts] + [555]
        return draw(st.one_of(st.none(), st.sampled_from(own * 8 + others)))

    products = []
    for number in range(draw(st.integers(0, 10))):
        start = draw(DAYS)
        offset = st.integers(-40, 400).map(lambda days, start=start: start + timedelta(days))
        end = draw(st.one_of(st.none(), st.none(), st.just(start), offset, offset, DAYS))
        customer = draw(billed)
        products.append(
            {
                "product_id": draw(st.sampled_from([f"p{number}"] * 8 + ["dup"])),
                "customer_id": customer,
                "site_id": site_of(customer),
                "contract_id": contract_of(customer),
                "item_id": 1,
                "description": draw(st.sampled_from(["Seat", "Trunk", None])),
                "qty": draw(decimals(10**6, 4)),
                "unit_price": draw(decimals(10**7, 4)),
                "tax_code": draw(CODES),
                "start_date": start,
                "end_date": end,
                "billing_cycle": draw(st.sampled_from(["monthly"] * 8 + ["Monthly", "quarterly"])),
            }
        )
    period = add_months(config.billing_start, draw(st.integers(0, 6)))
    usage = []
    for number in range(draw(st.integers(0, 4))):
        customer = draw(billed)
        usage.append(
            {
                "usage_id": f"u{number}",
                "customer_id": customer,
                "site_id": site_of(customer),
                "contract_id": contract_of(customer),
                "description": "calls",
                "amount": draw(decimals(10**6, 3)),
                "tax_code": draw(CODES),
                "usage_date": period + timedelta(days=draw(st.integers(-3, 33))),
            }
        )
    tax_rates = []
    for zip_code in ("94107", "94110", "SW1A 1AA"):
        for code in ("TEL", "VOIP"):
            for jurisdiction in range(draw(st.sampled_from([0, 1, 1, 2, 2, 3]))):
                rate = draw(
                    st.one_of(
                        decimals(20000, 5).map(abs),
                        st.just(None) if jurisdiction == 2 else decimals(100, 3).map(abs),
                    )
                )
                tax_rates.append(
                    {
                        "zip": zip_code,
                        "tax_code": code,
                        "jurisdiction": f"J{jurisdiction}",
                        "rate": rate,
                    }
                )
    portal = Portal(config, products, customers, sites, contracts, usage, tax_rates)
    # A ledger of earlier (and some other) periods, some of it for the period being billed.
    months = [add_months(config.billing_start, k) for k in range(-1, 9)]
    for row in products:
        for month in draw(st.lists(st.sampled_from(months), max_size=3, unique=True)):
            portal.ledger.append(
                {
                    "product_id": row["product_id"],
                    "service_month": month,
                    "period": draw(st.sampled_from([period, add_months(period, -1), month])),
                }
            )
    return portal, period


@FAST
@given(portals())
@pytest.mark.slow
def test_engine_matches_the_oracle(case):
    portal, period = case
    assert_same(portal.bill(period), portal.oracle(period))


@SEQUENCES
@given(portals(), st.integers(2, 5), st.data())
@pytest.mark.slow
def test_sequences_of_periods_bill_every_month_once(case, periods, data):
    portal, _ = case
    portal.ledger = []
    period = portal.settings.billing_start
    billed = []
    for step in range(periods):
        if step and data.draw(st.booleans()):
            # A product entered late: its start date is already in the past.
            late = dict(data.draw(st.sampled_from(portal.products))) if portal.products else None
            if late:
                late["product_id"] = f"late{step}"
                portal.products.append(late)
        result = portal.bill(period)
        assert_same(result, portal.oracle(period))
        portal.record(result)
        billed += [(r["product_id"], r["service_month"]) for r in plain_records(result.ledger)]
        period = add_months(period, 1)
    assert len(billed) == len(set(billed))
    # Every billable month of every valid product up to the last T is billed exactly once.
    last_target = add_months(period, portal.settings.in_advance_months - 1)
    first = add_months(portal.settings.billing_start, portal.settings.in_advance_months)
    rejected = set(result.rejects["record_id"])
    expected = set()
    for row in portal.products:
        if row["product_id"] in rejected:
            continue
        month = max(first, row["start_date"].replace(day=1))
        while month <= last_target and (row["end_date"] is None or month <= row["end_date"]):
            expected.add((row["product_id"], month))
            month = add_months(month, 1)
    assert set(billed) == expected


# --- the money helpers ----------------------------------------------------------------

BIG = st.integers(-(10**40), 10**40)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(-(10**12), 10**12), BIG), st.integers(1, 10**20))
def test_integer_rounding_matches_decimal_half_up(numerator, denominator):
    with localcontext() as context:
        context.prec = 200
        expected = (Decimal(numerator) / Decimal(denominator)).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
    assert div_round_half_away(numerator, denominator) == int(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(BIG, st.integers(-(10**9), 10**9), st.integers(1, 31)), min_size=1, max_size=8
    )
)
def test_vectorized_rounding_is_exact_on_int64_and_python_ints(rows):
    a = np.array([r[0] for r in rows], dtype=object)
    b = np.array([r[1] for r in rows], dtype=np.int64)
    d = np.array([r[2] for r in rows], dtype=np.int64)
    got = mul_div_round_half_away([a, b], d * 10**6)
    for value, (x, y, days) in zip(got, rows, strict=True):
        with localcontext() as context:
            context.prec = 200
            exact = (Decimal(x) * y / (days * 10**6)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        assert int(value) == int(exact)


@settings(max_examples=200, deadline=None)
@given(decimals(10**15, 8))
def test_minor_units_round_trip(value):
    cents = round_half_away(value)
    assert from_minor_units(to_minor_units(cents)) == cents
    assert str(from_minor_units(to_minor_units(cents))) == str(cents)
    assert abs(cents - value) <= Decimal("0.005")
