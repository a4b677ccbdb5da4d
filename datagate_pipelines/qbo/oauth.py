"""Intuit OAuth 2.0: the token endpoint client (refresh, code exchange, revoke) and access-token sources (docs/qbo-api.md §1)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

import httpx

from datagate_pipelines.apiclient.base import ApiClientBase
from datagate_pipelines.apiclient.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from datagate_pipelines.apiclient.records import RequestRecorder
from datagate_pipelines.apiclient.retries import RetryPolicy
from datagate_pipelines.qbo.errors import (
    SYSTEM,
    QBOAuthError,
    QBOError,
    QBOInvalidGrantError,
    QBORateLimitedError,
    QBOServerError,
    QBOTransportError,
    oauth_message,
)

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"


DEFAULT_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
DEFAULT_REVOKE_URL = "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"


# ---------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    """One answer of the token endpoint. Its repr shows no token."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int
    refresh_token_expires_in: int | None = None
    obtained_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def access_token_expires_at(self) -> datetime:
        return self.obtained_at + timedelta(seconds=self.expires_in)

    @property
    def refresh_token_expires_at(self) -> datetime | None:
        if self.refresh_token_expires_in is None:
            return None
        return self.obtained_at + timedelta(seconds=self.refresh_token_expires_in)


class AccessTokens(Protocol):
    """Where a `QBOClient` gets its access tokens (`qbo_tokens.QBOTokenStore` in production)."""

    def access_token(self) -> str:
        """A valid access token, refreshed (and the rotated refresh token stored) if need be."""
        ...

    def invalidate(self, access_token: str) -> None:
        """The API answered 401 to `access_token`: do not hand it out again."""
        ...


def _secret(value: Any) -> str:
    """A plain string from a str or a pydantic SecretStr."""
    return getattr(value, "get_secret_value", lambda: value)()


