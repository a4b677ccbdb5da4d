"""Purchases: PurchaseOrder and Bill, with expense lines (docs/qbo-api.md §B2, §B3).

Both carry ``ItemBasedExpenseLineDetail`` and ``AccountBasedExpenseLineDetail`` lines; a
PurchaseOrder posts nothing (non-posting), a Bill is owed to its vendor (``Balance``). A Bill
links to a PurchaseOrder with ``LinkedTxn`` on the header and on each line; the PO then lists
the bill in its own ``LinkedTxn`` and closes once every one of its lines is billed [I].

Where the sources disagree or are silent ([I]):
- an invalid link (unknown PO or PO line, or a PO of another vendor) is dropped without an
  error, as users report of the real service (§B3); a link without TxnId, TxnType or
  TxnLineId is a 2020;
- a Bill linked to a PurchaseOrder cannot be deleted (QMCP: unlink it first);
- DocNumber: a PurchaseOrder's must be unique unless ``include=allowduplicatedocnum`` (QPO);
  Bills' are the vendors' numbers, not checked.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .. import errors
from .base import Books, Entity, blank, cents, decimal_field, ref_value, words
from .transactions import DOC_NUMBER_MAX, _optional_date

__all__ = ["Bill", "PurchaseOrder"]

ZERO = Decimal("0")
EXPENSE_LINE_TYPES = ("ItemBasedExpenseLineDetail", "AccountBasedExpenseLineDetail")
LINE_FIELDS = frozenset(
    {"Id", "LineNum", "Description", "Amount", "DetailType", "LinkedTxn", "ProjectRef",
     "CustomField", *EXPENSE_LINE_TYPES}
)  # fmt: skip
#: Read-only on both detail types (§B2): QBO sets it.
BILLABLE = "NotBillable"


class _Purchase(Entity):
    """What PurchaseOrder and Bill share: vendor, AP account, expense lines, totals."""

    transaction = True
    deletable = True
    common_fields = words(
        """DocNumber TxnDate DueDate VendorRef APAccountRef Line PrivateNote Memo CurrencyRef
        ExchangeRate GlobalTaxCalculation TxnTaxDetail SalesTermRef VendorAddr ShipAddr
        DepartmentRef ClassRef CustomField TransactionLocationType"""
    )
    read_only = frozenset({"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt", "LinkedTxn"})
    queryable = frozenset({"docnumber", "txndate", "vendorref", "totalamt", "duedate"})

    def build(self, company, data, existing, include):
        vendor = self.reference(
            company, data, "VendorRef", "Vendor", required=True, name_field="DisplayName"
        )
        raw_lines = data.get("Line")
        if not isinstance(raw_lines, list) or not raw_lines:
            raise errors.required_param_missing("Line")
        record = dict(data, VendorRef=vendor)
        record["APAccountRef"] = self._payable(company, data)
        record["CurrencyRef"] = self._currency(company, data, vendor["value"])
        record["Line"], total = self._lines(company, raw_lines)
        tax = ZERO
        if isinstance(data.get("TxnTaxDetail"), dict) and data["TxnTaxDetail"].get("TotalTax"):
            tax = decimal_field(data["TxnTaxDetail"]["TotalTax"], "TotalTax", "TxnTaxDetail")
            record["TxnTaxDetail"] = dict(data["TxnTaxDetail"], TotalTax=tax)
        record["TotalAmt"] = total + tax
        record["TxnDate"] = (
            _optional_date(data, "TxnDate", self.name) or company.today().isoformat()
        )
        due = _optional_date(data, "DueDate", self.name)
        if due is not None:
            record["DueDate"] = due
        for key in ("PrivateNote", "Memo"):
            if isinstance(data.get(key), str) and len(data[key]) > 4000:
                raise errors.invalid_string_length(key, 4000, len(data[key]))
        if company.country() != "US":
            record.setdefault("GlobalTaxCalculation", "TaxExcluded")
        return record

    def _payable(self, company: Books, data: dict[str, Any]) -> dict[str, Any]:
        """APAccountRef: an Accounts Payable account; implied when the company has exactly
        one (§B2), required otherwise."""
        ref = self.reference(company, data, "APAccountRef", "Account", name_field="Name")
        payable = [
            a for a in company.all_live("Account")
            if a.get("AccountType") == "Accounts Payable" and a.get("Active", True)
        ]  # fmt: skip
        if ref is None:
            if len(payable) != 1:
                raise errors.required_param_missing("APAccountRef")
            return {"value": payable[0]["Id"], "name": payable[0]["Name"]}
        account = company.live("Account", ref["value"])
        if account is None or account.get("AccountType") != "Accounts Payable":
            raise errors.business_validation(
                "APAccountRef must be an Accounts Payable account.", "APAccountRef"
            )
        return ref

    def _currency(self, company: Books, data: dict[str, Any], vendor_id: str) -> dict[str, Any]:
        """The home currency, unless multi-currency is on: then the vendor's [I]."""
        home = company.home_currency_ref()
        wanted = ref_value(data.get("CurrencyRef")) or home["value"]
        if wanted == home["value"]:
            return home
        if not company.multi_currency():
            raise errors.business_validation(
                f"Multicurrency is off: a transaction must be in {home['value']}, not {wanted}.",
                "CurrencyRef",
            )
        vendor_currency = ref_value(company.live("Vendor", vendor_id).get("CurrencyRef")) or ""  # type: ignore[union-attr]
        if vendor_currency != wanted:
            raise errors.business_validation(
                f"The vendor's currency is {vendor_currency}, not {wanted}.", "CurrencyRef"
            )
        return {"value": wanted}

    def _lines(self, company: Books, raw_lines: list[Any]) -> tuple[list[dict[str, Any]], Decimal]:
        lines: list[dict[str, Any]] = []
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
            if detail_type not in EXPENSE_LINE_TYPES:
                raise errors.unsupported_property(str(detail_type), "Line")
            if raw.get("Amount") is None:
                raise errors.required_param_missing("Line.Amount")
            amount = decimal_field(raw["Amount"], "Line.Amount", self.name)
            detail = raw.get(detail_type)
            if not isinstance(detail, dict):
                raise errors.required_param_missing(f"Line.{detail_type}")
            out = {k: v for k, v in raw.items() if k not in ("Id", "LineNum", "LinkedTxn")}
            out["Amount"] = amount
            if detail_type == "ItemBasedExpenseLineDetail":
                out[detail_type] = self._item_detail(company, detail, amount, index)
            else:
                out[detail_type] = self._account_detail(company, detail)
            number = len(lines) + 1
            line = {"Id": str(number), "LineNum": number, **out}
            if "LinkedTxn" in raw:
                line["_links"] = raw["LinkedTxn"]
            lines.append(line)
            total += amount
        return lines, total

    def _item_detail(
        self, company: Books, detail: dict[str, Any], amount: Decimal, index: int
    ) -> dict[str, Any]:
        where = "Line.ItemBasedExpenseLineDetail"
        out = dict(detail)
        out["ItemRef"] = self.reference(
            company, detail, "ItemRef", "Item", required=True, element=f"{where}.ItemRef",
            name_field="Name",
        )  # fmt: skip
        qty = unit_price = None
        if detail.get("Qty") is not None:
            qty = out["Qty"] = decimal_field(detail["Qty"], "Qty", where)
        if detail.get("UnitPrice") is not None:
            unit_price = out["UnitPrice"] = decimal_field(detail["UnitPrice"], "UnitPrice", where)
        if qty and unit_price and amount not in (qty * unit_price, cents(qty * unit_price)):
            raise errors.amount_mismatch(index)
        self._tax_code(company, detail, out, where)
        out["BillableStatus"] = BILLABLE
        return out

    def _account_detail(self, company: Books, detail: dict[str, Any]) -> dict[str, Any]:
        where = "Line.AccountBasedExpenseLineDetail"
        out = dict(detail)
        out["AccountRef"] = self.reference(
            company, detail, "AccountRef", "Account", required=True,
            element=f"{where}.AccountRef", name_field="Name",
        )  # fmt: skip
        self._tax_code(company, detail, out, where)
        out["BillableStatus"] = BILLABLE
        return out

    def _tax_code(
        self, company: Books, detail: dict[str, Any], out: dict[str, Any], where: str
    ) -> None:
        code = ref_value(detail.get("TaxCodeRef"))
        if code is None:
            return
        us_pseudo = code in ("TAX", "NON") and company.country() == "US"
        if not us_pseudo and company.live("TaxCode", code) is None:
            raise errors.invalid_reference(f"{where}.TaxCodeRef", "TaxCode", code)
        # Read back, the reference holds the code's Name (§B2, PQB test).
        found = company.live("TaxCode", code)
        out["TaxCodeRef"] = {"value": found["Name"] if found else code}

    def _doc_number(self, company: Books, data: dict[str, Any]) -> str | None:
        value = data.get("DocNumber")
        if blank(value):
            return None
        value = str(value).strip()
        if len(value) > DOC_NUMBER_MAX:
            raise errors.invalid_string_length("DocNumber", DOC_NUMBER_MAX, len(value))
        return value


