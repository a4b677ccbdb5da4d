"""The variance review: why each agreement's invoice for P differs from its invoice for P-1.

Pure: the period's invoices (drafts or final) and the previous period's, with their lines,
and the products' dates go in; one explanation per agreement comes out, line by line, with
the flags an operator must look at before approving (docs/operations.md, "Review and approve a period").

What explains a change (`kind`, one line of text each):

- `new_agreement` / `gone_agreement`: billed this period and not the last, or the reverse;
- `product_added` / `product_ended`: a product billed now and not last period, or the
  reverse (with its end date and why it ended, when known);
- `pro_rated_first` / `pro_rated_last`: a month billed for part of its days, because the
  product starts or ends inside it (docs/billing.md, "Amount of one (product, M) line");
- `caught_up`: months before the target month, billed now because the product was entered
  late (rule 2), with the months;
- `repaired`: repair lines (rule 6: kinds `credit` and `rebill`), with their months;
- `quantity_changed` / `price_changed`: the product's quantity or unit price since last
  period (its regular month's line on each invoice);
- `usage_changed`: the agreement's usage total against last period's;
- `held`: the invoice is held, with its reasons.

Flags (each with its reason): the total moved by more than `flag_change_percent` percent or
more than `flag_change_amount` (either; "more than" is strict), and a customer billed last
period that has no invoice at all this period. Where the previous total is zero or absent
there is no percentage, and only the amount can flag.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from datagate_pipelines.billing.money import round_half_away
from datagate_pipelines.billing.periods import add_months, days_in_month, period_label

NEW_AGREEMENT = "new_agreement"
GONE_AGREEMENT = "gone_agreement"
PRODUCT_ADDED = "product_added"
PRODUCT_ENDED = "product_ended"
PRO_RATED_FIRST = "pro_rated_first"
PRO_RATED_LAST = "pro_rated_last"
CAUGHT_UP = "caught_up"
REPAIRED = "repaired"
QUANTITY_CHANGED = "quantity_changed"
PRICE_CHANGED = "price_changed"
USAGE_CHANGED = "usage_changed"
HELD = "held"
CHANGE_KINDS = (
    NEW_AGREEMENT,
    GONE_AGREEMENT,
    PRODUCT_ADDED,
    PRODUCT_ENDED,
    PRO_RATED_FIRST,
    PRO_RATED_LAST,
    CAUGHT_UP,
    REPAIRED,
    QUANTITY_CHANGED,
    PRICE_CHANGED,
    USAGE_CHANGED,
    HELD,
)

#: Line kinds of the repair lines (docs/billing.md rule 6): a credit of what a final invoice
#: billed, and the re-bill of the month under the product's new dates.
REPAIR_LINE_KINDS = frozenset({"credit", "rebill"})
NOT_BILLED = "not billed"
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class ReviewLine:
    """One line of an invoice, as the review needs it."""

    kind: str  # recurring | usage | credit | rebill
    description: str
    amount: Decimal
    product_id: str | None = None
    service_month: date | None = None
    qty: Decimal | None = None
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class ReviewInvoice:
    """One invoice of a period (any status) with its lines."""

    invoice_key: str
    agreement_key: str
    customer_id: int
    customer_name: str
    status: str
    total: Decimal
    lines: tuple[ReviewLine, ...] = ()
    hold_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProductDates:
    start_date: date
    end_date: date | None = None
    ended_reason: str | None = None


@dataclass(frozen=True)
class Thresholds:
    """A change is flagged above either: percent of the previous total, or an amount."""

    percent: Decimal = Decimal("20")
    amount: Decimal = Decimal("500.00")


@dataclass(frozen=True)
class Change:
    kind: str
    text: str
    product_id: str | None = None


@dataclass
class InvoiceVariance:
    """One agreement's invoice for P against its invoice for P-1."""

    agreement_key: str
    customer_id: int
    customer_name: str
    invoice_key: str | None  # None: not billed this period
    previous_invoice_key: str | None
    status: str
    total: Decimal
    previous_total: Decimal | None
    hold_reasons: tuple[str, ...] = ()
    changes: list[Change] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def change(self) -> Decimal:
        return self.total - (self.previous_total or ZERO)

    @property
    def change_percent(self) -> Decimal | None:
        """The change as a percentage of the previous total, 2 places; None without one."""
        return percent_change(self.previous_total, self.total)

    @property
    def flagged(self) -> bool:
        return bool(self.flags)


