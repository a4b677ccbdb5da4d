"""Rule 6: repair lines — money already billed on final invoices corrected when a product's
dates change; engine against oracle, BILLING.md's repair worked example, each case."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from datagate_pipelines.billing import BillingInputError, BillingSettings, bill_period
from datagate_pipelines.billing.periods import add_months
from tests.billing.portal import Portal, assert_same, bayside, plain_records, product

JULY, AUGUST, SEPTEMBER, OCTOBER, NOVEMBER = (date(2026, m, 1) for m in (7, 8, 9, 10, 11))


def bill(portal: Portal, period: date):
    """Bill the period with engine and oracle (they must agree), then finalize it."""
    result = portal.bill(period)
    assert_same(result, portal.oracle(period))
    portal.record(result, final=True)
    return result


def moved(portal: Portal, product_id: str, **dates) -> None:
    """Change a product's dates in place, as a sync would."""
    portal.products = [
        {**p, **{f"{k}_date": v for k, v in dates.items()}} if p["product_id"] == product_id else p
        for p in portal.products
    ]


def repairs(result) -> list[tuple]:
    return [
        (row["kind"], row["product_id"], row["service_month"], str(row["amount"]), str(row["tax"]))
        for row in plain_records(result.invoice_lines)
        if row["kind"] in ("credit", "rebill")
    ]


def test_the_repair_worked_example():
    portal = bayside()
    bill(portal, JULY)
    bill(portal, AUGUST)  # billed the seat's September: 249.50, tax 18.09
    moved(portal, "pbx", end=date(2026, 9, 10))
    result = bill(portal, SEPTEMBER)

    assert repairs(result) == [
        ("credit", "pbx", SEPTEMBER, "-249.50", "-18.09"),
        ("rebill", "pbx", SEPTEMBER, "83.17", "6.03"),
    ]
    lines = plain_records(result.invoice_lines)
    assert not any(r["product_id"] == "pbx" and r["kind"] == "recurring" for r in lines)
    rebill = next(r for r in lines if r["kind"] == "rebill")
    assert (rebill["qty"], rebill["unit_price"]) == (Decimal("10"), Decimal("24.95"))
    assert rebill["tax_zip"] == "94107" and rebill["tax_rate"] == Decimal("0.0725")
    assert rebill["corrects_invoice"] == "2026-08:customer:42"
    [invoice] = plain_records(result.invoices)
    totals = (str(invoice["subtotal"]), str(invoice["tax"]), str(invoice["total"]))
    assert totals == ("-71.35", "-5.66", "-77.01")  # a credit
    # Repaired once: the next period finds the re-bill is what the dates give.
    assert repairs(bill(portal, OCTOBER)) == []


def test_a_change_undone_is_repaired_back_and_a_pair_repaired_again():
    portal = bayside()
    for period in (JULY, AUGUST):
        bill(portal, period)
    moved(portal, "pbx", end=date(2026, 9, 10))
    bill(portal, SEPTEMBER)
    moved(portal, "pbx", end=None)  # undone
    assert repairs(bill(portal, OCTOBER)) == [
        ("credit", "pbx", SEPTEMBER, "-83.17", "-6.03"),
        ("rebill", "pbx", SEPTEMBER, "249.50", "18.09"),
    ]
    moved(portal, "pbx", end=date(2026, 9, 20))  # and moved again
    assert repairs(bill(portal, NOVEMBER)) == [
        ("credit", "pbx", SEPTEMBER, "-249.50", "-18.09"),
        ("rebill", "pbx", SEPTEMBER, "166.33", "12.06"),
        # October was billed in full by September's invoice, November by October's.
        ("credit", "pbx", OCTOBER, "-249.50", "-18.09"),
        ("credit", "pbx", NOVEMBER, "-249.50", "-18.09"),
    ]


