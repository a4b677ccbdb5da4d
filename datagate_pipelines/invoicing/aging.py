"""The accounts-receivable aging report (dbt_like_sql/ar_aging.sql) as operators read it: a
Markdown table of the customers owing most, and a bar chart of the buckets (SVG)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from html import escape

from sqlalchemy import Connection, text

from datagate_pipelines.billing.money import from_minor_units

#: The model's bucket columns, with their headings.
BUCKETS = (
    ("current_minor", "current"),
    ("days_1_30_minor", "1–30"),
    ("days_31_60_minor", "31–60"),
    ("days_61_90_minor", "61–90"),
    ("over_90_minor", "90+"),
)


@dataclass(frozen=True)
class CustomerAging:
    portal_id: str
    customer_id: int
    customer_name: str
    open_invoices: int
    buckets: tuple[Decimal, ...]
    total: Decimal


@dataclass
class AgingReport:
    customers: list[CustomerAging] = field(default_factory=list)

    @property
    def totals(self) -> tuple[Decimal, ...]:
        return tuple(
            sum((c.buckets[i] for c in self.customers), Decimal("0.00"))
            for i in range(len(BUCKETS))
        )

    @property
    def total(self) -> Decimal:
        return sum(self.totals, Decimal("0.00"))


def read_aging(connection: Connection, view: str = "ar_aging") -> AgingReport:
    """Every row of the built model, customers owing most first."""
    columns = ", ".join(name for name, _ in BUCKETS)
    rows = connection.execute(
        text(
            f"SELECT portal_id, customer_id, customer_name, open_invoices, {columns}, "
            f"total_minor FROM {view} ORDER BY total_minor DESC, portal_id, customer_id"
        )
    ).all()
    return AgingReport(
        [
            CustomerAging(
                row.portal_id,
                int(row.customer_id),
                row.customer_name,
                int(row.open_invoices),
                tuple(from_minor_units(int(getattr(row, name))) for name, _ in BUCKETS),
                from_minor_units(int(row.total_minor)),
            )
            for row in rows
        ]
    )


def markdown_table(report: AgingReport, *, limit: int = 25) -> str:
    """The customers owing most (at most `limit`), then the total over all of them."""
    headings = ["portal", "customer", "invoices", *(h for _, h in BUCKETS), "total"]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * 3 + "---:|" * (len(BUCKETS) + 1)]
    for c in report.customers[:limit]:
        name = c.customer_name.replace("|", "/")
        money = " | ".join(f"{v:,.2f}" for v in (*c.buckets, c.total))
        lines.append(f"| {c.portal_id} | {name} | {c.open_invoices} | {money} |")
    hidden = len(report.customers) - limit
    label = f"all {len(report.customers)} customers" + (
        f" ({hidden} not shown)" if hidden > 0 else ""
    )
    invoices = sum(c.open_invoices for c in report.customers)
    money = " | ".join(f"**{v:,.2f}**" for v in (*report.totals, report.total))
    lines.append(f"| | **{label}** | {invoices} | {money} |")
    return "\n".join(lines)


def svg_chart(report: AgingReport, *, width: int = 480, height: int = 220) -> str:
    """A bar per bucket of the amount owed, labelled; plain SVG, no plotting library."""
    totals = report.totals
    top = max(totals) if any(totals) else Decimal(1)
    margin, label_space = 10, 40
    slot = (width - 2 * margin) / len(BUCKETS)
    plot = height - 2 * label_space
    colours = ("#4c9a2a", "#f2c12e", "#f28e2b", "#e15759", "#9c2a2a")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">'
    ]
    for i, ((_, heading), amount) in enumerate(zip(BUCKETS, totals, strict=True)):
        bar = float(amount / top) * plot
        x = margin + i * slot + slot * 0.15
        y = label_space + plot - bar
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar:.1f}" '
            f'fill="{colours[i]}"/>'
        )
        middle = x + slot * 0.35
        parts.append(
            f'<text x="{middle:.1f}" y="{y - 4:.1f}" text-anchor="middle">{amount:,.0f}</text>'
        )
        parts.append(
            f'<text x="{middle:.1f}" y="{height - label_space / 2:.1f}" text-anchor="middle">'
            f"{escape(heading)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
