"""A row-by-row reference implementation of docs/billing.md, written to be obviously correct.

It shares no code with the engine: plain loops, `Decimal` in a 100-digit context, the
`calendar` module and dictionaries. Where docs/billing.md is silent it follows the choices the
engine documents (rejects, hold reasons and their wording, zero-quantity lines, line
order). Tests compare the engine against it invoice by invoice, line by line, to the cent.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pandas as pd

CENT = Decimal("0.01")


def is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and value != value:
        return True
    return isinstance(value, Decimal) and value.is_nan()


def plain_int(value):
    return None if is_missing(value) else int(value)


def as_day(value):
    """date for a date-like value, None when missing, "bad" when not a date."""
    if is_missing(value):
        return None
    if isinstance(value, datetime):  # also pandas Timestamp
        return value.date()
    if isinstance(value, date):
        return value
    return "bad"


def first_of_month(day: date) -> date:
    return date(day.year, day.month, 1)


def next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def plus_months(day: date, months: int) -> date:
    day = first_of_month(day)
    for _ in range(months):
        day = next_month(day)
    return day


def clean_zip(raw):
    if is_missing(raw):
        return None
    text = str(raw).strip()
    if text == "":
        return None
    if re.fullmatch(r"\d{5}-\d{4}", text):
        return text[:5]
    return text.upper()


def clean_code(raw):
    if is_missing(raw):
        return None
    text = str(raw).strip()
    return text if text else None


def round_cents(value: Decimal) -> Decimal:
    with localcontext() as context:
        context.prec = 100
        return value.quantize(CENT, rounding=ROUND_HALF_UP)


def places_ok(value, places: int) -> bool:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        return False
    value = Decimal(value)
    if not value.is_finite():
        return False
    with localcontext() as context:
        context.prec = 100
        scaled = value * (Decimal(10) ** places)
        return scaled == scaled.to_integral_value()


@dataclass
class OracleResult:
    invoices: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    site_subtotals: list[dict] = field(default_factory=list)
    ledger: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)


def records(frame):
    if frame is None or len(frame) == 0:
        return []
    return frame.to_dict("records")


def oracle_bill(
    period,
    settings,
    *,
    products,
    customers,
    sites=None,
    contracts=None,
    ledger=None,
    usage=None,
    tax_rates=None,
) -> OracleResult:
    if period.day != 1:
        raise ValueError("period must be a first of month")
    start_of_billing = first_of_month(settings.billing_start)
    if period < start_of_billing:
        raise ValueError("period before billing start")
    advance = settings.in_advance_months
    target = plus_months(period, advance)
    first_service = plus_months(start_of_billing, advance)
    label = f"{period.year:04d}-{period.month:02d}"

    customer_by_id = {}  # billed customers
    every_customer = {}  # and those no longer billed (only repair lines bill them)
    for row in records(customers):
        flag = row["use_site_zip_tax"]
        every_customer[int(row["customer_id"])] = {
            "name": "" if is_missing(row["name"]) else str(row["name"]),
            "zip": clean_zip(row["zip"]),
            "site_zip": False if is_missing(flag) else bool(flag),
        }
        billed = row.get("billed", True)
        if not is_missing(billed) and billed:
            customer_by_id[int(row["customer_id"])] = every_customer[int(row["customer_id"])]
    site_by_id = {}
    for row in records(sites):
        site_by_id[int(row["site_id"])] = {
            "customer": plain_int(row["customer_id"]),
            "zip": clean_zip(row["zip"]),
        }
    contract_owner = {}
    lowest_contract = {}
    for row in records(contracts):
        contract, customer = int(row["contract_id"]), int(row["customer_id"])
        contract_owner[contract] = customer
        if customer not in lowest_contract or contract < lowest_contract[customer]:
            lowest_contract[customer] = contract

    result = OracleResult()
    tax_rejects = []
    rates: dict[tuple, Decimal] = {}
    broken: set[tuple] = set()
    for number, row in enumerate(records(tax_rates), start=1):
        zip_code, code = clean_zip(row["zip"]), clean_code(row["tax_code"])
        if zip_code is None or code is None:
            missing = "zip" if zip_code is None else "tax code"
            tax_rejects.append(
                {
                    "entity": "tax_rate",
                    "record_id": f"row {number}",
                    "field": "zip" if zip_code is None else "tax_code",
                    "reason": f"tax rate row for jurisdiction {row.get('jurisdiction')!r}"
                    f" has no {missing}",
                }
            )
            continue
        rate = row["rate"]
        if (
            isinstance(rate, bool)
            or not isinstance(rate, Decimal | int)
            or not Decimal(rate).is_finite()
            or rate < 0
        ):
            broken.add((zip_code, code))
            continue
        rates[(zip_code, code)] = rates.get((zip_code, code), Decimal(0)) + Decimal(rate)

    already_billed = set()
    for row in records(ledger):
        if first_of_month(as_day(row["period"])) == period and not row.get("final"):
            continue
        already_billed.add((str(row["product_id"]), first_of_month(as_day(row["service_month"]))))

    def agreement_of(customer, contract):
        if settings.use_default_agreement:
            return ("default", customer, 0)
        if contract is None:
            return ("no-contract", customer, 0)
        return ("contract", customer, contract)

    lines = []  # each line: dict with agreement, sort data, fields

    # Products.
    product_rows = records(products)
    id_counts = Counter(
        str(row["product_id"]) for row in product_rows if not is_missing(row["product_id"])
    )
    for row in product_rows:
        problems = []
        raw_id = row["product_id"]
        product_id = None if is_missing(raw_id) else str(raw_id)
        if product_id is None:
            problems.append(("product_id", "missing product id"))
        elif id_counts[product_id] > 1:
            problems.append(
                ("product_id", f"product id {product_id} appears {id_counts[product_id]} times")
            )
        customer = plain_int(row["customer_id"])
        if customer not in customer_by_id:
            problems.append(
                (
                    "customer_id",
                    f"customer {row['customer_id']} is not billed"
                    " (not opted in, inactive or unknown)",
                )
            )
        site = plain_int(row["site_id"])
        if customer is not None and site in site_by_id and site_by_id[site]["customer"] != customer:
            problems.append(
                (
                    "site_id",
                    f"site {site} belongs to customer {site_by_id[site]['customer']},"
                    f" not customer {customer}",
                )
            )
        contract = plain_int(row["contract_id"])
        if (
            not settings.use_default_agreement
            and contract is not None
            and customer is not None
            and contract_owner.get(contract) != customer
        ):
            problems.append(
                (
                    "contract_id",
                    f"contract {contract} is not an imported contract of customer {customer}",
                )
            )
        cycle = row["billing_cycle"]
        if not (isinstance(cycle, str) and cycle.strip().lower() == "monthly"):
            problems.append(("billing_cycle", f"unsupported billing cycle {cycle!r}"))
        if not places_ok(row["qty"], 4):
            problems.append(
                ("qty", f"quantity {row['qty']!r} is not a Decimal with at most 4 decimal places")
            )
        if not places_ok(row["unit_price"], 4):
            problems.append(
                (
                    "unit_price",
                    f"unit price {row['unit_price']!r} is not a Decimal"
                    " with at most 4 decimal places",
                )
            )
        start, end = as_day(row["start_date"]), as_day(row["end_date"])
        if start is None:
            problems.append(("start_date", "missing start date"))
        elif start == "bad":
            problems.append(("start_date", f"start date {row['start_date']!r} is not a date"))
        if end == "bad":
            problems.append(("end_date", f"end date {row['end_date']!r} is not a date"))
        if isinstance(start, date) and isinstance(end, date) and start > end:
            problems.append(("start_date", f"start date {start} is after end date {end}"))
        if problems:
            for field_name, reason in problems:
                result.rejects.append(
                    {
                        "entity": "product",
                        "record_id": "" if product_id is None else product_id,
                        "field": field_name,
                        "reason": reason,
                    }
                )
            continue

        month = max(first_service, first_of_month(start))
        last = target if end is None else min(target, first_of_month(end))
        while month <= last:
            if (product_id, month) not in already_billed:
                days = calendar.monthrange(month.year, month.month)[1]
                active = 0
                for day_number in range(1, days + 1):
                    day = date(month.year, month.month, day_number)
                    if start <= day and (end is None or day <= end):
                        active += 1
                with localcontext() as context:
                    context.prec = 100
                    if settings.allow_pro_rata:
                        exact = row["qty"] * row["unit_price"] * active / days
                    else:
                        exact = row["qty"] * row["unit_price"]
                lines.append(
                    {
                        "agreement": agreement_of(customer, contract),
                        "customer": customer,
                        "corrects_invoice": None,
                        "kind": "recurring",
                        "sort": (product_id, month),
                        "product_id": product_id,
                        "usage_id": None,
                        "description": "" if is_missing(row["description"]) else row["description"],
                        "service_month": month,
                        "site_id": site,
                        "qty": row["qty"],
                        "unit_price": row["unit_price"],
                        "amount": round_cents(exact),
                        "tax_code": clean_code(row["tax_code"]),
                    }
                )
            month = next_month(month)

    # Usage.
    usage_rows = records(usage)
    usage_counts = Counter(
        str(row["usage_id"]) for row in usage_rows if not is_missing(row["usage_id"])
    )
    for row in usage_rows:
        problems = []
        usage_id = None if is_missing(row["usage_id"]) else str(row["usage_id"])
        if usage_id is None:
            problems.append(("usage_id", "missing usage id"))
        elif usage_counts[usage_id] > 1:
            problems.append(
                ("usage_id", f"usage id {usage_id} appears {usage_counts[usage_id]} times")
            )
        customer = plain_int(row["customer_id"])
        if customer not in customer_by_id:
            problems.append(
                (
                    "customer_id",
                    f"customer {row['customer_id']} is not billed"
                    " (not opted in, inactive or unknown)",
                )
            )
        site = plain_int(row["site_id"])
        if customer is not None and site in site_by_id and site_by_id[site]["customer"] != customer:
            problems.append(
                (
                    "site_id",
                    f"site {site} belongs to customer {site_by_id[site]['customer']},"
                    f" not customer {customer}",
                )
            )
        contract = plain_int(row.get("contract_id"))
        if (
            not settings.use_default_agreement
            and contract is not None
            and customer is not None
            and contract_owner.get(contract) != customer
        ):
            problems.append(
                (
                    "contract_id",
                    f"contract {contract} is not an imported contract of customer {customer}",
                )
            )
        amount = row["amount"]
        if (
            isinstance(amount, bool)
            or not isinstance(amount, Decimal | int)
            or not Decimal(amount).is_finite()
        ):
            problems.append(("amount", f"amount {amount!r} is not a Decimal"))
        day = as_day(row["usage_date"])
        if day is None:
            problems.append(("usage_date", "missing usage date"))
        elif day == "bad":
            problems.append(("usage_date", f"usage date {row['usage_date']!r} is not a date"))
        elif first_of_month(day) != period:
            problems.append(
                ("usage_date", f"usage date {day} is outside the billing period {label}")
            )
        if problems:
            for field_name, reason in problems:
                result.rejects.append(
                    {
                        "entity": "usage",
                        "record_id": "" if usage_id is None else usage_id,
                        "field": field_name,
                        "reason": reason,
                    }
                )
            continue
        lines.append(
            {
                "agreement": agreement_of(customer, contract),
                "customer": customer,
                "corrects_invoice": None,
                "kind": "usage",
                "sort": (day, usage_id),
                "product_id": None,
                "usage_id": usage_id,
                "description": "" if is_missing(row["description"]) else row["description"],
                "service_month": None,
                "site_id": site,
                "qty": None,
                "unit_price": None,
                "amount": round_cents(Decimal(amount)),
                "tax_code": clean_code(row["tax_code"]),
            }
        )

    lines.extend(oracle_repairs(period, settings, ledger, agreement_of, every_customer))

    # Tax of each line.
    for line in lines:
        if line["kind"] in ("credit", "rebill"):
            continue  # taxed as billed
        customer = customer_by_id[line["customer"]]
        site = site_by_id.get(line["site_id"]) if line["site_id"] is not None else None
        if customer["site_zip"] and site is not None and site["zip"] is not None:
            zip_code = site["zip"]
        else:
            zip_code = customer["zip"]
        code = line["tax_code"]
        what = (
            "product " + line["product_id"]
            if line["kind"] == "recurring"
            else ("usage " + line["usage_id"])
        )
        reasons = []
        rate = None
        if code == "NONTAXABLE":
            rate = Decimal(0)
        else:
            if code is None:
                reasons.append(f"no tax code for {what}")
            if zip_code is None:
                reasons.append(f"no zip code for customer {line['customer']} ({customer['name']})")
            if code is not None and zip_code is not None:
                if (zip_code, code) in broken:
                    reasons.append(f"invalid tax rate row for zip {zip_code} and tax code {code}")
                elif (zip_code, code) in rates:
                    rate = rates[(zip_code, code)]
                else:
                    reasons.append(f"no tax rate for zip {zip_code} and tax code {code}")
        line["tax_zip"] = zip_code
        line["tax_rate"] = rate
        line["reasons"] = reasons
        if rate is None:
            line["tax"] = Decimal("0.00")
        else:
            with localcontext() as context:
                context.prec = 100
                line["tax"] = round_cents(line["amount"] * rate)

    # Invoices: one per agreement with lines, in numbering order.
    by_agreement: dict[tuple, list[dict]] = {}
    for line in lines:
        by_agreement.setdefault(line["agreement"], []).append(line)

    def invoice_order(agreement):
        kind, customer, contract = agreement
        return (
            every_customer[customer]["name"].casefold(),
            customer,
            1 if kind == "no-contract" else 0,
            contract,
        )

    def line_order(line):
        no_site = line["site_id"] is None
        return (
            no_site,
            0 if no_site else line["site_id"],
            {"recurring": 0, "usage": 1}.get(line["kind"], 2),
            line["sort"],
        )

    for agreement in sorted(by_agreement, key=invoice_order):
        kind, customer, contract = agreement
        if kind == "default":
            key = f"customer:{customer}"
            halo_contract = lowest_contract.get(customer)
        elif kind == "contract":
            key = f"contract:{contract}"
            halo_contract = contract
        else:
            key = f"customer:{customer}:no-contract"
            halo_contract = None
        invoice_key = f"{label}:{key}"
        invoice_lines = sorted(by_agreement[agreement], key=line_order)
        reasons = []
        subtotal = Decimal("0.00")
        tax = Decimal("0.00")
        site_totals: dict = {}
        for number, line in enumerate(invoice_lines, start=1):
            subtotal += line["amount"]
            tax += line["tax"]
            site_totals[line["site_id"]] = (
                site_totals.get(line["site_id"], Decimal("0.00")) + (line["amount"])
            )
            for reason in line["reasons"]:
                if reason not in reasons:
                    reasons.append(reason)
            result.lines.append(
                {
                    "invoice_key": invoice_key,
                    "line_no": number,
                    "kind": line["kind"],
                    "product_id": line["product_id"],
                    "usage_id": line["usage_id"],
                    "description": line["description"],
                    "service_month": line["service_month"],
                    "site_id": line["site_id"],
                    "qty": line["qty"],
                    "unit_price": line["unit_price"],
                    "amount": line["amount"],
                    "tax_code": line["tax_code"],
                    "tax_zip": line["tax_zip"],
                    "tax_rate": line["tax_rate"],
                    "tax": line["tax"],
                    "corrects_invoice": line["corrects_invoice"],
                }
            )
            if line["kind"] != "usage":
                result.ledger.append(
                    {
                        "product_id": line["product_id"],
                        "service_month": line["service_month"],
                        "period": period,
                        "invoice_key": invoice_key,
                        "kind": "bill" if line["kind"] == "recurring" else line["kind"],
                        **{
                            name: line[name]
                            for name in (
                                "qty",
                                "unit_price",
                                "amount",
                                "tax",
                                "tax_code",
                                "tax_zip",
                                "tax_rate",
                            )
                        },
                    }
                )
        for site_id, amount in site_totals.items():
            result.site_subtotals.append(
                {"invoice_key": invoice_key, "site_id": site_id, "subtotal": amount}
            )
        invoice_day = next_month(period)
        result.invoices.append(
            {
                "invoice_key": invoice_key,
                "period": period,
                "customer_id": customer,
                "customer_name": every_customer[customer]["name"],
                "agreement_key": key,
                "halo_contract_id": halo_contract,
                "invoice_date": invoice_day,
                "due_date": invoice_day + timedelta(days=settings.payment_terms_days),
                "subtotal": subtotal,
                "tax": tax,
                "total": subtotal + tax,
                "status": "held" if reasons else "draft",
                "hold_reasons": reasons,
            }
        )
    result.rejects.extend(tax_rejects)
    return result


KINDS = ("bill", "credit", "rebill")


def oracle_repairs(period, settings, ledger, agreement_of, every_customer) -> list[dict]:
    """Rule 6, pair by pair: each (product, month)'s latest ledger row says what is billed
    now; where the product's current dates give another amount, credit it and bill it
    again with the days changed and everything else as billed."""
    rows = records(ledger)
    if not getattr(settings, "credit_past_changes", True) or not rows or "amount" not in rows[0]:
        return []
    history: dict[tuple, list[dict]] = {}
    for row in rows:
        own = first_of_month(as_day(row["period"])) == period
        if own and not row.get("final"):
            continue
        key = (str(row["product_id"]), first_of_month(as_day(row["service_month"])))
        history.setdefault(key, []).append(row)
    lines = []
    for (product_id, month), pair_rows in history.items():
        pair_rows.sort(
            key=lambda r: (first_of_month(as_day(r["period"])), KINDS.index(r.get("kind", "bill")))
        )
        state = pair_rows[-1]
        own = first_of_month(as_day(state["period"])) == period
        final = bool(state["final"]) if "final" in state else not own
        customer = plain_int(state["customer_id"])
        terms = (state["qty"], state["unit_price"], state["amount"], state["tax"])
        if not final or customer is None or any(is_missing(v) for v in terms):
            continue
        if customer not in every_customer:
            raise ValueError(f"customer {customer} of repaired product {product_id} unknown")
        qty, price = state["qty"], state["unit_price"]
        credited = state.get("kind", "bill") == "credit"
        billed = Decimal("0.00") if credited else state["amount"]
        billed_tax = Decimal("0.00") if credited else state["tax"]
        start, end = as_day(state["start_date"]), as_day(state["end_date"])
        days = calendar.monthrange(month.year, month.month)[1]
        active = 0
        if isinstance(start, date) and end != "bad":
            for number in range(1, days + 1):
                day = date(month.year, month.month, number)
                if start <= day and (end is None or day <= end):
                    active += 1
        with localcontext() as context:
            context.prec = 100
            if settings.allow_pro_rata:
                now = round_cents(qty * price * active / days)
            else:
                now = round_cents(qty * price) if active else Decimal("0.00")
        if now == billed:
            continue
        contract = plain_int(state["contract_id"])
        site = plain_int(state["site_id"])
        rate = state["tax_rate"]
        rate = rate if isinstance(rate, Decimal) and rate.is_finite() else None
        common = {
            "agreement": agreement_of(customer, contract),
            "customer": customer,
            "corrects_invoice": state["invoice"],
            "product_id": product_id,
            "usage_id": None,
            "description": "" if is_missing(state["description"]) else state["description"],
            "service_month": month,
            "site_id": site,
            "qty": qty,
            "unit_price": price,
            "tax_code": clean_code(state["tax_code"]),
            "tax_zip": None if is_missing(state["tax_zip"]) else state["tax_zip"],
            "tax_rate": rate,
            "reasons": [],
        }
        if billed != 0:
            lines.append(
                {
                    **common,
                    "kind": "credit",
                    "sort": (product_id, month, 0),
                    "amount": -billed,
                    "tax": -billed_tax,
                }
            )
        if active:
            with localcontext() as context:
                context.prec = 100
                tax = Decimal("0.00") if rate is None else round_cents(now * rate)
            reasons = (
                []
                if rate is not None
                else [f"no tax rate for zip {common['tax_zip']} and tax code {common['tax_code']}"]
            )
            lines.append(
                {
                    **common,
                    "kind": "rebill",
                    "sort": (product_id, month, 1),
                    "amount": now,
                    "tax": tax,
                    "reasons": reasons,
                }
            )
    return lines