def test_start_moved_later_and_a_vanished_line_are_credited_whole():
    portal = bayside()
    for period in (JULY, AUGUST):
        bill(portal, period)
    moved(portal, "sip", start=date(2026, 10, 1))  # never active in August or September
    # The router's line removed from HaloPSA, seen on 15 August: the sync ends it then,
    # before it started.
    moved(portal, "router", end=date(2026, 8, 15))
    result = bill(portal, SEPTEMBER)
    assert repairs(result) == [
        ("credit", "router", AUGUST, "-5.81", "0.00"),
        ("credit", "router", SEPTEMBER, "-15.00", "0.00"),
        ("credit", "sip", AUGUST, "-79.98", "-6.40"),
        ("credit", "sip", SEPTEMBER, "-79.98", "-6.40"),
    ]
    # The SIP trunk's October is billed as usual (its new start).
    assert ("sip", OCTOBER) in {
        (r["product_id"], r["service_month"])
        for r in plain_records(result.invoice_lines)
        if r["kind"] == "recurring"
    }


def test_without_pro_rata_only_a_month_losing_every_day_is_repaired():
    portal = bayside(allow_pro_rata=False)
    for period in (JULY, AUGUST):
        bill(portal, period)
    moved(portal, "pbx", end=date(2026, 9, 10))  # September still active: same amount
    assert repairs(bill(portal, SEPTEMBER)) == []
    moved(portal, "pbx", end=date(2026, 8, 31))
    assert repairs(bill(portal, OCTOBER)) == [("credit", "pbx", SEPTEMBER, "-249.50", "-18.09")]


def test_credit_past_changes_false_keeps_the_old_behaviour():
    portal = bayside(credit_past_changes=False)
    for period in (JULY, AUGUST):
        bill(portal, period)
    moved(portal, "pbx", end=date(2026, 9, 10))
    assert repairs(bill(portal, SEPTEMBER)) == []


def test_a_customer_no_longer_billed_gets_an_invoice_of_its_repair_lines():
    portal = bayside()
    for period in (JULY, AUGUST):
        bill(portal, period)
    portal.customers = [{**c, "billed": False} for c in portal.customers]
    moved(portal, "pbx", end=date(2026, 8, 31))
    result = bill(portal, SEPTEMBER)
    [invoice] = plain_records(result.invoices)
    assert invoice["customer_name"] == "Bayside Dental"
    assert [r["kind"] for r in plain_records(result.invoice_lines)] == ["credit"]
    assert str(invoice["total"]) == "-267.59"
    assert set(plain_records(result.rejects)[0]["reason"].split()) >= {"not", "billed"}


def test_pairs_on_invoices_not_final_are_not_repaired():
    portal = bayside()
    bill(portal, JULY)
    portal.record(portal.bill(AUGUST), final=False)  # August's invoice still held
    moved(portal, "pbx", end=date(2026, 9, 10))
    result = portal.bill(SEPTEMBER)
    assert [r for r in repairs(result) if r[2] == SEPTEMBER] == []
    assert_same(result, portal.oracle(SEPTEMBER))


def test_a_repair_needs_its_customer_in_the_customers_table():
    portal = bayside()
    for period in (JULY, AUGUST):
        bill(portal, period)
    moved(portal, "pbx", end=date(2026, 9, 10))
    frames = portal.frames()
    frames["customers"] = frames["customers"].iloc[0:0]
    with pytest.raises(BillingInputError, match=r"pbx.*customer 42.*not in the customers table"):
        bill_period(SEPTEMBER, portal.settings, **frames)


def test_an_unknown_ledger_kind_is_an_input_error():
    portal = bayside()
    bill(portal, JULY)
    portal.ledger[0]["kind"] = "refund"
    with pytest.raises(BillingInputError, match="kind must be one of bill, credit, rebill"):
        portal.bill(AUGUST)


# --- engine against oracle: random date moves over several periods -------------------------

DATES = st.dates(date(2026, 6, 1), date(2026, 12, 31))  # around the months billed
PRICES = st.sampled_from(["24.95", "0.01", "9.99", "-5.00", "0", "1234.5678", "0.335"])


