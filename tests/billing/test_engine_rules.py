"""The rules of docs/billing.md one by one, each also checked against the oracle."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from datagate_pipelines.billing import (
    BillingInputError,
    BillingSettings,
    InvoiceNumberError,
    assign_numbers,
    bill_period,
    blocked_agreements,
    build_agreements,
    can_finalize,
    finalization_blockers,
    normalize_zip,
)
from datagate_pipelines.billing.ledger import unbilled_months
from tests.billing.portal import D, Portal, assert_same, bayside, plain_records, product, usage_row

JULY, AUGUST, SEPTEMBER = date(2026, 7, 1), date(2026, 8, 1), date(2026, 9, 1)


def simple_portal(*products, billing_start=JULY, **settings) -> Portal:
    return Portal(
        settings=BillingSettings(billing_start=billing_start, **settings),
        products=list(products),
        customers=[{"customer_id": 42, "name": "Bayside Dental", "zip": "94107"}],
        sites=[
            {"site_id": 1, "customer_id": 42, "zip": "94107"},
            {"site_id": 2, "customer_id": 42, "zip": "94110"},
        ],
        tax_rates=[
            {"zip": "94107", "tax_code": "TEL", "jurisdiction": "CA", "rate": D("0.0725")},
            {"zip": "94110", "tax_code": "TEL", "jurisdiction": "CA", "rate": D("0.08")},
        ],
    )


def checked(portal: Portal, period: date):
    """Bill with the engine, insist that the oracle agrees, return the engine's result."""
    result = portal.bill(period)
    assert_same(result, portal.oracle(period))
    return result


def lines_of(result) -> list[tuple]:
    return [
        (row["product_id"] or row["usage_id"], row["service_month"], str(row["amount"]))
        for row in plain_records(result.invoice_lines)
    ]


def rejects_of(result) -> list[tuple]:
    return [
        (row["entity"], row["record_id"], row["field"], row["reason"])
        for row in plain_records(result.rejects)
    ]


# --- months, pro rata, advance ----------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2026, 8, 31), None, [(AUGUST, "0.97")]),  # 1 of 31 days: 30 × 1/31
        (date(2026, 8, 1), date(2026, 8, 31), [(AUGUST, "30.00")]),  # ends on the last day
        (date(2026, 8, 1), date(2026, 8, 1), [(AUGUST, "0.97")]),  # one day
        (date(2026, 8, 15), date(2026, 8, 16), [(AUGUST, "1.94")]),  # 2 of 31
        (date(2026, 7, 31), date(2026, 9, 1), [(AUGUST, "30.00")]),  # spans August
    ],
)
def test_pro_rata_at_month_ends(start, end, expected):
    portal = simple_portal(product("p", "1", "30", start, end=end))
    result = checked(portal, JULY)  # T = August
    assert lines_of(result) == [("p", month, amount) for month, amount in expected]


@pytest.mark.parametrize(
    ("period", "start", "expected"),
    [
        (date(2028, 1, 1), date(2028, 2, 15), "15.00"),  # leap February: 15 of 29 days × 29
        (date(2027, 1, 1), date(2027, 2, 15), "14.00"),  # 14 of 28 days × 28
        (date(2028, 1, 1), date(2028, 2, 29), "1.00"),  # the leap day alone
    ],
)
def test_february_and_leap_years(period, start, expected):
    price = "29" if period.year == 2028 else "28"
    portal = simple_portal(product("p", "1", price, start))
    assert lines_of(checked(portal, period)) == [("p", date(period.year, 2, 1), expected)]


def test_end_on_february_28_in_a_leap_year_is_not_the_whole_month():
    portal = simple_portal(product("p", "1", "29", date(2028, 2, 1), end=date(2028, 2, 28)))
    assert lines_of(checked(portal, date(2028, 1, 1))) == [("p", date(2028, 2, 1), "28.00")]


