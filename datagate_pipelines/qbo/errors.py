"""QBO's errors as typed exceptions: the fault shapes QBO answers with (docs/qbo-api.md §7.2) and the classes the code catches."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datagate_pipelines.apiclient.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from datagate_pipelines.qbo.exact_json import loads

SYSTEM = "qbo"


# ---------------------------------------------------------------------------------------
# Typed errors
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultEntry:
    """One entry of a QBO `Fault.Error` list."""

    code: str
    message: str
    detail: str = ""
    element: str = ""


class QBOError(ApiError):
    """A QBO request failed. Besides `ApiError`'s fields: QBO's first fault `code`,
    `element`, `detail` and `fault_type` (None when the answer carried no Fault), every
    entry in `faults`, the caller's `our_id` and QBO's `qbo_id` of the record."""

    code: str | None = None
    element: str | None = None
    detail: str | None = None
    fault_type: str | None = None
    faults: tuple[FaultEntry, ...] = ()
    our_id: str | None = None
    qbo_id: str | None = None

    @property
    def outcome(self) -> str:
        if self.status is None and self.code is not None:
            return f"QBO fault: {self.message}"
        return super().outcome


class QBOAuthError(QBOError, AuthError):
    """401/403 from the API, or the token endpoint refused the app's credentials."""

    hint = (
        "check this portal's qbo client id/secret environment variables and realm_id in "
        "portals.yaml; if the company was disconnected, run `datagate qbo connect`"
    )


class QBOInvalidGrantError(QBOAuthError):
    """The token endpoint answered `invalid_grant`: the refresh token (or authorization code)
    is expired, rotated away, revoked or already used."""

    hint = ""


class QBOFaultError(QBOError, BadRequestError):
    """QBO refused the request or its data (a validation or business Fault)."""


class QBONotFoundError(QBOFaultError, NotFoundError):
    """610 Object Not Found: the record does not exist (or was deleted)."""


class QBOStaleObjectError(QBOFaultError):
    """5010 Stale Object Error: the SyncToken sent is not the current one."""


class QBODuplicateNameError(QBOFaultError):
    """6240 Duplicate Name Exists: the DisplayName/Name is used by another record."""


class QBODuplicateDocNumberError(QBOFaultError):
    """6140 Duplicate Document Number: the DocNumber is used already."""


class QBORateLimitedError(QBOError, RateLimitedError):
    """429 (code 3001) and still throttled after the retries."""


class QBOServerError(QBOError, ServerError):
    pass


class QBOTransportError(QBOError, TransportError):
    hint = "check this portal's qbo base_url/token_url and the network"


ERRORS_BY_CODE: dict[str, type[QBOError]] = {
    "610": QBONotFoundError,
    "5010": QBOStaleObjectError,
    "6240": QBODuplicateNameError,
    "6140": QBODuplicateDocNumberError,
}


def parse_faults(body: bytes | str) -> tuple[str | None, list[FaultEntry]]:
    """`(fault type, entries)` from any of QBO's fault shapes (JSON `Fault`, the gateway's
    lower-case `fault`, XML `IntuitResponse`); `(None, [])` when there is none."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    if text.startswith("<"):
        return _xml_faults(text)
    try:
        data = loads(text) if text else None
    except ValueError:
        return None, []
    if not isinstance(data, dict):
        return None, []
    fault = data.get("Fault") or data.get("fault")
    return json_faults(fault) if isinstance(fault, dict) else (None, [])


def json_faults(fault: Mapping[str, Any]) -> tuple[str | None, list[FaultEntry]]:
    entries = []
    for raw in fault.get("Error") or fault.get("error") or []:
        if not isinstance(raw, dict):
            continue

        def get(key: str, raw: dict[str, Any] = raw) -> str:
            value = raw.get(key, raw.get(key.lower(), raw.get(key[:1].upper() + key[1:])))
            return "" if value is None else str(value)

        entries.append(FaultEntry(get("code"), get("Message"), get("Detail"), get("element")))
    kind = fault.get("type")
    return (str(kind) if kind is not None else None), entries


def _xml_faults(text: str) -> tuple[str | None, list[FaultEntry]]:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None, []
    for node in root.iter():
        if node.tag.rsplit("}", 1)[-1] != "Fault":
            continue
        entries = []
        for error in node:
            if error.tag.rsplit("}", 1)[-1] != "Error":
                continue
            texts = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in error}
            entries.append(
                FaultEntry(
                    error.get("code", ""),
                    texts.get("Message", ""),
                    texts.get("Detail", ""),
                    error.get("element", ""),
                )
            )
        return node.get("type"), entries
    return None, []


def describe_faults(entries: Sequence[FaultEntry]) -> str:
    """`6240 Duplicate Name Exists Error: <detail> (element DisplayName)`; several joined."""
    parts = []
    for entry in entries:
        text = f"{entry.code} {entry.message}".strip()
        if entry.detail and entry.detail != entry.message:
            text += f": {entry.detail}"
        if entry.element:
            text += f" (element {entry.element})"
        parts.append(text)
    return "; ".join(parts)


def oauth_message(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
        if body.get("error_description"):
            message += f": {body['error_description']}"
        return message
    return None


def retyped(error: ApiError, kind: type[QBOError]) -> QBOError:
    """The same error as an instance of `kind` (a more precise class for a fault code)."""
    typed = kind.__new__(kind)
    Exception.__init__(typed, error.message)
    typed.__dict__.update(error.__dict__)
    return typed


def attach_faults(error: QBOError, fault_type: str | None, entries: Sequence[FaultEntry]) -> None:
    error.fault_type = fault_type
    error.faults = tuple(entries)
    if entries:
        first = entries[0]
        error.code = first.code or None
        error.element = first.element or None
        error.detail = first.detail or None