@st.composite
def histories(draw):
    """A portal, and per period the date moves made before billing it."""
    advance = draw(st.sampled_from([0, 1]))
    pro_rata = draw(st.booleans())
    per_contract = draw(st.booleans())
    count = draw(st.integers(1, 5))
    products = []
    for n in range(count):
        start = draw(DATES)
        end = draw(st.one_of(st.none(), DATES.filter(lambda d, s=start: d >= s)))
        products.append(
            product(
                f"p{n}",
                draw(st.sampled_from(["1", "2.5", "0", "10"])),
                draw(PRICES),
                start,
                end=end,
                site_id=draw(st.sampled_from([None, 1, 2])),
                contract_id=draw(st.sampled_from([None, 7, 8])),
                tax_code=draw(st.sampled_from(["TEL", "NONTAXABLE", "VOIP"])),
            )
        )
    periods = draw(st.integers(3, 6))
    moves = []
    for _ in range(periods):
        period_moves = []
        for _ in range(draw(st.integers(0, 1)) + 1):
            which = f"p{draw(st.integers(0, count - 1))}"
            start = draw(DATES)
            end = draw(st.one_of(st.none(), st.dates(start, date(2027, 1, 31))))
            period_moves.append((which, start, end, draw(st.booleans())))
        moves.append(period_moves)
    portal = bayside(
        in_advance_months=advance, allow_pro_rata=pro_rata, use_default_agreement=not per_contract
    )
    contracts = [{"contract_id": 7, "customer_id": 42}, {"contract_id": 8, "customer_id": 42}]
    portal = replace(portal, products=products, usage=[], contracts=contracts)
    return portal, moves


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(histories())
def test_engine_and_oracle_agree_on_repairs_over_several_periods(history):
    portal, moves = history
    period = JULY
    for period_moves in moves:
        for which, start, end, gone in period_moves:
            if gone:  # the line vanished: the sync ends it when it notices, maybe before its start
                moved(portal, which, end=end or start)
            else:
                moved(portal, which, start=start, end=end)
        # Shown by --hypothesis-show-statistics: most examples repair in some period.
        event("period with repair lines" if repairs(bill(portal, period)) else "period without")
        period = add_months(period, 1)
    # Whatever happened, billing again with nothing changed repairs nothing.
    assert repairs(portal.bill(period)) == []


def test_settings_reject_a_non_boolean_credit_past_changes():
    with pytest.raises(BillingInputError, match="credit_past_changes"):
        BillingSettings(billing_start=JULY, credit_past_changes="yes")


def test_a_zero_amount_credit_is_omitted_and_a_day_moved_in_a_month_is_repaired():
    portal = bayside()
    portal.products.append(
        product("idle", "0", "5.00", date(2026, 8, 1), site_id=1, description="Idle seat")
    )
    for period in (JULY, AUGUST):
        bill(portal, period)
    moved(portal, "idle", end=date(2026, 8, 31))  # its 0.00 months: nothing to correct
    moved(portal, "sip", start=date(2026, 8, 2))  # a day less in August
    assert repairs(bill(portal, SEPTEMBER)) == [
        ("credit", "sip", AUGUST, "-79.98", "-6.40"),
        ("rebill", "sip", AUGUST, "77.40", "6.19"),
    ]


def test_the_integer_form_repairs_as_the_decimal_form():
    from tests.billing.portal import as_decimals, assert_same_results, integer_frames

    portal = bayside()
    for period in (JULY, AUGUST):
        bill(portal, period)
    moved(portal, "pbx", end=date(2026, 9, 10))
    moved(portal, "sip", start=date(2026, 10, 1))
    frames = portal.frames()
    expected = bill_period(SEPTEMBER, portal.settings, **frames)
    got = bill_period(SEPTEMBER, portal.settings, **integer_frames(frames), minor_units=True)
    assert_same_results(as_decimals(got), expected)
    assert len(repairs(expected)) == 4