def test_advance_one_bills_next_month_and_advance_zero_the_period():
    one = simple_portal(product("p", "1", "10", date(2025, 1, 1)))
    assert lines_of(checked(one, JULY)) == [("p", AUGUST, "10.00")]
    zero = simple_portal(product("p", "1", "10", date(2025, 1, 1)), in_advance_months=0)
    assert lines_of(checked(zero, JULY)) == [("p", JULY, "10.00")]


def test_first_service_month_is_billing_start_plus_advance():
    # billing_start 2026-07 with a = 1: the first invoice bills August only, even for a
    # product running since 2025.
    portal = simple_portal(product("p", "1", "10", date(2025, 1, 1)), billing_start=JULY)
    assert lines_of(checked(portal, JULY)) == [("p", AUGUST, "10.00")]
    arrears = simple_portal(
        product("p", "1", "10", date(2025, 1, 1)), billing_start=JULY, in_advance_months=0
    )
    assert lines_of(checked(arrears, JULY)) == [("p", JULY, "10.00")]


def test_pro_rata_off_bills_any_active_month_in_full():
    portal = simple_portal(
        product("p", "3", "10", date(2026, 8, 31)),
        product("q", "1", "10", date(2026, 1, 1), end=date(2026, 8, 1)),
        allow_pro_rata=False,
    )
    assert lines_of(checked(portal, JULY)) == [("p", AUGUST, "30.00"), ("q", AUGUST, "10.00")]


def test_rounding_is_half_away_from_zero_and_happens_once():
    # 1 × 0.005 → 0.01 and 1 × -0.005 → -0.01 (not banker's rounding to 0.00);
    # 3 × 0.3333 × 31/31 = 0.9999 → 1.00 (rounded once, not per factor).
    portal = simple_portal(
        product("a", "1", "0.005", date(2026, 1, 1), tax_code="NONTAXABLE"),
        product("b", "1", "-0.005", date(2026, 1, 1), tax_code="NONTAXABLE"),
        product("c", "3", "0.3333", date(2026, 1, 1), tax_code="NONTAXABLE"),
    )
    assert [amount for _, _, amount in lines_of(checked(portal, JULY))] == ["0.01", "-0.01", "1.00"]


def test_negative_discount_lines_reduce_the_invoice_and_its_tax():
    portal = simple_portal(
        product("seat", "10", "24.95", date(2026, 1, 1), site_id=1),
        product("discount", "1", "-24.95", date(2026, 8, 17), site_id=1),  # 15 of 31 days
    )
    result = checked(portal, JULY)
    assert lines_of(result) == [("discount", AUGUST, "-12.07"), ("seat", AUGUST, "249.50")]
    [invoice] = plain_records(result.invoices)
    # tax: -12.07 × 0.0725 = -0.875075 → -0.88; 249.50 × 0.0725 = 18.08875 → 18.09
    assert (str(invoice["subtotal"]), str(invoice["tax"])) == ("237.43", "17.21")


def test_quantity_zero_bills_nothing_but_settles_the_month():
    portal = simple_portal(product("p", "0", "24.95", date(2026, 1, 1)))
    result = checked(portal, JULY)
    assert lines_of(result) == [("p", AUGUST, "0.00")]
    [invoice] = plain_records(result.invoices)
    assert str(invoice["total"]) == "0.00"
    # The month is in the ledger: a later quantity change is not charged back to August.
    portal.record(result)
    portal.products[0]["qty"] = D("5")
    assert lines_of(checked(portal, AUGUST)) == [("p", SEPTEMBER, "124.75")]


def test_huge_quantities_and_prices_are_exact_beyond_int64():
    portal = simple_portal(
        product("big", "99999999999.9999", "99999999999.9999", date(2026, 8, 3)),
        product("small", "1", "1", date(2026, 1, 1)),
    )
    result = checked(portal, JULY)
    exact = D("99999999999.9999") * D("99999999999.9999") * 29 / 31
    assert lines_of(result)[0][2] == str(exact.quantize(D("0.01")))


# --- rejects --------------------------------------------------------------------------


