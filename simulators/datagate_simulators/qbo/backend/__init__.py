"""The QBO simulator's backend: companies (realms), OAuth, throttles — plain Python, no HTTP.

The same backend serves in-process tests (call it directly, or through
:func:`~.app.create_app` with ``SyncASGITransport``) and the standalone server.

>>> backend = QBOBackend(clock=FakeClock())
>>> acme = backend.seed_company("9130350000000000", client_id="id", client_secret="secret",
...                             refresh_token="RT1")
>>> acme.create("Customer", {"DisplayName": "Acme"})["Id"]
'1'
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ..clock import Clock, SystemClock
from ..oauth import ACCOUNTING_SCOPE, OAuthServer
from ..settings import QBOSettings
from ..throttle import RealmStats, Throttle
from .company import Company

__all__ = ["DEFAULT_ACCOUNTS", "DEFAULT_TERMS", "QBOBackend"]

#: A new company's chart of accounts; "Services" is the income account items post to.
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
)

#: QBO's standard terms; "Net 30" (Id 3) is the company default.
DEFAULT_TERMS: tuple[dict[str, Any], ...] = (
    {"Name": "Due on receipt", "DueDays": 0},
    {"Name": "Net 15", "DueDays": 15},
    {"Name": "Net 30", "DueDays": 30},
    {"Name": "Net 60", "DueDays": 60},
)


class QBOBackend:
    """All simulated QBO companies, the OAuth server and the throttles."""

    def __init__(self, settings: QBOSettings | None = None, clock: Clock | None = None) -> None:
        self.settings = settings or QBOSettings()
        self.clock: Clock = clock or SystemClock()
        self.lock = threading.RLock()
        self._companies: dict[str, Company] = {}
        self.oauth = OAuthServer(self.clock, self.settings.oauth)
        self.throttle = Throttle(self.clock, self.settings.throttle)
        self.stats = RealmStats()

    # ------------------------------------------------------------------ companies

    def seed_company(
        self,
        realm_id: str,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str | None = None,
        company_name: str | None = None,
        custom_txn_numbers: bool = True,
        using_sales_tax: bool = True,
        accounts: Iterable[Mapping[str, Any]] | None = None,
        terms: Iterable[Mapping[str, Any]] | None = None,
        items: Iterable[Mapping[str, Any]] = (),
        customers: Iterable[Mapping[str, Any]] = (),
        tax_codes: Iterable[Mapping[str, Any]] = (),
        redirect_uris: Iterable[str] = (),
        scopes: Iterable[str] = (ACCOUNTING_SCOPE,),
        country: str = "US",
    ) -> Company:
        """Create a company and connect the OAuth app (``client_id``/``client_secret``) to it.

        ``refresh_token`` (generated if None) is the app's first refresh token. ``accounts``
        defaults to :data:`DEFAULT_ACCOUNTS` (an Income account "Services" is added if missing);
        ``terms`` to :data:`DEFAULT_TERMS`. ``items``/``customers`` are API-shaped bodies
        (an item without ``IncomeAccountRef`` posts to "Services"). ``tax_codes`` are
        ``{"name", "rate" (percent), "agency" (optional)}``: each becomes a TaxCode with one
        TaxRate. Everything goes through the same rules as the API.
        """
        realm_id = str(realm_id)
        with self.lock:
            if realm_id in self._companies:
                raise ValueError(f"company {realm_id} already exists")
            company = Company(
                realm_id,
                name=company_name or f"Sandbox Company {realm_id[-4:]}",
                settings=self.settings,
                clock=self.clock,
                lock=self.lock,
                custom_txn_numbers=custom_txn_numbers,
                using_sales_tax=using_sales_tax,
                country=country,
            )
            account_list = [dict(a) for a in (DEFAULT_ACCOUNTS if accounts is None else accounts)]
            if not any(a.get("Name") == "Services" for a in account_list):
                account_list.insert(0, dict(DEFAULT_ACCOUNTS[0]))
            for account in account_list:
                company.create("Account", account)
            for term in DEFAULT_TERMS if terms is None else terms:
                company.create("Term", dict(term))
            services = company.find("Account", Name="Services")
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
            self.oauth.register_app(client_id, client_secret, tuple(redirect_uris))
            self.oauth.connect(client_id, realm_id, refresh_token, tuple(scopes))
            self._companies[realm_id] = company
            return company

    def company(self, realm_id: str) -> Company:
        """The company ``realm_id`` (KeyError if none)."""
        with self.lock:
            return self._companies[str(realm_id)]

    def has_company(self, realm_id: str) -> bool:
        with self.lock:
            return str(realm_id) in self._companies

    def realm_ids(self) -> list[str]:
        with self.lock:
            return list(self._companies)

    # ------------------------------------------------------------------ conveniences for tests

    def access_token(self, realm_id: str, client_id: str | None = None) -> str:
        """A valid access token for ``realm_id`` (skips the OAuth dance)."""
        return self.oauth.mint_access_token(str(realm_id), client_id)

    def reset_switches(self) -> None:
        """Clear counters and throttle windows and approve consent again (data is kept)."""
        self.stats.reset()
        self.throttle.reset()
        self.oauth.approve = True
        self.oauth.consent_realm = None
