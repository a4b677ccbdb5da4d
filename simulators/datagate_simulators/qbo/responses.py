"""Response bodies: the ``{"<Entity>": …, "time": …}`` envelope and QBO's Fault shapes.

Three fault shapes exist (QBO_API.md §7.2, §8): the documented ``{"Fault": {"Error": […]}}``;
the gateway's lower-case ``{"fault": {"error": […]}}`` seen on 401/403/429 (opt-in); and the
XML ``IntuitResponse`` that 429s have been seen to carry even when JSON was asked for
(opt-in). Injected faults (``POST /_sim/faults``) get QBO-shaped bodies too.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from starlette.responses import Response

from . import errors
from .clock import format_time
from .errors import QBOFault
from .jsonio import dumps
from .settings import QBOSettings

__all__ = ["fault_body", "injected_fault_body", "json_response", "stamp"]

GATEWAY_TYPES = {401: "AUTHENTICATION", 403: "SERVICE", 429: "SERVICE"}


def stamp(moment: datetime, settings: QBOSettings) -> str:
    """The envelope's ``time``: ``2015-08-10T11:44:02.957-07:00``."""
    return format_time(moment, timezone(timedelta(hours=settings.utc_offset_hours)), millis=True)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response written with exact decimals, plus Intuit's ``intuit_tid`` header."""
    return Response(
        dumps(payload).encode(),
        status_code=status,
        media_type="application/json;charset=UTF-8",
        headers={"intuit_tid": str(uuid.uuid4()), **(headers or {})},
    )


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


def fault_response(fault: QBOFault, moment: datetime, settings: QBOSettings) -> Response:
    body, content_type = fault_body(fault, moment, settings)
    return Response(
        body,
        status_code=fault.status,
        media_type=content_type,
        headers={"intuit_tid": str(uuid.uuid4()), **fault.headers},
    )


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


def injected_fault(status: int) -> QBOFault:
    """The QBO-shaped fault for a status injected through ``POST /_sim/faults`` [I]."""
    if status == 429:
        return errors.throttle_exceeded()
    if status == 401:
        return errors.authentication_failed("Token expired")
    if status == 403:
        return errors.authorization_failed("Access denied")
    if status >= 500:
        return QBOFault(
            [
                errors.QBOError(
                    "10000",
                    "An application error has occurred while processing your request",
                    f"System Failure Error: simulated HTTP {status}",
                )
            ],
            type="SystemFault",
            status=status,
        )
    return QBOFault(
        [
            errors.QBOError(
                "6000",
                "A business validation error has occurred while processing your request",
                f"Business Validation Error: simulated HTTP {status}",
            )
        ],
        status=status,
    )


def injected_fault_body(status: int, moment: datetime, settings: QBOSettings) -> tuple[bytes, str]:
    return fault_body(injected_fault(status), moment, settings)
