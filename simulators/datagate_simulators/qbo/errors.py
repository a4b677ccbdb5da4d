"""The QBO simulator's errors and their bodies: QBO faults and OAuth errors.

Backend rules raise :class:`QBOFault`; :func:`fault_body` renders it as QBO answers it
(docs/qbo-api.md §7.2, §8) and the HTTP layer sends it with the fault's HTTP status. Messages
follow Intuit's wording where docs/qbo-api.md quotes it (§3, §7.3, §8). Three fault shapes exist:
the documented ``{"Fault": {"Error": […]}}``; the gateway's lower-case
``{"fault": {"error": […]}}`` seen on 401/403/429 (opt-in); and the XML ``IntuitResponse``
that 429s have been seen to carry even when JSON was asked for (opt-in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .clock import stamp
from .jsonio import dumps
from .settings import QBOSettings

__all__ = [
    "OAuthError",
    "QBOError",
    "QBOFault",
    "authentication_failed",
    "authorization_failed",
    "business_validation",
    "fault_body",
    "invalid_reference",
    "invalid_string",
    "invalid_string_length",
    "not_found",
    "query_parse_error",
    "query_validation_error",
    "required_param_missing",
    "stale_object",
    "throttle_exceeded",
    "unsupported_operation",
    "unsupported_property",
]


@dataclass(frozen=True)
class QBOError:
    """One entry of ``Fault.Error``."""

    code: str
    message: str
    detail: str = ""
    element: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "Message": self.message,
            "Detail": self.detail,
            "code": self.code,
            "element": self.element,
        }


@dataclass
class QBOFault(Exception):
    """A QBO fault: HTTP ``status``, fault ``type`` and one or more errors."""

    errors: list[QBOError]
    type: str = "ValidationFault"
    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.describe())

    @property
    def code(self) -> str:
        return self.errors[0].code

    def describe(self) -> str:
        return "; ".join(f"{e.code} {e.message}: {e.detail}" for e in self.errors)

    def to_json(self) -> dict[str, Any]:
        """The ``Fault`` object (without the envelope's ``time``)."""
        return {"Error": [e.to_json() for e in self.errors], "type": self.type}


def _fault(code: str, message: str, detail: str = "", element: str = "", **kw: Any) -> QBOFault:
    return QBOFault([QBOError(code, message, detail, element)], **kw)


def required_param_missing(element: str) -> QBOFault:
    """2020: e.g. an invoice without ``CustomerRef`` (element = the path)."""
    return _fault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element,
    )


def unsupported_property(name: str, entity: str) -> QBOFault:
    """2010: an unknown property or enum spelling (e.g. ``SubtotalLineDetail``)."""
    return _fault(
        "2010",
        "Request has invalid or unsupported property",
        f'Property Name:Unrecognized field "{name}" (class '
        f"com.intuit.schema.finance.v3.{entity}), not marked as ignorable specified is "
        "unsupported or invalid",
        name,
    )


def invalid_string(element: str, detail: str) -> QBOFault:
    """2040, e.g. a name with a colon."""
    return _fault("2040", "Invalid String", detail, element)


def invalid_string_length(element: str, maximum: int, supplied: int) -> QBOFault:
    """2050, e.g. DocNumber longer than 21."""
    return _fault(
        "2050",
        "String length is either shorter or longer than supported by specification",
        f"String length specified does not match the supported length. "
        f"Min:0 Max:{maximum} supplied:{supplied}",
        element,
    )


def invalid_enumeration(element: str, value: Any) -> QBOFault:
    return _fault("2170", "Invalid Enumeration", f"Invalid Enumeration : {value}", element)


def invalid_reference(element: str, entity: str, ref_id: Any) -> QBOFault:
    """2500: a reference to an object that does not exist."""
    return _fault(
        "2500",
        "Invalid Reference Id",
        f"Invalid Reference Id : {entity} with Id={ref_id} does not exist",
        element,
    )


def inactive_reference(element: str) -> QBOFault:
    """610 as QBO words it for a reference to an inactive name-list object [I]."""
    return _fault(
        "610",
        "Object Not Found",
        "Object Not Found : Something you're trying to use has been made inactive. Check the "
        "fields with accounts, customers, items, vendors or employees.",
        element,
    )


def not_found(entity: str, entity_id: Any) -> QBOFault:
    """610: read/update of a missing (or deleted) object."""
    return _fault(
        "610",
        "Object Not Found",
        f"Object Not Found : Another user has deleted this transaction. ({entity} Id={entity_id})",
    )


def stale_object(entity: str) -> QBOFault:
    """5010: the SyncToken sent is not the current one."""
    return _fault(
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and simulator were working on this at the same time. "
        f"simulator finished before you did, so your work was not saved. ({entity})",
        "SyncToken",
    )


def business_validation(detail: str, element: str = "", code: str = "6000") -> QBOFault:
    return _fault(
        code,
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element,
    )