def test_start_after_end_is_rejected_with_the_reason():
    portal = simple_portal(product("p", "1", "10", date(2026, 9, 1), end=date(2026, 8, 1)))
    result = checked(portal, JULY)
    assert result.invoices.empty
    assert rejects_of(result) == [
        ("product", "p", "start_date", "start date 2026-09-01 is after end date 2026-08-01")
    ]


def test_unsupported_billing_cycle_is_rejected_not_dropped():
    portal = simple_portal(
        product("q", "1", "10", date(2026, 1, 1), billing_cycle="quarterly"),
        product("m", "1", "10", date(2026, 1, 1), billing_cycle="Monthly"),
    )
    result = checked(portal, JULY)
    assert lines_of(result) == [("m", AUGUST, "10.00")]
    assert rejects_of(result) == [
        ("product", "q", "billing_cycle", "unsupported billing cycle 'quarterly'")
    ]


def test_customers_not_billed_are_rejected():
    portal = simple_portal(
        product("p", "1", "10", date(2026, 1, 1)),
        product("stranger", "1", "10", date(2026, 1, 1), customer_id=7),
    )
    portal.usage.append(usage_row("u", "1.00", date(2026, 7, 3), customer_id=7))
    result = checked(portal, JULY)
    assert lines_of(result) == [("p", AUGUST, "10.00")]
    reason = "customer 7 is not billed (not opted in, inactive or unknown)"
    assert rejects_of(result) == [
        ("product", "stranger", "customer_id", reason),
        ("usage", "u", "customer_id", reason),
    ]


def test_bad_rows_get_every_reason_that_applies():
    bad = product("bad", "1.23456", "10", None, billing_cycle="yearly")
    bad["unit_price"] = 10.5  # a float: money is never a float
    portal = simple_portal(
        bad,
        product("twice", "1", "10", date(2026, 1, 1)),
        product("twice", "1", "10", date(2026, 1, 1)),
        product("elsewhere", "1", "10", date(2026, 1, 1), site_id=9),
    )
    portal.sites.append({"site_id": 9, "customer_id": 77, "zip": "10001"})
    result = checked(portal, JULY)
    assert result.invoices.empty
    assert rejects_of(result) == [
        ("product", "bad", "billing_cycle", "unsupported billing cycle 'yearly'"),
        (
            "product",
            "bad",
            "qty",
            "quantity Decimal('1.23456') is not a Decimal with at most 4 decimal places",
        ),
        (
            "product",
            "bad",
            "unit_price",
            "unit price 10.5 is not a Decimal with at most 4 decimal places",
        ),
        ("product", "bad", "start_date", "missing start date"),
        ("product", "twice", "product_id", "product id twice appears 2 times"),
        ("product", "twice", "product_id", "product id twice appears 2 times"),
        ("product", "elsewhere", "site_id", "site 9 belongs to customer 77, not customer 42"),
    ]


def test_usage_outside_the_period_is_rejected():
    portal = simple_portal()
    portal.usage = [
        usage_row("in", "1.00", date(2026, 7, 31)),
        usage_row("out", "2.00", date(2026, 8, 3)),
    ]
    result = checked(portal, JULY)
    assert lines_of(result) == [("in", None, "1.00")]
    assert rejects_of(result) == [
        (
            "usage",
            "out",
            "usage_date",
            "usage date 2026-08-03 is outside the billing period 2026-07",
        )
    ]


def test_bad_periods_are_input_errors():
    portal = simple_portal(billing_start=JULY)
    with pytest.raises(BillingInputError, match="first day of a month"):
        portal.bill(date(2026, 7, 2))
    with pytest.raises(BillingInputError, match="before the portal's billing start"):
        portal.bill(date(2026, 6, 1))
    with pytest.raises(BillingInputError, match="in_advance_months"):
        BillingSettings(billing_start=JULY, in_advance_months=2)


def test_missing_columns_are_input_errors():
    portal = simple_portal(product("p", "1", "10", date(2026, 1, 1)))
    frames = portal.frames()
    frames["products"] = frames["products"].drop(columns=["unit_price"])
    with pytest.raises(BillingInputError, match="products: missing column"):
        bill_period(JULY, portal.settings, **frames)


