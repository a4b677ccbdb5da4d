"""HaloPSA invoice payments (`/api/InvoicePayment`, docs/halopsa-api.md §A5): the one place
that decides what Halo has not confirmed about them.

Confirmed: the endpoints and the field names (`invoice_id`, `date`, `amount`, `method`,
`status`, `thirdpartyid`, `qbo_id`, …) and that an invoice carries `amountpaid`, `amountdue`
and `paymentstatus`. Not confirmed, and decided here [I]:
- `thirdpartyid` holds our reference (`reference_for`) and comes back as sent: every create
  is preceded by a lookup of the invoice's payments for it, so a re-run never records a
  payment twice. A create whose answer lacks it is an error, since such lookups would fail;
- `method` is an id from the tenant's payment-method list, whose values nobody documented:
  portals.yaml chooses it (`payments.halopsa_method`, `halopsa_credit_method`,
  `halopsa_methods` by QBO payment-method name);
- `status` is not sent, nor `qbo_id`: the latter belongs to HaloPSA's own QBO sync, which a
  portal using this system does not run (README.md);
- `date` is sent as `YYYY-MM-DDT00:00:00` and `amount` as a decimal string, as invoices are;
- the invoice's `paymentstatus` reads 0 unpaid, 1 part paid, 2 paid (§A5 calls it a guess).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

#: The invoice's `paymentstatus` values [I].
PAYMENT_STATUS = {0: "unpaid", 1: "part_paid", 2: "paid"}
#: The longest reference we write (`thirdpartyid`'s length is not documented).
MAX_REFERENCE = 100


@dataclass(frozen=True)
class HaloPayment:
    """One payment to record on a HaloPSA invoice."""

    invoice_id: int
    date: date
    amount: Decimal
    method: int
    reference: str


def reference_for(qbo_payment_id: str, qbo_invoice_id: str, version: int) -> str:
    """Our reference for one version of a QBO payment application (a HaloPSA tenant serves
    one portal, whose QBO company numbers its payments and invoices uniquely)."""
    text = f"datagate:qbo-payment:{qbo_payment_id}:invoice:{qbo_invoice_id}:v{version}"
    if len(text) > MAX_REFERENCE:
        raise ValueError(f"reference {text!r} is longer than {MAX_REFERENCE} characters")
    return text


def payment_body(payment: HaloPayment) -> dict[str, Any]:
    """The `POST /api/InvoicePayment` element."""
    return {
        "invoice_id": payment.invoice_id,
        "date": f"{payment.date.isoformat()}T00:00:00",
        "amount": format(payment.amount, "f"),
        "method": payment.method,
        "thirdpartyid": payment.reference,
    }


def reference_of(record: dict[str, Any]) -> str | None:
    """The reference a payment record carries (None: not one of ours)."""
    value = record.get("thirdpartyid")
    return str(value) if value not in (None, "") else None


def payment_status_name(value: Any) -> str | None:
    """An invoice's `paymentstatus` as a word (None when unknown)."""
    try:
        return PAYMENT_STATUS.get(int(value))
    except (TypeError, ValueError):
        return None
