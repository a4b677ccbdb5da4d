"""The portal settings that change what an invoice bills (README.md, portals.yaml `sync`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from datagate_pipelines.billing.errors import BillingInputError
from datagate_pipelines.billing.periods import as_date, month_start


@dataclass(frozen=True, kw_only=True)
class BillingSettings:
    """One portal's billing settings.

    - `in_advance_months` (a): 0 or 1. The invoice for period P bills service months up to
      T = P + a.
    - `allow_pro_rata`: bill partial months by active days (A / D) or in full.
    - `use_default_agreement`: one agreement per customer, or one per contract.
    - `billing_start`: the first billing period ever billed for the portal (any day of that
      month; it is normalised to the first). The first service month is billing_start + a.
    - `payment_terms_days`: due date = invoice date + this many days.
    - `credit_past_changes`: rule 6 — months already billed on final invoices whose
      amount under the product's current dates differs from what was billed are credited
      and billed again on the agreement's next invoice (repair lines, repairs.py).
    """

    billing_start: date
    in_advance_months: int = 1
    allow_pro_rata: bool = True
    use_default_agreement: bool = True
    payment_terms_days: int = 30
    credit_past_changes: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "billing_start", month_start(as_date(self.billing_start, "billing_start"))
        )
        # docs/billing.md defines a as 0 or 1; anything else is a configuration error.
        if isinstance(self.in_advance_months, bool) or self.in_advance_months not in (0, 1):
            raise BillingInputError(
                f"in_advance_months must be 0 or 1, got {self.in_advance_months!r}"
            )
        if (
            isinstance(self.payment_terms_days, bool)
            or not isinstance(self.payment_terms_days, int)
            or self.payment_terms_days < 0
        ):
            raise BillingInputError(
                f"payment_terms_days must be a whole number >= 0, got {self.payment_terms_days!r}"
            )
        for name in ("allow_pro_rata", "use_default_agreement", "credit_past_changes"):
            if not isinstance(getattr(self, name), bool):
                raise BillingInputError(
                    f"{name} must be true or false, got {getattr(self, name)!r}"
                )