# --- agreements -----------------------------------------------------------------------


def contract_portal(**settings) -> Portal:
    portal = simple_portal(
        product("a", "1", "10", date(2026, 1, 1), contract_id=1009),
        product("b", "1", "20", date(2026, 1, 1), contract_id=1007),
        product("c", "1", "30", date(2026, 1, 1)),
        **settings,
    )
    portal.contracts = [
        {"contract_id": 1009, "customer_id": 42},
        {"contract_id": 1007, "customer_id": 42},
    ]
    portal.usage = [
        usage_row("u1", "1.00", date(2026, 7, 2), contract_id=1009),
        usage_row("u2", "2.00", date(2026, 7, 2)),
    ]
    return portal


def test_default_agreement_one_invoice_against_the_lowest_contract():
    result = checked(contract_portal(), JULY)
    [invoice] = plain_records(result.invoices)
    assert invoice["agreement_key"] == "customer:42"
    assert invoice["halo_contract_id"] == 1007
    assert str(invoice["subtotal"]) == "63.00"


def test_one_agreement_per_contract_and_a_no_contract_agreement_last():
    result = checked(contract_portal(use_default_agreement=False), JULY)
    invoices = plain_records(result.invoices)
    assert [(i["invoice_key"], i["halo_contract_id"], str(i["subtotal"])) for i in invoices] == [
        ("2026-07:contract:1007", 1007, "20.00"),
        ("2026-07:contract:1009", 1009, "11.00"),
        ("2026-07:customer:42:no-contract", None, "32.00"),
    ]


def test_per_contract_rejects_contracts_of_other_customers():
    portal = contract_portal(use_default_agreement=False)
    portal.products.append(product("d", "1", "10", date(2026, 1, 1), contract_id=555))
    result = checked(portal, JULY)
    assert rejects_of(result) == [
        ("product", "d", "contract_id", "contract 555 is not an imported contract of customer 42")
    ]


def test_a_contract_listed_twice_is_one_contract_but_on_two_customers_an_error():
    portal = contract_portal(use_default_agreement=False)
    portal.contracts.append({"contract_id": 1007, "customer_id": 42})  # the same row again
    once = checked(portal, JULY)
    assert [i["halo_contract_id"] for i in plain_records(once.invoices)] == [1007, 1009, None]
    portal.contracts.append({"contract_id": 1009, "customer_id": 43})
    with pytest.raises(BillingInputError, match=r"contract\(s\) \[1009\] belong to two customers"):
        portal.bill(JULY)


def test_build_agreements_lists_each_agreement_once():
    portal = contract_portal(use_default_agreement=False)
    frames = portal.frames()
    agreements = build_agreements(frames["products"], frames["contracts"], False)
    assert plain_records(agreements) == [
        {"customer_id": 42, "agreement_key": "contract:1009", "halo_contract_id": 1009},
        {"customer_id": 42, "agreement_key": "contract:1007", "halo_contract_id": 1007},
        {"customer_id": 42, "agreement_key": "customer:42:no-contract", "halo_contract_id": None},
    ]
    default = build_agreements(frames["products"], frames["contracts"], True)
    assert plain_records(default) == [
        {"customer_id": 42, "agreement_key": "customer:42", "halo_contract_id": 1007}
    ]


def test_agreement_with_no_lines_gets_no_invoice():
    portal = simple_portal(product("ended", "1", "10", date(2025, 1, 1), end=date(2026, 6, 30)))
    result = checked(portal, JULY)
    assert result.invoices.empty and result.invoice_lines.empty and result.ledger.empty
    assert list(result.invoices.columns)[:3] == ["invoice_key", "period", "customer_id"]


