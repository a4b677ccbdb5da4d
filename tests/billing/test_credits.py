"""Credit notes' amounts (docs/billing.md rule 7): whole, chosen lines, or an amount net of
tax spread pro rata, exact to the cent, never more than remains."""

from decimal import Decimal as D

import pytest

from datagate_pipelines.billing.credits import BilledLine, CreditError, credit_lines

# The worked example's July invoice: PBX, SIP trunk, router, fax line, usage.
LINES = [
    BilledLine(1, D("249.50"), D("18.09"), D("0.0725")),
    BilledLine(2, D("79.98"), D("6.40"), D("0.08")),
    BilledLine(3, D("5.81"), D("0.00"), D("0")),
    BilledLine(4, D("3.22"), D("0.23"), D("0.0725")),
    BilledLine(5, D("12.34"), D("0.89"), D("0.0725")),
]


def taken(result):
    return {c.line_no: (c.amount, c.tax) for c in result}


def test_whole_takes_every_line_and_its_tax_exactly():
    result = credit_lines(LINES, {})
    assert sum(c.amount for c in result) == D("350.85")
    assert sum(c.tax for c in result) == D("25.61")
    assert all(c.whole for c in result)


def test_chosen_lines_take_only_those():
    assert taken(credit_lines(LINES, {}, line_nos=[2, 4])) == {
        2: (D("79.98"), D("6.40")),
        4: (D("3.22"), D("0.23")),
    }


def test_an_amount_is_spread_pro_rata_with_the_remainder_on_the_largest_line():
    result = taken(credit_lines(LINES, {}, amount=D("100.00")))
    # 100 × line / 350.85, rounded half away; the PBX line takes what is left.
    assert result[2] == (D("22.80"), D("1.82"))
    assert result[3] == (D("1.66"), D("0.00"))
    assert result[4] == (D("0.92"), D("0.07"))
    assert result[5] == (D("3.52"), D("0.26"))
    assert result[1] == (D("71.10"), D("5.15"))
    assert sum(a for a, _t in result.values()) == D("100.00")


def test_what_earlier_notes_took_is_not_taken_again():
    first = taken(credit_lines(LINES, {}, amount=D("300.00")))
    rest = credit_lines(LINES, first)
    for line in LINES:
        amount, tax = first[line.line_no]
        again = {c.line_no: c for c in rest}[line.line_no]
        assert amount + again.amount == line.amount
        assert tax + again.tax == line.tax  # never a cent of tax more than billed
    both = {n: (a + b, t + u) for n, ((a, t), (b, u)) in _zip(first, taken(rest)).items()}
    with pytest.raises(CreditError, match="nothing remains"):
        credit_lines(LINES, both)


def _zip(a, b):
    return {n: (a[n], b[n]) for n in a}


def test_two_halves_never_take_more_tax_than_the_line_had():
    line = [BilledLine(1, D("100.00"), D("7.25"), D("0.0725"))]
    first = taken(credit_lines(line, {}, amount=D("50.00")))
    assert first == {1: (D("50.00"), D("3.63"))}
    second = taken(credit_lines(line, first, amount=D("50.00")))
    assert second == {1: (D("50.00"), D("3.62"))}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"amount": D("350.86")}, "more than remains"),
        ({"amount": D("0")}, "more than 0"),
        ({"amount": D("-5")}, "more than 0"),
        ({"amount": D("1.005")}, "more decimals than cents"),
        ({"line_nos": [9]}, "line 9 is not on the invoice"),
        ({"line_nos": [3], "amount": D("5.82")}, "more than remains"),
        ({"line_nos": [6]}, "crediting line 6 would add 5.00 to what the customer owes"),
    ],
)
def test_refusals(options, message):
    discount = BilledLine(6, D("-5.00"), D("0.00"), D("0"))
    with pytest.raises(CreditError, match=message):
        credit_lines([*LINES, discount], {}, **options)
