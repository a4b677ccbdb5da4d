"""A QuickBooks Online simulator: Intuit OAuth 2.0 and the v3 Accounting API (docs/qbo-api.md).

Shaped like every simulator here (moto's shape): ``backend`` holds the state and rules in
plain Python, ``app`` maps HTTP onto it, ``errors`` are the service's errors and their real
bodies, ``oauth`` its token endpoints and applications, ``generator`` deterministic seeded
data, ``faults`` its fault switches, ``testing`` in-process helpers; ``python -m
datagate_simulators.qbo`` serves it on loopback.

Typical test use::

    sim = make_sim(clock=FakeClock(), customers=[{"DisplayName": "Acme"}])
    with sim.authed_client() as http:
        ...
"""

from .app import create_app
from .backend import QBOBackend
from .backend.company import Company
from .clock import FakeClock, SystemClock
from .errors import OAuthError, QBOError, QBOFault
from .generator import DEFAULT_ACCOUNTS, DEFAULT_TERMS
from .oauth import ACCOUNTING_SCOPE
from .settings import OAuthSettings, QBOSettings, ThrottleSettings
from .testing import IN_PROCESS_URL, QBOSim, make_sim

__all__ = [
    "ACCOUNTING_SCOPE",
    "DEFAULT_ACCOUNTS",
    "DEFAULT_TERMS",
    "IN_PROCESS_URL",
    "Company",
    "FakeClock",
    "OAuthError",
    "OAuthSettings",
    "QBOBackend",
    "QBOError",
    "QBOFault",
    "QBOSettings",
    "QBOSim",
    "SystemClock",
    "ThrottleSettings",
    "create_app",
    "make_sim",
]
