"""A HaloPSA simulator: the backend (state and rules), its Starlette app, a tenant generator.

Typical test use::

    backend = HaloPSABackend(tenant="acme")
    backend.add_application("client-id", "secret")
    generate_tenant(backend, customers=50, seed=7)
    app = create_app(backend)
    with httpx.Client(transport=SyncASGITransport(app), base_url="http://halo.test") as http:
        ...
"""

from datagate_simulators.halopsa.app import create_app
from datagate_simulators.halopsa.backend import HaloPSABackend, ListResult
from datagate_simulators.halopsa.conventions import NO_DATE, NO_END, UNSET
from datagate_simulators.halopsa.generator import (
    GeneratedTenant,
    bayside_dental,
    generate_tenant,
)
from datagate_simulators.halopsa.oauth import Application
from datagate_simulators.halopsa.throttle import RateLimit

__all__ = [
    "NO_DATE",
    "NO_END",
    "UNSET",
    "Application",
    "GeneratedTenant",
    "HaloPSABackend",
    "ListResult",
    "RateLimit",
    "bayside_dental",
    "create_app",
    "generate_tenant",
]