def test_invoices_are_ordered_by_customer_name_case_folded_then_id():
    portal = simple_portal(
        product("p1", "1", "1", date(2026, 1, 1), customer_id=3),
        product("p2", "1", "1", date(2026, 1, 1), customer_id=2),
        product("p3", "1", "1", date(2026, 1, 1), customer_id=1),
    )
    portal.customers = [
        {"customer_id": 1, "name": "beta", "zip": "94107"},
        {"customer_id": 2, "name": "Alpha", "zip": "94107"},
        {"customer_id": 3, "name": "alpha", "zip": "94107"},
    ]
    portal.sites = []
    result = checked(portal, JULY)
    assert result.invoices["customer_id"].tolist() == [2, 3, 1]


# --- tax ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("94107-1234", "94107"),
        (" 94107 ", "94107"),
        ("sw1a 1aa", "SW1A 1AA"),
        ("  k1a0b1\t", "K1A0B1"),
        ("", None),
        ("   ", None),
        (None, None),
        ("9410-1234", "9410-1234"),
    ],
)
def test_zip_normalisation(raw, expected):
    assert normalize_zip(raw) == expected


def test_site_zip_or_customer_zip():
    portal = simple_portal(
        product("at-annex", "1", "100", date(2026, 1, 1), site_id=2),
        product("no-site-zip", "1", "100", date(2026, 1, 1), site_id=3),
        product("no-site", "1", "100", date(2026, 1, 1)),
    )
    portal.sites.append({"site_id": 3, "customer_id": 42, "zip": None})
    result = checked(portal, JULY)
    assert [(r["tax_zip"], str(r["tax"])) for r in plain_records(result.invoice_lines)] == [
        ("94110", "8.00"),
        ("94107", "7.25"),
        ("94107", "7.25"),
    ]
    portal.customers[0]["use_site_zip_tax"] = False
    result = checked(portal, JULY)
    assert {r["tax_zip"] for r in plain_records(result.invoice_lines)} == {"94107"}


def test_zip_plus_four_on_the_site_matches_the_rate_table():
    portal = simple_portal(product("p", "1", "100", date(2026, 1, 1), site_id=2))
    portal.sites[1]["zip"] = "94110-2201"
    result = checked(portal, JULY)
    assert plain_records(result.invoice_lines)[0]["tax_zip"] == "94110"


def test_rate_is_the_sum_of_jurisdictions_and_nontaxable_is_zero():
    portal = bayside()
    result = checked(portal, JULY)
    rates = {r["product_id"]: r["tax_rate"] for r in plain_records(result.invoice_lines)}
    assert rates["pbx"] == Decimal("0.0725") and rates["router"] == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p.products[0].update(tax_code=None), "no tax code for product pbx"),
        (lambda p: p.products[0].update(tax_code="  "), "no tax code for product pbx"),
        (
            lambda p: (
                p.customers[0].update(zip=None),
                p.customers[0].update(use_site_zip_tax=False),
            ),
            "no zip code for customer 42 (Bayside Dental)",
        ),
        (
            lambda p: p.products[0].update(tax_code="VOIP"),
            "no tax rate for zip 94107 and tax code VOIP",
        ),
        (
            lambda p: p.tax_rates.append(
                {"zip": "94107", "tax_code": "TEL", "jurisdiction": "X", "rate": None}
            ),
            "invalid tax rate row for zip 94107 and tax code TEL",
        ),
    ],
)
def test_missing_tax_data_holds_the_invoice_with_the_reason(change, reason):
    portal = bayside()
    portal.customers.append({"customer_id": 43, "name": "Other", "zip": "94110"})
    portal.products.append(product("other", "1", "5", date(2026, 1, 1), customer_id=43))
    change(portal)
    result = checked(portal, JULY)
    invoices = {i["customer_id"]: i for i in plain_records(result.invoices)}
    assert invoices[42]["status"] == "held"
    assert reason in invoices[42]["hold_reasons"]
    assert invoices[43]["status"] == "draft"  # the portal's other invoices are not held
    # A held invoice keeps its (product, month) pairs (rule 5).
    assert set(result.ledger["product_id"]) >= {"pbx", "sip", "router", "fax", "other"}


