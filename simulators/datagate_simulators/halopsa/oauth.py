"""HaloPSA's authorisation server: API applications and the client-credentials token endpoint.

Plain Python, no locking: the backend calls it under its own lock.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from datagate_simulators.halopsa.errors import (
    InvalidClient,
    InvalidRequest,
    InvalidToken,
    UnknownTenant,
    UnsupportedGrantType,
)

#: Scope areas from HAPI's HaloAuth class (read:<area> / edit:<area>). [C] §1.2
SCOPE_AREAS = (
    "tickets", "calendar", "customers", "crm", "timesheets", "contracts", "suppliers", "items",
    "projects", "sales", "quotes", "sos", "pos", "invoices", "reporting", "software",
    "softwarelicensing", "kb", "assets",
)  # fmt: skip


@dataclass
class Application:
    """An API application (Configuration > Integrations > Halo API): credentials and grants."""

    client_id: str
    client_secret: str
    name: str = "Datagate"
    #: Space-separated scopes this application may be granted; "all" grants everything.
    allowed_scopes: str = "all"


@dataclass
class Token:
    access_token: str
    client_id: str
    scope: str
    issued_at: float
    #: What ``expires_in`` told the client.
    expires_in: int
    #: When the token really stops working (earlier than advertised under the early-expiry fault).
    expires_at: float
    revoked: bool = False

    def allows(self, area: str | None, write: bool) -> bool:
        """Does this token's scope cover ``area`` (None = admin-only) for reading or writing?"""
        scopes = set(self.scope.split())
        if scopes & {"all", "admin"}:
            return True
        if area is None:
            return False
        if "all:standard" in scopes:
            return True
        if f"edit:{area}" in scopes:
            return True
        return not write and f"read:{area}" in scopes


class TokenStore:
    """Issues opaque bearer tokens and checks them against a clock (seconds, like time.time)."""

    def __init__(self, clock: Callable[[], float], ttl: int = 3600) -> None:
        self.clock = clock
        self.ttl = ttl
        #: When set, tokens issued from now on stop working after this many seconds,
        #: whatever ``expires_in`` says (the "tokens expire early" fault).
        self.actual_lifetime: float | None = None
        self._tokens: dict[str, Token] = {}
        self.issued = 0

    def issue(self, client_id: str, scope: str) -> Token:
        now = self.clock()
        lifetime = self.ttl if self.actual_lifetime is None else min(self.ttl, self.actual_lifetime)
        token = Token(
            access_token=secrets.token_urlsafe(32),
            client_id=client_id,
            scope=scope,
            issued_at=now,
            expires_in=self.ttl,
            expires_at=now + lifetime,
        )
        self._prune(now)
        self._tokens[token.access_token] = token
        self.issued += 1
        return token

    def validate(self, access_token: str | None) -> Token:
        if not access_token:
            raise InvalidToken("The access token is missing.")
        token = self._tokens.get(access_token)
        if token is None or token.revoked:
            raise InvalidToken("The specified token is invalid.")
        if self.clock() >= token.expires_at:
            raise InvalidToken("The specified token is no longer valid.")
        return token

    def revoke_all(self) -> int:
        """Invalidate every live token (clients must fetch new ones); returns how many."""
        live = [t for t in self._tokens.values() if not t.revoked]
        for token in live:
            token.revoked = True
        return len(live)

    def _prune(self, now: float) -> None:
        # Keep the table small in long-running servers; expired tokens answer 401 either way.
        if len(self._tokens) > 1000:
            self._tokens = {
                k: t for k, t in self._tokens.items() if t.expires_at > now and not t.revoked
            }


class OAuthServer:
    """The instance's API applications and the tokens issued to them (``POST /auth/token``)."""

    def __init__(self, tenant: str, clock: Callable[[], float], token_ttl: int = 3600) -> None:
        self.tenant = tenant
        self.applications: dict[str, Application] = {}
        self.tokens = TokenStore(clock, token_ttl)

    def add_application(
        self,
        client_id: str,
        client_secret: str,
        *,
        name: str = "Datagate",
        allowed_scopes: str = "all",
    ) -> Application:
        """Register API credentials (Configuration > Integrations > Halo API)."""
        app = Application(
            client_id=client_id,
            client_secret=client_secret,
            name=name,
            allowed_scopes=allowed_scopes,
        )
        self.applications[client_id] = app
        return app

    def issue_token(
        self,
        *,
        grant_type: str | None,
        client_id: str | None,
        client_secret: str | None,
        scope: str | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """``POST /auth/token`` with client credentials → the OAuth2 token response. §1.2"""
        if not grant_type:
            raise InvalidRequest("The mandatory 'grant_type' parameter is missing.")
        if grant_type != "client_credentials":
            raise UnsupportedGrantType(
                f"The specified 'grant_type' ({grant_type}) is not supported."
            )
        if tenant and self.tenant and tenant.lower() != self.tenant.lower():
            raise UnknownTenant(f"Tenant '{tenant}' was not found.")
        if not client_id:
            raise InvalidRequest("The mandatory 'client_id' parameter is missing.")
        app = self.applications.get(client_id)
        if app is None or not hmac.compare_digest(
            app.client_secret.encode(), (client_secret or "").encode()
        ):
            raise InvalidClient("The specified client credentials are invalid.")
        scope = " ".join((scope or "all").split())
        allowed = set(app.allowed_scopes.split())
        if "all" not in allowed and not set(scope.split()) <= allowed:
            raise InvalidRequest(f"The application may not request the scope '{scope}'.")
        token = self.tokens.issue(client_id, scope)
        return {
            "access_token": token.access_token,
            "token_type": "Bearer",
            "expires_in": token.expires_in,
            "scope": token.scope,
        }

    def authenticate(self, access_token: str | None) -> Token:
        """The live token behind ``Authorization: Bearer …``; raises InvalidToken (401)."""
        return self.tokens.validate(access_token)
