"""The finalized invoices of a period as export documents: header, lines, site groups.

What both targets need, read once from the warehouse: each line's HaloPSA item, site name
and service date, and how a line is priced on the way out (`priced`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from sqlalchemy import Connection, and_, func, select

from datagate_pipelines.billing.periods import period_label
from datagate_pipelines.warehouse.models import (
    contracts,
    customers,
    invoice_lines,
    invoices,
    item_groups,
    items,
    product_templates,
    products,
    sites,
    usage_charges,
)

NONTAXABLE = "NONTAXABLE"


@dataclass(frozen=True)
class DocumentLine:
    """One invoice line, with what the exports need beside the billed amounts."""

    line_no: int
    kind: str  # recurring | usage | credit | rebill (repair lines, docs/billing.md rule 6)
    description: str
    service_month: date | None
    service_date: date | None  # the service month's first day, or the usage date
    site_id: int | None
    site_name: str | None
    item_id: int | None  # HaloPSA item; None for usage lines
    qty: Decimal | None
    unit_price: Decimal | None
    amount: Decimal
    tax_code: str | None
    tax: Decimal
    tax_zip: str | None = None  # where the line was taxed, and at what (summed) rate
    tax_rate: Decimal | None = None


@dataclass(frozen=True)
class Priced:
    """A line as sent: `qty × unit_price == amount` holds exactly, as QBO requires."""

    qty: Decimal
    unit_price: Decimal
    description: str
    pro_rata: bool


@dataclass(frozen=True)
class SiteGroup:
    site_id: int | None
    name: str | None
    lines: tuple[DocumentLine, ...]

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))


@dataclass(frozen=True)
class InvoiceDocument:
    """A final invoice as exported: numbered, dated, with its lines in billing order."""

    id: int
    portal_id: str
    period: date
    invoice_key: str
    customer_id: int
    customer_name: str
    customer_site_id: int | None  # the customer's main site
    agreement_key: str
    halo_contract_id: int | None
    contract_site_id: int | None
    doc_number: str
    invoice_date: date
    due_date: date
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    lines: tuple[DocumentLine, ...]
    #: A credit note's credited invoice (our id): linked to it in HaloPSA, applied to it in
    #: QBO while it is open (docs/billing.md rule 7).
    credit_of: int | None = None

    @property
    def is_credit(self) -> bool:
        """A negative total is a credit: exported as a credit memo / credit note, with the
        lines' signs flipped (docs/billing.md, Agreements and invoices). Zero is an invoice."""
        return self.total < 0

    @property
    def sign(self) -> int:
        """How amounts go out: as billed (1), or flipped on a credit (-1)."""
        return -1 if self.is_credit else 1

    @property
    def key(self) -> str:
        """What names the invoice in export outcomes: its invoice key."""
        return self.invoice_key

    @property
    def label(self) -> str:
        """`invoice 1001 (2026-07:customer:1, Bayside Dental)` — for messages."""
        kind = "credit" if self.is_credit else "invoice"
        return f"{kind} {self.doc_number} ({self.invoice_key}, {self.customer_name})"

    @property
    def header_site_id(self) -> int | None:
        """The site on the invoice header: the contract's site, else the customer's main one."""
        return self.contract_site_id or self.customer_site_id

    def site_groups(self) -> list[SiteGroup]:
        """Lines grouped by site, in order of first appearance; lines with no site form
        their own group (docs/billing.md, Agreements)."""
        order: list[int | None] = []
        grouped: dict[int | None, list[DocumentLine]] = {}
        for line in self.lines:
            if line.site_id not in grouped:
                order.append(line.site_id)
                grouped[line.site_id] = []
            grouped[line.site_id].append(line)
        return [SiteGroup(site, grouped[site][0].site_name, tuple(grouped[site])) for site in order]


