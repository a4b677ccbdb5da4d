"""``/api/InvoicePayment``: payments recorded against invoices, and what they do to the
invoice's ``amountpaid``, ``amountdue``, ``paymentstatus`` and ``datepaid``. §A5

Endpoints and fields are confirmed (SPEC24: ``GET|POST /api/InvoicePayment``,
``GET|DELETE /api/InvoicePayment/{id}``; ``invoice_id, date, amount, method, status,
thirdpartyid, qbo_id, …``). What is not, the simulator chooses here [I]:

- the list reply has no documented schema: rows come wrapped like other lists, under
  ``invoicepayments``;
- ``paymentstatus`` on the invoice: 0 unpaid, 1 part paid, 2 paid (:data:`PAYMENT_STATUS`,
  the reading §A5 calls a guess);
- ``method`` is stored as sent (Halo's values are ids from a lookup nobody documented);
- a payment is refused (400) for an invoice that is voided, for an amount that is not
  positive, or for more than the invoice still has due.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from datagate_simulators.halopsa.backend.base import Resource, Tenant
from datagate_simulators.halopsa.conventions import NO_DATE, UNSET, money, round_money

#: The invoice's ``paymentstatus`` by how much is paid [I] (docs/halopsa-api.md §A5).
PAYMENT_STATUS = {"unpaid": 0, "part_paid": 1, "paid": 2}


class InvoicePayment(Resource):
    name = "InvoicePayment"
    list_key = "invoicepayments"
    scope_area = "invoices"
    fields: ClassVar[dict[str, str]] = {
        "invoice_id": "ref",
        "date": "datetime",
        "amount": "float",
        "method": "int",
        "status": "int",
        "module_id": "int",
        "thirdpartyid": "str",
        "qbo_id": "int",
        "xero_id": "str",
        "intent_id": "str",
    }
    refs: ClassVar[dict[str, str]] = {"invoice_id": "Invoice"}
    required = ("invoice_id",)
    readonly = frozenset({"client_id", "invoice_invoicenumber", "invoice_match_id"})
    filters: ClassVar[dict[str, str]] = {"invoice_id": "invoice_id", "client_id": "client_id"}
    search_fields = ("thirdpartyid", "invoice_invoicenumber")

    def defaults(self, backend: Tenant, now: str) -> dict[str, Any]:
        return {
            "invoice_id": UNSET,
            "date": now[:10] + "T00:00:00",
            "amount": 0.0,
            "method": 0,
            "status": 0,
            "module_id": 0,
            "thirdpartyid": "",
            "qbo_id": 0,
            "xero_id": "",
            "intent_id": "",
            "client_id": UNSET,
            "invoice_invoicenumber": "",
        }

    def finish(self, backend, record, existing, item, path, errors, now) -> None:  # type: ignore[override]
        invoice = backend.table("Invoice").get(record.get("invoice_id"))
        if invoice is None:
            return  # the reference check has reported it
        record["client_id"] = invoice.get("client_id", UNSET)
        record["invoice_invoicenumber"] = invoice.get("invoicenumber", "")
        amount = money(record["amount"])
        if invoice.get("voided"):
            errors.add(f"{path}.invoice_id", "Payments cannot be added to a voided invoice.")
        elif amount <= 0:
            errors.add(f"{path}.amount", "The payment amount must be more than zero.")
        else:
            due = money(invoice["total"]) - _paid(backend, invoice["id"], but=record["id"])
            if amount > due:
                errors.add(
                    f"{path}.amount",
                    f"The payment amount {amount} is more than the amount due {due}.",
                )

    def after_commit(
        self, backend: Tenant, record: dict[str, Any], created: bool, now: str
    ) -> None:
        settle_invoice(backend, record["invoice_id"], now)

    def on_delete(self, backend: Tenant, record: dict[str, Any]) -> None:
        invoice = backend.table("Invoice").get(record["invoice_id"])
        if invoice is not None:
            settle_invoice(backend, record["invoice_id"], invoice.get("last_modified", NO_DATE))


def _paid(backend: Tenant, invoice_id: int, *, but: int | None = None) -> Decimal:
    return sum(
        (
            money(p["amount"])
            for p in backend.table("InvoicePayment").values()
            if p["invoice_id"] == invoice_id and p["id"] != but
        ),
        Decimal(0),
    )


def settle_invoice(backend: Tenant, invoice_id: int, now: str) -> None:
    """The invoice's payment fields from its payments."""
    invoice = backend.table("Invoice").get(invoice_id)
    if invoice is None:
        return
    payments = [
        p for p in backend.table("InvoicePayment").values() if p["invoice_id"] == invoice_id
    ]
    paid = sum((money(p["amount"]) for p in payments), Decimal(0))
    total = money(invoice["total"])
    if paid <= 0:
        status = PAYMENT_STATUS["unpaid"]
    elif paid < total:
        status = PAYMENT_STATUS["part_paid"]
    else:
        status = PAYMENT_STATUS["paid"]
    backend.replace_record(
        "Invoice",
        {
            **invoice,
            "amountpaid": round_money(paid),
            "amountdue": 0.0 if invoice.get("voided") else round_money(total - paid),
            "paymentstatus": status,
            "datepaid": max(p["date"] for p in payments)
            if status == PAYMENT_STATUS["paid"]
            else NO_DATE,
            "last_modified": now,
        },
    )
