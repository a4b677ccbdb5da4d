"""JSON as QBO's money needs it: numbers read as Decimal and written back exactly, never through float."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx

# ---------------------------------------------------------------------------------------
# Exact JSON
# ---------------------------------------------------------------------------------------


def loads(data: bytes | str) -> Any:
    """Parse a QBO body: decimals become `Decimal` (money stays exact), integers `int`."""
    return json.loads(data, parse_float=Decimal)


def dumps(value: Any) -> bytes:
    """Serialize a request body; `Decimal` is written as a plain JSON number, exactly.

    Floats are refused: money must never pass through binary floating point.
    """
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode("utf-8")


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, bool) or value is None:
        out.append(json.dumps(value))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be sent to QBO")
        text = format(value, "f")
        out.append("0" if text.lstrip("-").strip("0.") == "" else text)
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        raise TypeError("floats are not sent to QBO; use Decimal for amounts")
    elif isinstance(value, datetime | date):
        out.append(json.dumps(value.isoformat()))
    else:
        out.append(json.dumps(str(value), ensure_ascii=False))


class ExactJSONHttpClient(httpx.Client):
    """`httpx.Client` whose `json=` bodies are written by `dumps` (exact `Decimal`s)."""

    def build_request(self, method: str, url: Any, **kwargs: Any) -> httpx.Request:
        body = kwargs.pop("json", None)
        if body is not None:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("Content-Type", "application/json")
            kwargs["headers"] = headers
            kwargs["content"] = dumps(body)
        return super().build_request(method, url, **kwargs)
