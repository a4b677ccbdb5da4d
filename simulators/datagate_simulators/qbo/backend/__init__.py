"""The QBO backend: the companies' state and rules in plain Python, no HTTP.

:class:`QBOBackend` holds the companies (realms), the OAuth server, the throttles, the
counters and the webhook emitter. The rules live beside it, a module per concern:

- ``base``          what every entity shares (field checks, references, money) and the
  ``Books`` protocol through which entities see their company;
- ``company``       one company: its records, the entity registry, CRUD, query and CDC;
- ``names``, ``transactions``  the entity families;
- ``query``         the query language;
- ``batch``         batch requests.

The same backend serves in-process tests (call it directly, or through
:func:`~datagate_simulators.qbo.app.create_app` with ``SyncASGITransport``) and the standalone
server.

>>> backend = QBOBackend(clock=FakeClock())
>>> acme = backend.seed_company("9130350000000000", client_id="id", client_secret="secret",
...                             refresh_token="RT1")
>>> acme.create("Customer", {"DisplayName": "Acme"})["Id"]
'1'
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..clock import Clock, SystemClock
from ..generator import populate_company
from ..oauth import ACCOUNTING_SCOPE, OAuthServer
from ..settings import QBOSettings
from ..throttle import RealmStats, Throttle
from ..webhooks import WebhookEmitter, WebhookSettings
from .company import Company

__all__ = ["QBOBackend"]


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
        #: Change notifications to the app's webhook URL (configure ``url`` to send any).
        self.webhooks = WebhookEmitter(
            self.clock, WebhookSettings(utc_offset_hours=self.settings.utc_offset_hours)
        )

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
        automated_sales_tax: bool = False,
        multi_currency: bool = False,
        home_currency: str = "USD",
    ) -> Company:
        """Create a company and connect the OAuth app (``client_id``/``client_secret``) to it.

        ``refresh_token`` (generated if None) is the app's first refresh token. The lists
        (``accounts``, ``terms``, ``items``, ``customers``, ``tax_codes``) are filled by
        :func:`~datagate_simulators.qbo.generator.populate_company`, through the same rules as
        the API. ``country`` other than US makes a company that taxes with real tax codes on
        every line (§3.6); ``automated_sales_tax`` turns on US AST (``PartnerTaxEnabled``);
        ``multi_currency`` lets transactions be in other currencies than ``home_currency``.
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
                automated_sales_tax=automated_sales_tax,
                multi_currency=multi_currency,
                home_currency=home_currency,
            )
            populate_company(
                company,
                accounts=accounts,
                terms=terms,
                items=items,
                customers=customers,
                tax_codes=tax_codes,
            )
            self.oauth.register_app(client_id, client_secret, tuple(redirect_uris))
            self.oauth.connect(client_id, realm_id, refresh_token, tuple(scopes))
            company.listeners.append(self.webhooks.notify)
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