def number_text(value: Decimal) -> str:
    """A quantity or price without trailing zeros and never in exponent form: 10, 24.95."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class PricedLine(Protocol):
    """What `priced` reads: an invoice line, or a purchase-order line (its unit cost as
    `unit_price`)."""

    @property
    def description(self) -> str: ...

    @property
    def service_month(self) -> date | None: ...

    @property
    def qty(self) -> Decimal | None: ...

    @property
    def unit_price(self) -> Decimal | None: ...

    @property
    def amount(self) -> Decimal: ...


def priced(line: PricedLine) -> Priced:
    """How a line is sent: its own qty and unit price when they give its amount exactly;
    otherwise (pro rata, or a price with more decimals than cents) qty 1 at the amount, with
    the real qty × price and the service month in the description, so the amount is never
    recomputed into something we did not bill."""
    if (
        line.qty is not None
        and line.unit_price is not None
        and line.qty * line.unit_price == line.amount
    ):
        return Priced(line.qty, line.unit_price, line.description, pro_rata=False)
    if line.qty is None or line.unit_price is None:  # usage: an amount as given
        return Priced(Decimal(1), line.amount, line.description, pro_rata=False)
    if line.qty * line.unit_price == -line.amount:  # a repair's credit of a whole month
        return Priced(line.qty, -line.unit_price, line.description, pro_rata=False)
    month = f", service month {period_label(line.service_month)}" if line.service_month else ""
    note = f"{number_text(line.qty)} × {number_text(line.unit_price)}{month}, pro rata"
    return Priced(Decimal(1), line.amount, f"{line.description} ({note})", pro_rata=True)


def load_final_invoices(
    connection: Connection,
    portal_id: str,
    period: date,
    *,
    invoice_ids: list[int] | None = None,
) -> list[InvoiceDocument]:
    """The period's final invoices (all, or those in `invoice_ids`), in number order."""
    where = [
        invoices.c.portal_id == portal_id,
        invoices.c.period == period,
        invoices.c.status == "final",
    ]
    if invoice_ids is not None:
        where.append(invoices.c.id.in_(invoice_ids))
    headers = connection.execute(
        select(
            invoices,
            customers.c.main_site_id.label("customer_site_id"),
            contracts.c.site_id.label("contract_site_id"),
        )
        .select_from(
            invoices.outerjoin(
                customers,
                and_(
                    customers.c.portal_id == invoices.c.portal_id,
                    customers.c.halo_client_id == invoices.c.customer_id,
                ),
            ).outerjoin(
                contracts,
                and_(
                    contracts.c.portal_id == invoices.c.portal_id,
                    contracts.c.halo_id == invoices.c.halo_contract_id,
                ),
            )
        )
        .where(*where)
        .order_by(invoices.c.number)
    ).all()
    if not headers:
        return []
    lines_by_invoice = _lines(connection, portal_id, [h.id for h in headers])
    return [
        InvoiceDocument(
            id=h.id,
            portal_id=portal_id,
            period=h.period,
            invoice_key=h.invoice_key,
            customer_id=h.customer_id,
            customer_name=h.customer_name,
            customer_site_id=h.customer_site_id,
            agreement_key=h.agreement_key,
            halo_contract_id=h.halo_contract_id,
            contract_site_id=h.contract_site_id,
            doc_number=h.doc_number,
            invoice_date=h.invoice_date,
            due_date=h.due_date,
            subtotal=h.subtotal,
            tax=h.tax,
            total=h.total,
            lines=tuple(lines_by_invoice.get(h.id, ())),
            credit_of=h.credit_of,
        )
        for h in headers
    ]


def repair_description(kind: str, description: str, corrects: str | None) -> str:
    """A repair line says what it corrects (rule 6): "Hosted PBX seat — credit, invoice
    1002" / "… — billed again, corrects invoice 1002"; other lines keep theirs."""
    if kind == "credit":
        return f"{description} — credit, invoice {corrects}"
    if kind == "rebill":
        return f"{description} — billed again, corrects invoice {corrects}"
    return description


