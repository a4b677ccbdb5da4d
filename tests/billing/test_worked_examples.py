"""The worked examples of docs/billing.md, checked against the engine and the oracle."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np

from datagate_pipelines.billing.money import mul_div_round_half_away, round_half_away
from tests.billing.portal import assert_same, bayside, by_key, plain_records, product

JULY, AUGUST, SEPTEMBER, OCTOBER = (date(2026, m, 1) for m in (7, 8, 9, 10))


def amounts(result) -> dict:
    """(product or usage id, service month) → (amount, tax) as strings."""
    return {
        (row["product_id"] or row["usage_id"], row["service_month"]): (
            str(row["amount"]),
            str(row["tax"]),
        )
        for row in plain_records(result.invoice_lines)
    }


def test_invoice_for_july_2026():
    portal = bayside()
    result = portal.bill(JULY)

    assert amounts(result) == {
        ("pbx", AUGUST): ("249.50", "18.09"),
        ("sip", AUGUST): ("79.98", "6.40"),
        ("router", AUGUST): ("5.81", "0.00"),
        ("fax", AUGUST): ("3.22", "0.23"),
        ("calls-2026-07", None): ("12.34", "0.89"),
    }
    [invoice] = plain_records(result.invoices)
    assert invoice["invoice_key"] == "2026-07:customer:42"
    assert invoice["agreement_key"] == "customer:42"
    assert invoice["halo_contract_id"] is None  # no imported contract: the client alone
    assert invoice["invoice_date"] == date(2026, 8, 1)
    assert invoice["due_date"] == date(2026, 8, 31)
    assert (str(invoice["subtotal"]), str(invoice["tax"]), str(invoice["total"])) == (
        "350.85",
        "25.61",
        "376.46",
    )
    assert invoice["status"] == "draft" and invoice["hold_reasons"] == []
    sites = {row["site_id"]: str(row["subtotal"]) for row in plain_records(result.site_subtotals)}
    assert sites == {1: "265.06", 2: "85.79"}  # Main, Annex
    # The SIP trunk's July days are not billed: July is before the first service month.
    assert all(row["service_month"] == AUGUST for row in plain_records(result.ledger))
    lines = by_key(result.invoice_lines, "line_no")
    assert [lines[n]["site_id"] for n in sorted(lines)] == [1, 1, 1, 2, 2]
    assert lines[3]["kind"] == "usage" and lines[3]["qty"] is None
    assert lines[1]["tax_zip"] == "94107" and lines[5]["tax_zip"] == "94110"
    assert lines[5]["tax_rate"] == Decimal("0.08")
    assert_same(result, portal.oracle(JULY))


def test_invoice_for_august_2026():
    portal = bayside()
    portal.record(portal.bill(JULY))
    result = portal.bill(AUGUST)

    assert amounts(result) == {
        ("pbx", SEPTEMBER): ("249.50", "18.09"),
        ("sip", SEPTEMBER): ("79.98", "6.40"),
        ("router", SEPTEMBER): ("15.00", "0.00"),
    }  # the fax line has ended
    [invoice] = plain_records(result.invoices)
    assert invoice["invoice_date"] == SEPTEMBER and invoice["due_date"] == date(2026, 10, 1)
    assert_same(result, portal.oracle(AUGUST))


def test_extra_did_entered_late_is_caught_up_month_by_month():
    portal = bayside()
    portal.record(portal.bill(JULY))
    portal.record(portal.bill(AUGUST))  # finalized before the Extra DID was entered
    portal.products.append(product("extra-did", "5", "1.50", date(2026, 8, 5), site_id=1))
    result = portal.bill(SEPTEMBER)

    did = {key: value for key, value in amounts(result).items() if key[0] == "extra-did"}
    assert did == {
        ("extra-did", AUGUST): ("6.53", "0.47"),
        ("extra-did", SEPTEMBER): ("7.50", "0.54"),
        ("extra-did", OCTOBER): ("7.50", "0.54"),
    }
    assert_same(result, portal.oracle(SEPTEMBER))
    # Billed once: the next period does not bill those months again.
    portal.record(result)
    later = portal.bill(OCTOBER)
    assert [m for (p, m) in amounts(later) if p == "extra-did"] == [date(2026, 11, 1)]


def test_without_pro_rata_the_router_is_billed_in_full():
    portal = bayside(allow_pro_rata=False)
    result = portal.bill(JULY)
    assert amounts(result)[("router", AUGUST)] == ("15.00", "0.00")
    assert amounts(result)[("fax", AUGUST)] == ("9.99", "0.72")
    assert_same(result, portal.oracle(JULY))


def test_billing_in_arrears_bills_the_period_itself():
    portal = bayside(in_advance_months=0)
    result = portal.bill(JULY)
    # T = 2026-07, and the first service month is 2026-07 too.
    assert amounts(result) == {
        ("pbx", JULY): ("249.50", "18.09"),
        ("sip", JULY): ("43.86", "3.51"),  # 17 of 31 days
        ("fax", JULY): ("9.99", "0.72"),
        ("calls-2026-07", None): ("12.34", "0.89"),
    }  # the router starts in August
    assert_same(result, portal.oracle(JULY))


def test_worked_example_pro_rata_amounts_come_from_the_one_rounding_rule():
    """The example's pro-rated amounts are qty × price × A / D rounded once, half away from
    zero, by the engine's integer rule and by the Decimal helper alike."""
    # (qty × price in 10⁻⁴ units, active days, days in month, expected cents)
    cases = [(150_000, 12, 31, 581), (99_900, 10, 31, 322), (75_000, 27, 31, 653)]
    for scaled, active, days, cents in cases:
        amount = mul_div_round_half_away(
            [np.array([scaled], dtype=np.int64), np.array([active], dtype=np.int64)],
            np.array([100 * days], dtype=np.int64),
        )
        assert amount.tolist() == [cents]
        assert round_half_away(Decimal(scaled) / 10_000 * active / days) == Decimal(cents) / 100
    # A half cent goes away from zero, for discounts as for charges.
    assert mul_div_round_half_away([np.array([125, -125])], 10).tolist() == [13, -13]
