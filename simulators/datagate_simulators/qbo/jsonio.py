"""JSON in and out with exact money: numbers parse to ``Decimal`` and are written back verbatim.

The standard encoder cannot write a ``Decimal`` as a number without going through ``float``,
so responses are serialized by :func:`dumps` here (:func:`json_response` for the HTTP layer).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

from starlette.responses import Response

__all__ = ["JSONError", "dumps", "json_response", "loads"]


class JSONError(ValueError):
    """The body is not valid JSON (or uses NaN/Infinity)."""


def _reject_constant(name: str) -> Any:
    raise JSONError(f"{name} is not a JSON number")


def loads(data: bytes | str) -> Any:
    """Parse JSON; every number (integer or not) becomes a ``Decimal``."""
    try:
        return json.loads(
            data, parse_float=Decimal, parse_int=Decimal, parse_constant=_reject_constant
        )
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, JSONError):
            raise
        raise JSONError(str(exc)) from None


def _number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as JSON")
    text = format(value, "f")
    return "0" if text in ("-0", "-0.0") else text


def dumps(value: Any) -> str:
    """Serialize ``value``; ``Decimal`` is written as a plain JSON number (no exponent)."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, Decimal):
        out.append(_number(value))
    elif isinstance(value, float):
        raise TypeError("floats have no place in the QBO simulator; use Decimal")
    else:
        out.append(json.dumps(value))


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response written with exact decimals, plus Intuit's ``intuit_tid`` header."""
    return Response(
        dumps(payload).encode(),
        status_code=status,
        media_type="application/json;charset=UTF-8",
        headers={"intuit_tid": str(uuid.uuid4()), **(headers or {})},
    )
