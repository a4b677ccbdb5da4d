"""The HaloPSA simulator's errors and their bodies: each knows Halo's status, body and headers.

The backend raises them; the HTTP layer (``app``) sends ``status``, ``body()`` and
``headers()`` as they are.
"""

from __future__ import annotations

from typing import Any


class HaloSimError(Exception):
    """Base: ``status`` is the HTTP status, ``body()`` the JSON (or text) Halo answers with."""

    status = 500

    def body(self) -> Any:
        return {"ClassName": "System.Exception", "Message": str(self)}

    def headers(self) -> dict[str, str]:
        return {}


class InvalidClient(HaloSimError):
    """Token endpoint: unknown client id or wrong secret. [C] HAPI #19"""

    status = 401

    def body(self) -> Any:
        return {"error": "invalid_client", "error_description": str(self)}


class UnsupportedGrantType(HaloSimError):
    """Token endpoint: grant_type other than client_credentials. §8"""

    status = 400

    def body(self) -> Any:
        return {"error": "unsupported_grant_type", "error_description": str(self)}


class InvalidRequest(HaloSimError):
    """Token endpoint: a required form field is missing."""

    status = 400

    def body(self) -> Any:
        return {"error": "invalid_request", "error_description": str(self)}


class UnknownTenant(HaloSimError):
    """Token endpoint: a tenant that is not this instance's. A bad tenant gave a 500. [R] PYPI"""

    status = 500

    def body(self) -> Any:
        return {"error": "server_error", "error_description": str(self)}


class InvalidToken(HaloSimError):
    """Resource server: bearer token missing, unknown, expired or revoked → 401, empty body.

    The challenge goes in ``WWW-Authenticate`` the way OpenIddict's validation does. [I] SPEC24
    """

    status = 401

    def body(self) -> Any:
        return None

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{self}"'}


class Forbidden(HaloSimError):
    """A valid token whose scope does not cover the resource. [C] SPEC25 403"""

    status = 403

    def body(self) -> Any:
        return {"ClassName": "System.UnauthorizedAccessException", "Message": str(self)}


class NotFound(HaloSimError):
    """GET/DELETE of an id that does not exist, or an unknown resource path. [C] SPEC25 404"""

    status = 404

    def __init__(self, resource: str, record_id: Any = None) -> None:
        self.resource = resource
        self.record_id = record_id
        what = resource if record_id is None else f"{resource} {record_id}"
        super().__init__(f"{what} not found")


class ValidationFailed(HaloSimError):
    """400 with an ASP.NET-style dictionary ``{"[0].name": ["message"]}``. [C] N8N"""

    status = 400

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))

    def body(self) -> Any:
        return self.errors


class RateLimited(HaloSimError):
    """429: ``Rate Limit Reached - 300 Requests per rolling 5 minute window``. [R] HAPI #31

    The body is that text (``text/plain``). ``retry_after`` (seconds) is sent as
    ``Retry-After`` only when the simulator is configured to; Halo's use of it is unconfirmed. [I]
    """

    status = 429

    def __init__(self, message: str, retry_after: int | None) -> None:
        self.retry_after = retry_after
        super().__init__(message)

    def body(self) -> Any:
        return str(self)

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
