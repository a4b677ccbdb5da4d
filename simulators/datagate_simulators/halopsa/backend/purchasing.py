"""Suppliers and purchase orders: ``Company`` and ``SupplierOrderHeader``. docs/halopsa-api.md §A1–A2

What the spec leaves open is decided here, in one place, and marked [I]:

- PO line quantity and unit cost: neither spec names them. The simulator calls them
  ``quantity`` (beside the documented ``quantity_received`` and ``invoiced_quantity``) and
  ``unit_cost`` (as on invoice lines, ``InvoiceDetail.unit_cost``): :data:`PO_LINE_QUANTITY`,
  :data:`PO_LINE_UNIT_COST`. [I]
- The ``status`` and ``goodsin_status`` integers (:data:`PO_STATUS`, :data:`GOODS_IN`): the
  meanings are undocumented; these are the values datagate's default
  ``purchasing.statuses`` assumes. [I]
- Supplier lists answer a bare array without ``pageinate`` (PROV reads one from
  ``GET Supplier?count=200``) and the ``suppliers`` wrapper with it. [I]
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from datagate_simulators.halopsa.backend.base import (
    Errors,
    ListQuery,
    Resource,
    Tenant,
    coerce_fields,
)
from datagate_simulators.halopsa.conventions import (
    NO_DATE,
    UNSET,
    money,
    round_money,
)

#: The PO line's ordered quantity and unit cost: names unconfirmed (§A2). [I]
PO_LINE_QUANTITY = "quantity"
PO_LINE_UNIT_COST = "unit_cost"
#: ``SupplierOrderHeader.status``: what each integer means is undocumented (§A2). [I]
PO_STATUS = {
    "draft": 0,
    "awaiting_approval": 1,
    "approved": 2,
    "sent": 3,
    "received": 4,
    "closed": 5,
    "cancelled": 6,
}
#: ``goodsin_status``: nothing, some or every line received. [I]
GOODS_IN = {"none": 0, "partial": 1, "received": 2}


class Supplier(Resource):
    """``/api/Supplier`` (schema ``Company``); list key ``suppliers``. [C] §A1

    List rows are the reduced ``Company_List``: no ``accounts_id``, ``address``, ``notes``,
    ``last_modified`` or ``purchase_tax_code`` (read them with ``GET /Supplier/{id}``), and no
    change stamp. ``address`` is one free-text string.
    """

    name = "Supplier"
    list_key = "suppliers"
    bare_unless_paged = True
    fields: ClassVar[dict[str, str]] = {
        "name": "str",
        "inactive": "bool",
        "accounts_id": "str",
        "xero_id": "str",
        "kashflowid": "str",
        "qbo_company_id": "str",
        "details_id": "int",
        "address": "str",
        "contact_name": "str",
        "email_address": "str",
        "phone_number": "str",
        "mobile": "str",
        "fax": "str",
        "website": "str",
        "notes": "str",
        "default_currency_code": "int",
        "purchase_tax_code": "ref",
        "supplier_invoice_due_date_extra_days": "int",
        "ignore_from_accounting_sync": "bool",
        "customfields": "list",
    }
    refs: ClassVar[dict[str, str]] = {"purchase_tax_code": "Tax"}
    required = ("name",)
    readonly = frozenset({"last_modified"})
    active_flag = "inactive"
    search_fields = ("name", "email_address")
    list_fields = (
        "id", "name", "contact_name", "email_address", "phone_number", "inactive",
        "qbo_company_id", "default_currency_code", "website", "customfields",
    )  # fmt: skip

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "name": "",
            "inactive": False,
            "accounts_id": "",
            "xero_id": "",
            "kashflowid": "",
            "qbo_company_id": "",
            "details_id": 0,
            "address": "",
            "contact_name": "",
            "email_address": "",
            "phone_number": "",
            "mobile": "",
            "fax": "",
            "website": "",
            "notes": "",
            "default_currency_code": 1,
            "purchase_tax_code": UNSET,
            "supplier_invoice_due_date_extra_days": 0,
            "ignore_from_accounting_sync": False,
            "customfields": [],
            "last_modified": now,
        }

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        record["last_modified"] = now


LINE_KINDS: dict[str, str] = {
    "item_id": "ref",
    "sort_seq": "int",
    "productcode": "str",
    "item_code": "str",
    "name": "str",
    "note": "str",
    PO_LINE_QUANTITY: "float",
    PO_LINE_UNIT_COST: "float",
    "quantity_received": "float",
    "date_received": "datetime",
    "baseprice": "float",
    "override_tax_code": "ref",
    "accounts_code": "str",
    "qbo_line_id": "str",
    "invoiceid": "ref",
    "invoiced_quantity": "float",
    "salesorder_line_id": "ref",
    "group_id": "int",
}
LINE_READONLY = frozenset(
    {"purchaseorder_id", "net_total", "total_tax", "total_price", "total_costprice",
     "total_purchase_cost", "line_totals", "tax_name"}
)  # fmt: skip


def _new_line(line_id: int, header_id: int, sequence: int) -> dict[str, Any]:
    return {
        "id": line_id,
        "purchaseorder_id": header_id,
        "sort_seq": sequence,
        "item_id": UNSET,
        "productcode": "",
        "item_code": "",
        "name": "",
        "note": "",
        PO_LINE_QUANTITY: 1.0,
        PO_LINE_UNIT_COST: 0.0,
        "quantity_received": 0.0,
        "date_received": NO_DATE,
        "baseprice": 0.0,
        "override_tax_code": UNSET,
        "tax_name": "",
        "accounts_code": "",
        "qbo_line_id": "",
        "invoiceid": UNSET,
        "invoiced_quantity": 0.0,
        "group_id": 0,
    }


class PurchaseOrder(Resource):
    """``/api/PurchaseOrder`` (``SupplierOrderHeader``, lines ``SupplierOrderDetail``); list
    key ``purchaseorders``, whose rows are full objects, lines included. [C] §A2

    Posting ``lines`` replaces them all, as on invoices; a line with one of the order's line
    ids updates that line. A new line with an item takes its name, cost price and purchase
    nominal code (the item's, else its asset group's). The server computes each line's
    ``net_total``/``total_tax``/``total_price`` and the header's ``price``, ``tax_total``,
    ``total`` (carriage included) and ``last_update_time``. ``invoices`` lists the supplier
    invoices (Invoice records with this ``purchaseorder_id``).
    """

    name = "PurchaseOrder"
    list_key = "purchaseorders"
    fields: ClassVar[dict[str, str]] = {
        "po_ref": "str",
        "3rd_party_ponumber": "str",
        "suppliers_order_reference": "str",
        "accounts_ref": "str",
        "status": "int",
        "goodsin_status": "int",
        "approval_status": "int",
        "date": "datetime",
        "datesent": "datetime",
        "est_delivery_date": "datetime",
        "duedate": "datetime",
        "supplier_id": "ref",
        "client_id": "ref",
        "site_id": "ref",
        "ticket_id": "ref",
        "salesorder_id": "ref",
        "currency_code": "int",
        "currency_conversion_rate": "float",
        "carriage_price": "float",
        "note": "str",
        "delivery_address": "obj",
        "qbo_id": "int",
        "qbo_company_id": "str",
        "xero_id": "str",
        "last_synced": "datetime",
        "customfields": "list",
    }
    refs: ClassVar[dict[str, str]] = {
        "supplier_id": "Supplier",
        "client_id": "Client",
        "site_id": "Site",
    }
    required = ("supplier_id",)
    readonly = frozenset(
        {"price", "tax_total", "total", "supplier_name", "last_update_time", "invoices",
         "percentage_invoiced", "lines", "add_lines"}
    )  # fmt: skip
    search_fields = ("po_ref", "supplier_name", "note")

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "po_ref": "",
            "3rd_party_ponumber": "",
            "suppliers_order_reference": "",
            "accounts_ref": "",
            "status": PO_STATUS["draft"],
            "goodsin_status": GOODS_IN["none"],
            "approval_status": 0,
            "date": now[:10] + "T00:00:00",
            "datesent": NO_DATE,
            "est_delivery_date": NO_DATE,
            "duedate": NO_DATE,
            "supplier_id": UNSET,
            "client_id": UNSET,
            "site_id": UNSET,
            "ticket_id": UNSET,
            "salesorder_id": UNSET,
            "currency_code": 1,
            "currency_conversion_rate": 1.0,
            "carriage_price": 0.0,
            "note": "",
            "qbo_id": 0,
            "qbo_company_id": "",
            "xero_id": "",
            "last_synced": NO_DATE,
            "customfields": [],
            "lines": [],
            "last_update_time": now,
        }

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        record["last_update_time"] = now
        if existing is None or "lines" in item or "add_lines" in item:
            lines = self.write_lines(backend, record, existing, item, path, errors)
            if lines is not None:
                record["lines"] = lines
        if existing is None and not record.get("po_ref"):
            record["po_ref"] = f"PO{record['id']:05d}"
        self.totals(record)

    def write_line(
        self,
        backend: Tenant,
        header: dict[str, Any],
        base: dict[str, Any] | None,
        line: Mapping[str, Any],
        sequence: int,
        where: str,
        errors: Errors,
    ) -> dict[str, Any]:
        out = (
            dict(base)
            if base is not None
            else _new_line(backend.next_sequence("purchaseorder_line"), header["id"], sequence)
        )
        out["purchaseorder_id"] = header["id"]
        coerce_fields(out, line, LINE_KINDS, where, errors, LINE_READONLY)
        item_id = out.get("item_id")
        item = backend.table("Item").get(item_id) if isinstance(item_id, int) else None
        if "item_id" in line and item_id not in (UNSET, 0) and item is None:
            errors.add(f"{where}.item_id", f"Item {item_id} does not exist.")
        if item is not None and base is None:
            group = backend.table("AssetGroup").get(item.get("assetgroup_id"))
            nominal = item.get("purchasenominalcode") or (
                group.get("nominalcodepurchase", "") if group else ""
            )
            for key, value in (
                ("name", item.get("name", "")),
                ("item_code", item.get("internalreference") or str(item["id"])),
                (PO_LINE_UNIT_COST, item.get("costprice", 0.0)),
                ("baseprice", item.get("baseprice", 0.0)),
                ("accounts_code", nominal),
            ):
                if key not in line:
                    out[key] = value
        tax = backend.table("Tax").get(out.get("override_tax_code"))
        out["tax_name"] = tax.get("name", "") if tax else ""
        rate = money(tax["value"]) if tax else Decimal(0)
        net = money(out[PO_LINE_QUANTITY]) * money(out[PO_LINE_UNIT_COST])
        out["net_total"] = out["total_costprice"] = round_money(net)
        out["total_tax"] = round_money(net * rate / 100)
        out["total_price"] = round_money(money(out["net_total"]) + money(out["total_tax"]))
        return out

    @staticmethod
    def totals(record: dict[str, Any]) -> None:
        lines = record.get("lines", [])
        net = sum((money(line["net_total"]) for line in lines), Decimal(0))
        tax = sum((money(line["total_tax"]) for line in lines), Decimal(0))
        record["price"] = round_money(net)
        record["tax_total"] = round_money(tax)
        record["total"] = round_money(net + tax + money(record.get("carriage_price") or 0))

    def derived(self, backend: Tenant, record: dict[str, Any]) -> dict[str, Any]:
        invoices = [
            {
                "id": invoice["id"],
                "invoicenumber": invoice.get("invoicenumber", ""),
                "thirdpartyinvoicenumber": invoice.get("thirdpartyinvoicenumber", ""),
                "invoice_date": invoice.get("invoice_date", NO_DATE),
                "total": invoice.get("total", 0.0),
                "voided": invoice.get("voided", False),
            }
            for invoice in backend.table("Invoice").values()
            if invoice.get("purchaseorder_id") == record["id"]
        ]
        ordered = sum((money(line[PO_LINE_QUANTITY]) for line in record["lines"]), Decimal(0))
        invoiced = sum(
            (money(line.get("invoiced_quantity") or 0) for line in record["lines"]), Decimal(0)
        )
        return {
            "supplier_name": backend.name_of("Supplier", record.get("supplier_id")),
            "invoices": invoices,
            "percentage_invoiced": float(invoiced * 100 / ordered) if ordered else 0.0,
        }

    def extra_match(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        statuses = query.get_int_list("po_status")
        if statuses is not None and record.get("status") not in statuses:
            return False
        supplier_id = query.get_int("supplier_id")
        if supplier_id not in (None, UNSET) and record.get("supplier_id") != supplier_id:
            return False
        client_id = query.get_int("client_id")
        return client_id in (None, UNSET) or record.get("client_id") == client_id
