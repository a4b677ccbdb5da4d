"""HaloPSA's errors as typed exceptions, with Halo's own message from whichever body shape it used (docs/halopsa-api.md §5)."""

from __future__ import annotations

from typing import Any

import httpx

from datagate_pipelines.apiclient.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)


class HaloPSAError(ApiError):
    """A HaloPSA request failed; `message` is Halo's own, from whichever body shape it used."""


class HaloPSAAuthError(HaloPSAError, AuthError):
    hint = (
        "check this portal's halopsa client_id/client_secret environment variables, tenant and "
        "authorization_server in portals.yaml, and the API application's permissions in Halo"
    )


class HaloPSANotFoundError(HaloPSAError, NotFoundError):
    pass


class HaloPSABadRequestError(HaloPSAError, BadRequestError):
    pass


class HaloPSARateLimitedError(HaloPSAError, RateLimitedError):
    pass


class HaloPSAServerError(HaloPSAError, ServerError):
    pass


class HaloPSATransportError(HaloPSAError, TransportError):
    hint = "check this portal's halopsa resource_server/authorization_server URLs and the network"


def halo_error_message(response: httpx.Response) -> str:
    """Halo's message from an error response, whatever shape it came in (§5)."""
    text = response.text.strip()
    try:
        body: Any = response.json() if text else None
    except ValueError:
        body = None
    message: str | None = None
    if isinstance(body, dict) and body:
        if isinstance(body.get("error"), str):  # OAuth: {"error", "error_description"}
            message = body["error"]
            if body.get("error_description"):
                message += f": {body['error_description']}"
        elif body.get("errorMessage"):  # {"resultCode", "errorMessage"}
            message = str(body["errorMessage"])
        elif body.get("Message") or body.get("message"):  # {"ClassName", "Message"}
            message = str(body.get("Message") or body.get("message"))
        elif all(isinstance(v, list) for v in body.values()):  # {"[0].name": ["msg", ...]}
            message = "; ".join(
                f"{key}: {' '.join(str(m) for m in msgs)}" for key, msgs in body.items()
            )
    elif isinstance(body, str) and body:
        message = body
    if message is None and text:
        message = text
    if message is None:  # 401 from the resource server: empty body, reason in the challenge
        challenge = response.headers.get("WWW-Authenticate", "")
        message = challenge or response.reason_phrase or f"HTTP {response.status_code}"
    return message if len(message) <= 500 else message[:497] + "..."