class PurchaseOrder(_Purchase):
    name = "PurchaseOrder"
    path = "purchaseorder"
    fields = _Purchase.common_fields | words("POStatus POEmail EmailStatus ShipTo ShipMethodRef")
    queryable = _Purchase.queryable | frozenset({"postatus"})

    def build(self, company, data, existing, include):
        record = super().build(company, data, existing, include)
        status = data.get("POStatus", existing.get("POStatus") if existing else "Open")
        if status not in ("Open", "Closed"):
            raise errors.invalid_enumeration("POStatus", status)
        record["POStatus"] = status
        number = self._doc_number(company, data)
        if number is None:
            number = (existing or {}).get("DocNumber") or company.next_doc_number(self.name)
        elif "allowduplicatedocnum" not in include:
            for other in company.all_live(self.name):
                if other["Id"] != (existing or {}).get("Id") and other.get("DocNumber") == number:
                    raise errors.duplicate_doc_number(number, self.name, other["Id"])
        record["DocNumber"] = number
        for line in record["Line"]:
            line.pop("_links", None)
        record["LinkedTxn"] = company.bills_linked_to(existing["Id"]) if existing else []
        return record

    def before_remove(self, company, record):
        if record.get("LinkedTxn"):
            raise errors.business_validation(
                "This purchase order has bills linked to it; unlink them first."
            )


