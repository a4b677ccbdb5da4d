"""The variance review (billing/variance.py): each change kind, the flags and thresholds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from datagate_pipelines.billing import variance as v
from datagate_pipelines.billing.variance import (
    ProductDates,
    ReviewInvoice,
    ReviewLine,
    Thresholds,
    review_period,
)

JULY, AUGUST, SEPTEMBER, OCTOBER = (date(2026, m, 1) for m in (7, 8, 9, 10))


def rec(product, month, qty="1", price="10", amount=None, description=None, kind="recurring"):
    amount = D(amount) if amount is not None else D(qty) * D(price)
    return ReviewLine(
        kind=kind,
        description=description or f"product {product}",
        amount=amount.quantize(D("0.01")),
        product_id=product,
        service_month=month,
        qty=D(qty),
        unit_price=D(price),
    )


def usage(amount, description="calls"):
    return ReviewLine(kind="usage", description=description, amount=D(amount))


def invoice(period, *lines, agreement="customer:1", customer=1, status="draft", reasons=()):
    total = sum((line.amount for line in lines), D("0.00"))
    return ReviewInvoice(
        invoice_key=f"{period:%Y-%m}:{agreement}",
        agreement_key=agreement,
        customer_id=customer,
        customer_name=f"Customer {customer}",
        status=status,
        total=total,
        lines=tuple(lines),
        hold_reasons=tuple(reasons),
    )


def one(now, then, products=None, thresholds=Thresholds()):
    """The review of August (target September) against July (target August)."""
    found = review_period(
        AUGUST,
        [now] if now else [],
        [then] if then else [],
        products=products or {},
        thresholds=thresholds,
    )
    (only,) = found.invoices
    return only


def kinds(variance):
    return [change.kind for change in variance.changes]


STEADY = rec("a", AUGUST), rec("a", SEPTEMBER)


@pytest.mark.parametrize(
    "then_lines, now_lines, products, expected_kind, expected_text",
    [
        # a product billed now and not last period
        (
            [rec("a", AUGUST)],
            [rec("a", SEPTEMBER), rec("b", SEPTEMBER, "2", "39.99", description="SIP trunk")],
            {},
            v.PRODUCT_ADDED,
            "added: SIP trunk (2 × 39.99)",
        ),
        # billed last period, not now: its end date and why
        (
            [rec("a", AUGUST), rec("fax", AUGUST, description="Fax line")],
            [rec("a", SEPTEMBER)],
            {"fax": ProductDates(date(2025, 1, 1), date(2026, 8, 31), "line inactive in HaloPSA")},
            v.PRODUCT_ENDED,
            "ended: Fax line (end date 2026-08-31, line inactive in HaloPSA)",
        ),
        # the first month for part of its days (docs/billing.md worked example: the router)
        (
            [rec("a", AUGUST)],
            [
                rec("a", SEPTEMBER),
                rec("router", SEPTEMBER, "1", "15.00", amount="5.50", description="Router"),
            ],
            {"router": ProductDates(date(2026, 9, 20))},
            v.PRO_RATED_FIRST,
            "first month pro-rated, from 2026-09-20: Router (2026-09: 11/30 days, 5.50)",
        ),
        # the last month for part of its days
        (
            [rec("a", AUGUST), rec("fax", AUGUST, "1", "9.99", description="Fax line")],
            [
                rec("a", SEPTEMBER),
                rec("fax", SEPTEMBER, "1", "9.99", amount="3.33", description="Fax line"),
            ],
            {"fax": ProductDates(date(2025, 1, 1), date(2026, 9, 10))},
            v.PRO_RATED_LAST,
            "last month pro-rated, to 2026-09-10: Fax line (2026-09: 10/30 days, 3.33)",
        ),
        # a product entered late: its missed months billed now, with the months
        (
            [rec("a", AUGUST)],
            [
                rec("a", SEPTEMBER),
                rec("did", JULY, "5", "1.50", description="Extra DID"),
                rec("did", AUGUST, "5", "1.50", description="Extra DID"),
                rec("did", SEPTEMBER, "5", "1.50", description="Extra DID"),
            ],
            {"did": ProductDates(date(2026, 7, 1))},
            v.CAUGHT_UP,
            "caught up: Extra DID: 2026-07, 2026-08 (15.00, entered late)",
        ),
        # repair lines (rule 6, kinds credit and rebill)
        (
            [rec("a", AUGUST), rec("pbx", AUGUST, "10", "24.95")],
            [
                rec("a", SEPTEMBER),
                rec(
                    "pbx", AUGUST, "10", "24.95", amount="-249.50", kind="credit", description="PBX"
                ),
                rec("pbx", AUGUST, "10", "24.95", amount="83.17", kind="rebill", description="PBX"),
            ],
            {"pbx": ProductDates(date(2026, 3, 1), date(2026, 8, 10))},
            v.REPAIRED,
            "repaired 2026-08: PBX (credit -249.50, rebill 83.17)",
        ),
        (
            [rec("a", AUGUST, "10", "24.95", description="PBX seat")],
            [rec("a", SEPTEMBER, "12", "24.95", description="PBX seat")],
            {},
            v.QUANTITY_CHANGED,
            "quantity 10 → 12: PBX seat",
        ),
        (
            [rec("a", AUGUST, "10", "24.95", description="PBX seat")],
            [rec("a", SEPTEMBER, "10", "26.5", description="PBX seat")],
            {},
            v.PRICE_CHANGED,
            "unit price 24.95 → 26.5: PBX seat",
        ),
        (
            [rec("a", AUGUST), usage("12.34")],
            [rec("a", SEPTEMBER), usage("40.00"), usage("5.00")],
            {},
            v.USAGE_CHANGED,
            "usage 12.34 → 45.00 (+32.66)",
        ),
    ],
    ids=[
        "product added",
        "product ended",
        "pro-rated first month",
        "pro-rated last month",
        "caught up",
        "repaired",
        "quantity",
        "price",
        "usage",
    ],
)
def test_each_change_is_explained(then_lines, now_lines, products, expected_kind, expected_text):
    found = one(invoice(AUGUST, *now_lines), invoice(JULY, *then_lines), products)
    assert expected_text in [c.text for c in found.changes if c.kind == expected_kind], (
        found.changes
    )


def test_an_invoice_that_did_not_change_has_nothing_to_explain():
    found = one(invoice(AUGUST, STEADY[1]), invoice(JULY, STEADY[0]))
    assert found.changes == [] and found.flags == []
    assert (found.change, found.change_percent) == (D("0.00"), D("0.00"))


def test_a_full_month_at_full_price_is_not_called_pro_rated():
    # the product started on day 1, and a month with pro rata off bills in full
    products = {"a": ProductDates(date(2026, 9, 1)), "b": ProductDates(date(2026, 9, 15))}
    found = one(
        invoice(AUGUST, rec("a", SEPTEMBER), rec("b", SEPTEMBER)),
        invoice(JULY, rec("c", AUGUST)),
        products,
    )
    assert v.PRO_RATED_FIRST not in kinds(found)


def test_new_and_gone_agreements():
    new = one(invoice(AUGUST, rec("a", SEPTEMBER, "1", "600")), None)
    assert kinds(new) == [v.NEW_AGREEMENT]
    assert new.previous_total is None and new.change_percent is None
    assert new.flags == ["total changed by +600.00 (more than 500.00)"]

    gone = one(None, invoice(JULY, rec("a", AUGUST, "1", "99")))
    assert (gone.invoice_key, gone.status, gone.total) == (None, v.NOT_BILLED, D("0.00"))
    assert [c.text for c in gone.changes] == ["not billed this period (last period: 99.00)"]
    assert gone.flags == ["customer billed last period (99.00) and not this period"]


def test_a_gone_agreement_of_a_customer_still_billed_is_flagged_by_the_thresholds_only():
    found = review_period(
        AUGUST,
        [invoice(AUGUST, rec("a", SEPTEMBER), agreement="contract:1")],
        [
            invoice(JULY, rec("a", AUGUST), agreement="contract:1"),
            invoice(JULY, rec("b", AUGUST, "1", "40"), agreement="contract:2"),
        ],
    )
    gone = next(i for i in found.invoices if i.agreement_key == "contract:2")
    assert kinds(gone) == [v.GONE_AGREEMENT]
    # -40.00 is under 500.00; no percentage without an invoice this period is -100%
    assert gone.change_percent == D("-100.00")
    assert gone.flags == ["total changed by -100.00% (more than 20%)"]


def test_held_invoices_carry_their_reasons():
    found = one(
        invoice(AUGUST, rec("a", SEPTEMBER), status="held", reasons=("line 1 has no tax code",)),
        invoice(JULY, rec("a", AUGUST)),
    )
    assert [c.text for c in found.changes] == ["held: line 1 has no tax code"]
    assert found.hold_reasons == ("line 1 has no tax code",)


@pytest.mark.parametrize(
    "before, after, thresholds, flags",
    [
        # exactly at a threshold is not over it
        ("100.00", "120.00", Thresholds(), []),
        ("100.00", "120.01", Thresholds(), ["total changed by +20.01% (more than 20%)"]),
        ("100.00", "79.99", Thresholds(), ["total changed by -20.01% (more than 20%)"]),
        ("5000.00", "5500.00", Thresholds(), []),
        ("5000.00", "5500.01", Thresholds(), ["total changed by +500.01 (more than 500.00)"]),
        (
            "1000.00",
            "1600.00",
            Thresholds(),
            [
                "total changed by +600.00 (more than 500.00)",
                "total changed by +60.00% (more than 20%)",
            ],
        ),
        # the portal's own thresholds
        (
            "100.00",
            "106.00",
            Thresholds(percent=D("5"), amount=D("1000")),
            ["total changed by +6.00% (more than 5%)"],
        ),
        (
            "100.00",
            "150.00",
            Thresholds(percent=D("80"), amount=D("25.00")),
            ["total changed by +50.00 (more than 25.00)"],
        ),
        # no percentage from a zero total: only the amount can flag
        ("0.00", "400.00", Thresholds(), []),
    ],
)
def test_flags_and_thresholds(before, after, thresholds, flags):
    found = one(
        invoice(AUGUST, rec("a", SEPTEMBER, "1", after)),
        invoice(JULY, rec("a", AUGUST, "1", before)),
        thresholds=thresholds,
    )
    assert found.flags == flags
    assert found.flagged == bool(flags)


def test_period_totals_counts_and_order():
    found = review_period(
        AUGUST,
        [
            invoice(AUGUST, rec("a", SEPTEMBER, "2"), agreement="customer:2", customer=2),
            invoice(AUGUST, rec("b", SEPTEMBER, "1", "700"), agreement="customer:3", customer=3),
        ],
        [
            invoice(JULY, rec("a", AUGUST), agreement="customer:2", customer=2),
            invoice(JULY, rec("c", AUGUST, "1", "30"), agreement="customer:1", customer=1),
        ],
    )
    assert [i.customer_id for i in found.invoices] == [1, 2, 3]  # by name, then id
    assert (found.total, found.previous_total, found.change) == (
        D("720.00"),
        D("40.00"),
        D("680.00"),
    )
    assert found.change_percent == D("1700.00")
    counts = found.counts()
    assert set(counts) == set(v.CHANGE_KINDS)
    assert (counts[v.NEW_AGREEMENT], counts[v.GONE_AGREEMENT], counts[v.QUANTITY_CHANGED]) == (
        1,
        1,
        1,
    )
    assert [i.customer_id for i in found.flagged] == [1, 2, 3]
