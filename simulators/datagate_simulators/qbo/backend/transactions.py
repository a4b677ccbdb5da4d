"""Transactions: Invoice, CreditMemo and Payment (docs/qbo-api.md §3.4, §3.7, §B4).

Money is ``Decimal`` throughout. A sales form's (invoice's, credit memo's) ``TotalAmt`` is the
sum of its sales (and group) lines minus discounts plus ``TxnTaxDetail.TotalTax``; an
invoice's ``Balance`` is ``TotalAmt`` minus what live payments apply to it. Payments link to
invoices through ``Line[].LinkedTxn``; each linked invoice gets the reciprocal ``LinkedTxn``
entry ``{TxnId, TxnType: "Payment"}``. A credit memo carries the same kinds of lines as an
invoice; what is left of it to use is its ``RemainingCredit`` (and ``Balance``).

DocNumbers are checked across the sales forms (docs/billing.md, Numbering: QBO reports a
DocNumber collision between an invoice and a credit memo too) [I].
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from .. import errors
from .base import Books, Entity, blank, cents, decimal_field, ref_value, words

__all__ = ["CreditMemo", "Invoice", "Payment"]

#: The transaction types whose DocNumbers must not collide (custom transaction numbers on).
NUMBERED_FORMS = ("Invoice", "CreditMemo")

DOC_NUMBER_MAX = 21
ZERO = Decimal("0")

LINE_TYPES = (
    "SalesItemLineDetail",
    "SubTotalLineDetail",
    "DiscountLineDetail",
    "DescriptionOnly",
    "GroupLineDetail",
)
LINE_FIELDS = frozenset(
    {
        "Id",
        "LineNum",
        "Description",
        "Amount",
        "DetailType",
        "LinkedTxn",
        "CustomField",
        "ProjectRef",
        "DescriptionLineDetail",
        "CustomExtensions",
        "LineEx",
        *LINE_TYPES,
    }
)


def _optional_date(data: dict[str, Any], key: str, entity: str) -> str | None:
    """A ``YYYY-MM-DD`` property; blank counts as absent (PQB sends ``"TxnDate": ""``)."""
    value = data.get(key)
    return None if blank(value) else _date_field(value, key, entity)


def _date_field(value: Any, element: str, entity: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise errors.unsupported_property(element, entity)
    try:
        date.fromisoformat(value.strip())
    except ValueError:
        raise errors.unsupported_property(element, entity) from None
    return value.strip()


class SalesForm(Entity):
    """What an invoice and a credit memo share: customer, lines, tax, number, note."""

    transaction = True
    voidable = True

    def build_form(self, company, data, existing, include) -> dict[str, Any]:
        """The record's common properties; the subclass adds its own (terms, balances)."""
        if existing is not None and existing.get("_voided"):
            raise errors.business_validation("A voided transaction cannot be changed.")
        customer = self.reference(
            company, data, "CustomerRef", "Customer", required=True, name_field="DisplayName"
        )
        raw_lines = data.get("Line")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise errors.required_param_missing("Line")
        record = dict(data, CustomerRef=customer)
        lines, subtotal, total = self._lines(company, raw_lines)
        lines.append(
            {"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}
        )
        record["Line"] = lines
        tax = self._tax(company, data.get("TxnTaxDetail"), lines)
        record["TxnTaxDetail"] = tax
        # Remember whether TotalTax was sent or computed, so a sparse update recomputes it.
        record["_tax_sent"] = isinstance(data.get("TxnTaxDetail"), dict) and (
            data["TxnTaxDetail"].get("TotalTax") is not None
        )
        record["TotalAmt"] = total + tax.get("TotalTax", ZERO)
        record["TxnDate"] = (
            _optional_date(data, "TxnDate", self.name) or company.today().isoformat()
        )
        record["DocNumber"] = self._doc_number(company, data.get("DocNumber"), existing, include)
        if record["DocNumber"] is None:
            del record["DocNumber"]
        for key in ("PrivateNote",):
            if isinstance(data.get(key), str) and len(data[key]) > 4000:
                raise errors.invalid_string_length(key, 4000, len(data[key]))
        record.setdefault("CurrencyRef", company.home_currency_ref())
        record.setdefault("EmailStatus", "NotSet")
        record.setdefault("PrintStatus", "NotSet")
        record.setdefault("ApplyTaxAfterDiscount", False)
        record.setdefault("CustomField", [])
        return record

    def writable(self, record: dict[str, Any]) -> dict[str, Any]:
        data = super().writable(record)
        tax = record.get("TxnTaxDetail") or {}
        if not record.get("_tax_sent"):
            data.pop("TxnTaxDetail", None)
            if tax.get("TxnTaxCodeRef"):
                data["TxnTaxDetail"] = {"TxnTaxCodeRef": tax["TxnTaxCodeRef"]}
        return data

    def _lines(
        self, company: Books, raw_lines: list[Any]
    ) -> tuple[list[dict[str, Any]], Decimal, Decimal]:
        lines: list[dict[str, Any]] = []
        subtotal = ZERO
        total = ZERO
        for index, raw in enumerate(raw_lines):
            if not isinstance(raw, dict):
                raise errors.unsupported_property("Line", self.name)
            for key in raw:
                if key not in LINE_FIELDS:
                    raise errors.unsupported_property(key, "Line")
            detail_type = raw.get("DetailType")
            if blank(detail_type):
                raise errors.required_param_missing("Line.DetailType")
            if detail_type not in LINE_TYPES:
                # e.g. "SubtotalLineDetail" (routablehq/python-quickbooks PR #145).
                raise errors.unsupported_property(str(detail_type), "Line")
            if detail_type == "SubTotalLineDetail":
                continue  # computed by the server; a client may echo it back on update
            line = {k: v for k, v in raw.items() if k not in ("Id", "LineNum")}
            amount = None
            if raw.get("Amount") is not None:
                amount = decimal_field(raw["Amount"], "Line.Amount", self.name)
                line["Amount"] = amount
            if detail_type == "SalesItemLineDetail":
                if amount is None:
                    raise errors.required_param_missing("Line.Amount")
                line[detail_type] = self._sales_detail(company, raw.get(detail_type), amount, index)
                subtotal += amount
                total += amount
            elif detail_type == "DiscountLineDetail":
                if amount is None:
                    raise errors.required_param_missing("Line.Amount")
                total -= amount
            elif detail_type == "GroupLineDetail":
                subtotal += amount or ZERO
                total += amount or ZERO
            else:  # DescriptionOnly (also the inline subtotals, §3.4): carries no money
                line.setdefault("DescriptionLineDetail", {})
            number = len(lines) + 1
            lines.append({"Id": str(number), "LineNum": number, **line})
        if not lines:
            raise errors.required_param_missing("Line.SalesItemLineDetail")
        return lines, subtotal, total

    def _sales_detail(
        self, company: Books, detail: Any, amount: Decimal, index: int
    ) -> dict[str, Any]:
        if not isinstance(detail, dict):
            raise errors.required_param_missing("Line.SalesItemLineDetail")
        out = dict(detail)
        item = self.reference(
            company,
            detail,
            "ItemRef",
            "Item",
            required=True,
            element="Line.SalesItemLineDetail.ItemRef",
            name_field="Name",
        )
        out["ItemRef"] = item
        item_record = company.live("Item", item["value"])
        qty = unit_price = None
        if detail.get("Qty") is not None:
            qty = out["Qty"] = decimal_field(detail["Qty"], "Qty", "SalesItemLineDetail")
        if detail.get("UnitPrice") is not None:
            unit_price = decimal_field(detail["UnitPrice"], "UnitPrice", "SalesItemLineDetail")
            out["UnitPrice"] = unit_price
        # Zero means "not given": PQB sends Qty 0 and UnitPrice 0 by default, and its
        # integration tests create invoices that way against real QBO.
        if qty and unit_price:
            product = qty * unit_price
            # Exact product, or the product rounded to cents (Amount carries cents) [I].
            if amount not in (product, cents(product)):
                raise errors.amount_mismatch(index)
        if "ItemAccountRef" in detail:
            account = self.reference(
                company,
                detail,
                "ItemAccountRef",
                "Account",
                element="Line.SalesItemLineDetail.ItemAccountRef",
                name_field="Name",
            )
            out["ItemAccountRef"] = account
        elif item_record.get("IncomeAccountRef"):
            out["ItemAccountRef"] = dict(item_record["IncomeAccountRef"])
        tax_code = ref_value(detail.get("TaxCodeRef"))
        if tax_code is not None:
            # TAX and NON exist in US companies only; elsewhere a line names a real TaxCode.
            us_pseudo = tax_code in ("TAX", "NON") and company.country() == "US"
            if not us_pseudo and company.live("TaxCode", tax_code) is None:
                raise errors.invalid_reference(
                    "Line.SalesItemLineDetail.TaxCodeRef", "TaxCode", tax_code
                )
            out["TaxCodeRef"] = {"value": tax_code}
        elif company.country() != "US" and company.using_sales_tax():
            # [S] activepieces#8539 (docs/qbo-api.md §3.6), for every company outside the US.
            raise errors.business_validation(
                "Make sure all your transactions have a GST/HST rate before you save.",
                "Line.SalesItemLineDetail.TaxCodeRef",
            )
        service_date = _optional_date(detail, "ServiceDate", "SalesItemLineDetail")
        if service_date is not None:
            out["ServiceDate"] = service_date
        else:
            out.pop("ServiceDate", None)
        return out

    def _tax(self, company: Books, detail: Any, lines: list[dict[str, Any]]) -> dict[str, Any]:
        """US: TotalTax as sent (honoured, §3.6), else computed from TxnTaxCodeRef's rates
        [I]. Elsewhere: per rate of the lines' tax codes (:meth:`_tax_by_rate`)."""
        if detail is not None and not isinstance(detail, dict):
            raise errors.unsupported_property("TxnTaxDetail", self.name)
        if company.country() != "US":
            return self._tax_by_rate(company, detail or {}, lines)
        if detail is None:
            return {"TotalTax": ZERO}
        out = dict(detail)
        code = None
        if detail.get("TxnTaxCodeRef") is not None:
            code_ref = self.reference(
                company,
                detail,
                "TxnTaxCodeRef",
                "TaxCode",
                element="TxnTaxDetail.TxnTaxCodeRef",
                name_field="Name",
            )
            out["TxnTaxCodeRef"] = code_ref
            code = company.live("TaxCode", code_ref["value"])
        if detail.get("TotalTax") is not None:
            out["TotalTax"] = decimal_field(detail["TotalTax"], "TotalTax", "TxnTaxDetail")
            return out
        if code is None or not company.using_sales_tax():
            out["TotalTax"] = ZERO
            return out
        taxable = sum(
            (
                line["Amount"]
                for line in lines
                if line["DetailType"] == "SalesItemLineDetail"
                and ref_value(line["SalesItemLineDetail"].get("TaxCodeRef")) not in (None, "NON")
            ),
            ZERO,
        )
        tax_lines = []
        for rate_detail in code.get("SalesTaxRateList", {}).get("TaxRateDetail", []):
            rate = company.live("TaxRate", rate_detail["TaxRateRef"]["value"])
            if rate is None:
                continue
            percent = rate.get("RateValue", ZERO)
            tax_lines.append(
                {
                    "Amount": cents(taxable * percent / 100),
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": rate["Id"]},
                        "PercentBased": True,
                        "TaxPercent": percent,
                        "NetAmountTaxable": taxable,
                    },
                }
            )
        out["TaxLine"] = tax_lines
        out["TotalTax"] = sum((t["Amount"] for t in tax_lines), ZERO)
        return out

    def _tax_by_rate(
        self, company: Books, detail: dict[str, Any], lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Outside the US (§3.6): each rate of each line's TaxCode taxes the sum of its
        lines, rounded to cents once per rate; a sent TotalTax is ignored. A tax line sent
        with an Amount for one of those rates overrides QBO's figure (when the company's
        settings honour it) [I]."""
        net: dict[str, Decimal] = {}
        for line in lines:
            if line["DetailType"] != "SalesItemLineDetail":
                continue
            code = company.live("TaxCode", ref_value(line["SalesItemLineDetail"].get("TaxCodeRef")))
            for rate_detail in (code or {}).get("SalesTaxRateList", {}).get("TaxRateDetail", []):
                rate_id = rate_detail["TaxRateRef"]["value"]
                net[rate_id] = net.get(rate_id, ZERO) + line["Amount"]
        sent: dict[str, Decimal] = {}
        if company.settings.honour_sent_tax_lines:
            for tax_line in detail.get("TaxLine") or []:
                rate_ref = ref_value(
                    ((tax_line or {}).get("TaxLineDetail") or {}).get("TaxRateRef")
                )
                if rate_ref in net and tax_line.get("Amount") is not None:
                    sent[rate_ref] = decimal_field(tax_line["Amount"], "TaxLine.Amount", self.name)
        tax_lines = []
        for rate_id in sorted(net, key=int):
            rate = company.live("TaxRate", rate_id)
            percent = rate.get("RateValue", ZERO) if rate else ZERO
            amount = sent.get(rate_id, cents(net[rate_id] * percent / 100))
            tax_lines.append(
                {
                    "Amount": amount,
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": rate_id},
                        "PercentBased": True,
                        "TaxPercent": percent,
                        "NetAmountTaxable": net[rate_id],
                    },
                }
            )
        return {"TaxLine": tax_lines, "TotalTax": sum((t["Amount"] for t in tax_lines), ZERO)}

    def _doc_number(
        self,
        company: Books,
        value: Any,
        existing: dict[str, Any] | None,
        include: frozenset[str],
    ) -> str | None:
        custom = company.custom_txn_numbers()
        if value is not None and not isinstance(value, str):
            value = format(value, "f") if isinstance(value, Decimal) else str(value)
        if value == "AUTO_GENERATE":  # forces auto-numbering (§3.4)
            return company.next_doc_number(self.name)
        if blank(value):
            if existing is not None:
                return existing.get("DocNumber")  # an update without DocNumber keeps it [I]
            # Custom numbers off: QBO numbers the invoice; on: it stays without one (§3.4).
            return None if custom else company.next_doc_number(self.name)
        if len(value) > DOC_NUMBER_MAX:
            raise errors.invalid_string_length("DocNumber", DOC_NUMBER_MAX, len(value))
        check = custom or company.settings.reject_duplicate_doc_numbers_when_auto
        unchanged = existing is not None and existing.get("DocNumber") == value
        # Only a new or changed number is checked [I]: an update must not fail because of a
        # duplicate someone created earlier with include=allowduplicatedocnum.
        if check and not unchanged and "allowduplicatedocnum" not in include:
            own_id = existing.get("Id") if existing else None
            for form in NUMBERED_FORMS:
                for other in company.all_live(form):
                    if other.get("DocNumber") == value and (form, other.get("Id")) != (
                        self.name,
                        own_id,
                    ):
                        raise errors.duplicate_doc_number(value, form, other["Id"])
        return value

    def after_write(self, company, record, previous):
        company.refresh_customer_balance(record["CustomerRef"]["value"])
        if previous and previous["CustomerRef"]["value"] != record["CustomerRef"]["value"]:
            company.refresh_customer_balance(previous["CustomerRef"]["value"])

    def void(self, record: dict[str, Any]) -> dict[str, Any]:
        """The voided form: TotalAmt 0, Balance 0, PrivateNote "Voided" (§2, PQB tests)."""
        voided = dict(
            record, TotalAmt=ZERO, Balance=ZERO, PrivateNote="Voided", LinkedTxn=[], _voided=True
        )
        if "RemainingCredit" in record:
            voided["RemainingCredit"] = ZERO
        return voided


class Invoice(SalesForm):
    name = "Invoice"
    path = "invoice"
    deletable = True
    fields = words(
        """DocNumber TxnDate DueDate ShipDate SalesTermRef PrivateNote CustomerMemo BillAddr
        ShipAddr ShipFromAddr BillEmail BillEmailCc BillEmailBcc EmailStatus PrintStatus
        TxnTaxDetail GlobalTaxCalculation ApplyTaxAfterDiscount CustomField CurrencyRef
        ExchangeRate DepartmentRef ClassRef Deposit DepositToAccountRef Line CustomerRef
        AllowOnlineCreditCardPayment AllowOnlineACHPayment AllowIPNPayment AllowOnlinePayment
        TrackingNum ShipMethodRef TxnSource TransactionLocationType ProjectRef
        RecurDataRef TaxExemptionRef FreeFormAddress"""
    )
    read_only = frozenset(
        {
            "TotalAmt",
            "Balance",
            "HomeBalance",
            "HomeTotalAmt",
            "LinkedTxn",
            "InvoiceLink",
            "DeliveryInfo",
            "TxnStatus",
        }
    )
    queryable = frozenset(
        {
            "docnumber",
            "txndate",
            "duedate",
            "customerref",
            "balance",
            "totalamt",
            "emailstatus",
            "printstatus",
        }
    )

    def build(self, company, data, existing, include):
        record = self.build_form(company, data, existing, include)
        term = self.reference(company, data, "SalesTermRef", "Term", name_field="Name")
        if term:
            record["SalesTermRef"] = term
        due = _optional_date(data, "DueDate", self.name)
        if due is not None:
            record["DueDate"] = due
        else:
            # Due date from the term's DueDays when not given [I] (docs/qbo-api.md §3.4).
            days = company.live("Term", term["value"]).get("DueDays", 0) if term else 0
            record["DueDate"] = (
                date.fromisoformat(record["TxnDate"]) + timedelta(days=days)
            ).isoformat()
        applied = company.applied_to_invoice(existing["Id"]) if existing else {}
        record["LinkedTxn"] = [{"TxnId": pid, "TxnType": "Payment"} for pid in applied]
        record["Balance"] = record["TotalAmt"] - sum(applied.values(), ZERO)
        if record["Balance"] < 0:
            raise errors.business_validation(
                "The invoice total cannot be less than the payments applied to it.", "Line"
            )
        return record

    def before_remove(self, company, record):
        # Deleting or voiding an invoice leaves its payments unapplied [I] (QBO's UI warns so).
        company.unlink_payments_from(record["Id"])


class CreditMemo(SalesForm):
    """A credit to the customer (docs/qbo-api.md §B4): the lines of an invoice, left
    unapplied as the customer's credit until a payment applies it to an invoice."""

    name = "CreditMemo"
    path = "creditmemo"
    fields = words(
        """DocNumber TxnDate PrivateNote CustomerMemo BillAddr ShipAddr BillEmail EmailStatus
        PrintStatus TxnTaxDetail GlobalTaxCalculation ApplyTaxAfterDiscount CustomField
        CurrencyRef ExchangeRate DepartmentRef ClassRef Line CustomerRef TxnSource
        TransactionLocationType ProjectRef InvoiceRef"""
    )
    read_only = frozenset(
        {"TotalAmt", "Balance", "RemainingCredit", "HomeBalance", "HomeTotalAmt", "TxnStatus"}
    )
    queryable = frozenset(
        {"docnumber", "txndate", "customerref", "balance", "totalamt", "remainingcredit"}
    )

    def build(self, company, data, existing, include):
        record = self.build_form(company, data, existing, include)
        if record["TotalAmt"] < 0:
            # A credit is written with positive amounts; a negative one would be a charge [I].
            raise errors.business_validation("The credit memo total cannot be negative.", "Line")
        used = company.credit_used(existing["Id"]) if existing else ZERO
        record["RemainingCredit"] = record["Balance"] = record["TotalAmt"] - used
        if record["RemainingCredit"] < 0:
            raise errors.business_validation(
                "The credit memo total cannot be less than the credit already used.", "Line"
            )
        return record


