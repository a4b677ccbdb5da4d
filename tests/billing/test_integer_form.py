"""The engine's integer form: scaled integers, datetime64 dates and product keys in, cents
out. Billing a portal in either form must give the same invoices to the cent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datagate_pipelines.billing import MINOR_UNIT_COLUMNS, BillingInputError, bill_period
from datagate_pipelines.billing.ids import find_keys
from datagate_pipelines.billing.month_columns import parse_dates
from tests.billing.portal import (
    as_decimals,
    assert_same_results,
    bayside,
    by_key,
    integer_frames,
    plain_records,
    product,
)
from tests.billing.test_engine_properties import SEQUENCES, portals

JULY = date(2026, 7, 1)


# Half the examples of the oracle comparison: each bills the portal three times.
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(portals())
@pytest.mark.slow
def test_the_integer_form_bills_like_the_decimal_form(case):
    portal, period = case
    frames = portal.frames()
    expected = bill_period(period, portal.settings, **frames)
    got = bill_period(period, portal.settings, **integer_frames(frames), minor_units=True)
    assert_same_results(as_decimals(got), expected)
    # Integers in, Decimals out (what the draft asset stores) is the same result too.
    mixed = bill_period(period, portal.settings, **integer_frames(frames))
    assert_same_results(mixed, expected)


@SEQUENCES
@given(portals(), st.integers(2, 4))
@pytest.mark.slow
def test_a_ledger_kept_by_product_key_bills_every_month_once(case, periods):
    portal, _ = case
    portal.ledger = []
    period = portal.settings.billing_start
    for _ in range(periods):
        frames = portal.frames()
        expected = bill_period(period, portal.settings, **frames)
        got = bill_period(period, portal.settings, **integer_frames(frames), minor_units=True)
        assert_same_results(as_decimals(got), expected)
        portal.record(expected)
        period = date(period.year + period.month // 12, period.month % 12 + 1, 1)


def test_worked_example_in_cents():
    portal = bayside()
    result = bill_period(JULY, portal.settings, **integer_frames(portal.frames()), minor_units=True)
    invoice = plain_records(result.invoices)[0]
    # docs/billing.md's worked example: 350.85 + 25.61 tax = 376.46.
    assert (invoice["subtotal_cents"], invoice["tax_cents"], invoice["total_cents"]) == (
        35085,
        2561,
        37646,
    )
    sites = {row["site_id"]: row["subtotal_cents"] for row in plain_records(result.site_subtotals)}
    assert sites == {1: 26506, 2: 8579}
    assert result.invoice_lines["amount_cents"].dtype == np.int64
    assert sum(result.invoice_lines["amount_cents"]) == invoice["subtotal_cents"]
    assert "qty_e4" in result.invoice_lines and "qty" not in result.invoice_lines


def test_minor_unit_columns_are_named_for_their_scale():
    portal = bayside()
    result = bill_period(JULY, portal.settings, **portal.frames(), minor_units=True)
    for frame in (result.invoices, result.invoice_lines, result.site_subtotals):
        for decimal_name, integer_name in MINOR_UNIT_COLUMNS.items():
            assert decimal_name not in frame.columns
            if integer_name in frame.columns:
                assert pd.api.types.is_integer_dtype(frame[integer_name].dtype), integer_name
    usage_line = result.invoice_lines[result.invoice_lines["kind"] == "usage"].iloc[0]
    assert usage_line["qty_e4"] is pd.NA  # a usage line has no quantity


def test_a_missing_integer_value_is_a_reject_not_a_zero():
    portal = bayside()
    frames = integer_frames(portal.frames())
    frames["products"].loc[0, "qty_e4"] = pd.NA
    frames["usage"].loc[0, "amount_cents"] = pd.NA
    result = bill_period(JULY, portal.settings, **frames, minor_units=True)
    rejects = plain_records(result.rejects)
    assert {
        "entity": "product",
        "record_id": frames["products"].loc[0, "product_id"],
        "field": "qty",
        "reason": "missing quantity",
    } in rejects
    assert {
        "entity": "usage",
        "record_id": frames["usage"].loc[0, "usage_id"],
        "field": "amount",
        "reason": "missing amount",
    } in rejects
    assert frames["products"].loc[0, "product_id"] not in set(result.invoice_lines["product_id"])


def test_a_table_needs_one_form_of_each_column():
    portal = bayside()
    frames = integer_frames(portal.frames())
    del frames["products"]["qty_e4"]
    with pytest.raises(BillingInputError, match=r"products: missing column\(s\) qty \(or qty_e4\)"):
        bill_period(JULY, portal.settings, **frames)


def test_product_keys_must_be_complete_and_distinct():
    portal = bayside()
    portal.record(portal.bill(JULY))
    frames = integer_frames(portal.frames())
    assert len(frames["ledger"])
    plain = {**frames, "products": frames["products"].drop(columns="product_key")}
    with pytest.raises(BillingInputError, match="ledger: rows name products by product_key"):
        bill_period(date(2026, 8, 1), portal.settings, **plain)
    twice = frames["products"].copy()
    twice.loc[1, "product_key"] = twice.loc[0, "product_key"]
    with pytest.raises(BillingInputError, match="two products share a product_key"):
        bill_period(date(2026, 8, 1), portal.settings, **{**frames, "products": twice})


def test_ledger_rows_by_key_are_not_billed_again():
    portal = bayside()
    portal.products.append(product("late", "1", "10.00", date(2026, 5, 1)))
    first = portal.bill(JULY)
    portal.record(first)
    frames = integer_frames(portal.frames())
    again = bill_period(date(2026, 8, 1), portal.settings, **frames, minor_units=True)
    billed = {(row["product_id"], row["service_month"]) for row in plain_records(first.ledger)}
    now = {(row["product_id"], row["service_month"]) for row in plain_records(again.ledger)}
    assert billed and now and not billed & now
    # The late product was caught up in July and bills August's month alone in August.
    assert [
        row["service_month"] for row in plain_records(again.ledger) if row["product_id"] == "late"
    ] == [date(2026, 9 if portal.settings.in_advance_months else 8, 1)]
    assert by_key(first.invoices, "agreement_key")


@given(
    st.lists(st.integers(-(10**12), 10**12), unique=True, max_size=40),
    st.lists(st.integers(-(10**12), 10**12), max_size=60),
    st.booleans(),
    st.booleans(),
)
def test_find_keys_finds_each_key_or_none(known, extra, dense, ordered):
    if dense:  # keys handed out in sequence: the table path
        known = list(range(500, 500 + len(known)))
    if ordered:
        known = sorted(known)
    wanted = [*known[::2], *extra]
    found = find_keys(np.array(wanted, dtype=np.int64), np.array(known, dtype=np.int64))
    expected = {key: position for position, key in enumerate(known)}
    assert found.tolist() == [expected.get(key, -1) for key in wanted]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_datetime64_dates_read_like_date_objects(unit):
    days = [date(2024, 2, 29), date(2026, 12, 31), None, date(1969, 12, 31), date(2026, 1, 1)]
    as_objects = parse_dates(pd.Series(days, dtype=object))
    typed = pd.Series(
        np.array(
            [np.datetime64(d) if d else np.datetime64("NaT") for d in days], f"datetime64[{unit}]"
        )
    )
    as_datetimes = parse_dates(typed)
    assert as_datetimes.month.tolist() == as_objects.month.tolist()
    assert as_datetimes.day.tolist() == as_objects.day.tolist()
    assert as_datetimes.missing.tolist() == [False, False, True, False, False]
    assert [as_datetimes.date(i) for i in range(len(days))] == days
    # A timezone-aware column is read as its local calendar day.
    aware = pd.Series(pd.to_datetime(["2026-03-31 23:30"]).tz_localize("America/New_York"))
    assert parse_dates(aware).date(0) == date(2026, 3, 31)


def test_decimal_quantities_come_back_from_integers():
    portal = bayside()
    result = bill_period(JULY, portal.settings, **integer_frames(portal.frames()))
    line = plain_records(result.invoice_lines)[0]
    assert isinstance(line["qty"], Decimal) and isinstance(line["amount"], Decimal)
    assert line["amount"].as_tuple().exponent == -2


def test_key_errors_name_the_products():
    portal = bayside()
    frames = integer_frames(portal.frames())
    products = frames["products"]
    twice = products.copy()
    twice.loc[1, "product_key"] = twice.loc[0, "product_key"]
    first, second = products.loc[0, "product_id"], products.loc[1, "product_id"]
    with pytest.raises(BillingInputError) as shared:
        bill_period(JULY, portal.settings, **{**frames, "products": twice})
    assert repr(first) in str(shared.value) and repr(second) in str(shared.value)
    keyless = products.copy()
    keyless["product_key"] = keyless["product_key"].astype("Int64")
    keyless.loc[2, "product_key"] = pd.NA
    with pytest.raises(
        BillingInputError, match=f"no product_key \\(product '{products.loc[2, 'product_id']}'\\)"
    ):
        bill_period(JULY, portal.settings, **{**frames, "products": keyless})


@pytest.mark.parametrize("column", ["service_month", "period"])
@pytest.mark.parametrize("integers", [False, True])
def test_a_ledger_row_without_a_date_is_an_input_error(column, integers):
    """A ledger row whose month or period is missing (None, or NaT in datetime64) cannot be
    placed: billing stops with the table named rather than bill the month again."""
    portal = bayside()
    portal.record(portal.bill(JULY))
    frames = portal.frames()
    frames = integer_frames(frames) if integers else frames
    ledger = frames["ledger"].copy()
    ledger[column] = ledger[column].astype(object)
    ledger.loc[len(ledger) // 2, column] = None
    if integers:
        ledger[column] = pd.to_datetime(ledger[column])
        assert ledger[column].isna().sum() == 1
    with pytest.raises(BillingInputError, match="ledger: every row needs a service_month"):
        bill_period(date(2026, 8, 1), portal.settings, **{**frames, "ledger": ledger})


def test_ledger_rows_of_the_period_itself_count_only_when_final():
    """A ledger holding rows of P (a re-run) drops P's non-final rows, in both forms."""
    portal = bayside()
    first = portal.bill(JULY)
    portal.record(first)  # July's pairs, now in the ledger as period July
    for frames in (portal.frames(), integer_frames(portal.frames())):
        again = bill_period(JULY, portal.settings, **frames)
        assert plain_records(again.ledger) == plain_records(first.ledger)  # recomputed
        final = frames["ledger"].assign(final=True)
        rerun = bill_period(JULY, portal.settings, **{**frames, "ledger": final})
        assert len(rerun.ledger) == 0  # every pair already billed on a final invoice
