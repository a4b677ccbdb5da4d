"""The pure billing engine: data in, invoices out — no Dagster, no I/O, no database.

docs/billing.md is the specification. Entry points:

- `bill_period(period, settings, *, products, customers, sites, contracts, ledger, usage,
  tax_rates, minor_units=False) -> BillingResult` (engine.py): the invoices, lines, site
  subtotals, new ledger rows and rejects of one portal's billing period. Exact numbers go
  in and come out as Decimals, or as integers (cents; × 10**4) — see inputs.py.
- `assign_numbers(invoices, *, next_number, prefix, is_taken) -> NumberAssignments`
  (numbering.py): invoice numbers at finalization.
- `can_finalize(agreement_key, period, prior_statuses)` / `finalization_blockers` /
  `blocked_agreements` (finalization.py): rule 4.
- `build_agreements(products, contracts, use_default_agreement)` (agreements.py).
- Money helpers live in `datagate_pipelines.billing.money` (the one rounding rule).

The names below are loaded when first used (PEP 562), so importing a light module of this
package (periods.py: month arithmetic and labels) does not load numpy and pandas.

Where docs/billing.md is silent, the choices made (each module says more):

- Quantity 0: a 0.00 line and a ledger pair (so a later change applies from the next
  unbilled month, rule 6). Negative quantities bill like negative prices.
- Usage amounts with more than 2 decimals are rounded once, half away from zero.
- Rejected rows (every reason that applies is listed): missing/repeated ids; customer not
  billed; site of another customer; per-contract agreements with a contract that is not
  one of the customer's imported contracts; cycle not "monthly" (trimmed, any case);
  qty/unit price not a Decimal with ≤ 4 decimals (floats are refused); missing or non-date
  start; non-date end; start after end; usage date outside P. A site id absent from the
  site table is kept (no site zip).
- Tax: codes match exactly after trimming; NONTAXABLE needs no zip; a rate row that is not
  a finite Decimal ≥ 0 holds every line needing that (zip, code); rate rows without zip or
  code are rejects ("tax_rate"). On a held invoice, a line whose rate is unknown has
  tax_rate None and tax 0.00, so the held invoice's tax is provisional.
- Line order: site id ascending (no site last), recurring before usage, then product id
  and service month (usage: date, id). Invoice order = numbering order.
- Ledger: rows of the period being billed are ignored unless their optional `final`
  column is true (pairs already on final invoices of P stay billed on a re-run).
- Repairs (rule 6, repairs.py): pairs whose latest ledger row is on a final invoice, from
  the quantity, unit price, zip and rate of that row; a customer no longer billed must be
  in the customers table (billed false) to get its repair lines.
- Periods before the portal's billing start are refused; a is 0 or 1.
- Numbering several periods at once numbers earlier periods first.
- Finalization: "final" covers final, exported, paid, partly_paid, credited and voided.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datagate_pipelines.billing.agreements import (
        agreement_key,
        agreement_sort_key,
        build_agreements,
        export_contracts,
    )
    from datagate_pipelines.billing.codes import normalize_tax_code, normalize_zip
    from datagate_pipelines.billing.engine import (
        INVOICE_COLUMNS,
        LEDGER_COLUMNS,
        LEDGER_TERMS,
        LINE_COLUMNS,
        MINOR_UNIT_COLUMNS,
        REJECT_COLUMNS,
        SITE_SUBTOTAL_COLUMNS,
        BillingResult,
        bill_period,
        result_columns,
    )
    from datagate_pipelines.billing.errors import (
        BillingError,
        BillingInputError,
        InvoiceNumberError,
    )
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
    from datagate_pipelines.billing.tax import NONTAXABLE

# name → the module of this package that defines it
_EXPORTS = {
    "agreement_key": "agreements",
    "agreement_sort_key": "agreements",
    "build_agreements": "agreements",
    "export_contracts": "agreements",
    "normalize_tax_code": "codes",
    "normalize_zip": "codes",
    "BillingResult": "engine",
    "INVOICE_COLUMNS": "engine",
    "LEDGER_COLUMNS": "engine",
    "LEDGER_TERMS": "engine",
    "LINE_COLUMNS": "engine",
    "MINOR_UNIT_COLUMNS": "engine",
    "REJECT_COLUMNS": "engine",
    "SITE_SUBTOTAL_COLUMNS": "engine",
    "bill_period": "engine",
    "result_columns": "engine",
    "BillingError": "errors",
    "BillingInputError": "errors",
    "InvoiceNumberError": "errors",
    "FINAL_STATUSES": "finalization",
    "blocked_agreements": "finalization",
    "can_finalize": "finalization",
    "finalization_blockers": "finalization",
    "NumberAssignments": "numbering",
    "assign_numbers": "numbering",
    "doc_number": "numbering",
    "due_date": "periods",
    "first_service_month": "periods",
    "invoice_date": "periods",
    "period_label": "periods",
    "target_month": "periods",
    "BillingSettings": "settings",
    "NONTAXABLE": "tax",
}

__all__ = [
    "FINAL_STATUSES",
    "INVOICE_COLUMNS",
    "LEDGER_COLUMNS",
    "LEDGER_TERMS",
    "LINE_COLUMNS",
    "MINOR_UNIT_COLUMNS",
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
    "result_columns",
    "target_month",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
