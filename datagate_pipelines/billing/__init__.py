"""The pure billing engine: data in, invoices out — no Dagster, no I/O, no database.

BILLING.md is the specification; each module says where it is silent and what was chosen.

- `bill_period(period, settings, *, products, customers, sites, contracts, ledger, usage,
  tax_rates) -> BillingResult` (engine.py)
- `assign_numbers(invoices, *, next_number, prefix, is_taken) -> NumberAssignments`
  (numbering.py)
- `can_finalize(agreement_key, period, prior_statuses)` (finalization.py)
"""

from datagate_pipelines.billing.agreements import (
    agreement_key,
    agreement_sort_key,
    build_agreements,
    export_contracts,
)
from datagate_pipelines.billing.engine import (
    INVOICE_COLUMNS,
    LEDGER_COLUMNS,
    LINE_COLUMNS,
    REJECT_COLUMNS,
    SITE_SUBTOTAL_COLUMNS,
    BillingResult,
    bill_period,
)
from datagate_pipelines.billing.errors import BillingError, BillingInputError, InvoiceNumberError
from datagate_pipelines.billing.finalization import (
    FINAL_STATUSES,
    blocked_agreements,
    can_finalize,
    finalization_blockers,
)
from datagate_pipelines.billing.numbering import NumberAssignments, assign_numbers, doc_number
from datagate_pipelines.billing.periods import (
    due_date,
    first_service_month,
    invoice_date,
    period_label,
    target_month,
)
from datagate_pipelines.billing.settings import BillingSettings
from datagate_pipelines.billing.tax import NONTAXABLE, normalize_tax_code, normalize_zip

__all__ = [
    "FINAL_STATUSES",
    "INVOICE_COLUMNS",
    "LEDGER_COLUMNS",
    "LINE_COLUMNS",
    "NONTAXABLE",
    "REJECT_COLUMNS",
    "SITE_SUBTOTAL_COLUMNS",
    "BillingError",
    "BillingInputError",
    "BillingResult",
    "BillingSettings",
    "InvoiceNumberError",
    "NumberAssignments",
    "agreement_key",
    "agreement_sort_key",
    "assign_numbers",
    "bill_period",
    "blocked_agreements",
    "build_agreements",
    "can_finalize",
    "doc_number",
    "due_date",
    "export_contracts",
    "finalization_blockers",
    "first_service_month",
    "invoice_date",
    "normalize_tax_code",
    "normalize_zip",
    "period_label",
    "target_month",
]