class Bill(_Purchase):
    name = "Bill"
    path = "bill"
    fields = _Purchase.common_fields | words("LinkedTxn")
    read_only = _Purchase.read_only - {"LinkedTxn"}

    def build(self, company, data, existing, include):
        record = super().build(company, data, existing, include)
        vendor_id = record["VendorRef"]["value"]
        number = self._doc_number(company, data)
        if number is not None:
            record["DocNumber"] = number
        header_links = self._header_links(data.get("LinkedTxn"))
        kept: set[str] = set()
        for line in record["Line"]:
            links = []
            for link in self._line_links(line.pop("_links", None)):
                po = company.live("PurchaseOrder", link["TxnId"])
                if (
                    po is not None
                    and po["VendorRef"]["value"] == vendor_id
                    and link["TxnId"] in header_links
                    and any(x["Id"] == link["TxnLineId"] for x in po["Line"])
                ):
                    links.append(link)
                    kept.add(link["TxnId"])
                # otherwise the link is dropped without an error [I] (§B3)
            if links:
                line["LinkedTxn"] = links
        record["LinkedTxn"] = [{"TxnId": t, "TxnType": "PurchaseOrder"} for t in sorted(kept)]
        record["Balance"] = record["TotalAmt"]
        return record

    @staticmethod
    def _header_links(value: Any) -> set[str]:
        if value is None:
            return set()
        if not isinstance(value, list):
            raise errors.unsupported_property("LinkedTxn", "Bill")
        found = set()
        for link in value:
            if not isinstance(link, dict) or blank(link.get("TxnId")):
                raise errors.required_param_missing("LinkedTxn.TxnId")
            if blank(link.get("TxnType")):
                raise errors.required_param_missing("LinkedTxn.TxnType")
            if link["TxnType"] == "PurchaseOrder":
                found.add(str(ref_value(link["TxnId"])))
        return found

    @staticmethod
    def _line_links(value: Any) -> list[dict[str, str]]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise errors.unsupported_property("Line.LinkedTxn", "Bill")
        out = []
        for link in value:
            for key in ("TxnId", "TxnType", "TxnLineId"):
                if not isinstance(link, dict) or blank(link.get(key)):
                    raise errors.required_param_missing(f"Line.LinkedTxn.{key}")
            if link["TxnType"] == "PurchaseOrder":
                out.append(
                    {
                        "TxnId": str(ref_value(link["TxnId"])),
                        "TxnType": "PurchaseOrder",
                        "TxnLineId": str(ref_value(link["TxnLineId"])),
                    }
                )
        return out

    def after_write(self, company, record, previous):
        linked = {link["TxnId"] for link in record.get("LinkedTxn", [])}
        if previous:
            linked |= {link["TxnId"] for link in previous.get("LinkedTxn", [])}
        company.refresh_purchase_orders(linked)

    def before_remove(self, company, record):
        if record.get("LinkedTxn"):
            raise errors.business_validation(
                "This bill is linked to a purchase order; unlink it before deleting it."
            )