def test_nontaxable_lines_need_no_zip():
    portal = simple_portal(product("p", "1", "10", date(2026, 1, 1), tax_code="NONTAXABLE"))
    portal.customers[0]["zip"] = None
    [invoice] = plain_records(checked(portal, JULY).invoices)
    assert invoice["status"] == "draft"


def test_tax_codes_are_matched_exactly_after_trimming():
    portal = simple_portal(
        product("p", "1", "100", date(2026, 1, 1), tax_code=" TEL "),
        product("q", "1", "100", date(2026, 1, 1), tax_code="tel"),
    )
    result = checked(portal, JULY)
    [invoice] = plain_records(result.invoices)
    assert invoice["hold_reasons"] == ["no tax rate for zip 94107 and tax code tel"]


# --- ledger ---------------------------------------------------------------------------


def test_rerunning_a_period_recomputes_it_from_scratch():
    portal = simple_portal(product("p", "1", "10", date(2026, 1, 1)))
    first = checked(portal, JULY)
    portal.record(first)  # the draft's own ledger rows are ignored on a re-run
    again = checked(portal, JULY)
    assert lines_of(again) == lines_of(first)


def test_pairs_on_final_invoices_of_the_period_stay_billed_on_a_rerun():
    # P's invoice for contract 1007 is final; the product then moves to contract 1009.
    # Re-running P (for its held invoices) must not bill the pair again elsewhere.
    portal = contract_portal(use_default_agreement=False)
    portal.usage = []
    portal.ledger = [{"product_id": "b", "service_month": AUGUST, "period": JULY, "final": True}]
    portal.products[1]["contract_id"] = 1009
    frames = portal.frames()
    frames["ledger"]["final"] = [True]
    result = bill_period(JULY, portal.settings, **frames)
    assert "b" not in set(result.ledger["product_id"])
    # Without the flag, rows of the period being billed are ignored (drafts recomputed).
    frames["ledger"] = frames["ledger"].drop(columns=["final"])
    result = bill_period(JULY, portal.settings, **frames)
    assert "b" in set(result.ledger["product_id"])


def test_nothing_is_billed_twice_across_periods():
    portal = simple_portal(
        product("p", "1", "10", date(2026, 5, 10)), billing_start=date(2026, 5, 1)
    )
    seen = []
    for month in range(5, 11):
        result = checked(portal, date(2026, month, 1))
        portal.record(result)
        seen += [(p, m) for p, m, _ in lines_of(result)]
    assert len(seen) == len(set(seen))
    assert [m.month for _, m in seen] == [6, 7, 8, 9, 10, 11]


def test_late_entered_product_is_caught_up_month_by_month():
    portal = simple_portal(product("p", "1", "10", date(2026, 1, 1)), billing_start=JULY)
    portal.record(checked(portal, JULY))
    portal.record(checked(portal, AUGUST))
    portal.products.append(product("late", "1", "31", date(2026, 8, 2), end=date(2026, 10, 15)))
    result = checked(portal, SEPTEMBER)
    assert [line for line in lines_of(result) if line[0] == "late"] == [
        ("late", AUGUST, "30.00"),
        ("late", SEPTEMBER, "31.00"),
        ("late", date(2026, 10, 1), "15.00"),
    ]


def test_a_ledger_with_gaps_bills_exactly_the_missing_months():
    portal = simple_portal(product("p", "1", "10", date(2026, 1, 1)), billing_start=JULY)
    portal.ledger = [
        {"product_id": "p", "service_month": AUGUST, "period": JULY},
        {"product_id": "p", "service_month": date(2026, 10, 1), "period": SEPTEMBER},
    ]
    result = checked(portal, date(2026, 10, 1))  # T = November
    assert [m for _, m, _ in lines_of(result)] == [SEPTEMBER, date(2026, 11, 1)]


