"""Secrets never leave the client: masking of values, mappings, URLs and library log lines."""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"
SENSITIVE_KEYS = frozenset(
    {
        "access_token",
        "apikey",
        "api_key",
        "assertion",
        "authorization",
        "client_assertion",
        "client_secret",
        "code",
        "cookie",
        "id_token",
        "password",
        "proxy_authorization",
        "refresh_token",
        "secret",
        "set_cookie",
        "token",
    }
)
_SENSITIVE_MARKERS = ("secret", "token", "password", "authorization", "api_key", "apikey")
_SENSITIVE_PATTERNS = (
    # "Bearer abc.def…" / "Basic dXNlcjpw…" in a header echoed back or a message; short
    # words after them ("Bearer token is invalid") are ordinary text.
    re.compile(r"\b([Bb]earer|BEARER|Basic)(\s+)[A-Za-z0-9\-._~+/]{8,}=*"),
    # client_secret=…, "access_token": "…", refresh_token: … in forms, JSON or text.
    re.compile(
        r"(?i)(\b(?:client_secret|access_token|refresh_token|id_token|password)\b[\"']?\s*[:=]\s*[\"']?)"
        r"[^\"'&\s,;}]+"
    ),
)
# Shorter values are too likely to occur by chance in ordinary text to scrub by value.
_MIN_SECRET_LENGTH = 6


def is_sensitive_key(key: str) -> bool:
    """True for a parameter or header name whose value must never be recorded or logged."""
    normal = key.strip().lower().replace("-", "_")
    return normal in SENSITIVE_KEYS or any(marker in normal for marker in _SENSITIVE_MARKERS)


def redact_mapping(values: Mapping[str, Any] | None) -> dict[str, str]:
    """A copy of query parameters or headers with the values of sensitive keys replaced."""
    if not values:
        return {}
    return {
        str(key): REDACTED if is_sensitive_key(str(key)) else str(value)
        for key, value in values.items()
    }


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the given secret values and anything that looks like a credential masked."""
    for secret in sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_LENGTH}, key=len)[::-1]:
        text = text.replace(secret, REDACTED)
    text = _SENSITIVE_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _SENSITIVE_PATTERNS[1].sub(lambda m: f"{m.group(1)}{REDACTED}", text)


_QUERY_PARAM = re.compile(r"([?&])([^=&\s\"']+)=([^&\s\"']*)")


def redact_url_query(text: str) -> str:
    """`text` with the values of sensitive query parameters in any URL masked."""
    return _QUERY_PARAM.sub(
        lambda m: (
            f"{m.group(1)}{m.group(2)}={REDACTED if is_sensitive_key(m.group(2)) else m.group(3)}"
        ),
        text,
    )


class _HttpLibraryLogFilter(logging.Filter):
    """httpx logs every request's full URL at INFO; mask credentials in it and in httpcore's
    debug traces, so that turning on library logging cannot leak a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(redact_url_query(message))
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_LIBRARY_LOG_FILTER = _HttpLibraryLogFilter()
for _name in (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
):
    logging.getLogger(_name).addFilter(_LIBRARY_LOG_FILTER)


class Redactor:
    """Masks one client's secrets in text: fixed ones (client secret) and recent tokens.

    Thread-safe. Tokens are kept in a short ring: an old token is useless once replaced,
    but a message about a request made with it may still be on its way to a log.
    """

    def __init__(self, secrets: Iterable[str] = (), *, recent: int = 16):
        self._fixed = {s for s in secrets if s}
        self._recent: deque[str] = deque(maxlen=recent)
        self._lock = threading.Lock()

    def add(self, secret: str, *, transient: bool = False) -> None:
        """Remember a secret; `transient` ones (access tokens) are kept only while recent."""
        if not secret:
            return
        with self._lock:
            if transient:
                self._recent.append(secret)
            else:
                self._fixed.add(secret)

    def __call__(self, text: str) -> str:
        with self._lock:
            secrets = [*self._fixed, *self._recent]
        return redact(text, secrets)
