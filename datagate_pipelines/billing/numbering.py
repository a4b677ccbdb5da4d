"""Invoice numbers, given at finalization (docs/billing.md, Numbering).

Numbers run from the portal's next number in the order (customer name case-folded,
customer HaloPSA id, agreement: contract id ascending, the "no contract" agreement last),
skipping every number whose DocNumber already exists in the portal's QBO company.
DocNumber = prefix + number, at most 21 characters (QBO's limit).

Where docs/billing.md is silent: when invoices of several periods are numbered together (a held
invoice released alongside the next period), earlier periods are numbered first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from datagate_pipelines.billing.agreements import agreement_sort_key
from datagate_pipelines.billing.errors import InvoiceNumberError

DOC_NUMBER_MAX_LENGTH = 21


@dataclass(frozen=True)
class NumberAssignments:
    """The numbers given: `numbers` has invoice_key, number, doc_number in numbering order;
    `next_number` is the portal's next number afterwards (store it before exporting: a
    number is never reused, even if an export fails)."""

    numbers: pd.DataFrame
    next_number: int


def doc_number(prefix: str, number: int) -> str:
    """prefix + number, refused when longer than QBO's 21 characters."""
    text = f"{prefix}{number}"
    if len(text) > DOC_NUMBER_MAX_LENGTH:
        raise InvoiceNumberError(
            f"invoice DocNumber {text!r} has {len(text)} characters; QBO allows at most"
            f" {DOC_NUMBER_MAX_LENGTH}: shorten the portal's invoicing.number_prefix"
            f" ({prefix!r}) or lower invoicing.next_number"
        )
    return text


def first_free_number(
    prefix: str,
    number: int,
    is_taken: Callable[[str], bool],
    *,
    max_skips: int = 100_000,
) -> tuple[int, str]:
    """The first number from `number` on whose DocNumber is not taken, and that DocNumber.

    Raises InvoiceNumberError when more than `max_skips` numbers in a row are taken."""
    text = doc_number(prefix, number)
    skips = 0
    while is_taken(text):
        skips += 1
        if skips > max_skips:
            raise InvoiceNumberError(
                f"no free invoice number after {max_skips} taken numbers from {text!r}"
            )
        number += 1
        text = doc_number(prefix, number)
    return number, text


def assign_numbers(
    invoices: pd.DataFrame,
    *,
    next_number: int,
    prefix: str = "",
    is_taken: Callable[[str], bool] = lambda doc: False,
    max_skips: int = 100_000,
) -> NumberAssignments:
    """Number `invoices` (columns invoice_key, customer_id, customer_name, agreement_key and
    optionally period), skipping DocNumbers for which `is_taken(doc_number)` is true.

    Raises InvoiceNumberError when a DocNumber would exceed 21 characters or more than
    `max_skips` numbers in a row are taken.
    """
    if isinstance(next_number, bool) or not isinstance(next_number, int) or next_number < 0:
        raise InvoiceNumberError(
            f"next invoice number must be a whole number >= 0, got {next_number!r}"
        )
    rows = list(
        zip(
            invoices["invoice_key"].tolist(),
            invoices["customer_name"].tolist(),
            invoices["customer_id"].tolist(),
            invoices["agreement_key"].tolist(),
            invoices["period"].tolist() if "period" in invoices.columns else [None] * len(invoices),
            strict=True,
        )
    )
    keys = [row[0] for row in rows]
    if len(set(keys)) != len(keys):
        raise InvoiceNumberError("assign_numbers: the same invoice_key appears twice")
    rows.sort(
        key=lambda row: (
            row[4] is not None,
            row[4] or 0,
            str(row[1]).casefold(),
            int(row[2]),
            agreement_sort_key(row[3]),
        )
    )
    number = next_number
    assigned = []
    for key, *_ in rows:
        number, text = first_free_number(prefix, number, is_taken, max_skips=max_skips)
        assigned.append((key, number, text))
        number += 1
    frame = pd.DataFrame(assigned, columns=["invoice_key", "number", "doc_number"])
    frame["number"] = frame["number"].astype("int64")
    return NumberAssignments(frame, number)