class Payment(Entity):
    """A payment received (§3.7). Its lines apply money to invoices, or take credit from
    credit memos (TxnType ``CreditMemo``, §B6) — the $0 payment that applies a credit memo to
    an invoice (§B4); each line links one kind or the other [I]."""

    name = "Payment"
    path = "payment"
    transaction = True
    deletable = True
    void_by_update = True
    fields = words(
        """CustomerRef TotalAmt TxnDate PaymentRefNum PaymentMethodRef DepositToAccountRef
        ARAccountRef PrivateNote Line CurrencyRef ExchangeRate CreditCardPayment
        ProcessPayment TxnSource TransactionLocationType ProjectRef"""
    )
    read_only = frozenset({"UnappliedAmt", "TxnStatus"})
    queryable = frozenset({"txndate", "customerref", "totalamt", "paymentrefnum"})

    def build(self, company, data, existing, include):
        if existing is not None and existing.get("_voided"):
            raise errors.business_validation("A voided transaction cannot be changed.")
        customer = self.reference(
            company, data, "CustomerRef", "Customer", required=True, name_field="DisplayName"
        )
        if data.get("TotalAmt") is None:
            raise errors.required_param_missing("TotalAmt")
        total = decimal_field(data["TotalAmt"], "TotalAmt", self.name)
        if total < 0:
            raise errors.business_validation("The payment amount cannot be negative.", "TotalAmt")
        record = dict(data, CustomerRef=customer, TotalAmt=total)
        own_id = existing["Id"] if existing else None
        lines = []
        to_invoices = from_credits = ZERO
        for raw in data.get("Line") or []:
            line = self._line(company, raw, customer["value"], own_id)
            if line["LinkedTxn"][0]["TxnType"] == "CreditMemo":
                from_credits += line["Amount"]
            else:
                to_invoices += line["Amount"]
            lines.append(line)
        # Credit applied pays invoices too: the money needed is what credit does not cover
        # (the $0 payment that applies a credit memo, docs/qbo-api.md §B4).
        if from_credits > to_invoices:
            raise errors.business_validation(
                f"The credit applied ({from_credits}) exceeds the amount applied to invoices "
                f"({to_invoices}).",
                "Line.Amount",
            )
        applied = to_invoices - from_credits
        if applied > total:
            raise errors.business_validation(
                f"The amount applied to invoices ({applied}) exceeds the payment amount ({total}).",
                "Line.Amount",
            )
        record["Line"] = lines
        record["UnappliedAmt"] = total - applied
        record["TxnDate"] = (
            _optional_date(data, "TxnDate", self.name) or company.today().isoformat()
        )
        deposit = self.reference(company, data, "DepositToAccountRef", "Account", name_field="Name")
        record["DepositToAccountRef"] = deposit or company.undeposited_funds_ref()
        if record["DepositToAccountRef"] is None:
            del record["DepositToAccountRef"]
        if data.get("ARAccountRef") is not None:
            record["ARAccountRef"] = self.reference(
                company, data, "ARAccountRef", "Account", name_field="Name"
            )
        record.setdefault("CurrencyRef", company.home_currency_ref())
        record.setdefault("ProcessPayment", False)
        return record

    def _line(
        self, company: Books, raw: Any, customer_id: str, own_id: str | None
    ) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise errors.unsupported_property("Line", self.name)
        if raw.get("Amount") is None:
            raise errors.required_param_missing("Line.Amount")
        amount = decimal_field(raw["Amount"], "Line.Amount", self.name)
        links = raw.get("LinkedTxn")
        if not isinstance(links, list) or not links:
            raise errors.required_param_missing("Line.LinkedTxn")
        out_links = []
        kinds = {link.get("TxnType") if isinstance(link, dict) else None for link in links}
        if len(kinds) > 1:
            # One line applies to invoices or takes from credit memos, not both [I].
            raise errors.invalid_enumeration("Line.LinkedTxn.TxnType", ", ".join(map(str, kinds)))
        for link in links:
            if not isinstance(link, dict) or blank(link.get("TxnId")):
                raise errors.required_param_missing("Line.LinkedTxn.TxnId")
            kind = link.get("TxnType")
            if kind not in ("Invoice", "CreditMemo"):  # docs/qbo-api.md §B6
                raise errors.invalid_enumeration("Line.LinkedTxn.TxnType", kind)
            txn_id = ref_value(link["TxnId"])
            target = company.live(kind, txn_id)
            if target is None:
                raise errors.invalid_reference("Line.LinkedTxn.TxnId", kind, txn_id)
            if target["CustomerRef"]["value"] != customer_id:
                raise errors.business_validation(
                    f"{kind} {txn_id} belongs to another customer.", "Line.LinkedTxn.TxnId"
                )
            if kind == "Invoice":
                applied = company.applied_to_invoice(txn_id)
                left = target["TotalAmt"] - sum(
                    (a for pid, a in applied.items() if pid != own_id), ZERO
                )
            else:  # what other payments have not taken of the credit yet
                own = company.live("Payment", own_id) if own_id else None
                left = target["TotalAmt"] - company.credit_used(txn_id) + _credit_taken(own, txn_id)
            if amount > left:
                what = "open balance" if kind == "Invoice" else "remaining credit"
                raise errors.business_validation(
                    f"The payment amount ({amount}) exceeds the {what} ({left}) of {kind} "
                    f"{txn_id}.",
                    "Line.Amount",
                )
            out_links.append({"TxnId": txn_id, "TxnType": kind})
        return {**raw, "Amount": amount, "LinkedTxn": out_links}

    def after_write(self, company, record, previous):
        linked = [
            link
            for payment in (record, previous or {})
            for line in payment.get("Line", [])
            for link in line["LinkedTxn"]
        ]
        for kind, refresh in (
            ("Invoice", company.refresh_invoices),
            ("CreditMemo", company.refresh_credit_memos),
        ):
            refresh({link["TxnId"] for link in linked if link["TxnType"] == kind})

    def void(self, record: dict[str, Any]) -> dict[str, Any]:
        """The voided payment: nothing received, nothing applied (§2, PQB VoidMixin)."""
        lines = [dict(line, Amount=ZERO) for line in record.get("Line", [])]
        return dict(
            record, TotalAmt=ZERO, UnappliedAmt=ZERO, Line=lines, PrivateNote="Voided", _voided=True
        )


def _credit_taken(payment: dict[str, Any] | None, credit_memo_id: str) -> Decimal:
    """What one payment takes of a credit memo."""
    return sum(
        (
            line["Amount"]
            for line in (payment or {}).get("Line", [])
            if any(
                link["TxnId"] == credit_memo_id and link["TxnType"] == "CreditMemo"
                for link in line["LinkedTxn"]
            )
        ),
        ZERO,
    )