def test_unbilled_months_handles_contiguous_gapped_and_empty_ledgers():
    lo = np.array([1, 1, 1, 5])
    hi = np.array([6, 6, 6, 4])  # the last product has no billable month
    owner = np.array([0, 0, 1, 1, 1, 3, 0])
    month = np.array([2, 3, 1, 3, 6, 5, 3])
    products, months = unbilled_months(lo, hi, owner, month)
    assert list(zip(products.tolist(), months.tolist(), strict=True)) == [
        (0, 1), (0, 4), (0, 5), (0, 6),
        (1, 2), (1, 4), (1, 5),
        (2, 1), (2, 2), (2, 3), (2, 4), (2, 5), (2, 6),
    ]  # fmt: skip


# --- usage ----------------------------------------------------------------------------


def test_usage_lines_have_no_quantity_and_no_service_month():
    portal = simple_portal()
    portal.usage = [
        usage_row("b", "2.005", date(2026, 7, 9), site_id=1),
        usage_row("a", "-1.00", date(2026, 7, 9)),
        usage_row("c", "3.00", date(2026, 7, 1), site_id=1),
    ]
    result = checked(portal, JULY)
    lines = plain_records(result.invoice_lines)
    assert [(r["usage_id"], str(r["amount"]), r["site_id"]) for r in lines] == [
        ("c", "3.00", 1),
        ("b", "2.01", 1),  # more than 2 decimals: rounded once, half away from zero
        ("a", "-1.00", None),  # lines with no site form their own group, last
    ]
    assert all(r["qty"] is None and r["service_month"] is None for r in lines)
    assert all(r["kind"] == "usage" and r["product_id"] is None for r in lines)
    assert result.ledger.empty  # usage is not a (product, month) pair
    subtotals = plain_records(result.site_subtotals)
    assert [(r["site_id"], str(r["subtotal"])) for r in subtotals] == [(1, "5.01"), (None, "-1.00")]


# --- numbering and finalization -------------------------------------------------------


def numbering_invoices() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "invoice_key": ["k-no", "k-1009", "k-1007", "k-beta", "k-Alpha"],
            "customer_id": [5, 5, 5, 9, 7],
            "customer_name": ["acme", "acme", "acme", "beta", "Alpha"],
            "agreement_key": [
                "customer:5:no-contract",
                "contract:1009",
                "contract:1007",
                "customer:9",
                "customer:7",
            ],
        }
    )


def test_numbers_follow_name_id_agreement_and_skip_taken_numbers():
    taken = {"INV-1002", "INV-1003"}
    assigned = assign_numbers(
        numbering_invoices(), next_number=1001, prefix="INV-", is_taken=taken.__contains__
    )
    assert assigned.numbers.to_dict("records") == [
        {"invoice_key": "k-1007", "number": 1001, "doc_number": "INV-1001"},
        {"invoice_key": "k-1009", "number": 1004, "doc_number": "INV-1004"},
        {"invoice_key": "k-no", "number": 1005, "doc_number": "INV-1005"},
        {"invoice_key": "k-Alpha", "number": 1006, "doc_number": "INV-1006"},
        {"invoice_key": "k-beta", "number": 1007, "doc_number": "INV-1007"},
    ]
    assert assigned.next_number == 1008


def test_doc_number_longer_than_21_characters_is_refused():
    with pytest.raises(InvoiceNumberError, match="at most 21"):
        assign_numbers(numbering_invoices(), next_number=1, prefix="A-VERY-LONG-PREFIX-00")


def test_numbering_engine_invoices_directly():
    result = checked(contract_portal(use_default_agreement=False), JULY)
    assigned = assign_numbers(result.invoices, next_number=7, prefix="")
    assert assigned.numbers["doc_number"].tolist() == ["7", "8", "9"]


def test_can_finalize_only_after_every_earlier_invoice_is_final():
    history = {date(2026, 5, 1): "final", date(2026, 6, 1): "held", date(2026, 8, 1): "draft"}
    assert not can_finalize("customer:42", JULY, history)
    assert finalization_blockers("customer:42", JULY, history) == [
        "customer:42: the invoice for 2026-06 is held, not final"
    ]
    history[date(2026, 6, 1)] = "exported"
    assert can_finalize("customer:42", JULY, history)
    assert can_finalize("customer:42", JULY, {})
    frame = pd.DataFrame(
        {
            "agreement_key": ["customer:1", "customer:1", "customer:2"],
            "period": [date(2026, 5, 1), date(2026, 6, 1), date(2026, 6, 1)],
            "status": ["final", "draft", "final"],
        }
    )
    assert blocked_agreements(frame, JULY) == {
        "customer:1": ["customer:1: the invoice for 2026-06 is draft, not final"]
    }


