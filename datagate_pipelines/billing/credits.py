"""Credit notes against a final invoice (docs/billing.md rule 7): which amounts they take.

Pure: the invoice's lines and what earlier credit notes took of each come in, the credit
note's lines go out. A credit takes, per line, an amount before tax and its tax:
- whole: everything that remains of every line;
- chosen lines: everything that remains of those lines;
- an amount X (net of tax): X spread over the lines with something left, pro rata to what
  is left of each, each share rounded to cents half away from zero and the remainder on the
  largest line; each share's tax by the usual rule (amount × the line's rate, rounded), so
  the note totals X plus its tax.
Never more than remains: of a line's amount, nor of its tax (a rounded share's tax is capped
at the tax left, so two halves never take a cent more than the line was taxed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from datagate_pipelines.billing.money import round_half_away

ZERO = Decimal("0.00")


class CreditError(ValueError):
    """A credit that cannot be given: more than remains, a line not on the invoice, a bad
    amount. The message names what (the caller adds the portal and invoice)."""


@dataclass(frozen=True)
class BilledLine:
    """A line of the credited invoice: its number, amount, tax and (summed) tax rate."""

    line_no: int
    amount: Decimal
    tax: Decimal
    tax_rate: Decimal | None


@dataclass(frozen=True)
class CreditedLine:
    """What a credit note takes of one line (positive amounts; the note negates them)."""

    line_no: int
    amount: Decimal
    tax: Decimal
    whole: bool  # all that was left of the line

    @property
    def total(self) -> Decimal:
        return self.amount + self.tax


@dataclass(frozen=True)
class Remaining:
    amount: Decimal
    tax: Decimal


def remaining(
    lines: Sequence[BilledLine], credited: Mapping[int, tuple[Decimal, Decimal]]
) -> dict[int, Remaining]:
    """Per line number, what earlier credit notes (`credited`: line → (amount, tax) taken,
    positive) left of it."""
    out = {}
    for line in lines:
        amount, tax = credited.get(line.line_no, (ZERO, ZERO))
        out[line.line_no] = Remaining(line.amount - amount, line.tax - tax)
    return out


def credit_lines(
    lines: Sequence[BilledLine],
    credited: Mapping[int, tuple[Decimal, Decimal]],
    *,
    line_nos: Sequence[int] = (),
    amount: Decimal | None = None,
) -> list[CreditedLine]:
    """The credit note's lines: whole (no `line_nos`, no `amount`), chosen lines, or an
    amount net of tax over all lines or over the chosen ones. Raises `CreditError`."""
    left = remaining(lines, credited)
    by_no = {line.line_no: line for line in lines}
    unknown = sorted(set(line_nos) - set(by_no))
    if unknown:
        raise CreditError(
            f"line {', '.join(map(str, unknown))} is not on the invoice "
            f"(its lines are {', '.join(map(str, sorted(by_no)))})"
        )
    chosen = sorted(set(line_nos)) if line_nos else sorted(by_no)
    # Discount lines (negative) are credited back too when the whole is: the note then
    # takes exactly the invoice's total.
    open_lines = [n for n in chosen if left[n].amount != 0 or left[n].tax != 0]
    if amount is None:
        if not open_lines:
            raise CreditError("nothing remains uncredited" + _of_lines(line_nos))
        taken = [CreditedLine(n, left[n].amount, left[n].tax, whole=True) for n in open_lines]
        total = sum((c.total for c in taken), ZERO)
        if total <= 0:
            # Crediting a discount (or a whole that nets to nothing) would charge the customer.
            raise CreditError(
                f"crediting {_of_lines(line_nos).removeprefix(' of ') or 'it'} would add "
                f"{-total} to what the "
                "customer owes: a credit note only takes money off"
            )
        return taken
    if amount <= 0:
        raise CreditError(f"the amount must be more than 0, got {amount}")
    if amount != round_half_away(amount):
        raise CreditError(f"the amount {amount} has more decimals than cents")
    available = sum((left[n].amount for n in open_lines if left[n].amount > 0), ZERO)
    if amount > available:
        raise CreditError(
            f"{amount} is more than remains uncredited before tax ({available}"
            f"{_of_lines(line_nos)})"
        )
    weighted = [n for n in open_lines if left[n].amount > 0]
    largest = max(weighted, key=lambda n: (left[n].amount, -n))
    shares = {
        n: round_half_away(amount * left[n].amount / available) for n in weighted if n != largest
    }
    shares[largest] = amount - sum(shares.values(), ZERO)
    out = []
    for n in weighted:
        share = shares[n]
        if share < 0 or share > left[n].amount:  # rounding cannot push a share past its line
            raise CreditError(f"cannot spread {amount} over the lines exactly (line {n})")
        if share == 0:
            continue
        whole = share == left[n].amount
        tax = left[n].tax if whole else min(_tax(by_no[n], share), left[n].tax)
        out.append(CreditedLine(n, share, tax, whole=whole))
    return out


def _tax(line: BilledLine, share: Decimal) -> Decimal:
    """A share's tax by the usual rule: amount × rate, rounded half away from zero. A line
    stored without its rate is taxed in proportion to what it was billed."""
    if line.tax_rate is not None:
        return round_half_away(share * line.tax_rate)
    if line.tax == 0 or line.amount == 0:
        return ZERO
    return round_half_away(line.tax * share / line.amount)


def _of_lines(line_nos: Sequence[int]) -> str:
    if not line_nos:
        return ""
    return f" of line {', '.join(map(str, sorted(set(line_nos))))}"