def _lines(
    connection: Connection, portal_id: str, invoice_ids: list[int]
) -> dict[int, list[DocumentLine]]:
    out: dict[int, list[DocumentLine]] = {}
    # Chunked: SQLite caps the bound parameters of one statement.
    for start in range(0, len(invoice_ids), 500):
        chunk = invoice_ids[start : start + 500]
        rows = connection.execute(
            select(
                invoice_lines,
                products.c.item_id,
                sites.c.name.label("site_name"),
                usage_charges.c.usage_date,
            )
            .select_from(
                invoice_lines.outerjoin(
                    products,
                    and_(
                        products.c.portal_id == portal_id,
                        products.c.product_id == invoice_lines.c.product_id,
                    ),
                )
                .outerjoin(
                    sites,
                    and_(
                        sites.c.portal_id == portal_id,
                        sites.c.halo_site_id == invoice_lines.c.site_id,
                    ),
                )
                .outerjoin(
                    usage_charges,
                    and_(
                        usage_charges.c.portal_id == portal_id,
                        usage_charges.c.usage_id == invoice_lines.c.usage_id,
                    ),
                )
            )
            .where(invoice_lines.c.invoice_id.in_(chunk))
            .order_by(invoice_lines.c.invoice_id, invoice_lines.c.line_no)
        ).all()
        for r in rows:
            out.setdefault(r.invoice_id, []).append(
                DocumentLine(
                    line_no=r.line_no,
                    kind=r.kind,
                    description=repair_description(r.kind, r.description, r.corrects_invoice),
                    service_month=r.service_month,
                    service_date=r.service_month or r.usage_date,
                    site_id=r.site_id,
                    site_name=r.site_name,
                    item_id=r.item_id,
                    qty=r.qty,
                    unit_price=r.unit_price,
                    amount=r.amount,
                    tax_code=r.tax_code,
                    tax=r.tax,
                    tax_zip=r.tax_zip,
                    tax_rate=r.tax_rate,
                )
            )
    return out


@dataclass(frozen=True)
class ItemInfo:
    """A HaloPSA item as the QBO export sees it: its name, group, template account, and its
    nominal (GL) codes for sales and purchases (the item's own, else its group's)."""

    item_id: int
    name: str
    group_id: int | None
    group_name: str | None
    template_income_account: str | None
    nominal_code: str | None = None
    purchase_nominal_code: str | None = None


def load_items(connection: Connection, portal_id: str, item_ids: list[int]) -> dict[int, ItemInfo]:
    """The HaloPSA items `item_ids`, with their asset group and product-template account."""
    out: dict[int, ItemInfo] = {}
    for start in range(0, len(item_ids), 500):
        chunk = item_ids[start : start + 500]
        rows = connection.execute(
            select(
                items.c.halo_id,
                items.c.name,
                items.c.item_group_id,
                items.c.nominal_code,
                items.c.purchase_nominal_code,
                item_groups.c.name.label("group_name"),
                item_groups.c.nominal_code.label("group_nominal_code"),
                item_groups.c.purchase_nominal_code.label("group_purchase_nominal_code"),
                product_templates.c.income_account,
                product_templates.c.item_name,
            )
            .select_from(
                items.outerjoin(
                    item_groups,
                    and_(
                        item_groups.c.portal_id == items.c.portal_id,
                        item_groups.c.halo_id == items.c.item_group_id,
                    ),
                ).outerjoin(
                    product_templates,
                    and_(
                        product_templates.c.portal_id == items.c.portal_id,
                        product_templates.c.item_id == items.c.halo_id,
                    ),
                )
            )
            .where(items.c.portal_id == portal_id, items.c.halo_id.in_(chunk))
        ).all()
        for r in rows:
            out[r.halo_id] = ItemInfo(
                item_id=r.halo_id,
                name=r.name or r.item_name or f"Item {r.halo_id}",
                group_id=r.item_group_id,
                group_name=r.group_name,
                template_income_account=r.income_account or None,
                nominal_code=r.nominal_code or r.group_nominal_code or None,
                purchase_nominal_code=(
                    r.purchase_nominal_code or r.group_purchase_nominal_code or None
                ),
            )
    # Templates may name items the mirror does not have (yet): still exportable by name.
    missing = [i for i in item_ids if i not in out]
    if missing:
        for r in connection.execute(
            select(product_templates).where(
                product_templates.c.portal_id == portal_id,
                product_templates.c.item_id.in_(missing),
            )
        ):
            out[r.item_id] = ItemInfo(
                r.item_id, r.item_name or f"Item {r.item_id}", None, None, r.income_account or None
            )
    return out


def not_exportable(connection: Connection, portal_id: str, period: date) -> dict[str, int]:
    """How many of the period's invoices are held or draft (never exported)."""
    rows = connection.execute(
        select(invoices.c.status, func.count())
        .where(
            invoices.c.portal_id == portal_id,
            invoices.c.period == period,
            invoices.c.status.in_(("held", "draft")),
        )
        .group_by(invoices.c.status)
    ).all()
    counts = dict(rows)
    return {"held": counts.get("held", 0), "draft": counts.get("draft", 0)}