def duplicate_name(kind: str) -> QBOFault:
    """6240: DisplayName (or Name) already used."""
    return _fault(
        "6240",
        "Duplicate Name Exists Error",
        "The name supplied already exists. : Another "
        f"{kind} is already using this name. Please use a different name.",
    )


def duplicate_doc_number(doc_number: str, txn_type: str, txn_id: str) -> QBOFault:
    """6140 (docs/qbo-api.md §3.4)."""
    return _fault(
        "6140",
        "Duplicate Document Number Error",
        "Duplicate Document Number Error : You must specify a different number. This number "
        f"has already been used. DocNumber={doc_number} is assigned to TxnType={txn_type} "
        f"with TxnId={txn_id}",
        "DocNumber",
    )


def amount_mismatch(line_index: int) -> QBOFault:
    """6070: SalesItemLineDetail Amount ≠ Qty × UnitPrice."""
    return _fault(
        "6070",
        "Amount is not equal to UnitPrice * Qty",
        f"Amount is not equal to UnitPrice * Qty. Supplied value:Line[{line_index}].Amount",
        "Line.Amount",
    )


def no_name_provided() -> QBOFault:
    return _fault(
        "6080",
        "No Name Provided",
        "No Name Provided : Please provide DisplayName or one of Title, GivenName, MiddleName, "
        "FamilyName, Suffix",
    )


def unsupported_operation(detail: str) -> QBOFault:
    """500 (the QBO code, answered with HTTP 400): bad path, method or operation."""
    return _fault("500", "Unsupported Operation", f"Operation {detail} is not supported.")


def query_parse_error(detail: str) -> QBOFault:
    """4000: the statement does not parse."""
    return _fault("4000", "Error parsing query", f"QueryParserError: {detail}")


def query_validation_error(detail: str) -> QBOFault:
    """4001: the statement parses but is not allowed (e.g. MAXRESULTS > 1000)."""
    return _fault("4001", "Invalid query", f"QueryValidationError: {detail}")


def batch_too_large(size: int, maximum: int) -> QBOFault:
    """1040 (docs/qbo-api.md §5)."""
    return _fault(
        "1040",
        "Batch size exceeds allowed limit",
        f"Batch size of {size} exceeds the maximum allowed limit of {maximum}",
    )


def authentication_failed(detail: str) -> QBOFault:
    """401 / 3200 (docs/qbo-api.md §7.2: gateway wording)."""
    return _fault(
        "3200",
        "message=AuthenticationFailed; errorCode=003200; statusCode=401",
        detail,
        type="AuthenticationFault",
        status=401,
    )


def authorization_failed(detail: str) -> QBOFault:
    """403 / 3100: the token is valid but not for this company."""
    return _fault(
        "3100",
        "message=AuthorizationFailed; errorCode=003100; statusCode=403",
        detail,
        type="AuthorizationFault",
        status=403,
    )


def throttle_exceeded() -> QBOFault:
    """429 / 3001 (docs/qbo-api.md §8)."""
    return _fault(
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.  Try again later",
        type="SERVICE",
        status=429,
    )


@dataclass
class OAuthError(Exception):
    """An OAuth endpoint error: ``{"error": ..., "error_description": ...}`` with ``status``."""

    error: str
    description: str = ""
    status: int = 400

    def __post_init__(self) -> None:
        super().__init__(f"{self.error}: {self.description}")

    def to_json(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


# --------------------------------------------------------------------------- bodies

GATEWAY_TYPES = {401: "AUTHENTICATION", 403: "SERVICE", 429: "SERVICE"}


def fault_body(fault: QBOFault, moment: datetime, settings: QBOSettings) -> tuple[bytes, str]:
    """(body, content type) of a fault, in the shape the settings ask for."""
    if fault.status == 429 and settings.xml_throttle:
        return _xml(fault, stamp(moment, settings)), "application/xml"
    if fault.status in GATEWAY_TYPES and settings.lowercase_gateway_faults:
        payload = {
            "fault": {
                "error": [
                    {"message": e.message, "detail": e.detail, "code": e.code, "element": None}
                    for e in fault.errors
                ],
                "type": GATEWAY_TYPES[fault.status],
            },
            "time": int(moment.timestamp() * 1000),
        }
    else:
        payload = {"Fault": fault.to_json(), "time": stamp(moment, settings)}
    return dumps(payload).encode(), "application/json;charset=UTF-8"


def _xml(fault: QBOFault, time: str) -> bytes:
    errors_xml = "".join(
        f"<Error code={quoteattr(e.code)} element={quoteattr(e.element)}>"
        f"<Message>{escape(e.message)}</Message><Detail>{escape(e.detail)}</Detail></Error>"
        for e in fault.errors
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time="{time}">'
        f'<Fault type="{fault.type}">{errors_xml}</Fault></IntuitResponse>'
    ).encode()
