"""Recurring invoices and invoices: ``InvoiceHeader`` with ``InvoiceDetail`` lines. §4.4–4.5

Both list under the key ``invoices``. [C] HAPI, PYPI. Lines are in list rows only with
``includelines=true``; GET by id always has them. [C] SPEC24
Posting ``lines`` replaces the whole set: lines left out are deleted. A posted line whose
``id`` is one of this header's lines updates that line (fields not sent are kept); any other
line is new. [C] HAPI #13, REAL-RI script
The server computes each line's ``net_amount``, ``tax_rate``, ``tax_amount``, ``total_price``
and the header's ``total``, ``tax_total``, ``amountdue``. [I] REAL-RI (825 × 20% = 165)
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
    add_days,
    money,
    parse_datetime,
    round_money,
)
from datagate_simulators.halopsa.errors import ValidationFailed

LINE_KINDS: dict[str, str] = {
    "_itemid": "ref",
    "item_code": "str",
    "item_shortdescription": "str",
    "item_longdescription": "str",
    "nominal_code": "str",
    "qty_order": "float",
    "unit_price": "float",
    "unit_cost": "float",
    "baseprice": "float",
    "discount": "float",
    "tax_code": "taxcode_str",
    "tax_code_overriden": "bool",
    "override_tax_code": "ref",
    "contract_id": "ref",
    "site": "ref",
    "dsite": "ref",
    "asset_id": "ref",
    "ticket_id": "ref",
    "group_id": "int",
    "isgroupdesc": "bool",
    "sequenceid": "int",
    "startdate": "datetime",
    "enddate": "datetime",
    "isinactive": "bool",
    "autorenew": "bool",
    "recurring_invoice_quantity_type": "int",
    "billingperiod": "int",
}
LINE_READONLY = frozenset(
    {"ihid", "net_amount", "tax_amount", "tax_rate", "total_price", "net_total", "total_tax",
     "item_tax_code", "item_tax_name", "item_taxable", "decimalplacesforinvoices"}
)  # fmt: skip
LINE_REFS = {"_itemid": "Item", "contract_id": "ClientContract", "site": "Site"}


def new_line(line_id: int, header_id: int, sequence: int) -> dict[str, Any]:
    return {
        "id": line_id,
        "ihid": header_id,
        "_itemid": UNSET,
        "item_code": "",
        "item_shortdescription": "",
        "item_longdescription": "",
        "nominal_code": "",
        "qty_order": 1.0,
        "unit_price": 0.0,
        "unit_cost": 0.0,
        "baseprice": 0.0,
        "discount": 0.0,
        "net_amount": 0.0,
        "tax_amount": 0.0,
        "tax_rate": 0.0,
        "total_price": 0.0,
        "net_total": 0.0,
        "total_tax": 0.0,
        "tax_code": "",
        "tax_code_overriden": False,
        "override_tax_code": UNSET,
        "item_tax_code": UNSET,
        "item_tax_name": "",
        "item_taxable": True,
        "contract_id": UNSET,
        "site": UNSET,
        "dsite": UNSET,
        "asset_id": UNSET,
        "ticket_id": UNSET,
        "group_id": 0,
        "isgroupdesc": False,
        "sequenceid": sequence,
        "startdate": NO_DATE,
        "enddate": NO_DATE,
        "isinactive": False,
        "autorenew": False,
        "recurring_invoice_quantity_type": 0,
        "decimalplacesforinvoices": 2,
    }


HEADER_KINDS: dict[str, str] = {
    "client_id": "ref",
    "sitenumber": "ref",
    "contract_id": "ref",
    "reference": "str",
    "thirdpartyinvoicenumber": "str",
    "invoicenumber": "str",
    "notes_1": "str",
    "notes_2": "str",
    "notes_3": "str",
    "order_number": "str",
    "cust_order_number": "str",
    "currency": "str",
    "currency_code": "int",
    "paymentterms": "int",
    "invoice_date": "datetime",
    "duedate": "datetime",
    "due_date_int": "int",
    "due_date_type": "int",
    "posted": "bool",
    "paymentstatus": "int",
    "amountpaid": "float",
    "hideinvoice": "bool",
    "ticket_id": "ref",
    "invoicetype": "int",
    "disabled": "bool",
    "requires_approval": "bool",
    "period": "int",
    "schedule_id": "int",
    "lastcreated": "datetime",
    "nextcreationdate": "datetime",
    "date_created": "datetime",
    # A supplier invoice is an invoice tied to a purchase order (§A2). [I] for the meaning
    "purchaseorder_id": "ref",
    "supplier_id": "ref",
}
HEADER_READONLY = frozenset(
    {"total", "tax_total", "revenue", "amountdue", "is_recurring_invoice", "last_modified",
     "client_name", "site_name", "contract_ref", "voided", "lines", "add_lines"}
)  # fmt: skip


class _InvoiceBase(Resource):
    list_key = "invoices"
    scope_area = "invoices"
    use = "invoice"
    fields: ClassVar[dict[str, str]] = HEADER_KINDS
    refs: ClassVar[dict[str, str]] = {
        "client_id": "Client",
        "sitenumber": "Site",
        "contract_id": "ClientContract",
        "purchaseorder_id": "PurchaseOrder",
        "supplier_id": "Supplier",
    }
    required = ("client_id",)
    readonly = HEADER_READONLY
    heavy_fields = ("lines",)
    search_fields = (
        "invoicenumber",
        "reference",
        "thirdpartyinvoicenumber",
        "client_name",
        "notes_1",
    )

    def common_defaults(self, now: str) -> dict[str, Any]:
        return {
            "client_id": UNSET,
            "sitenumber": 0,  # 0 = none on headers. [C] REAL-RI
            "invoicenumber": "0",
            "thirdpartyinvoicenumber": "",
            "posted": False,
            "reference": "",
            "notes_1": "",
            "notes_2": "",
            "notes_3": "",
            "order_number": "",
            "cust_order_number": "",
            "currency": "$",
            "currency_code": 1,
            "paymentterms": 0,
            "paymentstatus": UNSET,
            "amountpaid": 0.0,
            "amountdue": 0.0,
            "total": 0.0,
            "tax_total": 0.0,
            "revenue": 0.0,
            "contract_id": 0,  # 0 on headers, -1 on lines. [C] REAL-RI
            "ticket_id": UNSET,
            "hideinvoice": False,
            "invoicetype": 0,
            "due_date_int": 30,
            "due_date_type": 0,
            "requires_approval": False,
            "disabled": False,
            "date_created": now,
            "last_modified": now,
            "lines": [],
        }

    # ---- writing

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        record["last_modified"] = now
        if existing is None or "lines" in item or "add_lines" in item:
            lines = self.write_lines(backend, record, existing, item, path, errors)
            if lines is not None:
                record["lines"] = lines
        self._totals(record)
        self.finish_header(backend, record, existing, item, path, errors, now)

    def finish_header(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[no-untyped-def]
        """Invoice / RecurringInvoice specifics."""

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
            else new_line(backend.next_sequence("invoice_line"), header["id"], sequence)
        )
        out["ihid"] = header["id"]
        coerce_fields(out, line, LINE_KINDS, where, errors, LINE_READONLY)
        for name, target in LINE_REFS.items():
            value = out.get(name)
            if (
                name in line
                and isinstance(value, int)
                and value not in (UNSET, 0)
                and not backend.exists(target, value)
            ):
                errors.add(f"{where}.{name}", f"{target} {value} does not exist.")
        item = backend.table("Item").get(out.get("_itemid"))
        if item is not None:
            out["item_tax_code"] = item.get("taxcode", UNSET)
            out["item_taxable"] = item.get("taxable", True)
            if base is None:  # a new line takes the item's defaults for what it does not send
                for line_key, item_key in (("item_shortdescription", "name"), ("item_longdescription", "description"), ("nominal_code", "nominalcode"),
                                           ("unit_price", "baseprice"), ("unit_cost", "costprice"), ("baseprice", "baseprice")):  # fmt: skip
                    if line_key not in line:
                        out[line_key] = item.get(item_key, out[line_key])
                if "item_code" not in line:
                    out["item_code"] = item.get("internalreference") or str(item["id"])
                if "tax_code" not in line and item.get("taxcode", UNSET) not in (UNSET, 0):
                    out["tax_code"] = str(item["taxcode"])
        tax_id = self._effective_tax(out)
        tax = backend.table("Tax").get(tax_id) if tax_id is not None else None
        if tax_id is not None and tax is None:
            errors.add(f"{where}.tax_code", f"Tax {tax_id} does not exist.")
        out["item_tax_name"] = backend.name_of("Tax", out.get("item_tax_code"))
        rate = money(tax["value"]) if tax else Decimal(0)
        net = money(out["qty_order"]) * money(out["unit_price"])
        tax_amount = net * rate / 100
        out["tax_rate"] = float(rate)
        out["net_amount"] = out["net_total"] = round_money(net)
        out["tax_amount"] = out["total_tax"] = round_money(tax_amount)
        out["total_price"] = round_money(money(out["net_amount"]) + money(out["tax_amount"]))
        return out

    @staticmethod
    def _effective_tax(line: Mapping[str, Any]) -> int | None:
        if line.get("tax_code_overriden") and line.get("override_tax_code") not in (None, UNSET, 0):
            return int(line["override_tax_code"])
        code = line.get("tax_code")
        if code not in (None, "", "0", str(UNSET)):
            return int(code)
        return None

    def _totals(self, record: dict[str, Any]) -> None:
        lines = [line for line in record.get("lines", []) if not line.get("isinactive")]
        net = sum((money(line["net_amount"]) for line in lines), Decimal(0))
        tax = sum((money(line["tax_amount"]) for line in lines), Decimal(0))
        record["revenue"] = round_money(net)
        record["tax_total"] = round_money(tax)
        record["total"] = round_money(net + tax)
        paid = money(record.get("amountpaid") or 0)
        record["amountdue"] = 0.0 if record.get("voided") else round_money(net + tax - paid)

    # ---- reading

    def derived(self, backend: Tenant, record: dict[str, Any]) -> dict[str, Any]:
        contract = backend.table("ClientContract").get(record.get("contract_id"))
        return {
            "client_name": backend.name_of("Client", record.get("client_id")),
            "site_name": backend.name_of("Site", record.get("sitenumber")),
            "contract_ref": contract.get("ref", "") if contract else "",
        }

    def list_row(
        self, backend: Tenant, full_row: dict[str, Any], query: ListQuery | None
    ) -> dict[str, Any]:
        row = super().list_row(backend, full_row, query)
        if query is not None and query.includelines:
            row["lines"] = full_row.get("lines", [])
        return row

    def extra_match(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        client_ids = query.get_int_list("client_ids")
        if client_ids is not None and record.get("client_id") not in client_ids:
            return False
        client_id = query.get_int("client_id")
        if client_id not in (None, UNSET) and record.get("client_id") != client_id:
            return False
        # A header matches contract_id / site_id when it, or any of its lines, points there.
        contract_id = query.get_int("contract_id")
        if (
            contract_id not in (None, UNSET)
            and record.get("contract_id") != contract_id
            and all(line.get("contract_id") != contract_id for line in record.get("lines", []))
        ):
            return False
        site_id = query.get_int("site_id")
        return (
            site_id in (None, UNSET)
            or record.get("sitenumber") == site_id
            or any(line.get("site") == site_id for line in record.get("lines", []))
        )


class RecurringInvoice(_InvoiceBase):
    """``/api/RecurringInvoice``: templates with NEGATIVE ids (-1, -2 …). [C] REAL-RI

    ``period`` 2 = monthly (the REAL-RI example; the mapping is [I]).
    """

    name = "RecurringInvoice"
    id_sign = -1

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            **self.common_defaults(now),
            "is_recurring_invoice": True,
            "invoice_date": NO_DATE,
            "schedule_id": 0,
            "lastcreated": NO_DATE,
            "nextcreationdate": NO_DATE,
            "period": 2,
        }

    def finish_header(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        if existing is None and not record.get("schedule_id"):
            record["schedule_id"] = backend.next_sequence("schedule")


#: Credit notes are Invoice records (docs/halopsa-api.md §A4). What the spec does not say —
#: the `invoicetype` a credit carries, and how lists show credits — is the simulator's
#: choice, made here and nowhere else [I]:
#: - POST with `_create_credit_note: true` makes a credit note (`invoicetype` below); its
#:   lines and total are kept as sent (positive or negative);
#: - lists leave credits out unless `includecredits=true`, and invoices when
#:   `includeinvoices=false`;
#: - `creditlinkedtoinvoiceid`, when set, must name an invoice of the same client.
CREDIT_NOTE_FLAG = "_create_credit_note"
CREDIT_NOTE_INVOICE_TYPE = 2


def is_credit_note(record: Mapping[str, Any]) -> bool:
    return record.get("invoicetype") == CREDIT_NOTE_INVOICE_TYPE


class Invoice(_InvoiceBase):
    """``/api/Invoice``: positive ids, ``invoicenumber`` handed out on create; credit notes
    too (see CREDIT_NOTE_FLAG).

    ``reference`` and ``thirdpartyinvoicenumber`` are kept as sent, so a client can find its
    invoice again with ``search=``. ``POST /api/Invoice/{id}/void`` sets ``voided``. [C] SPEC25
    """

    name = "Invoice"
    # A client invoice needs its client, a supplier invoice its supplier (checked below).
    required = ()

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        today = now[:10] + "T00:00:00"
        return {
            **self.common_defaults(now),
            "invoicenumber": "",
            "is_recurring_invoice": False,
            "invoice_date": today,
            "duedate": "",
            "dateposted": NO_DATE,
            "datepaid": NO_DATE,
            "paymentstatus": 0,
            "voided": False,
            "recurring_invoice_id": UNSET,
            "creditlinkedtoinvoiceid": UNSET,
        }

    def finish_header(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        if existing is None and all(
            record.get(key) in (None, "", UNSET, 0) for key in ("client_id", "supplier_id")
        ):
            errors.add(f"{path}.client_id", "The client_id field is required.")
        record.pop(CREDIT_NOTE_FLAG, None)  # a flag to write, never stored
        wants_credit = item.get(CREDIT_NOTE_FLAG) in (True, "true", "True", 1)
        if existing is None and wants_credit:
            record["invoicetype"] = CREDIT_NOTE_INVOICE_TYPE
        self._check_credited_invoice(backend, record, path, errors)
        if not record.get("invoicenumber"):
            record["invoicenumber"] = str(backend.next_sequence("invoice_number"))
        if not record.get("duedate") or (existing is None and "duedate" not in item):
            record["duedate"] = add_days(
                record["invoice_date"], int(record.get("due_date_int") or 0)
            )
        if record.get("posted") and (existing is None or not existing.get("posted")):
            record["dateposted"] = now

    def _check_credited_invoice(self, backend, record, path, errors) -> None:  # type: ignore[no-untyped-def]
        linked = record.get("creditlinkedtoinvoiceid")
        if linked in (None, UNSET, 0):
            return
        try:
            invoice_id = int(linked)
        except (TypeError, ValueError):
            invoice_id = None
        invoice = (
            backend.get("Invoice", invoice_id)
            if invoice_id is not None and backend.exists("Invoice", invoice_id)
            else None
        )
        if invoice is None or invoice.get("client_id") != record.get("client_id"):
            errors.add(
                f"{path}.creditlinkedtoinvoiceid",
                f"Invoice {linked} does not exist for this client.",
            )

    def extra_match(self, backend: Tenant, record: dict[str, Any], query: ListQuery) -> bool:
        if not super().extra_match(backend, record, query):
            return False
        if is_credit_note(record):
            if not query.get_bool("includecredits"):
                return False
        elif not query.get_bool("includeinvoices", True):
            return False
        if query.get_bool("postedonly") and not record.get("posted"):
            return False
        if query.get_bool("notpostedonly") and record.get("posted"):
            return False
        statuses = query.get_int_list("paymentstatuses")
        if statuses is not None and record.get("paymentstatus") not in statuses:
            return False
        # Supplier invoices (tied to a PO) list only when asked for: the parameters
        # purchaseorder_id and includepoinvoices exist (§A2); that they are left out
        # otherwise is [I].
        po_id = query.get_int("purchaseorder_id")
        if po_id not in (None, UNSET) and record.get("purchaseorder_id") != po_id:
            return False
        supplier_invoice = record.get("purchaseorder_id") not in (None, UNSET, 0)
        if supplier_invoice and po_id is None and not query.get_bool("includepoinvoices"):
            return False
        recurring_id = query.get_int("recurringinvoice_id")
        if recurring_id is not None and record.get("recurring_invoice_id") != recurring_id:
            return False
        try:
            start = parse_datetime(query.params.get("start_date"))
            end = parse_datetime(query.params.get("end_date"))
        except ValueError:
            raise ValidationFailed({"start_date": ["The value is not a valid date."]}) from None
        if start or end:
            when = parse_datetime(record.get("invoice_date"))
            if when is None or (start and when < start) or (end and when > end):
                return False
        return True