@dataclass
class PeriodVariance:
    period: date
    invoices: list[InvoiceVariance]
    total: Decimal
    previous_total: Decimal

    @property
    def change(self) -> Decimal:
        return self.total - self.previous_total

    @property
    def change_percent(self) -> Decimal | None:
        return percent_change(self.previous_total, self.total)

    @property
    def flagged(self) -> list[InvoiceVariance]:
        return [invoice for invoice in self.invoices if invoice.flagged]

    def counts(self) -> dict[str, int]:
        """How many changes of each kind, every kind listed (zeros included)."""
        found = Counter(change.kind for invoice in self.invoices for change in invoice.changes)
        return {kind: found.get(kind, 0) for kind in CHANGE_KINDS}


def percent_change(previous: Decimal | None, current: Decimal) -> Decimal | None:
    if not previous:
        return None
    return round_half_away((current - previous) * 100 / abs(previous), 2)


def review_period(
    period: date,
    invoices: Iterable[ReviewInvoice],
    previous: Iterable[ReviewInvoice],
    *,
    products: Mapping[str, ProductDates] | None = None,
    in_advance_months: int = 1,
    thresholds: Thresholds = Thresholds(),
) -> PeriodVariance:
    """Explain every agreement's change from P-1 to P, and flag what needs a look."""
    products = products or {}
    current = {invoice.agreement_key: invoice for invoice in invoices}
    before = {invoice.agreement_key: invoice for invoice in previous}
    target = add_months(period, in_advance_months)
    billed_now = {invoice.customer_id for invoice in current.values()}
    variances = []
    for key in sorted(set(current) | set(before)):
        now, then = current.get(key), before.get(key)
        variance = _compare(now, then, target, products)
        variance.flags = _flags(variance, thresholds, billed_now)
        variances.append(variance)
    variances.sort(key=lambda v: (v.customer_name.casefold(), v.customer_id, v.agreement_key))
    return PeriodVariance(
        period,
        variances,
        sum((i.total for i in current.values()), ZERO),
        sum((i.total for i in before.values()), ZERO),
    )


def _compare(
    now: ReviewInvoice | None,
    then: ReviewInvoice | None,
    target: date,
    products: Mapping[str, ProductDates],
) -> InvoiceVariance:
    either = now or then
    assert either is not None
    variance = InvoiceVariance(
        agreement_key=either.agreement_key,
        customer_id=either.customer_id,
        customer_name=either.customer_name,
        invoice_key=now.invoice_key if now else None,
        previous_invoice_key=then.invoice_key if then else None,
        status=now.status if now else NOT_BILLED,
        total=now.total if now else ZERO,
        previous_total=then.total if then else None,
        hold_reasons=now.hold_reasons if now else (),
    )
    changes = variance.changes
    if now is None:
        assert then is not None
        changes.append(
            Change(GONE_AGREEMENT, f"not billed this period (last period: {_money(then.total)})")
        )
        return variance
    if then is None:
        changes.append(Change(NEW_AGREEMENT, "new agreement: its first invoice"))
    now_lines = _regular_lines(now.lines, target)
    then_lines = _regular_lines(then.lines, add_months(target, -1)) if then else {}
    then_products = {line.product_id for line in then.lines if line.product_id} if then else set()
    for product_id, line in now_lines.items():
        if then is not None and product_id not in then_products:
            changes.append(Change(PRODUCT_ADDED, f"added: {_describe(line)}", product_id))
        earlier = then_lines.get(product_id)
        if earlier is not None:
            changes.extend(_quantity_and_price(line, earlier))
    now_products = {line.product_id for line in now.lines if line.product_id}
    for product_id, line in then_lines.items():
        if product_id not in now_products:
            changes.append(
                Change(PRODUCT_ENDED, _ended(line, products.get(product_id)), product_id)
            )
    changes.extend(_pro_rated(now.lines, products))
    changes.extend(_caught_up(now.lines, target))
    changes.extend(_repaired(now.lines))
    usage = _usage_total(now.lines)
    usage_before = _usage_total(then.lines) if then else ZERO
    if usage != usage_before:
        changes.append(
            Change(
                USAGE_CHANGED,
                f"usage {_money(usage_before)} → {_money(usage)} ({_signed(usage - usage_before)})",
            )
        )
    if now.status == "held":
        changes.append(Change(HELD, "held: " + "; ".join(now.hold_reasons)))
    return variance


def _regular_lines(lines: Sequence[ReviewLine], month: date) -> dict[str, ReviewLine]:
    """Each product's line for `month` (its regular line on that invoice)."""
    return {
        line.product_id: line
        for line in lines
        if line.kind == "recurring" and line.product_id and line.service_month == month
    }


def _quantity_and_price(line: ReviewLine, earlier: ReviewLine) -> list[Change]:
    changes = []
    if line.qty != earlier.qty:
        changes.append(
            Change(
                QUANTITY_CHANGED,
                f"quantity {_number(earlier.qty)} → {_number(line.qty)}: {line.description}",
                line.product_id,
            )
        )
    if line.unit_price != earlier.unit_price:
        changes.append(
            Change(
                PRICE_CHANGED,
                f"unit price {_number(earlier.unit_price)} → {_number(line.unit_price)}: "
                f"{line.description}",
                line.product_id,
            )
        )
    return changes