# --- periods, settings and the boundary format ---------------------------------------


@pytest.mark.parametrize(
    ("period", "advance", "target", "first", "invoice_day", "due_day"),
    [
        (JULY, 1, AUGUST, AUGUST, AUGUST, date(2026, 8, 31)),
        (JULY, 0, JULY, JULY, AUGUST, date(2026, 8, 31)),
        (date(2026, 12, 1), 1, date(2027, 1, 1), AUGUST, date(2027, 1, 1), date(2027, 1, 31)),
        (date(2028, 1, 1), 1, date(2028, 2, 1), AUGUST, date(2028, 2, 1), date(2028, 3, 2)),
    ],
)
def test_period_arithmetic(period, advance, target, first, invoice_day, due_day):
    from datagate_pipelines.billing import due_date, first_service_month, invoice_date, target_month

    assert target_month(period, advance) == target
    assert first_service_month(JULY, advance) == first
    assert invoice_date(period) == invoice_day
    assert due_date(period, 30) == due_day


def test_billing_start_is_normalised_to_its_month():
    assert BillingSettings(billing_start=date(2026, 7, 15)).billing_start == JULY
    assert BillingSettings(billing_start=pd.Timestamp("2026-07-09")).billing_start == JULY


def test_boundary_types_ints_timestamps_and_datetime64_columns():
    portal = simple_portal(product("p", "1", "10", date(2026, 1, 1)))
    frames = portal.frames()
    frames["products"]["qty"] = pd.Series([3], dtype=object)  # an int quantity is exact
    frames["products"]["start_date"] = pd.to_datetime(["2026-08-17"])  # datetime64 column
    frames["products"]["site_id"] = [None]  # plain object column with None
    result = bill_period(pd.Timestamp("2026-07-01"), portal.settings, **frames)
    [line] = plain_records(result.invoice_lines)
    assert str(line["amount"]) == "14.52"  # 3 × 10 × 15/31
    assert result.invoice_lines["site_id"].dtype == "Int64"
    assert result.invoices["halo_contract_id"].dtype == "Int64"
    assert result.invoices["customer_id"].dtype == "int64"
    assert isinstance(line["amount"], Decimal) and isinstance(line["service_month"], date)


def test_result_columns_match_the_published_contract():
    from datagate_pipelines.billing import (
        INVOICE_COLUMNS,
        LEDGER_COLUMNS,
        LINE_COLUMNS,
        REJECT_COLUMNS,
        SITE_SUBTOTAL_COLUMNS,
    )

    for result in (checked(bayside(), JULY), checked(simple_portal(), JULY)):
        assert tuple(result.invoices.columns) == INVOICE_COLUMNS
        assert tuple(result.invoice_lines.columns) == LINE_COLUMNS
        assert tuple(result.site_subtotals.columns) == SITE_SUBTOTAL_COLUMNS
        assert tuple(result.ledger.columns) == LEDGER_COLUMNS
        assert tuple(result.rejects.columns) == REJECT_COLUMNS


def test_frames_with_any_index_and_string_dtypes():
    portal = simple_portal(
        product("p", "1", "10", date(2026, 1, 1)),
        product("q", "2", "10", date(2026, 1, 1), billing_cycle="weekly"),
    )
    frames = portal.frames()
    frames["products"].index = [40, 7]  # a filtered frame keeps its labels
    frames["products"]["product_id"] = frames["products"]["product_id"].astype("string")
    result = bill_period(JULY, portal.settings, **frames)
    assert lines_of(result) == [("p", AUGUST, "10.00")]
    assert rejects_of(result) == [
        ("product", "q", "billing_cycle", "unsupported billing cycle 'weekly'")
    ]
