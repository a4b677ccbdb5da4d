"""The ledger in its run form (`through_month`): one row per product and run of months
bills exactly like one row per (product, month)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from datagate_pipelines.billing import BillingInputError, bill_period
from tests.billing.portal import assert_same_results, bayside
from tests.billing.test_engine_properties import portals


def as_runs(ledger: pd.DataFrame, period: date) -> pd.DataFrame:
    """What the warehouse loader gives: counted pairs only (not P's own unless final),
    each product's consecutive months as one row."""
    if ledger.empty:
        return pd.DataFrame(columns=["product_id", "service_month", "through_month"])
    counted = ledger[[(p.year, p.month) != (period.year, period.month) for p in ledger["period"]]]
    pairs = pd.DataFrame(
        {
            "product_id": counted["product_id"].to_numpy(),
            "month": [d.year * 12 + d.month - 1 for d in counted["service_month"]],
        }
    ).drop_duplicates()
    pairs = pairs.sort_values(["product_id", "month"], kind="stable")
    run = pairs["month"] - pairs.groupby("product_id").cumcount()
    spans = pairs.groupby([pairs["product_id"], run.rename("run")], sort=True)["month"]
    table = spans.agg(["min", "max"]).reset_index()

    def day(month: int) -> date:
        return date(month // 12, month % 12 + 1, 1)

    return pd.DataFrame(
        {
            "product_id": table["product_id"].to_numpy(dtype=object),
            "service_month": pd.Series([day(m) for m in table["min"]], dtype=object),
            "through_month": pd.Series([day(m) for m in table["max"]], dtype=object),
        }
    )


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(portals())
@pytest.mark.slow
def test_runs_of_months_bill_like_one_row_per_month(case):
    portal, period = case
    frames = portal.frames()
    expected = bill_period(period, portal.settings, **frames)
    runs = {**frames, "ledger": as_runs(frames["ledger"], period)}
    assert_same_results(bill_period(period, portal.settings, **runs), expected)


def test_a_gap_in_a_run_is_billed_and_the_run_is_not():
    portal = bayside().with_settings(billing_start=date(2026, 3, 1), in_advance_months=0)
    period = date(2026, 7, 1)
    product_id = "pbx"  # from 2026-03-01
    ledger = pd.DataFrame(
        {
            "product_id": [product_id, product_id],
            "service_month": [date(2026, 3, 1), date(2026, 5, 1)],
            "through_month": [date(2026, 3, 1), date(2026, 6, 1)],
        }
    )
    frames = {**portal.frames(), "ledger": ledger}
    lines = bill_period(period, portal.settings, **frames).invoice_lines
    months = sorted(lines.loc[lines["product_id"] == product_id, "service_month"])
    assert months == [date(2026, 4, 1), date(2026, 7, 1)]  # the gap, and the period


def test_a_run_that_ends_before_it_starts_is_refused():
    portal = bayside()
    ledger = pd.DataFrame(
        {
            "product_id": [portal.products[0]["product_id"]],
            "service_month": [date(2026, 5, 1)],
            "through_month": [date(2026, 3, 1)],
        }
    )
    with pytest.raises(BillingInputError, match="through_month before service_month"):
        bill_period(date(2026, 7, 1), portal.settings, **{**portal.frames(), "ledger": ledger})