class QBOAuthClient(ApiClientBase):
    """Intuit's OAuth 2.0 token and revoke endpoints for one app and portal (docs/qbo-api.md §1).

    Requests are recorded and retried like API calls (not rate limited: the token endpoint
    is not counted against the company). Every token it sees is added to its redactor.
    """

    system = SYSTEM
    error_classes: ClassVar[Mapping[type[ApiError], type[ApiError]]] = {
        ApiError: QBOError,
        AuthError: QBOAuthError,
        NotFoundError: QBOError,
        BadRequestError: QBOAuthError,
        RateLimitedError: QBORateLimitedError,
        ServerError: QBOServerError,
        TransportError: QBOTransportError,
    }

    def __init__(
        self,
        portal_id: str,
        *,
        client_id: str,
        client_secret: Any,
        token_url: str = DEFAULT_TOKEN_URL,
        revoke_url: str = DEFAULT_REVOKE_URL,
        transport: httpx.BaseTransport | None = None,
        recorder: RequestRecorder | None = None,
        run_id: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 30.0,
    ):
        secret = _secret(client_secret)
        super().__init__(
            portal_id,
            base_url=token_url,
            transport=transport,
            timeout=timeout,
            retry=retry,
            recorder=recorder,
            run_id=run_id,
            secrets=[secret],
        )
        self.client_id = client_id
        # Sent as a header (not httpx's auth flow) so the request takes the shared path.
        self._basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        self.token_url = token_url
        self.revoke_url = revoke_url

    def __repr__(self) -> str:
        return f"QBOAuthClient(portal={self.portal!r}, token_url={self.token_url!r})"

    def _error_message(self, response: httpx.Response) -> str:
        try:
            message = oauth_message(response.json())
        except ValueError:
            message = None
        return message or super()._error_message(response)

    def _error_for(
        self, response: httpx.Response, entity: str | None, entity_id: Any, attempts: int
    ) -> ApiError:
        error = super()._error_for(response, entity, entity_id, attempts)
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("error") == "invalid_grant":
            grant = QBOInvalidGrantError.__new__(QBOInvalidGrantError)
            grant.__dict__.update(error.__dict__)
            Exception.__init__(grant, error.message)
            grant.code = "invalid_grant"
            return grant
        return error

    def _token_request(self, form: Mapping[str, str], *, idempotent: bool) -> TokenSet:
        headers = {"Authorization": self._basic, "Accept": "application/json"}
        response = self.request(
            "POST",
            self.token_url,
            data=dict(form),
            headers=headers,
            authenticate=False,
            idempotent=idempotent,
            entity="token",
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        access = body.get("access_token") if isinstance(body, dict) else None
        refresh = body.get("refresh_token") if isinstance(body, dict) else None
        if not access or not refresh:
            raise self._error(
                QBOAuthError,
                "the token response has no access_token/refresh_token",
                response.request,
                response.status_code,
                "token",
                None,
            )
        self.redact.add(str(access), transient=True)
        self.redact.add(str(refresh))
        self.stats.add(token_fetches=1)

        def seconds(key: str, default: int | None) -> int | None:
            try:
                return int(body[key])
            except (KeyError, TypeError, ValueError):
                return default

        return TokenSet(
            access_token=str(access),
            refresh_token=str(refresh),
            expires_in=seconds("expires_in", 3600) or 3600,
            refresh_token_expires_in=seconds("x_refresh_token_expires_in", None),
        )

    def refresh(self, refresh_token: Any) -> TokenSet:
        """A new access token for `refresh_token`; the answer may carry a new (rotated)
        refresh token, which the caller must store before using the access token.

        Raises `QBOInvalidGrantError` when the refresh token is no good. Retried after a 5xx
        or a dropped answer: during the rotation grace window QBO answers a repeated refresh
        with the same successor, so a retry is safe.
        """
        token = _secret(refresh_token)
        self.redact.add(token)
        return self._token_request(
            {"grant_type": "refresh_token", "refresh_token": token}, idempotent=True
        )

    def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        """Tokens for an authorization code (single use: never retried once sent)."""
        self.redact.add(code)
        return self._token_request(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            idempotent=False,
        )

    def revoke(self, token: Any) -> None:
        """Revoke a refresh (or access) token: the company's connection ends at once."""
        value = _secret(token)
        self.redact.add(value)
        self.request(
            "POST",
            self.revoke_url,
            json={"token": value},
            headers={"Authorization": self._basic},
            authenticate=False,
            idempotent=True,
            entity="revoke",
        )


class RefreshingTokens:
    """`AccessTokens` kept in memory: refreshes with `refresh_token` when needed.

    Rotated refresh tokens are kept in this object only (and passed to `on_rotate`), so they
    are lost with the process: fine for tests and one-off scripts, not for production (use
    `qbo_tokens.QBOTokenStore`). Thread-safe.
    """

    def __init__(
        self,
        oauth: QBOAuthClient,
        refresh_token: Any,
        *,
        margin_seconds: float = 300.0,
        on_rotate: Callable[[str], None] | None = None,
    ):
        self.oauth = oauth
        self.refresh_token = _secret(refresh_token)
        self.margin = timedelta(seconds=margin_seconds)
        self.on_rotate = on_rotate
        self._access: str | None = None
        self._expires_at = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()
        self.refreshes = 0

    def access_token(self) -> str:
        with self._lock:
            if self._access is None or datetime.now(UTC) >= self._expires_at - self.margin:
                tokens = self.oauth.refresh(self.refresh_token)
                self.refreshes += 1
                if tokens.refresh_token != self.refresh_token:
                    self.refresh_token = tokens.refresh_token
                    if self.on_rotate is not None:
                        self.on_rotate(tokens.refresh_token)
                self._access, self._expires_at = tokens.access_token, tokens.access_token_expires_at
            return self._access

    def invalidate(self, access_token: str) -> None:
        with self._lock:
            if self._access == access_token:
                self._access = None
