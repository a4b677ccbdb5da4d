"""Intuit OAuth 2.0 as the simulator plays it: apps, consent, codes and rotating tokens.

docs/qbo-api.md §1. A *grant* is one app's connection to one company; it owns a chain of refresh
tokens (only the newest is "current") and the access tokens issued from them.

Refresh-token rotation (§1.4): refreshing returns the same refresh token until it is older
than ``rotate_after`` (default 24 h), then a new one. The superseded token keeps working for
``grace`` (default 24 h) after its successor was issued — answering with the successor —
then gives ``invalid_grant``. Each use extends a token's rolling lifetime
(``refresh_token_ttl``, 8 726 400 s ≈ 101 days). Revoking any token of a grant kills the grant.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from . import errors
from .errors import OAuthError
from .settings import OAuthSettings

__all__ = ["ACCOUNTING_SCOPE", "OAuthServer"]

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
PAYMENT_SCOPE = "com.intuit.quickbooks.payment"
OPENID_SCOPES = frozenset({"openid", "profile", "email", "phone", "address"})
KNOWN_SCOPES = frozenset({ACCOUNTING_SCOPE, PAYMENT_SCOPE}) | OPENID_SCOPES
INVALID_REFRESH = "Incorrect or invalid refresh token"
HARD_LIFETIME = timedelta(days=5 * 365)  # the absolute 5-year cap (§1.3)


@dataclass
class _App:
    client_id: str
    client_secret: str
    redirect_uris: set[str] = field(default_factory=set)
    realms: list[str] = field(default_factory=list)


@dataclass(eq=False)
class _Grant:
    client_id: str
    realm_id: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked: bool = False
    current: _RefreshToken | None = None


@dataclass(eq=False)
class _RefreshToken:
    value: str
    grant: _Grant
    issued_at: datetime
    last_used_at: datetime
    superseded_at: datetime | None = None
    rotate_due: bool = False


@dataclass(eq=False)
class _AccessToken:
    value: str
    grant: _Grant
    expires_at: datetime


@dataclass(eq=False)
class _Code:
    value: str
    client_id: str
    realm_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: datetime
    used: bool = False


def _token(prefix: str = "AB11") -> str:
    return prefix + secrets.token_urlsafe(36)


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(p for p in (parts.query, urlencode(params)) if p)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class OAuthServer:
    """Apps, consent, authorization codes, access and refresh tokens; thread-safe."""

    def __init__(self, clock: Any, settings: OAuthSettings | None = None) -> None:
        self.clock = clock
        self.settings = settings or OAuthSettings()
        self._lock = threading.RLock()
        self._apps: dict[str, _App] = {}
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._access: dict[str, _AccessToken] = {}
        #: consent screen behaviour: approve or deny; which company the user picks
        self.approve = True
        self.consent_realm: str | None = None

    # ------------------------------------------------------------------ setup

    def register_app(
        self, client_id: str, client_secret: str, redirect_uris: tuple[str, ...] = ()
    ) -> None:
        """Register (or update) an app; with no redirect URIs any URI is accepted."""
        with self._lock:
            app = self._apps.get(client_id)
            if app is None:
                app = self._apps[client_id] = _App(client_id, client_secret)
            elif app.client_secret != client_secret:
                raise ValueError(f"client {client_id} is already registered with another secret")
            app.redirect_uris.update(redirect_uris)

    def connect(
        self,
        client_id: str,
        realm_id: str,
        refresh_token: str | None = None,
        scopes: tuple[str, ...] = (ACCOUNTING_SCOPE,),
    ) -> str:
        """Connect an app to a company as if consent had been given; returns the refresh token."""
        with self._lock:
            app = self._apps[client_id]
            if realm_id not in app.realms:
                app.realms.append(realm_id)
            grant = self._new_grant(client_id, realm_id, scopes)
            return self._new_refresh(grant, refresh_token).value

    def _new_grant(self, client_id: str, realm_id: str, scopes: tuple[str, ...]) -> _Grant:
        return _Grant(client_id, realm_id, scopes, created_at=self.clock.now())

    def _new_refresh(self, grant: _Grant, value: str | None = None) -> _RefreshToken:
        value = value or _token()
        if value in self._refresh:
            raise ValueError("refresh token already in use")
        now = self.clock.now()
        token = _RefreshToken(value, grant, issued_at=now, last_used_at=now)
        self._refresh[value] = token
        grant.current = token
        return token

    def _new_access(self, grant: _Grant) -> _AccessToken:
        expires = self.clock.now() + timedelta(seconds=self.settings.access_token_ttl)
        token = _AccessToken(_token("eyJ"), grant, expires)
        self._access[token.value] = token
        return token

    # ------------------------------------------------------------------ authorize (consent)

    def authorize(self, params: dict[str, str]) -> str:
        """The consent step: the URL to redirect the browser to.

        An unknown client or an unregistered redirect URI cannot be redirected to: raises
        :class:`OAuthError` (shown as a 400 page). Other problems, and a denied consent,
        redirect with ``error=…&state=…``.
        """
        with self._lock:
            app = self._apps.get(params.get("client_id", ""))
            if app is None:
                raise OAuthError("invalid_client", "Unknown client_id", 400)
            redirect_uri = params.get("redirect_uri", "")
            if not redirect_uri or (app.redirect_uris and redirect_uri not in app.redirect_uris):
                raise OAuthError("invalid_request", "redirect_uri is not registered", 400)
            state = params.get("state", "")

            def error(code: str) -> str:
                return _with_query(redirect_uri, {"error": code, "state": state})

            if params.get("response_type") != "code":
                return error("unsupported_response_type")
            scopes = tuple(params.get("scope", "").split())
            if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
                return error("invalid_scope")
            if not self.approve:
                return error("access_denied")
            realm = self.consent_realm or (app.realms[0] if app.realms else None)
            if realm is None:
                return error("access_denied")
            code = _Code(
                _token(),
                app.client_id,
                realm,
                redirect_uri,
                scopes,
                self.clock.now() + timedelta(seconds=self.settings.code_ttl),
            )
            self._codes[code.value] = code
            answer = {"code": code.value, "state": state}
            if ACCOUNTING_SCOPE in scopes or PAYMENT_SCOPE in scopes:
                answer["realmId"] = realm  # only with the accounting/payment scopes (§1.2)
            return _with_query(redirect_uri, answer)

    # ------------------------------------------------------------------ token endpoint

    def _client(self, client_id: str | None, client_secret: str | None) -> _App:
        app = self._apps.get(client_id or "")
        if app is None or not secrets.compare_digest(app.client_secret, client_secret or ""):
            raise OAuthError("invalid_client", status=401)
        return app

    def token(
        self,
        client_id: str | None,
        client_secret: str | None,
        form: dict[str, str],
        *,
        hard_expiry: bool = False,
    ) -> dict[str, Any]:
        """``POST /oauth2/v1/tokens/bearer`` for both grant types; raises :class:`OAuthError`."""
        with self._lock:
            app = self._client(client_id, client_secret)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                access, refresh = self._exchange(app, form)
            elif grant_type == "refresh_token":
                access, refresh = self._refresh_grant(app, form.get("refresh_token", ""))
            elif not grant_type:
                raise OAuthError("invalid_request", "grant_type is missing")
            else:
                raise OAuthError("unsupported_grant_type", f"grant_type {grant_type}")
            return self._response(access, refresh, hard_expiry)

    def _exchange(self, app: _App, form: dict[str, str]) -> tuple[_AccessToken, _RefreshToken]:
        code = self._codes.get(form.get("code", ""))
        now = self.clock.now()
        # Codes are single-use and short-lived (§1.2).
        if code is None or code.used or now >= code.expires_at or code.client_id != app.client_id:
            raise OAuthError("invalid_grant", "The authorization code is invalid or expired")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorize request")
        code.used = True
        if code.realm_id not in app.realms:
            app.realms.append(code.realm_id)
        grant = self._new_grant(app.client_id, code.realm_id, code.scopes)
        return self._new_access(grant), self._new_refresh(grant)

    def _refresh_grant(self, app: _App, value: str) -> tuple[_AccessToken, _RefreshToken]:
        token = self._refresh.get(value)
        now = self.clock.now()
        if token is None or token.grant.revoked or token.grant.client_id != app.client_id:
            raise OAuthError("invalid_grant", INVALID_REFRESH)
        if now - token.last_used_at > timedelta(seconds=self.settings.refresh_token_ttl):
            raise OAuthError("invalid_grant", INVALID_REFRESH)
        grace = timedelta(seconds=self.settings.grace)
        if token.superseded_at is not None and now - token.superseded_at >= grace:
            raise OAuthError("invalid_grant", INVALID_REFRESH)
        current = token.grant.current or token
        age = now - current.issued_at
        if current.rotate_due or age >= timedelta(seconds=self.settings.rotate_after):
            current.superseded_at = now
            current = self._new_refresh(token.grant)
        current.last_used_at = now
        return self._new_access(token.grant), current

    def _response(
        self, access: _AccessToken, refresh: _RefreshToken, hard_expiry: bool
    ) -> dict[str, Any]:
        now = self.clock.now()
        body: dict[str, Any] = {
            "token_type": "bearer",
            "expires_in": int(self.settings.access_token_ttl),
            "refresh_token": refresh.value,
            "x_refresh_token_expires_in": int(self.settings.refresh_token_ttl),
            "access_token": access.value,
        }
        if hard_expiry:
            remaining = access.grant.created_at + HARD_LIFETIME - now
            body["x_refresh_token_hard_expires_in"] = int(remaining.total_seconds())
        if "openid" in access.grant.scopes:
            body["id_token"] = self._id_token(access.grant, now)
        return body

    def _id_token(self, grant: _Grant, now: datetime) -> str:
        # Unsigned (alg "none"): enough for clients that read claims without verifying them.
        def part(obj: dict[str, Any]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        claims = {
            "iss": "https://oauth.platform.intuit.com/op/v1",
            "sub": f"sim-user-{grant.realm_id}",
            "aud": [grant.client_id],
            "realmid": grant.realm_id,
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp() + self.settings.access_token_ttl),
        }
        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."

    # ------------------------------------------------------------------ revoke

    def revoke(self, client_id: str | None, client_secret: str | None, token: str) -> None:
        """Kill the grant of ``token`` (refresh or access) at once; unknown tokens are ignored."""
        with self._lock:
            app = self._client(client_id, client_secret)
            if not token:
                raise OAuthError("invalid_request", "token is missing")
            found = self._refresh.get(token) or self._access.get(token)
            if found is not None and found.grant.client_id == app.client_id:
                found.grant.revoked = True

    # ------------------------------------------------------------------ API authentication

    def authenticate(self, authorization: str | None, realm_id: str | None) -> str:
        """Check ``Authorization: Bearer …`` for ``realm_id``: 401/3200 or 403/3100 faults.

        Returns the token's company; ``realm_id`` None accepts any company (userinfo).
        """
        if not authorization or not authorization.startswith("Bearer "):
            raise errors.authentication_failed("Authorization header is missing or not Bearer")
        value = authorization[len("Bearer ") :].strip()
        with self._lock:
            token = self._access.get(value)
            if token is None or token.grant.revoked:
                raise errors.authentication_failed("Token invalid")
            if self.clock.now() >= token.expires_at:
                raise errors.authentication_failed("Token expired")
            if realm_id is not None and token.grant.realm_id != realm_id:
                raise errors.authorization_failed(
                    f"The token is not authorized for company {realm_id}"
                )
            return token.grant.realm_id

    # ------------------------------------------------------------------ switches & inspection

    def expire_access_tokens(self, realm_id: str | None = None) -> int:
        """Make access tokens (of one company, or all) expired now; returns how many."""
        with self._lock:
            now = self.clock.now()
            hit = [
                t
                for t in self._access.values()
                if (realm_id is None or t.grant.realm_id == realm_id) and t.expires_at > now
            ]
            for token in hit:
                token.expires_at = now
            return len(hit)

    def force_rotation(self, realm_id: str | None = None) -> int:
        """The next refresh of each current refresh token returns a new one."""
        with self._lock:
            hit = 0
            for token in self._refresh.values():
                grant = token.grant
                if grant.current is token and (realm_id is None or grant.realm_id == realm_id):
                    token.rotate_due = True
                    hit += 1
            return hit

    def mint_access_token(self, realm_id: str, client_id: str | None = None) -> str:
        """An access token for ``realm_id`` without the OAuth dance (for tests)."""
        with self._lock:
            grant = next(
                (
                    t.grant
                    for t in self._refresh.values()
                    if t.grant.realm_id == realm_id
                    and not t.grant.revoked
                    and (client_id is None or t.grant.client_id == client_id)
                ),
                None,
            )
            if grant is None:
                raise KeyError(f"no app is connected to company {realm_id}")
            return self._new_access(grant).value

    def current_refresh_token(self, realm_id: str, client_id: str | None = None) -> str | None:
        """The newest refresh token of the newest live grant for ``realm_id``."""
        with self._lock:
            for token in reversed(list(self._refresh.values())):
                grant = token.grant
                if (
                    grant.realm_id == realm_id
                    and not grant.revoked
                    and grant.current is token
                    and (client_id is None or grant.client_id == client_id)
                ):
                    return token.value
            return None

    def refresh_token_state(self, value: str) -> dict[str, Any] | None:
        """What the server knows about a refresh token (for tests and the control API)."""
        with self._lock:
            token = self._refresh.get(value)
            if token is None:
                return None
            return {
                "realm_id": token.grant.realm_id,
                "client_id": token.grant.client_id,
                "issued_at": token.issued_at.isoformat(),
                "superseded_at": token.superseded_at and token.superseded_at.isoformat(),
                "revoked": token.grant.revoked,
                "current": token.grant.current is token,
            }