def _ended(line: ReviewLine, dates: ProductDates | None) -> str:
    text = f"ended: {line.description}"
    if dates is not None and dates.end_date is not None:
        text += f" (end date {dates.end_date.isoformat()}"
        text += f", {dates.ended_reason})" if dates.ended_reason else ")"
    elif dates is None:
        text += " (no longer among the portal's products)"
    return text


def _pro_rated(lines: Sequence[ReviewLine], products: Mapping[str, ProductDates]) -> list[Change]:
    changes = []
    for line in lines:
        dates = products.get(line.product_id or "")
        if line.kind != "recurring" or dates is None or line.service_month is None:
            continue
        if not _is_partial(line):
            continue
        month, days = line.service_month, days_in_month(line.service_month)
        first = dates.start_date if _same_month(dates.start_date, month) else month
        last = (
            dates.end_date
            if dates.end_date and _same_month(dates.end_date, month)
            else month.replace(day=days)
        )
        active = (last - first).days + 1
        where = f"{period_label(month)}: {active}/{days} days, {_money(line.amount)}"
        if first.day > 1:
            changes.append(
                Change(
                    PRO_RATED_FIRST,
                    f"first month pro-rated, from {first.isoformat()}: {line.description} ({where})",
                    line.product_id,
                )
            )
        if last.day < days:
            changes.append(
                Change(
                    PRO_RATED_LAST,
                    f"last month pro-rated, to {last.isoformat()}: {line.description} ({where})",
                    line.product_id,
                )
            )
    return changes


def _is_partial(line: ReviewLine) -> bool:
    """Billed for part of its month: the amount is not qty × unit price (with pro rata off,
    a partial month bills in full and there is nothing to explain)."""
    if line.qty is None or line.unit_price is None:
        return False
    return line.amount != round_half_away(line.qty * line.unit_price)


def _caught_up(lines: Sequence[ReviewLine], target: date) -> list[Change]:
    late: dict[str, list[ReviewLine]] = {}
    for line in lines:
        late_month = line.service_month is not None and line.service_month < target
        if line.kind == "recurring" and line.product_id and late_month:
            late.setdefault(line.product_id, []).append(line)
    return [
        Change(
            CAUGHT_UP,
            f"caught up: {found[0].description}: "
            + ", ".join(period_label(line.service_month) for line in found)  # type: ignore[arg-type]
            + f" ({_money(sum((line.amount for line in found), ZERO))}, entered late)",
            product_id,
        )
        for product_id, found in late.items()
    ]


def _repaired(lines: Sequence[ReviewLine]) -> list[Change]:
    repairs: dict[tuple[str, date | None], list[ReviewLine]] = {}
    for line in lines:
        if line.kind in REPAIR_LINE_KINDS:
            repairs.setdefault(
                (line.product_id or line.description, line.service_month), []
            ).append(line)
    changes = []
    for (product_id, month), found in repairs.items():
        parts = ", ".join(f"{line.kind} {_money(line.amount)}" for line in found)
        when = period_label(month) if month else "a billed month"
        changes.append(
            Change(REPAIRED, f"repaired {when}: {found[0].description} ({parts})", product_id)
        )
    return changes


def _usage_total(lines: Sequence[ReviewLine]) -> Decimal:
    return sum((line.amount for line in lines if line.kind == "usage"), ZERO)


def _flags(variance: InvoiceVariance, thresholds: Thresholds, billed_now: set[int]) -> list[str]:
    flags = []
    if variance.invoice_key is None and variance.customer_id not in billed_now:
        flags.append(
            f"customer billed last period ({_money(variance.previous_total or ZERO)}) "
            "and not this period"
        )
        return flags
    change = variance.change
    if abs(change) > thresholds.amount:
        flags.append(f"total changed by {_signed(change)} (more than {_money(thresholds.amount)})")
    percent = variance.change_percent
    if percent is not None and abs(percent) > thresholds.percent:
        flags.append(
            f"total changed by {_signed(percent)}% (more than {_number(thresholds.percent)}%)"
        )
    return flags


def _same_month(day: date, month: date) -> bool:
    return (day.year, day.month) == (month.year, month.month)


def _describe(line: ReviewLine) -> str:
    if line.qty is None or line.unit_price is None:
        return f"{line.description} ({_money(line.amount)})"
    return f"{line.description} ({_number(line.qty)} × {_number(line.unit_price)})"


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _signed(value: Decimal) -> str:
    return f"{value:+.2f}"


def _number(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = format(value.normalize(), "f")
    return text
