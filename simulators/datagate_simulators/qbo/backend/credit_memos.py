"""CreditMemo (docs/qbo-api.md §B4): an invoice's shape, money owed to the customer.

Its lines, tax, DocNumber and dates follow the Invoice rules (it has no due date or terms).
``Balance`` and ``RemainingCredit`` are the credit that Payments have not applied yet: a
Payment line linking the credit memo (TxnType ``CreditMemo``) applies its amount, the $0
payment pattern of §B4. Whether QBO applies open credits to new invoices on its own is not
confirmed (``Preferences.SalesFormsPrefs.AutoApplyCredit``); the simulator never does [I].
"""

from __future__ import annotations

from decimal import Decimal

from .. import errors
from .transactions import Invoice

__all__ = ["CreditMemo"]

ZERO = Decimal("0")


class CreditMemo(Invoice):
    name = "CreditMemo"
    path = "creditmemo"
    voidable = False
    fields = (Invoice.fields - {"DueDate", "SalesTermRef", "Deposit", "DepositToAccountRef"}) | {
        "InvoiceRef"
    }
    read_only = frozenset(
        {"TotalAmt", "Balance", "RemainingCredit", "HomeBalance", "HomeTotalAmt", "LinkedTxn"}
    )
    queryable = frozenset({"docnumber", "txndate", "customerref", "balance", "totalamt"})

    def build(self, company, data, existing, include):
        record = super().build(company, data, existing, include)
        record.pop("DueDate", None)
        applied = company.applied_to_credit_memo(existing["Id"]) if existing else {}
        remaining = record["TotalAmt"] - sum(applied.values(), ZERO)
        if remaining < 0:
            raise errors.business_validation(
                "The credit memo total cannot be less than the credit applied from it.", "Line"
            )
        record["Balance"] = record["RemainingCredit"] = remaining
        record["LinkedTxn"] = [{"TxnId": pid, "TxnType": "Payment"} for pid in applied]
        return record
