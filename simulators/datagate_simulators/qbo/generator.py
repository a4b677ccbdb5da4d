"""Deterministic QBO companies: what a new company holds, created through the API's own rules.

``QBOBackend.seed_company`` creates a company, fills it here and connects the OAuth app. The
same arguments always give the same records, ids included (their times come from the
backend's clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol

__all__ = ["DEFAULT_ACCOUNTS", "DEFAULT_TERMS", "NewCompany", "populate_company"]

#: A new company's chart of accounts; "Services" is the income account items post to. Like
#: an MSP's books with account numbers on, it also has numbered income and cost accounts:
#: the HaloPSA generator's nominal codes (4010 …, 5010 …) are the same numbers.
DEFAULT_ACCOUNTS: tuple[dict[str, Any], ...] = (
    {"Name": "Services", "AccountType": "Income", "AccountSubType": "ServiceFeeIncome"},
    {
        "Name": "Sales of Product Income",
        "AccountType": "Income",
        "AccountSubType": "SalesOfProductIncome",
    },
    {
        "Name": "Accounts Receivable (A/R)",
        "AccountType": "Accounts Receivable",
        "AccountSubType": "AccountsReceivable",
    },
    {
        "Name": "Undeposited Funds",
        "AccountType": "Other Current Asset",
        "AccountSubType": "UndepositedFunds",
    },
    {"Name": "Checking", "AccountType": "Bank", "AccountSubType": "Checking"},
    {
        "Name": "Cost of Goods Sold",
        "AccountType": "Cost of Goods Sold",
        "AccountSubType": "SuppliesMaterialsCogs",
    },
    {
        "Name": "Inventory Asset",
        "AccountType": "Other Current Asset",
        "AccountSubType": "Inventory",
    },
    {
        "Name": "Accounts Payable (A/P)",
        "AccountType": "Accounts Payable",
        "AccountSubType": "AccountsPayable",
    },
    *(
        {"Name": name, "AcctNum": number, "AccountType": kind}
        for number, name, kind in (
            ("4010", "Voice Services", "Income"),
            ("4020", "Connectivity Services", "Income"),
            ("4030", "Managed Services", "Income"),
            ("4100", "Hardware Sales", "Income"),
            ("4900", "Discounts Given", "Income"),
            ("5010", "Voice Carrier Costs", "Cost of Goods Sold"),
            ("5020", "Connectivity Carrier Costs", "Cost of Goods Sold"),
            ("5030", "Managed Services Costs", "Cost of Goods Sold"),
            ("5100", "Hardware Purchases", "Cost of Goods Sold"),
            ("5200", "Subcontracted Labour", "Cost of Goods Sold"),
            ("5900", "Freight and Delivery", "Expense"),
        )
    ),
)

#: QBO's standard terms; "Net 30" (Id 3) is the company default.
DEFAULT_TERMS: tuple[dict[str, Any], ...] = (
    {"Name": "Due on receipt", "DueDays": 0},
    {"Name": "Net 15", "DueDays": 15},
    {"Name": "Net 30", "DueDays": 30},
    {"Name": "Net 60", "DueDays": 60},
)


class NewCompany(Protocol):
    """What filling a company asks of it; ``Company`` is one.

    Declared here so that this module needs nothing from the backend, which calls it.
    """

    def create(self, entity: str, body: Any, include: Iterable[str] = ()) -> dict[str, Any]: ...

    def find(self, entity: str, **props: Any) -> dict[str, Any] | None: ...

    def create_tax_code(self, body: Any) -> dict[str, Any]: ...


def populate_company(
    company: NewCompany,
    *,
    accounts: Iterable[Mapping[str, Any]] | None = None,
    terms: Iterable[Mapping[str, Any]] | None = None,
    items: Iterable[Mapping[str, Any]] = (),
    customers: Iterable[Mapping[str, Any]] = (),
    tax_codes: Iterable[Mapping[str, Any]] = (),
) -> None:
    """Fill a new company's lists.

    ``accounts`` defaults to :data:`DEFAULT_ACCOUNTS` (an Income account "Services" is added
    if missing); ``terms`` to :data:`DEFAULT_TERMS`. ``items``/``customers`` are API-shaped
    bodies (an item without ``IncomeAccountRef`` posts to "Services"). ``tax_codes`` are
    ``{"name", "rate" (percent), "agency" (optional)}``: each becomes a TaxCode with one
    TaxRate.
    """
    account_list = [dict(a) for a in (DEFAULT_ACCOUNTS if accounts is None else accounts)]
    if not any(a.get("Name") == "Services" for a in account_list):
        account_list.insert(0, dict(DEFAULT_ACCOUNTS[0]))
    for account in account_list:
        company.create("Account", account)
    for term in DEFAULT_TERMS if terms is None else terms:
        company.create("Term", dict(term))
    services = company.find("Account", Name="Services")
    assert services is not None  # added above when the accounts given lack it
    for item in items:
        body = dict(item)
        body.setdefault("IncomeAccountRef", {"value": services["Id"]})
        company.create("Item", body)
    for customer in customers:
        company.create("Customer", dict(customer))
    agencies: dict[str, str] = {}
    for tax_code in tax_codes:
        agency = str(tax_code.get("agency", "Simulated Tax Agency"))
        if agency not in agencies:
            agencies[agency] = company.create("TaxAgency", {"DisplayName": agency})["Id"]
        rate = Decimal(str(tax_code["rate"]))
        company.create_tax_code(
            {
                "TaxCode": tax_code["name"],
                "TaxRateDetails": [
                    {
                        "TaxRateName": tax_code.get("rate_name", tax_code["name"]),
                        "RateValue": rate,
                        "TaxAgencyId": agencies[agency],
                        "TaxApplicableOn": "Sales",
                    }
                ],
            }
        )
