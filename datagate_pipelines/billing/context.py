"""What every rule of one billing run reads besides its own rows: the period, the portal's
settings and the customer, site and contract tables, and the run's tax-code registry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from datagate_pipelines.billing.inputs import Contracts, Customers, Sites
from datagate_pipelines.billing.settings import BillingSettings
from datagate_pipelines.billing.tax import TaxCodes


@dataclass(frozen=True)
class BillingRun:
    """One portal's billing period being billed. `tax_codes` fills as lines are built."""

    period: date
    settings: BillingSettings
    customers: Customers
    sites: Sites
    contracts: Contracts
    tax_codes: TaxCodes
