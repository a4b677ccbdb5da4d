"""A QuickBooks Online simulator: Intuit OAuth 2.0 and the v3 Accounting API (QBO_API.md).

Moto-style: :class:`QBOBackend` holds the companies and the rules in plain Python;
:func:`create_app` is the thin ASGI layer over it; ``python -m
datagate_simulators.qbo`` serves it on loopback.
"""

from .app import create_app
from .backend import QBOBackend
from .backend.company import Company
from .clock import FakeClock, SystemClock
from .errors import OAuthError, QBOError, QBOFault
from .generator import DEFAULT_ACCOUNTS, DEFAULT_TERMS
from .oauth import ACCOUNTING_SCOPE
from .settings import OAuthSettings, QBOSettings, ThrottleSettings

__all__ = [
    "ACCOUNTING_SCOPE",
    "DEFAULT_ACCOUNTS",
    "DEFAULT_TERMS",
    "Company",
    "FakeClock",
    "OAuthError",
    "OAuthSettings",
    "QBOBackend",
    "QBOError",
    "QBOFault",
    "QBOSettings",
    "SystemClock",
    "ThrottleSettings",
    "create_app",
]
